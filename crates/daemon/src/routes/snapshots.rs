use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use ferrovirt_api::{ClonePost, Operation, RestorePost, SavePost, Snapshot, SnapshotsPost};

use super::operations::accepted;
use crate::daemon::Daemon;
use crate::error::ApiResult;
use crate::json::Json;
use crate::{clone, save, snapshots};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The snapshots routes, registered once for the router and the OpenAPI document.
pub fn routes() -> OpenApiRouter<Daemon> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, delete))
        .routes(routes!(revert))
        .routes(routes!(clone_instance))
        .routes(routes!(save_instance))
        .routes(routes!(restore))
}

type Accepted = ApiResult<(StatusCode, HeaderMap, axum::Json<Operation>)>;

fn path(instance: &str) -> Vec<String> {
    vec![format!("/1.0/instances/{instance}")]
}

/// List an instance's snapshots (a tree: parent, children, current).
#[utoipa::path(get, path = "/1.0/instances/{name}/snapshots", responses((status = 200, body = [Snapshot])))]
pub async fn list(
    State(d): State<Daemon>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Vec<Snapshot>>> {
    d.record(&name).await?;
    Ok(axum::Json(snapshots::views(&d, &name).await?))
}

/// Show a snapshot.
#[utoipa::path(get, path = "/1.0/instances/{name}/snapshots/{snapshot}", responses((status = 200, body = Snapshot)))]
pub async fn show(
    State(d): State<Daemon>,
    Path((name, snap)): Path<(String, String)>,
) -> ApiResult<axum::Json<Snapshot>> {
    d.record(&name).await?;
    Ok(axum::Json(snapshots::view(&d, &name, &snap).await?))
}

/// Take a snapshot (an operation).
#[utoipa::path(post, path = "/1.0/instances/{name}/snapshots", request_body = SnapshotsPost,
    responses((status = 202, body = Operation), (status = 400, body = ferrovirt_api::ErrorBody)))]
pub async fn create(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    Json(req): Json<SnapshotsPost>,
) -> Accepted {
    snapshots::check_create(&d, &name, &req).await?;
    let desc = format!("snapshot {} of {name}", req.name);
    let dd = d.clone();
    let op = d
        .operations
        .spawn(desc, path(&name), false, move |ctx| async move {
            snapshots::create(&dd, &ctx, &name, req).await
        });
    Ok(accepted(op))
}

/// Revert an instance to a snapshot (an operation).
#[utoipa::path(post, path = "/1.0/instances/{name}/snapshots/{snapshot}/revert",
    responses((status = 202, body = Operation)))]
pub async fn revert(
    State(d): State<Daemon>,
    Path((name, snap)): Path<(String, String)>,
) -> Accepted {
    snapshots::view(&d, &name, &snap).await?;
    let dd = d.clone();
    let op = d.operations.spawn(
        format!("revert {name} to snapshot {snap}"),
        path(&name),
        false,
        move |ctx| async move { snapshots::revert(&dd, &ctx, &name, &snap).await },
    );
    Ok(accepted(op))
}

/// Delete a snapshot (an operation).
#[utoipa::path(delete, path = "/1.0/instances/{name}/snapshots/{snapshot}",
    responses((status = 202, body = Operation)))]
pub async fn delete(
    State(d): State<Daemon>,
    Path((name, snap)): Path<(String, String)>,
) -> Accepted {
    snapshots::view(&d, &name, &snap).await?;
    let dd = d.clone();
    let op = d.operations.spawn(
        format!("delete snapshot {snap} of {name}"),
        path(&name),
        false,
        move |ctx| async move { snapshots::delete(&dd, &ctx, &name, &snap).await },
    );
    Ok(accepted(op))
}

/// Clone an instance (an operation).
#[utoipa::path(post, path = "/1.0/instances/{name}/clone", request_body = ClonePost,
    responses((status = 202, body = Operation)))]
pub async fn clone_instance(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    Json(req): Json<ClonePost>,
) -> Accepted {
    clone::check(&d, &name, &req).await?;
    let dd = d.clone();
    let mut resources = path(&name);
    resources.push(format!("/1.0/instances/{}", req.name));
    let op = d.operations.spawn(
        format!("clone {name} to {}", req.name),
        resources,
        true,
        move |ctx| async move { clone::clone(&dd, &ctx, &name, req).await },
    );
    Ok(accepted(op))
}

/// Save a running instance's memory and stop it (an operation).
#[utoipa::path(post, path = "/1.0/instances/{name}/save", request_body = SavePost,
    responses((status = 202, body = Operation)))]
pub async fn save_instance(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    Json(req): Json<SavePost>,
) -> Accepted {
    d.record(&name).await?;
    crate::instance::handle(&d, &name).await?.running()?;
    if let Some(file) = &req.file {
        if !std::path::Path::new(file).is_absolute() {
            return Err(
                ferrovirt_core::Error::validation("file", "must be an absolute path").into(),
            );
        }
        if std::path::Path::new(file).exists() {
            return Err(ferrovirt_core::Error::conflict(format!("{file} already exists")).into());
        }
    }
    let dd = d.clone();
    let op = d.operations.spawn(
        format!("save {name}"),
        path(&name),
        true,
        move |ctx| async move { save::save(&dd, &ctx, &name, req.file).await },
    );
    Ok(accepted(op))
}

/// Restore an instance from a file written by save (an operation).
#[utoipa::path(post, path = "/1.0/restore", request_body = RestorePost,
    responses((status = 202, body = Operation)))]
pub async fn restore(State(d): State<Daemon>, Json(req): Json<RestorePost>) -> Accepted {
    let file = std::path::PathBuf::from(&req.file);
    let spec = save::read_header(&file)?;
    let dd = d.clone();
    let op = d.operations.spawn(
        format!("restore {} from {}", spec.name, req.file),
        path(&spec.name),
        false,
        move |ctx| async move { save::restore(&dd, &ctx, &file).await },
    );
    Ok(accepted(op))
}
