//! `Vm`: one QEMU process — launched from the pure argv builder, detached
//! from the daemon, with its runtime dir, pidfile and QMP monitor — and
//! where its guest's state comes from ([`BootSource`]).
//!
//! A `Vm` knows nothing of the daemon, the store or the API.

use std::future::Future;
use std::time::Duration;

use crate::monitor::{
    BlockJob, Events, MigrationCaps, MigrationParams, Monitor, MonitorError, Progress,
};
use crate::process::{self, LaunchError};
use crate::{InstancePaths, QemuCommand, StartMode};

/// What went wrong with a QEMU process.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
}

/// What an incoming live migration needs before the stream arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingSetup {
    /// The address both the migration and the NBD server listen on.
    pub host: String,
    pub migration_port: u16,
    /// Where the disks are exported for the source to mirror into.
    pub nbd_port: Option<u16>,
    /// The format nodes to export over NBD.
    pub exports: Vec<String>,
    pub postcopy: bool,
    pub compress: bool,
}

/// Where a starting guest's state comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootSource {
    /// A fresh boot.
    Fresh,
    /// An internal snapshot with memory.
    Snapshot {
        tag: String,
        vmstate: String,
        devices: Vec<String>,
    },
    /// A memory state file (save, external snapshot) at `offset`.
    RestoreFile { path: String, offset: u64 },
    /// An incoming live migration: QEMU waits for the stream and stays
    /// paused until the source has finished.
    Incoming(IncomingSetup),
}

impl BootSource {
    /// How QEMU must be started for this source.
    pub fn start_mode(&self) -> StartMode {
        match self {
            Self::Fresh | Self::Snapshot { .. } => StartMode::Boot,
            Self::RestoreFile { .. } | Self::Incoming(_) => StartMode::Incoming,
        }
    }
}

/// One live QEMU process.
#[derive(Debug, Clone)]
pub struct Vm {
    pid: u32,
    paths: InstancePaths,
    monitor: Monitor,
}

impl Vm {
    /// Launches QEMU (paused, detached) and connects to its monitor. On
    /// failure nothing is left running.
    pub async fn spawn(
        cmd: &QemuCommand,
        paths: &InstancePaths,
    ) -> Result<(Self, Events), VmError> {
        let pid = process::launch(cmd, paths).await?;
        process::make_private(paths);
        match Monitor::connect(&paths.qmp_socket()).await {
            Ok((monitor, events)) => Ok((
                Self {
                    pid,
                    paths: paths.clone(),
                    monitor,
                },
                events,
            )),
            Err(e) => {
                process::kill_now(pid);
                process::clean_runtime(paths);
                Err(e.into())
            }
        }
    }

    /// Finds the QEMU of `paths` that outlived a daemon restart: `None` when
    /// its pidfile names no live QEMU of this instance, else its PID and the
    /// re-attached `Vm` (or why the monitor could not be reached).
    pub async fn attach(paths: &InstancePaths) -> Option<(u32, Result<(Self, Events), VmError>)> {
        let pid = process::read_pid(paths).filter(|pid| process::is_alive(*pid, paths))?;
        let mut last = None;
        // QEMU may be busy (e.g. finishing a migration): retry a while.
        for _ in 0..50 {
            match Monitor::connect(&paths.qmp_socket()).await {
                Ok((monitor, events)) => {
                    let vm = Self {
                        pid,
                        paths: paths.clone(),
                        monitor,
                    };
                    return Some((pid, Ok((vm, events))));
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let err = last
            .map(VmError::from)
            .unwrap_or(VmError::Monitor(MonitorError::Qmp(
                ferrovirt_qmp::Error::Closed,
            )));
        Some((pid, Err(err)))
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn paths(&self) -> &InstancePaths {
        &self.paths
    }

    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// Brings the guest's state in from `source` (before the first `cont`).
    pub async fn load(
        &self,
        source: &BootSource,
        progress: Progress<'_>,
        cancel: impl Future<Output = ()>,
    ) -> Result<(), MonitorError> {
        let m = &self.monitor;
        match source {
            BootSource::Fresh => Ok(()),
            BootSource::Snapshot {
                tag,
                vmstate,
                devices,
            } => {
                let job = BlockJob::SnapshotLoad {
                    tag: tag.clone(),
                    vmstate: vmstate.clone(),
                    devices: devices.clone(),
                };
                m.run_job(&format!("load-{tag}"), &job, progress, cancel)
                    .await
            }
            BootSource::RestoreFile { path, offset } => {
                let uri = format!("file:{path},offset={offset}");
                let load = m.load_incoming(&uri);
                tokio::select! {
                    r = load => r,
                    () = cancel => Err(MonitorError::Cancelled),
                }
            }
            BootSource::Incoming(s) => self.listen(s).await,
        }
    }

    /// Destination of a live migration: exports the disks (when copying
    /// storage) and listens for the stream.
    async fn listen(&self, s: &IncomingSetup) -> Result<(), MonitorError> {
        let m = &self.monitor;
        m.migrate_set_capabilities(MigrationCaps {
            postcopy: s.postcopy,
            multifd: s.compress,
            auto_converge: false,
        })
        .await?;
        if s.compress {
            m.migrate_set_parameters(MigrationParams {
                max_bandwidth: None,
                downtime_limit_ms: None,
                zstd: true,
            })
            .await?;
        }
        if let Some(port) = s.nbd_port {
            m.nbd_server_start(&s.host, port).await?;
            for node in &s.exports {
                // Exporting activates the node: these copies are the
                // destination's own, not shared with the source.
                m.nbd_export(node).await?;
            }
        }
        m.migrate_incoming(&format!("tcp:{}:{}", s.host, s.migration_port))
            .await
    }

    /// Kills QEMU at once (SIGKILL).
    pub fn kill(&self) {
        process::kill_now(self.pid);
    }

    /// Waits until the process has really gone; `false` on timeout.
    pub async fn wait_gone(&self, timeout: Duration) -> bool {
        process::wait_gone(self.pid, &self.paths, timeout).await
    }

    /// Removes the runtime files (after the process has gone).
    pub fn clean_runtime(&self) {
        process::clean_runtime(&self.paths);
    }
}
