//! Instance lifecycle actions: start, stop, pause, resume, reboot, reset.
//!
//! Each public action takes the instance's job lock. QEMU is launched paused
//! and detached; QMP is negotiated and the console hub attached before
//! `cont`, so no guest output and no event is missed.

use std::sync::Arc;
use std::time::Duration;

use ferrovirt_api::{EventKind, InstanceStatus, StateAction, StatePut};
use ferrovirt_core::error::chain;
use ferrovirt_core::{Error, Reverter, ValidSpec, accel};
use ferrovirt_qemu::process;
use ferrovirt_qmp::Qmp;

use crate::console::ConsoleHub;
use crate::daemon::Daemon;
use crate::monitor;
use crate::runtime::VmRuntime;

/// Seconds a graceful stop waits for the guest before forcing it off.
pub const DEFAULT_STOP_TIMEOUT: u64 = 30;

/// Runs a `PUT …/state` action.
pub async fn change_state(d: &Daemon, name: &str, req: &StatePut) -> Result<(), Error> {
    let _guard = d.locks.lock(name).await;
    d.record(name).await?;
    match req.action {
        StateAction::Start => start_locked(d, name).await,
        StateAction::Stop => {
            let timeout = req.timeout.unwrap_or(DEFAULT_STOP_TIMEOUT);
            stop_locked(d, name, req.force, Duration::from_secs(timeout)).await
        }
        StateAction::Pause => pause_locked(d, name).await,
        StateAction::Resume => resume_locked(d, name).await,
        StateAction::Reboot => reboot_locked(d, name).await,
        StateAction::Reset => reset_locked(d, name).await,
    }
}

pub fn running(d: &Daemon, name: &str) -> Result<Arc<VmRuntime>, Error> {
    d.runtime(name)
        .ok_or_else(|| Error::conflict(format!("instance {name} is not running")))
}

pub fn qmp_err(name: &str, doing: &str) -> impl Fn(ferrovirt_qmp::Error) -> Error {
    let what = format!("cannot {doing} instance {name}");
    move |e| Error::internal(format!("{what}: {}", chain(&e)))
}

/// Where a starting guest's state comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// A fresh boot.
    Boot,
    /// An internal snapshot with memory.
    Snapshot(String),
    /// A memory state file (managed save, `save --file`, external snapshot).
    File { path: String, offset: u64 },
    /// An incoming live migration: QEMU waits for the stream and stays
    /// paused until the source has finished.
    Incoming(crate::migration::IncomingSetup),
}

/// Starts an instance (resuming its managed save if it has one); the caller
/// holds its lock.
pub async fn start_locked(d: &Daemon, name: &str) -> Result<(), Error> {
    let rec = d.record(name).await?;
    let saved = rec
        .managed_save
        .filter(|p| std::path::Path::new(p).exists());
    match saved {
        Some(path) => {
            let resume = Resume::File {
                path: path.clone(),
                offset: crate::save::HEADER_SIZE,
            };
            start_from(d, name, resume, None).await?;
            let _ = std::fs::remove_file(&path);
            d.store
                .set_managed_save(name, None)
                .await
                .map_err(crate::daemon::store_err("clearing the managed save"))?;
            Ok(())
        }
        None => start_from(d, name, Resume::Boot, None).await,
    }
}

