use utoipa::OpenApi;

use super::{console, events, host, instances, migrations, networks, operations, snapshots, stats};

/// The OpenAPI document, generated from the wire types and handlers.
#[derive(OpenApi)]
#[openapi(
    info(title = "Ferrovirt API", description = "REST API of ferrovirtd"),
    paths(
        instances::list,
        instances::create,
        instances::show,
        instances::replace,
        instances::patch,
        instances::delete,
        instances::state,
        instances::change_state,
        console::attach,
        console::log,
        host::info,
        host::check,
        host::token,
        host::trust,
        host::trusted,
        events::stream,
        snapshots::list,
        snapshots::show,
        snapshots::create,
        snapshots::revert,
        snapshots::delete,
        snapshots::clone_instance,
        snapshots::save_instance,
        snapshots::restore,
        operations::list,
        operations::show,
        operations::wait,
        operations::cancel,
        networks::list,
        networks::create,
        networks::show,
        networks::replace,
        networks::delete,
        networks::change_state,
        networks::leases,
        networks::add_nic,
        networks::remove_nic,
        migrations::migrate,
        migrations::incoming,
        migrations::finish,
        migrations::abort,
        stats::instance,
        stats::all,
    ),
    components(schemas(
        ferrovirt_api::ErrorBody,
        ferrovirt_api::Event,
        ferrovirt_api::Instance,
        ferrovirt_api::InstanceSpec,
        ferrovirt_api::StatePut,
        ferrovirt_api::HostInfo,
        ferrovirt_api::HostCheck,
        ferrovirt_api::Operation,
        ferrovirt_api::Snapshot,
        ferrovirt_api::SnapshotsPost,
        ferrovirt_api::ClonePost,
        ferrovirt_api::SavePost,
        ferrovirt_api::RestorePost,
        ferrovirt_api::Network,
        ferrovirt_api::NetworkSpec,
        ferrovirt_api::Lease,
        ferrovirt_api::Nic,
        ferrovirt_api::MigratePost,
        ferrovirt_api::IncomingPost,
        ferrovirt_api::IncomingReply,
        ferrovirt_api::InstanceStats
    ))
)]
pub struct ApiDoc;

pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
