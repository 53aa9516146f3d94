use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use ferrovirt_api::{IncomingPost, IncomingReply, MigratePost, Operation};
use serde::Deserialize;

use super::operations::accepted;
use crate::daemon::Daemon;
use crate::error::ApiResult;
use crate::json::Json;
use crate::migration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The migrations routes, registered once for the router and the OpenAPI document.
pub fn routes() -> OpenApiRouter<Daemon> {
    OpenApiRouter::new()
        .routes(routes!(migrate))
        .routes(routes!(incoming))
        .routes(routes!(abort))
        .routes(routes!(finish))
}

/// Migrate an instance to another host (an operation, cancellable).
#[utoipa::path(post, path = "/1.0/instances/{name}/migrate", request_body = MigratePost,
    responses((status = 202, body = Operation), (status = 409, body = ferrovirt_api::ErrorBody)))]
pub async fn migrate(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    Json(req): Json<MigratePost>,
) -> ApiResult<(StatusCode, HeaderMap, axum::Json<Operation>)> {
    migration::check(&d, &name, &req).await?;
    let dd = d.clone();
    let op = d.operations.spawn(
        format!("migrate {name} to {}", req.target.address),
        vec![format!("/1.0/instances/{name}")],
        true,
        move |ctx| async move { migration::migrate(&dd, &ctx, &name, req).await },
    );
    Ok(accepted(op))
}

/// Host to host: get ready to receive an instance.
#[utoipa::path(post, path = "/1.0/migrations/incoming", request_body = IncomingPost,
    responses((status = 200, body = IncomingReply)))]
pub async fn incoming(
    State(d): State<Daemon>,
    Json(req): Json<IncomingPost>,
) -> ApiResult<axum::Json<IncomingReply>> {
    Ok(axum::Json(migration::prepare_incoming(&d, req).await?))
}

#[derive(Debug, Deserialize)]
pub struct FinishQuery {
    #[serde(default)]
    live: bool,
}

/// Host to host: everything was sent; run the instance here.
#[utoipa::path(post, path = "/1.0/migrations/incoming/{name}/finish", responses((status = 200)))]
pub async fn finish(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    Query(q): Query<FinishQuery>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    migration::finish_incoming(&d, &name, q.live).await?;
    Ok(axum::Json(serde_json::json!({})))
}

/// Host to host: drop an incoming migration.
#[utoipa::path(delete, path = "/1.0/migrations/incoming/{name}", responses((status = 200)))]
pub async fn abort(
    State(d): State<Daemon>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    migration::abort_incoming(&d, &name).await?;
    Ok(axum::Json(serde_json::json!({})))
}
