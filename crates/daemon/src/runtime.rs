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
}

impl VmRuntime {
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

    /// Asks QEMU to exit now; the monitor records the state.
    pub async fn quit(&self) {
        if self.qmp.execute("quit", None).await.is_err() {
            ferrovirt_qemu::process::kill_now(self.pid);
        }
    }
}
