//! What an instance has while its QEMU is alive.

use ferrovirt_api::AccelDecision;
use ferrovirt_qemu::{Monitor, Vm};

use crate::console::ConsoleHub;

/// A live QEMU: the process and its monitor, the accelerator it runs on,
/// and the serial console hub.
#[derive(Debug)]
pub struct Live {
    pub vm: Vm,
    pub accel: AccelDecision,
    pub console: Option<ConsoleHub>,
}

impl Live {
    pub fn monitor(&self) -> &Monitor {
        self.vm.monitor()
    }

    pub fn pid(&self) -> u32 {
        self.vm.pid()
    }
}
