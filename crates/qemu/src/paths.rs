use std::path::{Path, PathBuf};

/// Where one instance's runtime files and logs live.
///
/// The runtime dir holds what dies with QEMU (sockets, pidfile); the log dir
/// is under the state dir so history survives a host reboot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstancePaths {
    pub runtime_dir: PathBuf,
    pub log_dir: PathBuf,
}

impl InstancePaths {
    pub fn new(runtime_root: &Path, state_root: &Path, name: &str) -> Self {
        Self {
            runtime_dir: runtime_root.join("instances").join(name),
            log_dir: state_root.join("logs").join(name),
        }
    }
    pub fn qmp_socket(&self) -> PathBuf {
        self.runtime_dir.join("qmp.sock")
    }
    pub fn console_socket(&self) -> PathBuf {
        self.runtime_dir.join("console.sock")
    }
    pub fn vnc_socket(&self) -> PathBuf {
        self.runtime_dir.join("vnc.sock")
    }
    pub fn spice_socket(&self) -> PathBuf {
        self.runtime_dir.join("spice.sock")
    }
    pub fn pidfile(&self) -> PathBuf {
        self.runtime_dir.join("qemu.pid")
    }
    /// QEMU's own messages (stderr and `-D`).
    pub fn qemu_log(&self) -> PathBuf {
        self.log_dir.join("qemu.log")
    }
    /// Everything the guest wrote on its serial console, written by the
    /// daemon's console hub (rotated: `console.log.1` … beside it).
    pub fn console_log(&self) -> PathBuf {
        self.log_dir.join("console.log")
    }
}
