use axum::extract::{Path, State};
use ferrovirt_api::{Disk, Instance, IoLimits, MediaPut};

use crate::daemon::Daemon;
use crate::disks;
use crate::error::ApiResult;
use crate::json::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The disks routes, registered once for the router and the OpenAPI document.
pub fn routes() -> OpenApiRouter<Daemon> {
    OpenApiRouter::new()
        .routes(routes!(attach))
        .routes(routes!(detach))
        .routes(routes!(media))
        .routes(routes!(limits))
}

type Reply<T> = ApiResult<axum::Json<T>>;

/// Attach a disk (hot-plugged when the instance runs).
#[utoipa::path(post, path = "/1.0/instances/{name}/disks", request_body = Disk,
    responses((status = 200, body = Instance), (status = 400, body = ferrovirt_api::ErrorBody)))]
pub async fn attach(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    Json(disk): Json<Disk>,
) -> Reply<Instance> {
    Ok(axum::Json(disks::attach(&d, &name, disk).await?))
}

/// Detach a disk (hot-unplugged when the instance runs).
#[utoipa::path(delete, path = "/1.0/instances/{name}/disks/{disk}", responses((status = 200, body = Instance)))]
pub async fn detach(
    State(d): State<Daemon>,
    Path((name, disk)): Path<(String, String)>,
) -> Reply<Instance> {
    Ok(axum::Json(disks::detach(&d, &name, &disk).await?))
}

/// Insert a medium into a cdrom drive, or eject it (empty body fields).
#[utoipa::path(put, path = "/1.0/instances/{name}/disks/{disk}/media", request_body = MediaPut,
    responses((status = 200, body = Instance)))]
pub async fn media(
    State(d): State<Daemon>,
    Path((name, disk)): Path<(String, String)>,
    Json(req): Json<MediaPut>,
) -> Reply<Instance> {
    Ok(axum::Json(
        disks::change_media(&d, &name, &disk, req).await?,
    ))
}

/// Replace a disk's I/O limits (applied at once when running).
#[utoipa::path(put, path = "/1.0/instances/{name}/disks/{disk}/limits", request_body = IoLimits,
    responses((status = 200, body = Instance)))]
pub async fn limits(
    State(d): State<Daemon>,
    Path((name, disk)): Path<(String, String)>,
    Json(req): Json<IoLimits>,
) -> Reply<Instance> {
    Ok(axum::Json(disks::set_limits(&d, &name, &disk, req).await?))
}
