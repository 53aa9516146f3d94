//! The validated domain model of Ferrovirt and the rules that do not depend on
//! any driver: instance spec validation, the honest accelerator choice, error
//! kinds (mapped to HTTP status codes), per-instance job locks and the
//! [`Reverter`] that undoes the finished steps of a failed multi-step action;
//! the driver interfaces with capability flags ([`StorageDriver`],
//! [`NetworkDriver`]), the [`DiskSource`] storage hands QEMU, and the
//! [`CommandRunner`] every external tool runs through.

pub mod accel;
pub mod disk;
pub mod disk_source;
pub mod error;
pub mod fake_runner;
pub mod hostcheck;
pub mod lock;
pub mod name;
pub mod network_driver;
pub mod reverter;
pub mod runner;
pub mod size;
pub mod spec;
#[cfg(test)]
mod spec_props;
pub mod storage_driver;

pub use disk_source::{BackingChains, BackingFile, DiskSource};
pub use error::{Error, ErrorKind};
pub use lock::InstanceLocks;
pub use network_driver::{NetworkCaps, NetworkDriver, NicPort};
pub use reverter::Reverter;
pub use runner::{Command, CommandRunner, Limits, RunError, TokioRunner};
pub use spec::{HostLimits, ValidSpec};
pub use storage_driver::{Space, StorageCaps, StorageDriver, VolumeInfo};
