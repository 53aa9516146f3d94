//! The parts of the OpenAPI document that do not come from a route: the
//! title and the wire types every client needs even where no handler names
//! them.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Ferrovirt API", description = "REST API of ferrovirtd"),
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
        ferrovirt_api::InstanceStats,
        ferrovirt_api::Pool,
        ferrovirt_api::PoolSpec,
        ferrovirt_api::PoolCreate,
        ferrovirt_api::Volume,
        ferrovirt_api::VolumeCreate,
        ferrovirt_api::VolumeResize,
        ferrovirt_api::VolumeClone,
        ferrovirt_api::VolumeConvert,
        ferrovirt_api::VolumeExport,
        ferrovirt_api::VolumeImport,
        ferrovirt_api::MediaPut,
        ferrovirt_api::IoLimits
    ))
)]
struct Base;

/// The document before the routes add their paths.
pub fn base() -> utoipa::openapi::OpenApi {
    Base::openapi()
}

/// The finished document, serialized once and served as is.
#[derive(Debug, Clone)]
pub struct Document(Bytes);

impl Document {
    pub fn new(doc: &utoipa::openapi::OpenApi) -> Self {
        Self(Bytes::from(
            serde_json::to_vec(doc).expect("the OpenAPI document serializes"),
        ))
    }

    pub async fn serve(self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}
