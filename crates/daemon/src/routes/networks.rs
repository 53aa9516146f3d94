use axum::extract::{Path, State};
use axum::http::StatusCode;
use ferrovirt_api::{Instance, Lease, Network, NetworkAction, NetworkSpec, NetworkStatePut, Nic};

use crate::daemon::Daemon;
use crate::error::ApiResult;
use crate::json::Json;
use crate::{instances, networks};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The networks routes, registered once for the router and the OpenAPI document.
pub fn routes() -> OpenApiRouter<Daemon> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, replace, delete))
        .routes(routes!(change_state))
        .routes(routes!(leases))
        .routes(routes!(add_nic))
        .routes(routes!(remove_nic))
}

type Reply<T> = ApiResult<axum::Json<T>>;

/// List networks.
#[utoipa::path(get, path = "/1.0/networks", responses((status = 200, body = [Network])))]
pub async fn list(State(d): State<Daemon>) -> Reply<Vec<Network>> {
    let recs = networks::records(&d).await?;
    Ok(axum::Json(
        futures::future::join_all(recs.into_iter().map(|r| networks::view(&d, r))).await,
    ))
}

/// Define a network and start it.
#[utoipa::path(post, path = "/1.0/networks", request_body = NetworkSpec,
    responses((status = 201, body = Network), (status = 400, body = ferrovirt_api::ErrorBody)))]
pub async fn create(
    State(d): State<Daemon>,
    Json(spec): Json<NetworkSpec>,
) -> ApiResult<(StatusCode, axum::Json<Network>)> {
    let net = networks::create(&d, spec, true).await?;
    Ok((StatusCode::CREATED, axum::Json(net)))
}

#[utoipa::path(get, path = "/1.0/networks/{name}", responses((status = 200, body = Network)))]
pub async fn show(State(d): State<Daemon>, Path(name): Path<String>) -> Reply<Network> {
    Ok(axum::Json(
        networks::view(&d, networks::record(&d, &name).await?).await,
    ))
}

/// Replace a network's spec.
#[utoipa::path(put, path = "/1.0/networks/{name}", request_body = NetworkSpec,
    responses((status = 200, body = Network)))]
pub async fn replace(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    Json(spec): Json<NetworkSpec>,
) -> Reply<Network> {
    Ok(axum::Json(networks::replace(&d, &name, spec).await?))
}

/// Delete a network (refused while instances use it).
#[utoipa::path(delete, path = "/1.0/networks/{name}", responses((status = 200),
    (status = 409, body = ferrovirt_api::ErrorBody)))]
pub async fn delete(State(d): State<Daemon>, Path(name): Path<String>) -> Reply<serde_json::Value> {
    networks::delete(&d, &name).await?;
    Ok(axum::Json(serde_json::json!({})))
}

/// Start or stop a network.
#[utoipa::path(put, path = "/1.0/networks/{name}/state", request_body = NetworkStatePut,
    responses((status = 200, body = Network)))]
pub async fn change_state(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    Json(req): Json<NetworkStatePut>,
) -> Reply<Network> {
    let net = match req.action {
        NetworkAction::Start => networks::start(&d, &name).await?,
        NetworkAction::Stop => networks::stop(&d, &name).await?,
    };
    Ok(axum::Json(net))
}

/// DHCP leases of a network.
#[utoipa::path(get, path = "/1.0/networks/{name}/leases", responses((status = 200, body = [Lease])))]
pub async fn leases(State(d): State<Daemon>, Path(name): Path<String>) -> Reply<Vec<Lease>> {
    Ok(axum::Json(networks::leases(&d, &name).await?))
}

/// Add a NIC to an instance (hot-plugged when it runs).
#[utoipa::path(post, path = "/1.0/instances/{name}/nics", request_body = Nic,
    responses((status = 200, body = Instance)))]
pub async fn add_nic(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    Json(nic): Json<Nic>,
) -> Reply<Instance> {
    Ok(axum::Json(instances::add_nic(&d, &name, nic).await?))
}

/// Remove a NIC from an instance (hot-unplugged when it runs).
#[utoipa::path(delete, path = "/1.0/instances/{name}/nics/{mac}", responses((status = 200, body = Instance)))]
pub async fn remove_nic(
    State(d): State<Daemon>,
    Path((name, mac)): Path<(String, String)>,
) -> Reply<Instance> {
    Ok(axum::Json(instances::remove_nic(&d, &name, &mac).await?))
}
