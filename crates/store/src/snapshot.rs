//! Snapshot records.

use chrono::{DateTime, Utc};
use ferrovirt_api::{InstanceStatus, SnapshotDisk, SnapshotKind};
use serde::{Deserialize, Serialize};

/// A snapshot as stored. `state` is `creating` until every step is done, so
/// a daemon killed in the middle finds and finishes or removes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub instance: String,
    pub name: String,
    pub kind: SnapshotKind,
    pub description: String,
    pub parent: Option<String>,
    pub memory: bool,
    pub taken_while: InstanceStatus,
    /// External: the files frozen by the snapshot, one per disk.
    pub disks: Vec<SnapshotDisk>,
    /// External: the overlay files created to take the writes, one per disk.
    pub overlays: Vec<String>,
    pub memory_file: Option<String>,
    pub state: SnapshotState,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotState {
    Creating,
    Ready,
}
