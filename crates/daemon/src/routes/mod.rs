//! HTTP routes, one file per resource. Each file registers its handlers once
//! (`routes()`), and that one registration gives both the axum router and the
//! OpenAPI document served at `/1.0/openapi.json`.

mod console;
mod disks;
mod events;
mod host;
mod instances;
mod migrations;
mod networks;
mod openapi;
mod operations;
#[cfg(test)]
mod reference;
mod snapshots;
mod stats;
mod storage;

use axum::Router;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;

use crate::daemon::Daemon;

/// Every documented route of the API, from the handlers' `#[utoipa::path]`.
fn registered() -> OpenApiRouter<Daemon> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(instances::routes())
        .merge(console::routes())
        .merge(host::routes())
        .merge(events::routes())
        .merge(snapshots::routes())
        .merge(operations::routes())
        .merge(networks::routes())
        .merge(migrations::routes())
        .merge(stats::routes())
        .merge(disks::routes())
        .merge(storage::routes())
}

/// The OpenAPI document of the API, as `/1.0/openapi.json` serves it.
#[cfg(test)]
pub fn openapi() -> utoipa::openapi::OpenApi {
    registered().into_openapi()
}

pub fn router(d: Daemon) -> Router {
    let (api, doc) = registered().split_for_parts();
    let doc = openapi::Document::new(&doc);
    api.route("/1.0", get(host::api_root))
        .route("/1.0/openapi.json", get(move || doc.clone().serve()))
        .route("/metrics", get(stats::metrics))
        .fallback(host::not_found)
        .layer(axum::middleware::from_fn_with_state(
            d.clone(),
            crate::remote::authorize,
        ))
        .with_state(d)
}
