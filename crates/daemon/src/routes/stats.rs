use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use ferrovirt_api::InstanceStats;

use crate::daemon::Daemon;
use crate::error::ApiResult;
use crate::stats;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The stats routes, registered once for the router and the OpenAPI document.
pub fn routes() -> OpenApiRouter<Daemon> {
    OpenApiRouter::new()
        .routes(routes!(instance))
        .routes(routes!(all))
}

/// Usage counters of a running instance.
#[utoipa::path(get, path = "/1.0/instances/{name}/stats", responses((status = 200, body = InstanceStats),
    (status = 409, body = ferrovirt_api::ErrorBody)))]
pub async fn instance(
    State(d): State<Daemon>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<InstanceStats>> {
    Ok(axum::Json(stats::collect(&d, &name).await?))
}

/// Usage counters of every running instance.
#[utoipa::path(get, path = "/1.0/stats", responses((status = 200, body = [InstanceStats])))]
pub async fn all(State(d): State<Daemon>) -> axum::Json<Vec<InstanceStats>> {
    axum::Json(stats::collect_all(&d).await)
}

/// Prometheus (OpenMetrics text) exposition of every running instance.
pub async fn metrics(State(d): State<Daemon>) -> Response {
    let all = stats::collect_all(&d).await;
    let defined = d.store.list_instances().await.map(|l| l.len()).unwrap_or(0);
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        stats::exposition(&all, defined),
    )
        .into_response()
}
