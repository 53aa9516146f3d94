//! Typed QMP verbs over one QEMU's monitor connection.
//!
//! Every command the daemon sends to QEMU is a method here, with typed
//! arguments and replies; JSON is built only in this module tree (and the
//! pure argv builder). Waits for jobs, migrations and unplugs are driven by
//! QMP events, never by polling for completion.

mod block;
mod devices;
pub mod events;
mod jobs;
mod migration;

use std::path::Path;

use ferrovirt_qmp::Qmp;
use serde_json::Value;

pub use block::{BlockDevice, BlockNode, BlockStats, Throttle};
pub use devices::{CpuSlot, ROOT_PORT_PREFIX};
pub use events::{Event, Events, JobStatus, MigrationStatus};
pub use jobs::{BlockJob, JobWatch, Progress};
pub use migration::{MigrationCaps, MigrationInfo, MigrationParams, UNLIMITED_BANDWIDTH};

/// What went wrong talking to QEMU.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Qmp(#[from] ferrovirt_qmp::Error),
    #[error("job {id} failed: {reason}")]
    Job { id: String, reason: String },
    #[error("the migration failed: {reason}")]
    Migration { reason: String },
    #[error("it was cancelled")]
    Cancelled,
    #[error("the guest did not release {what} within {secs} s (does it handle hot-unplug?)")]
    Unplug { what: String, secs: u64 },
    #[error("all {0} hot-plug slots are taken")]
    NoFreeSlot(usize),
}

impl MonitorError {
    /// Whether the failure is the caller's conflict — a cancel, a guest that
    /// does not release a device, a full bus — rather than a fault.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::Cancelled | Self::Unplug { .. } | Self::NoFreeSlot(_)
        )
    }

    /// Whether QEMU exited under the command.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Qmp(ferrovirt_qmp::Error::Closed))
    }
}

pub type Result<T> = std::result::Result<T, MonitorError>;

/// QEMU's run state (`query-status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    Running,
    Paused,
    /// Started with `-S`, never continued.
    Prelaunch,
    /// The guest powered off (QEMU kept alive by `-no-shutdown`).
    Shutdown,
    GuestPanicked,
    /// Waiting for an incoming migration.
    InMigrate,
    /// An outgoing migration has finished.
    PostMigrate,
    Other(String),
}

impl RunState {
    pub fn parse(s: &str) -> Self {
        match s {
            "running" => Self::Running,
            "paused" => Self::Paused,
            "prelaunch" => Self::Prelaunch,
            "shutdown" => Self::Shutdown,
            "guest-panicked" => Self::GuestPanicked,
            "inmigrate" => Self::InMigrate,
            "postmigrate" => Self::PostMigrate,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// A negotiated QMP connection to one QEMU. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Monitor {
    qmp: Qmp,
}

impl Monitor {
    /// Connects to QEMU's QMP socket; the events start from now.
    pub async fn connect(socket: &Path) -> Result<(Self, Events)> {
        let (qmp, rx) = Qmp::connect(socket).await?;
        Ok((Self { qmp }, Events::new(rx)))
    }

    /// A new subscription to the events, from now on.
    pub fn events(&self) -> Events {
        Events::new(self.qmp.subscribe())
    }

    /// Resolves when QEMU has exited (the socket closed).
    pub async fn closed(&self) {
        self.qmp.closed().await
    }

    pub fn is_closed(&self) -> bool {
        self.qmp.is_closed()
    }

    async fn call(&self, command: &str, args: Option<Value>) -> Result<Value> {
        Ok(self.qmp.execute(command, args).await?)
    }

    async fn run(&self, command: &str, args: Option<Value>) -> Result<()> {
        self.call(command, args).await.map(drop)
    }

    /// Runs the vCPUs.
    pub async fn cont(&self) -> Result<()> {
        self.run("cont", None).await
    }

    /// Stops the vCPUs.
    pub async fn stop(&self) -> Result<()> {
        self.run("stop", None).await
    }

    /// Presses the ACPI power button.
    pub async fn system_powerdown(&self) -> Result<()> {
        self.run("system_powerdown", None).await
    }

    /// Hard reset.
    pub async fn system_reset(&self) -> Result<()> {
        self.run("system_reset", None).await
    }

    /// Asks QEMU to exit. Its exit closes the connection, which may beat
    /// the reply: that counts as success.
    pub async fn quit(&self) -> Result<()> {
        match self.run("quit", None).await {
            Err(e) if e.is_closed() => Ok(()),
            other => other,
        }
    }

    pub async fn query_status(&self) -> Result<RunState> {
        let v = self.call("query-status", None).await?;
        Ok(RunState::parse(v["status"].as_str().unwrap_or_default()))
    }

    /// Writes the display to a PPM file (`screendump`).
    pub async fn screendump(&self, file: &Path) -> Result<()> {
        self.run(
            "screendump",
            Some(serde_json::json!({"filename": file.display().to_string()})),
        )
        .await
    }
}
