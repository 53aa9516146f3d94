//! Wire types of the Ferrovirt REST API.
//!
//! These types are the contract between the daemon, the client library and
//! the CLI. They carry no behaviour and do no I/O; validation lives in
//! `ferrovirt-core`. Specs written by users in YAML deserialize into the same
//! types, and unknown fields are rejected everywhere.

mod error;
mod event;
mod host;
mod instance;
mod migration;
mod network;
mod operation;
pub mod size;
mod snapshot;
mod stats;
mod storage;

pub use error::{ErrorBody, ErrorDetails};
pub use event::{Event, EventKind};
pub use host::{
    AccelDecision, CheckStatus, HostCheck, HostCheckItem, HostInfo, JoinToken, MachineType,
    QemuInfo, TokenPost, TokenReply, TrustPost, TrustReply, TrustRole, TrustedClient,
};
pub use instance::{
    Accelerator, BootConfig, BootDevice, CpuModel, Disk, DiskAio, DiskBus, DiskCache, DiskFormat,
    DiskMedia, Graphics, GraphicsAdapter, GraphicsType, Instance, InstanceSpec, InstanceState,
    InstanceStatus, IoLimits, LifecycleAction, MachineKind, MediaPut, NicAddress, StateAction,
    StatePut,
};

pub use migration::{IncomingPost, IncomingReply, MigratePost, MigrationTarget};
pub use network::{
    DhcpHost, Ipv4Config, Lease, MacvtapMode, Network, NetworkAction, NetworkSpec, NetworkStatePut,
    NetworkType, Nic, NicModel,
};
pub use operation::{Operation, OperationStatus, Progress};
pub use snapshot::{
    ClonePost, RestorePost, SavePost, Snapshot, SnapshotDisk, SnapshotKind, SnapshotsPost,
};

pub use stats::{DiskStats, InstanceStats, NicStats};
pub use storage::{
    BackingImage, Pool, PoolAction, PoolCreate, PoolDelete, PoolSource, PoolSpec, PoolStatePut,
    PoolType, Preallocation, Volume, VolumeClone, VolumeConvert, VolumeCreate, VolumeExport,
    VolumeFormat, VolumeImport, VolumeResize,
};

/// The API version prefix of every resource path.
pub const API_PREFIX: &str = "/1.0";
