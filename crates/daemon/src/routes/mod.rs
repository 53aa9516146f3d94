//! HTTP routes, one file per resource.

mod console;
mod events;
mod host;
mod instances;
mod openapi;

use axum::Router;
use axum::routing::get;

use crate::daemon::Daemon;

pub fn router(d: Daemon) -> Router {
    Router::new()
        .route("/1.0", get(host::api_root))
        .route("/1.0/openapi.json", get(openapi::document))
        .route("/1.0/host", get(host::info))
        .route("/1.0/host/check", get(host::check))
        .route("/1.0/events", get(events::stream))
        .route(
            "/1.0/instances",
            get(instances::list).post(instances::create),
        )
        .route(
            "/1.0/instances/{name}",
            get(instances::show)
                .put(instances::replace)
                .patch(instances::patch)
                .delete(instances::delete),
        )
        .route(
            "/1.0/instances/{name}/state",
            get(instances::state).put(instances::change_state),
        )
        .route("/1.0/instances/{name}/console", get(console::attach))
        .route("/1.0/instances/{name}/logs/{log}", get(console::log))
        .fallback(host::not_found)
        .with_state(d)
}
