use axum::extract::{Path, State};
use ferrovirt_api::{
    HostCheck, HostInfo, TokenPost, TokenReply, TrustPost, TrustReply, TrustRole, TrustedClient,
};
use ferrovirt_core::{Error, accel, hostcheck};

use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The host routes, registered once for the router and the OpenAPI document.
pub fn routes() -> OpenApiRouter<Daemon> {
    OpenApiRouter::new()
        .routes(routes!(info))
        .routes(routes!(check))
        .routes(routes!(token))
        .routes(routes!(trusted, trust))
        .routes(routes!(untrust))
}

/// API root: version and supported paths.
pub async fn api_root() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "api_version": "1.0",
        "server": "ferrovirtd",
        "server_version": env!("CARGO_PKG_VERSION"),
    }))
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(Error::not_found(format!("no such API path {}", uri.path())))
}

/// Host information: CPUs, memory, accelerator, QEMU capabilities.
#[utoipa::path(get, path = "/1.0/host", responses((status = 200, body = HostInfo)))]
pub async fn info(State(d): State<Daemon>) -> ApiResult<axum::Json<HostInfo>> {
    let qemu = d.qemu()?.clone();
    Ok(axum::Json(HostInfo {
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        cpus: ferrovirt_qemu::host::cpu_count(),
        cpu_model: ferrovirt_qemu::host::cpu_model_name(),
        memory_mib: ferrovirt_qemu::host::memory_mib(),
        accel: accel::decide(ferrovirt_api::Accelerator::Auto, &d.virt)?,
        qemu,
        qemu_img_version: qemu_img_version(&d).await,
    }))
}

/// `qemu-img --version` through the daemon's command runner.
async fn qemu_img_version(d: &Daemon) -> Option<String> {
    let cmd = ferrovirt_core::runner::Command::new("qemu-img").arg("--version");
    let out = d.runner.run(&cmd).await.ok()?;
    Some(ferrovirt_qemu::probe::parse_version(&out.stdout))
}

/// Host validation, like virt-host-validate.
#[utoipa::path(get, path = "/1.0/host/check", responses((status = 200, body = HostCheck)))]
pub async fn check(State(d): State<Daemon>) -> ApiResult<axum::Json<HostCheck>> {
    let qemu = d
        .qemu
        .as_ref()
        .map(|q| q.version.clone())
        .map_err(Clone::clone);
    let facts = tokio::task::spawn_blocking(move || ferrovirt_qemu::host::facts(qemu))
        .await
        .map_err(|e| Error::internal(format!("host check failed: {e}")))?;
    Ok(axum::Json(HostCheck {
        items: hostcheck::check(&facts),
        accel: accel::decide(ferrovirt_api::Accelerator::Auto, &facts.virt)?,
    }))
}

/// Make a one-time join token (valid one hour), for an admin or a
/// restricted client.
#[utoipa::path(post, path = "/1.0/host/tokens", request_body = TokenPost,
    responses((status = 200, body = TokenReply)))]
pub async fn token(
    State(d): State<Daemon>,
    crate::json::Json(req): crate::json::Json<TokenPost>,
) -> ApiResult<axum::Json<TokenReply>> {
    let t = crate::remote::new_token(&d, &req).await?;
    Ok(axum::Json(TokenReply {
        token: ferrovirt_client::encode_token(&t),
    }))
}

/// Trust the calling client's certificate, in exchange for a join token.
#[utoipa::path(post, path = "/1.0/host/trust", request_body = TrustPost,
    responses((status = 200, body = TrustReply), (status = 403, body = ferrovirt_api::ErrorBody)))]
pub async fn trust(
    State(d): State<Daemon>,
    peer: Option<axum::Extension<crate::remote::Peer>>,
    crate::json::Json(req): crate::json::Json<TrustPost>,
) -> ApiResult<axum::Json<TrustReply>> {
    let name = crate::remote::redeem(&d, peer.as_ref().map(|p| &p.0), &req.secret).await?;
    Ok(axum::Json(TrustReply { trusted_as: name }))
}

/// Trusted client certificates.
#[utoipa::path(get, path = "/1.0/host/trust", responses((status = 200, body = [TrustedClient])))]
pub async fn trusted(State(d): State<Daemon>) -> ApiResult<axum::Json<Vec<TrustedClient>>> {
    let list = d
        .store
        .trusted()
        .await
        .map_err(crate::daemon::store_err("reading trusted certificates"))?;
    Ok(axum::Json(
        list.into_iter()
            .map(|c| TrustedClient {
                fingerprint: c.fingerprint,
                name: c.grant.name,
                role: match c.grant.role {
                    ferrovirt_store::TrustRole::Admin => TrustRole::Admin,
                    ferrovirt_store::TrustRole::Restricted => TrustRole::Restricted,
                },
                instances: c.grant.instances,
                expires: c
                    .grant
                    .expires
                    .and_then(|t| chrono::DateTime::from_timestamp(t, 0)),
            })
            .collect(),
    ))
}

/// Stop trusting a client certificate: its next request is refused, also
/// on an open connection.
#[utoipa::path(delete, path = "/1.0/host/trust/{fingerprint}",
    responses((status = 200), (status = 404, body = ferrovirt_api::ErrorBody)))]
pub async fn untrust(
    State(d): State<Daemon>,
    Path(fingerprint): Path<String>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    crate::remote::untrust(&d, &fingerprint).await?;
    Ok(axum::Json(serde_json::json!({})))
}
