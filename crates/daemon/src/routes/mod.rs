//! HTTP routes, one file per resource.

mod console;
mod disks;
mod events;
mod host;
mod instances;
mod migrations;
mod networks;
mod openapi;
mod operations;
mod snapshots;
mod stats;
mod storage;

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
        .route("/1.0/instances/{name}/disks", post(disks::attach))
        .route(
            "/1.0/instances/{name}/disks/{disk}",
            axum::routing::delete(disks::detach),
        )
        .route(
            "/1.0/instances/{name}/disks/{disk}/media",
            axum::routing::put(disks::media),
        )
        .route(
            "/1.0/instances/{name}/disks/{disk}/limits",
            axum::routing::put(disks::limits),
        )
        .route("/1.0/pools", get(storage::list).post(storage::create))
        .route(
            "/1.0/pools/{pool}",
            get(storage::show)
                .put(storage::replace)
                .delete(storage::delete),
        )
        .route(
            "/1.0/pools/{pool}/state",
            axum::routing::put(storage::change_state),
        )
        .route("/1.0/pools/{pool}/import", post(storage::volume_import))
        .route(
            "/1.0/pools/{pool}/volumes",
            get(storage::volumes_list).post(storage::volume_create),
        )
        .route(
            "/1.0/pools/{pool}/volumes/{volume}",
            get(storage::volume_show).delete(storage::volume_delete),
        )
        .route(
            "/1.0/pools/{pool}/volumes/{volume}/resize",
            post(storage::volume_resize),
        )
        .route(
            "/1.0/pools/{pool}/volumes/{volume}/wipe",
            post(storage::volume_wipe),
        )
        .route(
            "/1.0/pools/{pool}/volumes/{volume}/clone",
            post(storage::volume_clone),
        )
        .route(
            "/1.0/pools/{pool}/volumes/{volume}/convert",
            post(storage::volume_convert),
        )
        .route(
            "/1.0/pools/{pool}/volumes/{volume}/export",
            post(storage::volume_export),
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
