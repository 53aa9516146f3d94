//! The validated domain model of Ferrovirt and the rules that do not depend on
//! any driver: instance spec validation, the honest accelerator choice, error
//! kinds (mapped to HTTP status codes), per-instance job locks and the
//! [`Reverter`] that undoes the finished steps of a failed multi-step action.

pub mod accel;
pub mod disk;
pub mod error;
pub mod hostcheck;
pub mod lock;
pub mod name;
pub mod reverter;
pub mod size;
pub mod spec;

pub use error::{Error, ErrorKind};
pub use lock::InstanceLocks;
pub use reverter::Reverter;
pub use spec::{HostLimits, ValidSpec};
