use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::InstanceStatus;

/// Where a snapshot keeps the disks' state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    /// Inside each qcow2 image (and the memory in the first one).
    #[default]
    Internal,
    /// The current disk files are frozen and new overlay files take the
    /// writes; the memory goes to its own file.
    External,
}

/// Body of `POST /1.0/instances/{name}/snapshots`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnapshotsPost {
    /// DNS-label-like name, unique per instance.
    pub name: String,
    #[serde(default)]
    pub kind: SnapshotKind,
    /// Save the memory of a running instance too (default: yes when it runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<bool>,
    #[serde(default)]
    pub description: String,
}

/// Per-disk state of an external snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SnapshotDisk {
    /// The file frozen by the snapshot: the disk as it was.
    pub frozen: String,
    /// Its format (`raw` or `qcow2`).
    pub format: String,
}

/// A snapshot of an instance; snapshots form a tree.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub name: String,
    pub instance: String,
    pub kind: SnapshotKind,
    pub description: String,
    /// The snapshot this one was taken after (its parent in the tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub children: Vec<String>,
    /// Whether the instance currently descends from this snapshot directly.
    pub current: bool,
    /// Whether the memory was saved (reverting resumes the guest where it was).
    pub memory: bool,
    /// The instance's state when the snapshot was taken.
    pub taken_while: InstanceStatus,
    /// External snapshots: the frozen files, one per disk.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<SnapshotDisk>,
    /// External snapshots with memory: the memory state file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_file: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /1.0/instances/{name}/clone`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClonePost {
    /// Name of the new instance.
    pub name: String,
    /// qcow2 overlays on the source's (frozen) disks instead of full copies.
    #[serde(default)]
    pub linked: bool,
    /// Clone the state of this snapshot instead of the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_snapshot: Option<String>,
}

/// Body of `POST /1.0/instances/{name}/save`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SavePost {
    /// Write the state here instead of the managed save the next start
    /// resumes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// Body of `POST /1.0/restore`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestorePost {
    /// A file written by `save --file`.
    pub file: String,
}
