use axum::extract::State;
use ferrovirt_api::{HostCheck, HostInfo};
use ferrovirt_core::{Error, accel, hostcheck};

use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};

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
        qemu_img_version: ferrovirt_qemu::host::qemu_img_version().ok(),
    }))
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

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenPost {
    /// Name the joining client will be trusted as.
    name: String,
}

#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TokenReply {
    /// Pass to `ferrovirt remote add NAME URL --token TOKEN` on the client.
    pub token: String,
}

/// Make a one-time join token (valid one hour).
#[utoipa::path(post, path = "/1.0/host/tokens", request_body = TokenPost,
    responses((status = 200, body = TokenReply)))]
pub async fn token(
    State(d): State<Daemon>,
    crate::json::Json(req): crate::json::Json<TokenPost>,
) -> ApiResult<axum::Json<TokenReply>> {
    let t = crate::remote::new_token(&d, &req.name).await?;
    Ok(axum::Json(TokenReply {
        token: ferrovirt_client::encode_token(&t),
    }))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustPost {
    /// The secret of a join token.
    secret: String,
}

/// Trust the calling client's certificate, in exchange for a join token.
#[utoipa::path(post, path = "/1.0/host/trust", request_body = TrustPost,
    responses((status = 200), (status = 403, body = ferrovirt_api::ErrorBody)))]
pub async fn trust(
    State(d): State<Daemon>,
    peer: Option<axum::Extension<crate::remote::Peer>>,
    crate::json::Json(req): crate::json::Json<TrustPost>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let name = crate::remote::redeem(&d, peer.as_ref().map(|p| &p.0), &req.secret).await?;
    Ok(axum::Json(serde_json::json!({"trusted_as": name})))
}

/// Trusted client certificates.
#[utoipa::path(get, path = "/1.0/host/trust", responses((status = 200)))]
pub async fn trusted(State(d): State<Daemon>) -> ApiResult<axum::Json<serde_json::Value>> {
    let list = d
        .store
        .trusted()
        .await
        .map_err(crate::daemon::store_err("reading trusted certificates"))?;
    Ok(axum::Json(serde_json::json!(
        list.into_iter()
            .map(|c| serde_json::json!({"fingerprint": c.fingerprint, "name": c.name}))
            .collect::<Vec<_>>()
    )))
}
