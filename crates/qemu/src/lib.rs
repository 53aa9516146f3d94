//! The QEMU driver.
//!
//! - [`host`] reads the host's virtualization facts (cpuinfo flags, /dev/kvm,
//!   memory) for the honest accelerator choice.
//! - [`probe`] asks a QEMU binary what it supports, cached per binary.
//! - [`command`] turns a validated spec into argv; it is pure and covered by
//!   golden tests.
//! - [`process`] launches QEMU detached from the daemon and finds it again.
//! - [`monitor`] speaks QMP with typed verbs and events.
//! - [`vm`] is one QEMU process: spawn or re-attach, its monitor, and where
//!   the guest's state comes from.

pub mod command;
pub mod host;
pub mod img;
pub mod monitor;
pub mod paths;
pub mod probe;
pub mod process;
pub mod vm;

pub use command::{QemuCommand, StartMode, build, build_with};
pub use monitor::{Event, Events, Monitor, MonitorError, RunState};
pub use paths::InstancePaths;
pub use vm::{BootSource, IncomingSetup, Vm, VmError};
