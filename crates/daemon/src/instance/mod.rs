//! Instances while they live: one actor task per instance (the only writer
//! of its status), the handles everything above talks to, the job model,
//! and the lifecycle actions.

mod actor;
pub mod handle;
pub mod job;
pub mod lifecycle;
pub mod live;
mod policy;
pub mod registry;
pub mod start;

use std::sync::Arc;

use ferrovirt_core::Error;
use tokio::sync::mpsc;

use crate::daemon::Daemon;
use handle::{InstanceHandle, Shared};

/// The handle of instance `name`, starting its actor on first use; 404 when
/// no such instance is defined.
pub async fn handle(d: &Daemon, name: &str) -> Result<InstanceHandle, Error> {
    if let Some(h) = d.instances.get(name) {
        return Ok(h);
    }
    d.record(name).await?;
    Ok(d.instances.get_or_insert(name, || {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let actor = actor::Actor::new(d.clone(), name.to_owned(), shared.clone());
        tokio::spawn(actor.run(rx));
        InstanceHandle::new(name, tx, shared)
    }))
}

pub use crate::monitor_error::{job_err, monitor_error, qmp_err};
