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