/// Starts an instance from `resume`; the caller holds its lock.
pub async fn start_from(
    d: &Daemon,
    name: &str,
    resume: Resume,
    ctx: Option<&crate::operations::OpCtx>,
) -> Result<(), Error> {
    let rec = d.record(name).await?;
    if d.runtime(name).is_some() {
        return Err(Error::conflict(format!(
            "instance {name} is already running"
        )));
    }
    let spec = ValidSpec::new(rec.spec, &d.limits, &Daemon::path_exists)?.into_inner();
    check_overcommit(d, &spec).await?;
    crate::storage::volumes::check_pools(d, &spec).await?;
    let qemu = d.qemu()?;
    let accel = accel::decide(spec.accel, &d.virt)?;
    let paths = d.paths(name);
    let mode = match &resume {
        Resume::Boot | Resume::Snapshot(_) => ferrovirt_qemu::StartMode::Boot,
        Resume::File { .. } | Resume::Incoming(_) => ferrovirt_qemu::StartMode::Incoming,
    };
    let cmd = ferrovirt_qemu::build_with(&qemu.binary, &spec, &accel, &paths, &mode);
    let pid = process::launch(&cmd, &paths)
        .await
        .map_err(|e| Error::internal(format!("cannot start instance {name}: {}", chain(&e))))?;
    let mut revert = Reverter::new();
    let undo_paths = paths.clone();
    revert.add(move || {
        process::kill_now(pid);
        process::clean_runtime(&undo_paths);
    });
    let (qmp, events) = Qmp::connect(&paths.qmp_socket())
        .await
        .map_err(qmp_err(name, "connect to"))?;
    let console = if spec.serial {
        Some(
            ConsoleHub::connect(&paths.console_socket())
                .await
                .map_err(|e| {
                    Error::internal(format!("cannot attach the console of instance {name}: {e}"))
                })?,
        )
    } else {
        None
    };
    let _ = std::fs::write(
        paths.runtime_dir.join("accel.json"),
        serde_json::to_vec(&accel).unwrap_or_default(),
    );
    // NICs are plugged before any saved state is loaded: the state expects
    // the same devices.
    let cleanup_spec = spec.clone();
    let dd = d.clone();
    revert.add(move || {
        tokio::spawn(async move { crate::networks::nics::cleanup(&dd, &cleanup_spec).await });
    });
    for nic in &spec.nics {
        crate::networks::nics::plug(d, &qmp, &spec, nic).await?;
    }
    crate::disks::apply_limits(&qmp, &spec).await?;
    if let Resume::Snapshot(tag) = &resume {
        let devices = crate::snapshots::internal_nodes(&spec);
        crate::qmp_jobs::run_job(
            &qmp,
            ctx,
            "loading the snapshot",
            "snapshot-load",
            serde_json::json!({"job-id": format!("load-{tag}"), "tag": tag,
                               "vmstate": devices.first(), "devices": devices}),
        )
        .await?;
    }
    if let Resume::File { path, offset } = &resume {
        qmp.execute(
            "migrate-incoming",
            Some(serde_json::json!({"uri": format!("file:{path},offset={offset}")})),
        )
        .await
        .map_err(qmp_err(name, "load the saved state of"))?;
        crate::qmp_jobs::wait_migration(&qmp, ctx, "loading the saved memory", false).await?;
    }
    let incoming = matches!(resume, Resume::Incoming(_));
    if let Resume::Incoming(setup) = &resume {
        crate::migration::listen(&qmp, &spec, setup).await?;
    } else {
        if spec.balloon.is_some() {
            crate::resources::set_balloon(&qmp, &spec).await?;
        }
        qmp.execute("cont", None)
            .await
            .map_err(qmp_err(name, "continue"))?;
    }
    let rt = VmRuntime::new(pid, qmp, accel, paths, console);
    d.register(name, rt.clone());
    revert.success();
    if incoming {
        d.set_status(name, InstanceStatus::Paused, "incoming migration", None)
            .await;
    } else {
        d.set_status(
            name,
            InstanceStatus::Running,
            "started",
            Some(EventKind::Started),
        )
        .await;
    }
    tokio::spawn(monitor::run(d.clone(), name.to_owned(), rt, events));
    Ok(())
}

