//! Runs a restricted caller's request: refuses what its role does not
//! allow, hides the instances (and operations) it does not manage, checks
//! the host paths it names, records the instances it creates and cuts
//! listings down to its own.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferrovirt_core::Error;
use serde_json::Value;

use super::filter;
use super::host_paths;
use super::policy::{self, Access, Listing};
use crate::daemon::{Daemon, store_err};
use crate::error::ApiError;

/// The largest request body a restricted caller's request is read into
/// memory with (to check its host paths), like axum's default limit.
const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// A trusted restricted certificate and the instances it manages.
#[derive(Debug, Clone)]
pub struct Caller {
    pub fingerprint: String,
    pub instances: BTreeSet<String>,
}

impl Caller {
    fn manages(&self, instance: &str) -> bool {
        self.instances.contains(instance)
    }
}

/// The request with its body read, and that body as JSON (if it is).
async fn read_body(req: Request) -> Result<(Request, Option<Value>), Error> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|e| Error::bad_request(format!("cannot read the request body: {e}")))?;
    let json = serde_json::from_slice(&bytes).ok();
    Ok((Request::from_parts(parts, Body::from(bytes)), json))
}

fn hidden_instance(name: &str) -> Error {
    Error::not_found(format!("instance {name} does not exist"))
}

/// Whether operation `id` exists and names only the caller's instances.
fn sees_operation(d: &Daemon, caller: &Caller, id: &str) -> bool {
    let Some(op) = uuid::Uuid::parse_str(id)
        .ok()
        .and_then(|id| d.operations.get(id).ok())
    else {
        return false;
    };
    let op = serde_json::to_value(op).unwrap_or_default();
    filter::visible(Listing::Operations, &op, &caller.instances)
}

/// Refuses what the role does not allow, before anything runs: 403 for
/// what a restricted client may never do, 404 for what is not its own.
fn gate(d: &Daemon, caller: &Caller, access: &Access) -> Result<(), Error> {
    match access {
        Access::Denied(what) => Err(Error::forbidden(format!(
            "a restricted client may not {what}"
        ))),
        Access::Instance(name) | Access::Creates { source: Some(name) }
            if !caller.manages(name) =>
        {
            Err(hidden_instance(name))
        }
        Access::Operation(id) if !sees_operation(d, caller, id) => {
            Err(Error::not_found(format!("operation {id} does not exist")))
        }
        _ => Ok(()),
    }
}

pub async fn handle(d: &Daemon, caller: &Caller, req: Request, next: Next) -> Response {
    match run(d, caller, req, next).await {
        Ok(resp) => resp,
        Err(e) => ApiError(e).into_response(),
    }
}

async fn run(d: &Daemon, caller: &Caller, req: Request, next: Next) -> Result<Response, Error> {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let access = policy::restricted(&method, &path);
    gate(d, caller, &access)?;
    let fields = policy::host_path_fields(&method, &path);
    let (req, body) = if fields.is_empty() && !matches!(access, Access::Creates { .. }) {
        (req, None)
    } else {
        read_body(req).await?
    };
    if let Some(body) = &body
        && !fields.is_empty()
    {
        let dirs = host_paths::allowed_dirs(d).await?;
        host_paths::check(&dirs, body, fields)?;
    }
    Ok(match access {
        Access::Creates { .. } => {
            let name = body
                .as_ref()
                .and_then(|b| b.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let resp = next.run(req).await;
            if let Some(name) = name.filter(|_| resp.status().is_success()) {
                d.store
                    .grant_instance(&caller.fingerprint, &name)
                    .await
                    .map_err(store_err("recording the new instance's manager"))?;
            }
            resp
        }
        Access::Filtered(Listing::Events) => {
            filter::events(next.run(req).await, caller.instances.clone())
        }
        Access::Filtered(listing) => {
            filter::list(next.run(req).await, listing, caller.instances.clone()).await
        }
        Access::Open | Access::Instance(_) | Access::Operation(_) | Access::Denied(_) => {
            next.run(req).await
        }
    })
}
