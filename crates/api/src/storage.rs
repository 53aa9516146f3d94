//! Storage pools and their volumes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a pool keeps its volumes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PoolType {
    /// Image files in a host directory (`path`).
    #[default]
    Dir,
    /// A filesystem on a block device or image file (`source.device`),
    /// formatted on build if asked, mounted at `path`.
    Fs,
    /// An NFS export (`source.host`, `source.export`) mounted at `path`.
    Netfs,
    /// An LVM volume group (`source.vg`, built on `source.device`); volumes
    /// are logical volumes.
    Logical,
    /// The LUNs of an iSCSI target (`source.host`, `source.target`), opened
    /// by QEMU's own iSCSI initiator. Volumes are made on the target.
    Iscsi,
}

impl PoolType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dir => "dir",
            Self::Fs => "fs",
            Self::Netfs => "netfs",
            Self::Logical => "logical",
            Self::Iscsi => "iscsi",
        }
    }

    /// Types whose volumes are files in the pool's directory.
    pub fn has_files(self) -> bool {
        matches!(self, Self::Dir | Self::Fs | Self::Netfs)
    }
}

/// Where a pool's storage comes from (which fields apply depends on the type).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct PoolSource {
    /// fs: the block device or image file holding the filesystem;
    /// logical: the device the volume group is built on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// fs: the filesystem type (`ext4`, `xfs`, `btrfs`); default ext4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<String>,
    /// netfs and iscsi: the server (host or host:port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// netfs: the exported directory on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    /// fs and netfs: mount options (`-o`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
    /// iscsi: the target's IQN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// logical: the volume group name; default the pool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vg: Option<String>,
}

/// A pool's definition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: PoolType,
    /// dir, fs, netfs: the directory holding the volumes (mount point for
    /// fs and netfs). Default: `<state dir>/pools/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default)]
    pub source: PoolSource,
    /// Start the pool when the daemon starts.
    #[serde(default)]
    pub autostart: bool,
    #[serde(default)]
    pub description: String,
}

/// Body of `POST /1.0/pools`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolCreate {
    pub spec: PoolSpec,
    /// Prepare the storage first: make the directory, format the
    /// filesystem (fs) or create the volume group (logical). Never done
    /// implicitly, since it destroys what the device holds.
    #[serde(default)]
    pub build: bool,
    /// Start the pool once defined (default true).
    #[serde(default = "yes")]
    pub start: bool,
}

fn yes() -> bool {
    true
}

/// A pool as the API returns it; sizes in bytes (0 while inactive).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub spec: PoolSpec,
    pub active: bool,
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
    pub volumes: usize,
}

/// Query of `DELETE /1.0/pools/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct PoolDelete {
    /// Delete the pool's volumes too (refused otherwise when it has some).
    #[serde(default)]
    pub volumes: bool,
}

/// A volume's image format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum VolumeFormat {
    #[default]
    Raw,
    Qcow2,
    /// Read only: import and convert sources.
    Vmdk,
    Vdi,
    Vhdx,
    Vpc,
}

impl VolumeFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Qcow2 => "qcow2",
            Self::Vmdk => "vmdk",
            Self::Vdi => "vdi",
            Self::Vhdx => "vhdx",
            Self::Vpc => "vpc",
        }
    }

    /// Parses qemu-img's format name.
    pub fn from_qemu(name: &str) -> Option<Self> {
        Some(match name {
            "raw" => Self::Raw,
            "qcow2" => Self::Qcow2,
            "vmdk" => Self::Vmdk,
            "vdi" => Self::Vdi,
            "vhdx" => Self::Vhdx,
            "vpc" => Self::Vpc,
            _ => return None,
        })
    }

    /// Formats volumes are kept in (and guests use).
    pub fn is_native(self) -> bool {
        matches!(self, Self::Raw | Self::Qcow2)
    }

    /// The disk format of a native volume format.
    pub fn disk_format(self) -> Option<crate::DiskFormat> {
        crate::DiskFormat::from_qemu(self.as_str())
    }
}

impl From<crate::DiskFormat> for VolumeFormat {
    fn from(f: crate::DiskFormat) -> Self {
        match f {
            crate::DiskFormat::Raw => Self::Raw,
            crate::DiskFormat::Qcow2 => Self::Qcow2,
        }
    }
}

/// How much of a new volume is allocated up front.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Preallocation {
    /// Sparse.
    #[default]
    Off,
    /// qcow2 metadata only.
    Metadata,
    /// Reserved with fallocate.
    Falloc,
    /// Written out in full.
    Full,
}

impl Preallocation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Metadata => "metadata",
            Self::Falloc => "falloc",
            Self::Full => "full",
        }
    }
}

/// Body of `POST /1.0/pools/{pool}/volumes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VolumeCreate {
    pub name: String,
    /// Virtual size in bytes.
    pub size: u64,
    #[serde(default)]
    pub format: VolumeFormat,
    #[serde(default)]
    pub preallocation: Preallocation,
}

/// A volume as listed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub name: String,
    pub pool: String,
    /// Where QEMU opens it: a file, a block device or an `iscsi://` URL.
    pub path: String,
    pub format: VolumeFormat,
    /// Size the guest sees, in bytes.
    pub virtual_size: u64,
    /// Bytes it takes on the host.
    pub actual_size: u64,
    /// For a linked clone: the volume (or file) it is backed by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backing_chain: Vec<BackingImage>,
    /// Instances with a disk on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
}

/// One image below a volume.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BackingImage {
    pub path: String,
    pub format: String,
    pub virtual_size: u64,
}

/// Body of `POST .../volumes/{name}/resize`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VolumeResize {
    /// New virtual size in bytes.
    pub size: u64,
    /// Allow shrinking, which loses the data past the new end.
    #[serde(default)]
    pub force: bool,
}

/// Body of `POST .../volumes/{name}/clone`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VolumeClone {
    pub name: String,
    /// The pool of the copy; default the source's pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// A qcow2 overlay backed by the source instead of a full copy.
    #[serde(default)]
    pub linked: bool,
    /// Format of a full copy; default the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<VolumeFormat>,
}

/// Body of `POST .../volumes/{name}/convert`: rewrites the volume in
/// another format (in place, or into a new volume when `name` is given).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VolumeConvert {
    pub format: VolumeFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Body of `POST .../volumes/{name}/export`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VolumeExport {
    /// Absolute host path of the file to write (must not exist).
    pub path: String,
    /// Format of the file; default the volume's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<VolumeFormat>,
}

/// Body of `POST /1.0/pools/{pool}/import`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VolumeImport {
    /// Name of the new volume.
    pub name: String,
    /// Absolute host path of the image to read (raw, qcow2, vmdk, vdi,
    /// vhdx or vpc; detected when `source_format` is absent).
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_format: Option<VolumeFormat>,
    /// Format of the volume; default qcow2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<VolumeFormat>,
}

/// What `PUT /1.0/pools/{pool}/state` does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PoolAction {
    Start,
    Stop,
    /// Re-check the pool's storage and re-read its volumes.
    Refresh,
}

/// `PUT /1.0/pools/{pool}/state`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolStatePut {
    pub action: PoolAction,
}
