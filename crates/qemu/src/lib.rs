//! The QEMU driver.
//!
//! - [`host`] reads the host's virtualization facts (cpuinfo flags, /dev/kvm,
//!   memory) for the honest accelerator choice.
//! - [`probe`] asks a QEMU binary what it supports, cached per binary.
//! - [`command`] turns a validated spec into argv; it is pure and covered by
//!   golden tests.
//! - [`process`] launches QEMU detached from the daemon and finds it again.

pub mod command;
pub mod host;
pub mod img;
pub mod paths;
pub mod probe;
pub mod process;

pub use command::{QemuCommand, StartMode, build, build_with};
pub use paths::InstancePaths;
