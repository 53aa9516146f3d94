//! Lifecycle actions on an instance: start, stop, pause, resume, reboot,
//! reset. Each takes the instance's job slot (409 when another job runs),
//! except `stop --force`, which preempts whatever runs.

use std::time::Duration;

use ferrovirt_api::{InstanceStatus, StateAction, StatePut};
use ferrovirt_core::Error;
use ferrovirt_qemu::BootSource;

use super::handle::{Action, InstanceHandle};
use super::job::{Job, JobKind};
use crate::daemon::Daemon;

/// Seconds a graceful stop waits for the guest before forcing it off.
pub const DEFAULT_STOP_TIMEOUT: u64 = 30;

/// Runs a `PUT …/state` action.
pub async fn change_state(d: &Daemon, name: &str, req: &StatePut) -> Result<(), Error> {
    let h = super::handle(d, name).await?;
    match req.action {
        StateAction::Start => {
            let job = h.begin(JobKind::Start, None)?;
            start(d, &h, &job).await
        }
        StateAction::Stop => {
            let timeout = Duration::from_secs(req.timeout.unwrap_or(DEFAULT_STOP_TIMEOUT));
            stop(&h, req.force, timeout).await
        }
        StateAction::Pause => act(&h, JobKind::Pause, Action::Pause).await,
        StateAction::Resume => act(&h, JobKind::Resume, Action::Resume).await,
        StateAction::Reboot => act(&h, JobKind::Reboot, Action::Reboot).await,
        StateAction::Reset => act(&h, JobKind::Reset, Action::Reset).await,
    }
}

async fn act(h: &InstanceHandle, kind: JobKind, action: Action) -> Result<(), Error> {
    let _job = h.begin(kind, None)?;
    h.run(action).await
}

/// Stops the instance (ACPI, forced off after `timeout`; or at once with
/// `force`, preempting any running job).
pub async fn stop(h: &InstanceHandle, force: bool, timeout: Duration) -> Result<(), Error> {
    if force {
        return h.stop(true, Duration::ZERO).await;
    }
    let _job = h.begin(JobKind::Stop, None)?;
    h.stop(false, timeout).await
}

/// Starts an instance, resuming its managed save if it has one; the caller
/// holds its job.
pub async fn start(d: &Daemon, h: &InstanceHandle, job: &Job) -> Result<(), Error> {
    let rec = d.record(h.name()).await?;
    let saved = rec
        .managed_save
        .filter(|p| std::path::Path::new(p).exists());
    match saved {
        Some(path) => {
            let source = BootSource::RestoreFile {
                path: path.clone(),
                offset: crate::save_file::HEADER_SIZE,
            };
            super::start::boot(d, h, job, source).await?;
            // The record goes before the file: a record never names a
            // missing file (and a daemon killed before this drops the save
            // at start-up, since its QEMU runs).
            d.store
                .set_managed_save(h.name(), None)
                .await
                .map_err(crate::daemon::store_err("clearing the managed save"))?;
            let _ = std::fs::remove_file(&path);
            Ok(())
        }
        None => super::start::boot(d, h, job, BootSource::Fresh).await,
    }
}

/// on_crash=restart, once the crashed instance's jobs have ended. Boxed:
/// starting an instance may start its actor, which may come back here.
pub fn restart_after_crash(
    d: Daemon,
    name: String,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move { restart(&d, &name).await })
}

async fn restart(d: &Daemon, name: &str) {
    let Ok(h) = super::handle(d, name).await else {
        return;
    };
    h.wait_idle(Duration::from_secs(30)).await;
    let Ok(job) = h.begin(JobKind::Start, None) else {
        tracing::warn!(
            instance = name,
            "not restarting after a crash: another job runs"
        );
        return;
    };
    let still_crashed = d
        .record(name)
        .await
        .map(|r| r.status == InstanceStatus::Crashed)
        .unwrap_or(false);
    if still_crashed && h.live().is_none() {
        tracing::info!(
            instance = name,
            "restarting after a crash (on_crash=restart)"
        );
        if let Err(e) = start(d, &h, &job).await {
            tracing::error!(instance = name, error = %e, "restart after crash failed");
        }
    }
}
