use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use ferrovirt_api::{
    Operation, Pool, PoolAction, PoolCreate, PoolDelete, PoolSpec, PoolStatePut, Volume,
    VolumeClone, VolumeConvert, VolumeCreate, VolumeExport, VolumeImport, VolumeResize,
};

use super::operations::accepted;
use crate::daemon::Daemon;
use crate::error::ApiResult;
use crate::json::Json;
use crate::storage::{self, copy, volumes};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The storage routes, registered once for the router and the OpenAPI document.
pub fn routes() -> OpenApiRouter<Daemon> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, replace, delete))
        .routes(routes!(change_state))
        .routes(routes!(volume_import))
        .routes(routes!(volumes_list, volume_create))
        .routes(routes!(volume_show, volume_delete))
        .routes(routes!(volume_resize))
        .routes(routes!(volume_wipe))
        .routes(routes!(volume_clone))
        .routes(routes!(volume_convert))
        .routes(routes!(volume_export))
}

type Reply<T> = ApiResult<axum::Json<T>>;
type Accepted = ApiResult<(StatusCode, HeaderMap, axum::Json<Operation>)>;

/// List storage pools.
#[utoipa::path(get, path = "/1.0/pools", responses((status = 200, body = [Pool])))]
pub async fn list(State(d): State<Daemon>) -> Reply<Vec<Pool>> {
    let mut out = Vec::new();
    for r in storage::records(&d).await? {
        out.push(storage::view(&d, r).await);
    }
    Ok(axum::Json(out))
}

/// Define a pool (optionally build it) and start it.
#[utoipa::path(post, path = "/1.0/pools", request_body = PoolCreate,
    responses((status = 201, body = Pool), (status = 400, body = ferrovirt_api::ErrorBody)))]
pub async fn create(
    State(d): State<Daemon>,
    Json(req): Json<PoolCreate>,
) -> ApiResult<(StatusCode, axum::Json<Pool>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(storage::create(&d, req).await?),
    ))
}

#[utoipa::path(get, path = "/1.0/pools/{pool}", responses((status = 200, body = Pool)))]
pub async fn show(State(d): State<Daemon>, Path(pool): Path<String>) -> Reply<Pool> {
    Ok(axum::Json(
        storage::view(&d, storage::record(&d, &pool).await?).await,
    ))
}

/// Change a pool's autostart or description.
#[utoipa::path(put, path = "/1.0/pools/{pool}", request_body = PoolSpec,
    responses((status = 200, body = Pool)))]
pub async fn replace(
    State(d): State<Daemon>,
    Path(pool): Path<String>,
    Json(spec): Json<PoolSpec>,
) -> Reply<Pool> {
    Ok(axum::Json(storage::replace(&d, &pool, spec).await?))
}

/// Delete a pool (its volumes only with `volumes=true`).
#[utoipa::path(delete, path = "/1.0/pools/{pool}", params(("volumes" = Option<bool>, Query,)),
    responses((status = 200), (status = 409, body = ferrovirt_api::ErrorBody)))]
pub async fn delete(
    State(d): State<Daemon>,
    Path(pool): Path<String>,
    Query(q): Query<PoolDelete>,
) -> Reply<serde_json::Value> {
    storage::delete(&d, &pool, q.volumes).await?;
    Ok(axum::Json(serde_json::json!({})))
}

/// Start, stop or refresh a pool.
#[utoipa::path(put, path = "/1.0/pools/{pool}/state", request_body = PoolStatePut,
    responses((status = 200, body = Pool)))]
pub async fn change_state(
    State(d): State<Daemon>,
    Path(pool): Path<String>,
    Json(req): Json<PoolStatePut>,
) -> Reply<Pool> {
    let p = match req.action {
        PoolAction::Start => storage::start(&d, &pool).await?,
        PoolAction::Stop => storage::stop(&d, &pool).await?,
        // Volumes are read from the storage on every request: a refresh
        // only re-checks that it is there.
        PoolAction::Refresh => {
            let rec = storage::active(&d, &pool).await?;
            storage::driver(&d, &rec.spec).start().await?;
            storage::view(&d, rec).await
        }
    };
    Ok(axum::Json(p))
}

/// List a pool's volumes.
#[utoipa::path(get, path = "/1.0/pools/{pool}/volumes", responses((status = 200, body = [Volume])))]
pub async fn volumes_list(State(d): State<Daemon>, Path(pool): Path<String>) -> Reply<Vec<Volume>> {
    Ok(axum::Json(volumes::list(&d, &pool).await?))
}