/// The host policy: the memory of running instances may exceed the host's
/// by the configured ratio, no more.
async fn check_overcommit(d: &Daemon, spec: &ferrovirt_api::InstanceSpec) -> Result<(), Error> {
    let committed: u64 = d
        .store
        .list_instances()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.spec.name != spec.name && d.runtime(&r.spec.name).is_some())
        .map(|r| r.spec.memory)
        .sum();
    let limit = (d.limits.memory_mib as f64 * d.config.memory_overcommit) as u64;
    if d.limits.memory_mib > 0 && committed + spec.memory > limit {
        return Err(Error::conflict(format!(
            "starting {} would commit {} MiB of memory, over the limit of {limit} MiB \
             (host {} MiB × overcommit ratio {}); stop other instances or raise --memory-overcommit",
            spec.name,
            committed + spec.memory,
            d.limits.memory_mib,
            d.config.memory_overcommit
        )));
    }
    Ok(())
}

/// Stops an instance: ACPI power button, then SIGKILL after `timeout`; or
/// SIGKILL at once with `force`.
pub async fn stop_locked(
    d: &Daemon,
    name: &str,
    force: bool,
    timeout: Duration,
) -> Result<(), Error> {
    let rt = running(d, name)?;
    rt.intent().stopping = true;
    if force {
        rt.expect_exit(InstanceStatus::Shutoff, "stopped by force");
        process::kill_now(rt.pid);
    } else {
        rt.expect_exit(InstanceStatus::Shutoff, "shut down on request");
        let status = rt
            .qmp
            .execute("query-status", None)
            .await
            .unwrap_or_default();
        if status["status"] == "shutdown" || status["status"] == "guest-panicked" {
            rt.quit().await;
        } else if rt.qmp.execute("system_powerdown", None).await.is_ok() {
            let graceful = tokio::time::timeout(timeout, rt.qmp.closed()).await;
            if graceful.is_err() {
                rt.intent().exit = Some((
                    InstanceStatus::Shutoff,
                    format!(
                        "forced off: the guest did not shut down within {}s",
                        timeout.as_secs()
                    ),
                ));
                process::kill_now(rt.pid);
            }
        } else {
            process::kill_now(rt.pid);
        }
    }
    rt.qmp.closed().await;
    process::wait_gone(rt.pid, &rt.paths, Duration::from_secs(10)).await;
    monitor::finish_exit(d, name, &rt).await;
    Ok(())
}

async fn pause_locked(d: &Daemon, name: &str) -> Result<(), Error> {
    let rt = running(d, name)?;
    rt.qmp
        .execute("stop", None)
        .await
        .map_err(qmp_err(name, "pause"))?;
    d.set_status(
        name,
        InstanceStatus::Paused,
        "paused on request",
        Some(EventKind::Paused),
    )
    .await;
    Ok(())
}

async fn resume_locked(d: &Daemon, name: &str) -> Result<(), Error> {
    let rt = running(d, name)?;
    let status = rt
        .qmp
        .execute("query-status", None)
        .await
        .map_err(qmp_err(name, "query"))?;
    if status["status"] == "shutdown" {
        // A guest kept after poweroff: boot it again from reset.
        rt.qmp
            .execute("system_reset", None)
            .await
            .map_err(qmp_err(name, "reset"))?;
    }
    rt.qmp
        .execute("cont", None)
        .await
        .map_err(qmp_err(name, "resume"))?;
    d.set_status(
        name,
        InstanceStatus::Running,
        "resumed on request",
        Some(EventKind::Resumed),
    )
    .await;
    Ok(())
}

/// Reboot with guest cooperation: the ACPI power button, and the guest's
/// resulting poweroff is turned into a reset by the monitor.
async fn reboot_locked(d: &Daemon, name: &str) -> Result<(), Error> {
    let rt = running(d, name)?;
    rt.intent().rebooting = true;
    rt.qmp
        .execute("system_powerdown", None)
        .await
        .map_err(qmp_err(name, "reboot"))?;
    Ok(())
}

async fn reset_locked(d: &Daemon, name: &str) -> Result<(), Error> {
    let rt = running(d, name)?;
    rt.qmp
        .execute("system_reset", None)
        .await
        .map_err(qmp_err(name, "reset"))?;
    d.events
        .emit(EventKind::Rebooted, name, Some("reset on request".into()));
    Ok(())
}
