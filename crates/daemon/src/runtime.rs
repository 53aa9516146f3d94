//! What the daemon holds for each instance whose QEMU is alive.

use std::sync::Mutex;

use ferrovirt_api::{AccelDecision, InstanceStatus};
use ferrovirt_qemu::InstancePaths;
use ferrovirt_qmp::Qmp;

use crate::console::ConsoleHub;

/// A live QEMU: its PID, QMP connection and console.
#[derive(Debug)]
pub struct VmRuntime {
    pub pid: u32,
    pub qmp: Qmp,
    pub accel: AccelDecision,
    pub paths: InstancePaths,
    pub console: Option<ConsoleHub>,
    pub intent: Mutex<Intent>,
    /// Set once QEMU's exit has been recorded; held while recording it, so
    /// a caller that loses the race returns only after the state is saved.
    pub finished: tokio::sync::Mutex<bool>,
}

/// What the daemon expects to happen next, so the monitor can tell a
/// requested stop from a crash and a requested reboot from a poweroff.
#[derive(Debug, Default)]
pub struct Intent {
    /// A stop was requested: any guest poweroff ends in shutoff.
    pub stopping: bool,
    /// A reboot was requested: the next guest poweroff becomes a reset.
    pub rebooting: bool,
    /// The state to record when QEMU exits; `None` means it crashed.
    pub exit: Option<(InstanceStatus, String)>,
    /// When the machine was last reset. SeaBIOS resets the machine once
    /// more right after a reset; that echo is not a new guest reboot.
    pub last_reset: Option<std::time::Instant>,
}

/// Guest resets closer than this to the previous reset belong to it.
pub const RESET_ECHO: std::time::Duration = std::time::Duration::from_secs(2);

impl VmRuntime {
    /// A freshly started or re-attached QEMU, with nothing expected yet.
    pub fn new(
        pid: u32,
        qmp: Qmp,
        accel: AccelDecision,
        paths: InstancePaths,
        console: Option<ConsoleHub>,
    ) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            pid,
            qmp,
            accel,
            paths,
            console,
            intent: Mutex::new(Intent::default()),
            finished: tokio::sync::Mutex::new(false),
        })
    }

    pub fn intent(&self) -> std::sync::MutexGuard<'_, Intent> {
        self.intent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the state QEMU's coming exit should leave, unless one is set.
    pub fn expect_exit(&self, status: InstanceStatus, reason: &str) {
        let mut i = self.intent();
        if i.exit.is_none() {
            i.exit = Some((status, reason.to_owned()));
        }
    }

    /// Records a reset; `true` if it is a new one rather than the echo of
    /// one that just happened.
    pub fn note_reset(&self) -> bool {
        let mut i = self.intent();
        let now = std::time::Instant::now();
        let fresh = i
            .last_reset
            .is_none_or(|t| now.duration_since(t) > RESET_ECHO);
        i.last_reset = Some(now);
        fresh
    }

    /// Asks QEMU to exit now; the monitor records the state.
    pub async fn quit(&self) {
        if self.qmp.execute("quit", None).await.is_err() {
            ferrovirt_qemu::process::kill_now(self.pid);
        }
    }
}
