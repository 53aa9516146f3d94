//! One task per live QEMU: QMP events keep the recorded state true and
//! trigger the instance's on_poweroff / on_reboot / on_crash policies; the
//! QMP socket closing means QEMU exited.

use std::sync::Arc;

use ferrovirt_api::{EventKind, InstanceStatus, LifecycleAction};
use ferrovirt_qemu::process;
use ferrovirt_qmp::QmpEvent;
use tokio::sync::broadcast;

use crate::daemon::Daemon;
use crate::lifecycle;
use crate::runtime::VmRuntime;

/// Watches one QEMU until it exits, then records the final state and
/// applies on_crash when the exit was not asked for.
pub async fn run(
    d: Daemon,
    name: String,
    rt: Arc<VmRuntime>,
    mut events: broadcast::Receiver<QmpEvent>,
) {
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => handle(&d, &name, &rt, ev).await,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(instance = name, n, "QMP events lost");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = rt.qmp.closed() => break,
        }
    }
    while let Ok(ev) = events.try_recv() {
        if ev.event == "SHUTDOWN" && ev.data["reason"] == "host-signal" {
            rt.expect_exit(InstanceStatus::Shutoff, "QEMU was terminated by a signal");
        }
    }
    process::wait_gone(rt.pid, &rt.paths, std::time::Duration::from_secs(10)).await;
    if finish_exit(&d, &name, &rt).await == Some(InstanceStatus::Crashed) {
        apply_crash_policy(&d, &name).await;
    }
}

/// Records that QEMU has exited: unregisters the runtime, removes its
/// runtime files and sets the expected state (crashed if none was
/// expected). Idempotent: only the first caller acts, and it gets the status.
pub async fn finish_exit(d: &Daemon, name: &str, rt: &Arc<VmRuntime>) -> Option<InstanceStatus> {
    // Held to the end: a second caller waits until the status is recorded.
    let mut finished = rt.finished.lock().await;
    if *finished {
        return None;
    }
    *finished = true;
    let (status, reason) = rt.intent().exit.take().unwrap_or((
        InstanceStatus::Crashed,
        "QEMU exited unexpectedly (killed or crashed)".to_owned(),
    ));
    process::clean_runtime(&rt.paths);
    if let Ok(rec) = d.record(name).await {
        crate::networks::nics::cleanup(d, &rec.spec).await;
    }
    let kind = match status {
        InstanceStatus::Crashed => EventKind::Crashed,
        _ => EventKind::Stopped,
    };
    d.set_status(name, status, &reason, Some(kind)).await;
    d.unregister(name, rt);
    Some(status)
}

async fn policy(
    d: &Daemon,
    name: &str,
    pick: fn(&ferrovirt_api::InstanceSpec) -> LifecycleAction,
) -> LifecycleAction {
    d.record(name)
        .await
        .map(|r| pick(&r.spec))
        .unwrap_or(LifecycleAction::Destroy)
}

/// on_crash for an instance whose QEMU is gone. Boxed because starting an
/// instance spawns its monitor, which may come back here.
pub fn apply_crash_policy<'a>(
    d: &'a Daemon,
    name: &'a str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
    Box::pin(restart_after_crash(d, name))
}

async fn restart_after_crash(d: &Daemon, name: &str) {
    if policy(d, name, |s| s.on_crash).await != LifecycleAction::Restart {
        return;
    }
    let _guard = d.locks.lock(name).await;
    let still_crashed = d
        .record(name)
        .await
        .map(|r| r.status == InstanceStatus::Crashed)
        .unwrap_or(false);
    if still_crashed && d.runtime(name).is_none() {
        tracing::info!(
            instance = name,
            "restarting after a crash (on_crash=restart)"
        );
        if let Err(e) = lifecycle::start_locked(d, name).await {
            tracing::error!(instance = name, error = %e, "restart after crash failed");
        }
    }
}

async fn reset_and_continue(rt: &VmRuntime) {
    rt.note_reset();
    let _ = rt.qmp.execute("system_reset", None).await;
    let _ = rt.qmp.execute("cont", None).await;
}

