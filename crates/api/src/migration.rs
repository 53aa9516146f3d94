use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::InstanceSpec;

/// Where a migration goes: another host's TLS API.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MigrationTarget {
    /// `host:port` of the destination's TLS listener.
    pub address: String,
    /// SHA-256 of the destination's certificate.
    pub fingerprint: String,
    /// A join token of the destination, used once if the destination does
    /// not trust this host yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Body of `POST /1.0/instances/{name}/migrate`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MigratePost {
    pub target: MigrationTarget,
    /// Move the definition (and, with copy_storage, the disks) of a stopped instance.
    #[serde(default)]
    pub offline: bool,
    /// Copy the writable disks to the destination (NBD mirroring while the
    /// guest runs) instead of relying on shared storage.
    #[serde(default)]
    pub copy_storage: bool,
    /// Switch to post-copy after the first pass over memory.
    #[serde(default)]
    pub postcopy: bool,
    /// Throttle the guest's vCPUs if memory is dirtied faster than it moves.
    #[serde(default)]
    pub auto_converge: bool,
    /// Bandwidth limit in MiB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<u64>,
    /// Longest acceptable pause at the switch-over, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_downtime: Option<u64>,
    /// Compress the memory stream (multifd + zstd).
    #[serde(default)]
    pub compress: bool,
}

/// Host-to-host: the source asks the destination to get ready
/// (`POST /1.0/migrations/incoming`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IncomingPost {
    pub spec: InstanceSpec,
    /// A running guest comes (false: only the definition and maybe disks).
    pub live: bool,
    pub copy_storage: bool,
    /// Virtual sizes of the writable disks, in order, when copying storage.
    #[serde(default)]
    pub disk_sizes: Vec<u64>,
    #[serde(default)]
    pub postcopy: bool,
    #[serde(default)]
    pub compress: bool,
}

/// The destination's answer: where to send memory and disks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IncomingReply {
    /// The destination's IP for the migration and NBD streams.
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbd_port: Option<u16>,
}