/// Create a volume.
#[utoipa::path(post, path = "/1.0/pools/{pool}/volumes", request_body = VolumeCreate,
    responses((status = 201, body = Volume), (status = 400, body = ferrovirt_api::ErrorBody)))]
pub async fn volume_create(
    State(d): State<Daemon>,
    Path(pool): Path<String>,
    Json(req): Json<VolumeCreate>,
) -> ApiResult<(StatusCode, axum::Json<Volume>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(volumes::create(&d, &pool, req).await?),
    ))
}

/// Show a volume with its format and backing chain.
#[utoipa::path(get, path = "/1.0/pools/{pool}/volumes/{volume}", responses((status = 200, body = Volume)))]
pub async fn volume_show(
    State(d): State<Daemon>,
    Path((pool, vol)): Path<(String, String)>,
) -> Reply<Volume> {
    Ok(axum::Json(volumes::show(&d, &pool, &vol).await?))
}

/// Delete a volume (refused while an instance uses it).
#[utoipa::path(delete, path = "/1.0/pools/{pool}/volumes/{volume}",
    responses((status = 200), (status = 409, body = ferrovirt_api::ErrorBody)))]
pub async fn volume_delete(
    State(d): State<Daemon>,
    Path((pool, vol)): Path<(String, String)>,
) -> Reply<serde_json::Value> {
    volumes::delete(&d, &pool, &vol).await?;
    Ok(axum::Json(serde_json::json!({})))
}

/// Resize a volume (live through QEMU when a running guest uses it).
#[utoipa::path(post, path = "/1.0/pools/{pool}/volumes/{volume}/resize", request_body = VolumeResize,
    responses((status = 200, body = Volume)))]
pub async fn volume_resize(
    State(d): State<Daemon>,
    Path((pool, vol)): Path<(String, String)>,
    Json(req): Json<VolumeResize>,
) -> Reply<Volume> {
    Ok(axum::Json(volumes::resize(&d, &pool, &vol, req).await?))
}

/// Zero a volume's content.
#[utoipa::path(post, path = "/1.0/pools/{pool}/volumes/{volume}/wipe", responses((status = 200, body = Volume)))]
pub async fn volume_wipe(
    State(d): State<Daemon>,
    Path((pool, vol)): Path<(String, String)>,
) -> Reply<Volume> {
    Ok(axum::Json(volumes::wipe(&d, &pool, &vol).await?))
}

/// Clone a volume, linked or full (an operation).
#[utoipa::path(post, path = "/1.0/pools/{pool}/volumes/{volume}/clone", request_body = VolumeClone,
    responses((status = 202, body = Operation)))]
pub async fn volume_clone(
    State(d): State<Daemon>,
    Path((pool, vol)): Path<(String, String)>,
    Json(req): Json<VolumeClone>,
) -> Accepted {
    Ok(accepted(copy::clone(&d, &pool, &vol, req).await?))
}

/// Convert a volume to another format (an operation).
#[utoipa::path(post, path = "/1.0/pools/{pool}/volumes/{volume}/convert", request_body = VolumeConvert,
    responses((status = 202, body = Operation)))]
pub async fn volume_convert(
    State(d): State<Daemon>,
    Path((pool, vol)): Path<(String, String)>,
    Json(req): Json<VolumeConvert>,
) -> Accepted {
    Ok(accepted(copy::convert_volume(&d, &pool, &vol, req).await?))
}

/// Export a volume to a host file (an operation).
#[utoipa::path(post, path = "/1.0/pools/{pool}/volumes/{volume}/export", request_body = VolumeExport,
    responses((status = 202, body = Operation)))]
pub async fn volume_export(
    State(d): State<Daemon>,
    Path((pool, vol)): Path<(String, String)>,
    Json(req): Json<VolumeExport>,
) -> Accepted {
    Ok(accepted(copy::export(&d, &pool, &vol, req).await?))
}

/// Import a host image file as a new volume (an operation).
#[utoipa::path(post, path = "/1.0/pools/{pool}/import", request_body = VolumeImport,
    responses((status = 202, body = Operation)))]
pub async fn volume_import(
    State(d): State<Daemon>,
    Path(pool): Path<String>,
    Json(req): Json<VolumeImport>,
) -> Accepted {
    Ok(accepted(copy::import(&d, &pool, req).await?))
}