async fn handle(d: &Daemon, name: &str, rt: &Arc<VmRuntime>, ev: QmpEvent) {
    tracing::debug!(instance = name, event = ev.event, data = %ev.data, "QMP event");
    match ev.event.as_str() {
        "SHUTDOWN" if ev.data["reason"] == "guest-shutdown" => guest_poweroff(d, name, rt).await,
        "SHUTDOWN" if ev.data["reason"] == "host-signal" => {
            rt.expect_exit(InstanceStatus::Shutoff, "QEMU was terminated by a signal");
        }
        // Every RESET is noted (the guard runs for each); only a fresh
        // guest-initiated one is a reboot.
        "RESET" if rt.note_reset() && ev.data["guest"] == true => guest_reboot(d, name, rt).await,
        "GUEST_PANICKED" => guest_panic(d, name, rt).await,
        "STOP" => {
            let status = rt
                .qmp
                .execute("query-status", None)
                .await
                .unwrap_or_default();
            if status["status"] == "paused" {
                d.set_status(
                    name,
                    InstanceStatus::Paused,
                    "paused",
                    Some(EventKind::Paused),
                )
                .await;
            }
        }
        "RESUME" => {
            d.set_status(
                name,
                InstanceStatus::Running,
                "running",
                Some(EventKind::Resumed),
            )
            .await
        }
        _ => {}
    }
}

/// Handles a guest poweroff (QEMU stays alive thanks to `-no-shutdown`).
/// Also used on re-attach when the guest powered off while the daemon was down.
pub async fn guest_poweroff(d: &Daemon, name: &str, rt: &Arc<VmRuntime>) {
    d.events.emit(
        EventKind::Shutdown,
        name,
        Some("the guest powered off".into()),
    );
    let (stopping, rebooting) = {
        let mut i = rt.intent();
        let r = (i.stopping, i.rebooting);
        i.rebooting = false;
        r
    };
    if stopping {
        rt.quit().await;
        return;
    }
    if rebooting {
        reset_and_continue(rt).await;
        d.events.emit(
            EventKind::Rebooted,
            name,
            Some("rebooted on request".into()),
        );
        return;
    }
    match policy(d, name, |s| s.on_poweroff).await {
        LifecycleAction::Destroy => {
            rt.expect_exit(InstanceStatus::Shutoff, "the guest powered off");
            rt.quit().await;
        }
        LifecycleAction::Restart => {
            reset_and_continue(rt).await;
            d.events.emit(
                EventKind::Rebooted,
                name,
                Some("the guest powered off; restarted by on_poweroff=restart".into()),
            );
        }
        LifecycleAction::Preserve => {
            d.set_status(
                name,
                InstanceStatus::Paused,
                "the guest powered off; kept by on_poweroff=preserve",
                Some(EventKind::Paused),
            )
            .await
        }
    }
}

async fn guest_reboot(d: &Daemon, name: &str, rt: &Arc<VmRuntime>) {
    d.events
        .emit(EventKind::Rebooted, name, Some("the guest rebooted".into()));
    match policy(d, name, |s| s.on_reboot).await {
        LifecycleAction::Restart => {}
        LifecycleAction::Destroy => {
            rt.expect_exit(
                InstanceStatus::Shutoff,
                "the guest rebooted; stopped by on_reboot=destroy",
            );
            rt.quit().await;
        }
        LifecycleAction::Preserve => {
            let _ = rt.qmp.execute("stop", None).await;
            d.set_status(
                name,
                InstanceStatus::Paused,
                "the guest rebooted; kept by on_reboot=preserve",
                Some(EventKind::Paused),
            )
            .await;
        }
    }
}

/// Handles a guest panic (QEMU pauses the guest thanks to `-action panic=pause`).
pub async fn guest_panic(d: &Daemon, name: &str, rt: &Arc<VmRuntime>) {
    match policy(d, name, |s| s.on_crash).await {
        LifecycleAction::Destroy => {
            rt.expect_exit(InstanceStatus::Crashed, "the guest panicked");
            rt.quit().await;
        }
        LifecycleAction::Restart => {
            d.events.emit(
                EventKind::Crashed,
                name,
                Some("the guest panicked; restarting".into()),
            );
            reset_and_continue(rt).await;
        }
        LifecycleAction::Preserve => {
            d.set_status(
                name,
                InstanceStatus::Crashed,
                "the guest panicked; kept by on_crash=preserve",
                Some(EventKind::Crashed),
            )
            .await
        }
    }
}
