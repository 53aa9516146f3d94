//! Live and offline migration between Ferrovirt hosts.
//!
//! The source drives; the destination is told over the TLS API (`POST
//! /1.0/migrations/incoming`) to start a paused QEMU waiting for the
//! migration stream (and, with `copy_storage`, to create empty disks and
//! export them over NBD, which the source mirrors into while the guest runs).
//! Then the source sends memory, and when it completes it asks the
//! destination to `finish` (resume the guest there) before it stops its own
//! QEMU and forgets the instance. Any failure or cancel before that point —
//! `stop --force` included, which preempts the migration job — leaves the
//! guest on the source (running, or stopped when forced) and asks the
//! destination to `abort`, which removes everything it made.

mod incoming;
mod outgoing;

use ferrovirt_api::MigratePost;
use ferrovirt_client::ClientError;
use ferrovirt_core::Error;

use crate::daemon::Daemon;

pub use incoming::{
    abort as abort_incoming, finish as finish_incoming, prepare as prepare_incoming, reconcile,
};
pub use outgoing::migrate;

/// How long one request to the destination may take (preparing it
/// creates disks and starts QEMU).
const REMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs a request to the destination with [`REMOTE_TIMEOUT`]; `doing`
/// names it in the errors.
async fn remote<T>(
    doing: &str,
    request: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, Error> {
    match tokio::time::timeout(REMOTE_TIMEOUT, request).await {
        Ok(r) => r.map_err(remote_err(doing)),
        Err(_) => Err(Error::internal(format!(
            "the destination did not answer {doing} within {} s",
            REMOTE_TIMEOUT.as_secs()
        ))),
    }
}

fn remote_err(doing: &str) -> impl Fn(ClientError) -> Error + '_ {
    move |e| match e {
        ClientError::Api(b) => Error {
            kind: match b.code {
                400 => ferrovirt_core::ErrorKind::Validation,
                403 => ferrovirt_core::ErrorKind::Forbidden,
                404 => ferrovirt_core::ErrorKind::NotFound,
                409 => ferrovirt_core::ErrorKind::Conflict,
                _ => ferrovirt_core::ErrorKind::Internal,
            },
            message: format!("the destination refused {doing}: {}", b.error),
            field: b.details.and_then(|d| d.field),
        },
        other => Error::internal(format!("{doing} failed: {other}")),
    }
}

/// Checks a migration request before the operation starts.
/// The bandwidth limit in bytes/s (the request gives MiB/s), refused when
/// it does not fit.
pub fn bandwidth_bytes(req: &MigratePost) -> Result<Option<u64>, Error> {
    req.bandwidth
        .map(|mib| {
            mib.checked_mul(1 << 20)
                .ok_or_else(|| Error::validation("bandwidth", format!("{mib} MiB/s is too large")))
        })
        .transpose()
}

pub async fn check(d: &Daemon, name: &str, req: &MigratePost) -> Result<(), Error> {
    bandwidth_bytes(req)?;
    let rec = d.record(name).await?;
    let running = d.instances.is_active(name);
    if req.offline && running {
        return Err(Error::conflict(format!(
            "instance {name} is running; stop it or migrate live"
        )));
    }
    if !req.offline && !running {
        return Err(Error::conflict(format!(
            "instance {name} is not running; use --offline"
        )));
    }
    if rec.managed_save.is_some() {
        return Err(Error::conflict(format!(
            "instance {name} has a managed save; start it first"
        )));
    }
    if !crate::snapshots::records(d, name).await?.is_empty() {
        return Err(Error::conflict(format!(
            "instance {name} has snapshots, which do not migrate yet; delete them first"
        )));
    }
    if req.postcopy && req.copy_storage {
        return Err(Error::validation(
            "postcopy",
            "post-copy cannot be combined with copy_storage",
        ));
    }
    Ok(())
}
