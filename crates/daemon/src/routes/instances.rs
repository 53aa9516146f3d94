use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use ferrovirt_api::{Instance, InstanceSpec, InstanceState, StatePut};
use serde::Deserialize;

use crate::daemon::{Daemon, store_err};
use crate::error::ApiResult;
use crate::instance::lifecycle;
use crate::instances;
use crate::json::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The instances routes, registered once for the router and the OpenAPI document.
pub fn routes() -> OpenApiRouter<Daemon> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, replace, patch, delete))
        .routes(routes!(state, change_state))
}

type Reply<T> = ApiResult<axum::Json<T>>;

/// List instances.
#[utoipa::path(get, path = "/1.0/instances", responses((status = 200, body = [Instance])))]
pub async fn list(State(d): State<Daemon>) -> Reply<Vec<Instance>> {
    let recs = d
        .store
        .list_instances()
        .await
        .map_err(store_err("listing instances"))?;
    Ok(axum::Json(
        recs.into_iter()
            .map(|r| crate::instances::view(&d, r))
            .collect(),
    ))
}

/// Define a new instance.
#[utoipa::path(post, path = "/1.0/instances", request_body = InstanceSpec,
    responses((status = 201, body = Instance), (status = 400, body = ferrovirt_api::ErrorBody),
              (status = 409, body = ferrovirt_api::ErrorBody)))]
pub async fn create(
    State(d): State<Daemon>,
    Json(spec): Json<InstanceSpec>,
) -> ApiResult<(StatusCode, axum::Json<Instance>)> {
    let inst = instances::create(&d, spec).await?;
    Ok((StatusCode::CREATED, axum::Json(inst)))
}

/// Show one instance.
#[utoipa::path(get, path = "/1.0/instances/{name}", responses((status = 200, body = Instance),
    (status = 404, body = ferrovirt_api::ErrorBody)))]
pub async fn show(State(d): State<Daemon>, Path(name): Path<String>) -> Reply<Instance> {
    Ok(axum::Json(crate::instances::view(
        &d,
        d.record(&name).await?,
    )))
}

/// Replace an instance's spec.
#[utoipa::path(put, path = "/1.0/instances/{name}", request_body = InstanceSpec,
    responses((status = 200, body = Instance)))]
pub async fn replace(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    Json(spec): Json<InstanceSpec>,
) -> Reply<Instance> {
    Ok(axum::Json(instances::replace(&d, &name, spec).await?))
}

/// Update an instance's spec with a JSON merge patch.
#[utoipa::path(patch, path = "/1.0/instances/{name}", request_body = serde_json::Value,
    responses((status = 200, body = Instance)))]
pub async fn patch(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    Json(body): Json<serde_json::Value>,
) -> Reply<Instance> {
    Ok(axum::Json(instances::patch(&d, &name, body).await?))
}

#[derive(Debug, Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

/// Delete an instance (`?force=true` stops it first).
#[utoipa::path(delete, path = "/1.0/instances/{name}", params(("force" = Option<bool>, Query)),
    responses((status = 200), (status = 409, body = ferrovirt_api::ErrorBody)))]
pub async fn delete(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    instances::delete(&d, &name, q.force).await?;
    Ok(axum::Json(serde_json::json!({})))
}

/// The live state of an instance.
#[utoipa::path(get, path = "/1.0/instances/{name}/state", responses((status = 200, body = InstanceState)))]
pub async fn state(State(d): State<Daemon>, Path(name): Path<String>) -> Reply<InstanceState> {
    Ok(axum::Json(
        crate::instances::view(&d, d.record(&name).await?).state,
    ))
}

/// Start, stop, pause, resume, reboot or reset an instance.
#[utoipa::path(put, path = "/1.0/instances/{name}/state", request_body = StatePut,
    responses((status = 200, body = Instance), (status = 409, body = ferrovirt_api::ErrorBody)))]
pub async fn change_state(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    Json(req): Json<StatePut>,
) -> Reply<Instance> {
    lifecycle::change_state(&d, &name, &req).await?;
    Ok(axum::Json(crate::instances::view(
        &d,
        d.record(&name).await?,
    )))
}
