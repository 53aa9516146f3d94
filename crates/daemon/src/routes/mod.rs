//! HTTP routes, one file per resource.

mod console;
mod events;
mod host;
mod instances;
mod migrations;
mod networks;
mod openapi;
mod operations;
mod snapshots;
mod stats;

use axum::Router;
use axum::routing::{get, post};

use crate::daemon::Daemon;

pub fn router(d: Daemon) -> Router {
    Router::new()
        .route("/1.0", get(host::api_root))
        .route("/1.0/openapi.json", get(openapi::document))
        .route("/1.0/host", get(host::info))
        .route("/1.0/host/check", get(host::check))
        .route("/1.0/host/tokens", post(host::token))
        .route("/1.0/host/trust", get(host::trusted).post(host::trust))
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
        .route(
            "/1.0/instances/{name}/snapshots",
            get(snapshots::list).post(snapshots::create),
        )
        .route(
            "/1.0/instances/{name}/snapshots/{snapshot}",
            get(snapshots::show).delete(snapshots::delete),
        )
        .route(
            "/1.0/instances/{name}/snapshots/{snapshot}/revert",
            post(snapshots::revert),
        )
        .route(
            "/1.0/instances/{name}/clone",
            post(snapshots::clone_instance),
        )
        .route("/1.0/instances/{name}/save", post(snapshots::save_instance))
        .route("/1.0/restore", post(snapshots::restore))
        .route("/1.0/networks", get(networks::list).post(networks::create))
        .route(
            "/1.0/networks/{name}",
            get(networks::show)
                .put(networks::replace)
                .delete(networks::delete),
        )
        .route(
            "/1.0/networks/{name}/state",
            axum::routing::put(networks::change_state),
        )
        .route("/1.0/networks/{name}/leases", get(networks::leases))
        .route("/1.0/instances/{name}/nics", post(networks::add_nic))
        .route(
            "/1.0/instances/{name}/nics/{mac}",
            axum::routing::delete(networks::remove_nic),
        )
        .route("/1.0/instances/{name}/migrate", post(migrations::migrate))
        .route("/1.0/migrations/incoming", post(migrations::incoming))
        .route(
            "/1.0/migrations/incoming/{name}",
            axum::routing::delete(migrations::abort),
        )
        .route(
            "/1.0/migrations/incoming/{name}/finish",
            post(migrations::finish),
        )
        .route("/1.0/instances/{name}/stats", get(stats::instance))
        .route("/1.0/stats", get(stats::all))
        .route("/metrics", get(stats::metrics))
        .route("/1.0/operations", get(operations::list))
        .route(
            "/1.0/operations/{id}",
            get(operations::show).delete(operations::cancel),
        )
        .route("/1.0/operations/{id}/wait", get(operations::wait))
        .route("/1.0/instances/{name}/console", get(console::attach))
        .route("/1.0/instances/{name}/logs/{log}", get(console::log))
        .fallback(host::not_found)
        .layer(axum::middleware::from_fn_with_state(
            d.clone(),
            crate::remote::authorize,
        ))
        .with_state(d)
}
