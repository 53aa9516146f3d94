use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;

use crate::daemon::Daemon;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The events routes, registered once for the router and the OpenAPI document.
pub fn routes() -> OpenApiRouter<Daemon> {
    OpenApiRouter::new().routes(routes!(stream))
}

/// Lifecycle events as newline-delimited JSON, one object per line, for as
/// long as the client stays connected. Slow clients skip what they missed.
#[utoipa::path(get, path = "/1.0/events",
    responses((status = 200, description = "application/x-ndjson stream of Event", body = ferrovirt_api::Event)))]
pub async fn stream(State(d): State<Daemon>) -> Response {
    let lines = futures::stream::unfold(d.events.subscribe(), |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    let mut line = serde_json::to_vec(&ev).expect("event serializes");
                    line.push(b'\n');
                    return Some((Ok::<_, std::io::Error>(line), rx));
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(lines))
        .expect("valid response")
}
