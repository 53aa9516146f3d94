use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use ferrovirt_api::Operation;
use serde::Deserialize;
use uuid::Uuid;

use crate::daemon::Daemon;
use crate::error::ApiResult;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The operations routes, registered once for the router and the OpenAPI document.
pub fn routes() -> OpenApiRouter<Daemon> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, cancel))
        .routes(routes!(wait))
}

/// The 202 answer of an action that runs as an operation.
pub fn accepted(op: Operation) -> (StatusCode, HeaderMap, axum::Json<Operation>) {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/1.0/operations/{}", op.id)) {
        headers.insert(header::LOCATION, v);
    }
    (StatusCode::ACCEPTED, headers, axum::Json(op))
}

/// List operations (running and recently finished).
#[utoipa::path(get, path = "/1.0/operations", responses((status = 200, body = [Operation])))]
pub async fn list(State(d): State<Daemon>) -> axum::Json<Vec<Operation>> {
    axum::Json(d.operations.list())
}

/// Show an operation.
#[utoipa::path(get, path = "/1.0/operations/{id}", responses((status = 200, body = Operation),
    (status = 404, body = ferrovirt_api::ErrorBody)))]
pub async fn show(
    State(d): State<Daemon>,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Operation>> {
    Ok(axum::Json(d.operations.get(id)?))
}

#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    /// Seconds to wait at most: 0 to 3600, default 30.
    timeout: Option<f64>,
}

/// Wait until the operation finishes (or the timeout passes) and show it.
#[utoipa::path(get, path = "/1.0/operations/{id}/wait", params(("timeout" = Option<f64>, Query)),
    responses((status = 200, body = Operation)))]
pub async fn wait(
    State(d): State<Daemon>,
    Path(id): Path<Uuid>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<axum::Json<Operation>> {
    let timeout = wait_timeout(q.timeout)?;
    Ok(axum::Json(d.operations.wait(id, timeout).await?))
}

/// Longest wait, in seconds.
const MAX_WAIT_SECS: f64 = 3600.0;

/// The `timeout` of a wait: 30 s by default, a number of seconds between 0
/// and an hour (NaN, infinities and negative numbers are refused).
fn wait_timeout(secs: Option<f64>) -> Result<Duration, ferrovirt_core::Error> {
    match secs {
        None => Ok(Duration::from_secs(30)),
        Some(s) if s.is_finite() && (0.0..=MAX_WAIT_SECS).contains(&s) => {
            Ok(Duration::from_secs_f64(s))
        }
        Some(s) => Err(ferrovirt_core::Error::validation(
            "timeout",
            format!("{s} is not a number of seconds between 0 and {MAX_WAIT_SECS}"),
        )),
    }
}

/// Cancel an operation.
#[utoipa::path(delete, path = "/1.0/operations/{id}", responses((status = 200, body = Operation),
    (status = 409, body = ferrovirt_api::ErrorBody)))]
pub async fn cancel(
    State(d): State<Daemon>,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Operation>> {
    Ok(axum::Json(d.operations.cancel(id)?))
}
