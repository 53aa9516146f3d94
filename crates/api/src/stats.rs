use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Usage counters of a running instance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstanceStats {
    pub instance: String,
    /// CPU time QEMU has used (all its threads), in nanoseconds.
    pub cpu_time_ns: u64,
    /// QEMU's resident memory (guest RAM touched plus overhead), in bytes.
    pub rss_bytes: u64,
    /// Memory the guest has (after the balloon), in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balloon_bytes: Option<u64>,
    pub vcpus: u32,
    pub disks: Vec<DiskStats>,
    pub nics: Vec<NicStats>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DiskStats {
    /// `disk0`, `disk1`, … (index in the spec).
    pub device: String,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
}

/// Traffic seen from the guest: `rx` is what it received.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NicStats {
    pub mac: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}
