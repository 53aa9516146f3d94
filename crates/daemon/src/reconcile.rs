//! Start-up reconciliation with the QEMUs that outlived a daemon restart.
//!
//! Every recorded instance is matched with its pidfile: live QEMUs are
//! re-attached (monitor, console) and handed to the instance's actor with
//! their state read back, and what happened to the guest meanwhile (a
//! poweroff, a panic) is replayed to it; instances whose QEMU died meanwhile
//! are marked crashed and their on_crash policy applied; a QEMU left
//! half-started is stopped; QEMUs of ours that no instance owns are killed.
//! Then autostart.

use std::collections::HashSet;
use std::sync::Arc;

use ferrovirt_api::{AccelDecision, EventKind, InstanceStatus};
use ferrovirt_qemu::{Event, Events, RunState, Vm, process};
use ferrovirt_store::InstanceRecord;

use crate::console::ConsoleHub;
use crate::daemon::{Daemon, store_err};
use crate::instance::handle::InstanceHandle;
use crate::instance::job::JobKind;
use crate::instance::live::Live;
use crate::instance::{self, lifecycle};

pub async fn reconcile(d: &Daemon) -> Result<(), ferrovirt_core::Error> {
    let records = d
        .store
        .list_instances()
        .await
        .map_err(store_err("listing instances"))?;
    let mut owned = HashSet::new();
    for rec in &records {
        let name = &rec.spec.name;
        let h = instance::handle(d, name).await?;
        let paths = d.paths(name);
        match Vm::attach(&paths).await {
            Some((pid, attached)) => {
                owned.insert(pid);
                let result = match attached {
                    Ok((vm, events)) => reattach(d, &h, rec, vm, events).await,
                    Err(e) => Err(ferrovirt_core::error::chain(&e)),
                };
                if let Err(e) = result {
                    tracing::error!(instance = name, error = %e, "cannot re-attach; killing QEMU");
                    process::kill_now(pid);
                    process::clean_runtime(&paths);
                    let _ = h
                        .set_status(
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
                    let _ = h
                        .set_status(
                            InstanceStatus::Crashed,
                            "QEMU exited while the daemon was down",
                            Some(EventKind::Crashed),
                        )
                        .await;
                    if rec.spec.on_crash == ferrovirt_api::LifecycleAction::Restart {
                        lifecycle::restart_after_crash(d.clone(), name.clone()).await;
                    }
                }
            }
        }
    }
    for rec in &records {
        crate::snapshots::recover(d, &rec.spec.name).await;
    }
    crate::save::recover(d).await;
    kill_orphans(d, &owned);
    for rec in records {
        let name = &rec.spec.name;
        let Ok(h) = instance::handle(d, name).await else {
            continue;
        };
        if rec.spec.autostart && h.live().is_none() {
            let Ok(job) = h.begin(JobKind::Start, None) else {
                continue;
            };
            tracing::info!(instance = name, "autostart");
            if let Err(e) = lifecycle::start(d, &h, &job).await {
                tracing::error!(instance = name, error = %e, "autostart failed");
            }
        }
    }
    Ok(())
}

async fn reattach(
    d: &Daemon,
    h: &InstanceHandle,
    rec: &InstanceRecord,
    vm: Vm,
    events: Events,
) -> Result<(), String> {
    let paths = d.paths(h.name());
    let state = vm
        .monitor()
        .query_status()
        .await
        .map_err(|e| ferrovirt_core::error::chain(&e))?;
    let console = match d.console_log(h.name()) {
        Ok(log) => ConsoleHub::connect(&paths.console_socket(), log).await.ok(),
        Err(e) => {
            tracing::error!(instance = h.name(), error = %e, "cannot open the console log");
            None
        }
    };
    let accel = std::fs::read(paths.runtime_dir.join("accel.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<AccelDecision>(&b).ok())
        .unwrap_or(AccelDecision {
            accel: "unknown".into(),
            reason: "re-attached after a daemon restart".into(),
        });
    tracing::info!(instance = h.name(), pid = vm.pid(), state = ?state, "re-attached to running QEMU");
    let live = Arc::new(Live { vm, accel, console });
    let (status, reason, event) = match state {
        RunState::Running => (InstanceStatus::Running, "running", Some(EventKind::Resumed)),
        RunState::Paused => (InstanceStatus::Paused, "paused", Some(EventKind::Paused)),
        _ => (rec.status, rec.reason.as_str(), None),
    };
    let err = |e: ferrovirt_core::Error| e.message;
    h.adopt(live, events, status, reason, event)
        .await
        .map_err(err)?;
    match state {
        RunState::Prelaunch => h
            .quit(
                InstanceStatus::Shutoff,
                "start was interrupted by a daemon restart",
                false,
            )
            .await
            .map_err(err)?,
        RunState::Shutdown => h
            .replay(Event::Shutdown {
                guest: true,
                reason: "guest-shutdown".into(),
            })
            .map_err(err)?,
        RunState::GuestPanicked => h.replay(Event::GuestPanicked).map_err(err)?,
        _ => {}
    }
    Ok(())
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
