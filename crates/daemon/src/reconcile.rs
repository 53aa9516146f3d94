//! Start-up reconciliation with the QEMUs that outlived a daemon restart.
//!
//! Every recorded instance is matched with its pidfile: live QEMUs are
//! re-attached (QMP, console, monitor) and their state read back; instances
//! whose QEMU died meanwhile are marked crashed and their on_crash policy
//! applied; QEMUs of ours that no instance owns are killed. Then autostart.

use std::collections::HashSet;
use std::time::Duration;

use ferrovirt_api::{AccelDecision, EventKind, InstanceStatus};
use ferrovirt_qemu::process;
use ferrovirt_qmp::Qmp;

use crate::console::ConsoleHub;
use crate::daemon::{Daemon, store_err};
use crate::lifecycle;
use crate::monitor;
use crate::runtime::VmRuntime;

pub async fn reconcile(d: &Daemon) -> Result<(), ferrovirt_core::Error> {
    let records = d
        .store
        .list_instances()
        .await
        .map_err(store_err("listing instances"))?;
    let mut owned = HashSet::new();
    for rec in &records {
        let name = &rec.spec.name;
        let paths = d.paths(name);
        let live = process::read_pid(&paths).filter(|pid| process::is_alive(*pid, &paths));
        match live {
            Some(pid) => {
                owned.insert(pid);
                if let Err(e) = reattach(d, name, pid).await {
                    tracing::error!(instance = name, error = %e, "cannot re-attach; killing QEMU");
                    process::kill_now(pid);
                    process::clean_runtime(&paths);
                    d.set_status(
                        name,
                        InstanceStatus::Crashed,
                        &format!("could not re-attach after a daemon restart: {e}"),
                        Some(EventKind::Crashed),
                    )
                    .await;
                }
            }
            None => {
                process::clean_runtime(&paths);
                if rec.status.is_active() {
                    d.set_status(
                        name,
                        InstanceStatus::Crashed,
                        "QEMU exited while the daemon was down",
                        Some(EventKind::Crashed),
                    )
                    .await;
                    monitor::apply_crash_policy(d, name).await;
                }
            }
        }
    }
    for rec in &records {
        crate::snapshots::recover(d, &rec.spec.name).await;
    }
    kill_orphans(d, &owned);
    for rec in records {
        let name = &rec.spec.name;
        if rec.spec.autostart && d.runtime(name).is_none() {
            let _guard = d.locks.lock(name).await;
            if d.runtime(name).is_none() {
                tracing::info!(instance = name, "autostart");
                if let Err(e) = lifecycle::start_locked(d, name).await {
                    tracing::error!(instance = name, error = %e, "autostart failed");
                }
            }
        }
    }
    Ok(())
}

async fn reattach(d: &Daemon, name: &str, pid: u32) -> Result<(), String> {
    let paths = d.paths(name);
    let (qmp, events) = connect_with_retry(&paths.qmp_socket()).await?;
    let status = qmp
        .execute("query-status", None)
        .await
        .map_err(|e| e.to_string())?;
    let console = ConsoleHub::connect(&paths.console_socket()).await.ok();
    let accel = std::fs::read(paths.runtime_dir.join("accel.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<AccelDecision>(&b).ok())
        .unwrap_or(AccelDecision {
            accel: "unknown".into(),
            reason: "re-attached after a daemon restart".into(),
        });
    let rt = VmRuntime::new(pid, qmp, accel, paths, console);
    d.register(name, rt.clone());
    let runstate = status["status"].as_str().unwrap_or("").to_owned();
    tracing::info!(
        instance = name,
        pid,
        runstate,
        "re-attached to running QEMU"
    );
    match runstate.as_str() {
        "running" => {
            d.set_status(
                name,
                InstanceStatus::Running,
                "running",
                Some(EventKind::Resumed),
            )
            .await
        }
        "paused" => {
            d.set_status(
                name,
                InstanceStatus::Paused,
                "paused",
                Some(EventKind::Paused),
            )
            .await
        }
        "prelaunch" => {
            rt.expect_exit(
                InstanceStatus::Shutoff,
                "start was interrupted by a daemon restart",
            );
            rt.quit().await;
        }
        _ => {}
    }
    tokio::spawn(monitor::run(d.clone(), name.to_owned(), rt.clone(), events));
    match runstate.as_str() {
        "shutdown" => monitor::guest_poweroff(d, name, &rt).await,
        "guest-panicked" => monitor::guest_panic(d, name, &rt).await,
        _ => {}
    }
    Ok(())
}

async fn connect_with_retry(
    path: &std::path::Path,
) -> Result<
    (
        Qmp,
        tokio::sync::broadcast::Receiver<ferrovirt_qmp::QmpEvent>,
    ),
    String,
> {
    let mut last = String::new();
    for _ in 0..50 {
        match Qmp::connect(path).await {
            Ok(c) => return Ok(c),
            Err(e) => last = ferrovirt_core::error::chain(&e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}

/// Kills QEMUs started from our runtime dir that no instance owns.
fn kill_orphans(d: &Daemon, owned: &HashSet<u32>) {
    let marker = d.config.runtime_dir.join("instances").display().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if owned.contains(&pid) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("qemu-system") && cmdline.contains(&format!("{marker}/")) {
            tracing::warn!(pid, "killing an orphaned QEMU that no instance owns");
            process::kill_now(pid);
        }
    }
}
