//! The storage pool driver interface: what every pool type does, and the
//! capability flags the daemon branches on instead of pool types (as
//! Incus' storage drivers and libvirt's storage backends).

use std::path::Path;

use ferrovirt_api::{VolumeCreate, VolumeFormat};

use crate::Error;
use crate::disk_source::DiskSource;
use crate::runner::BoxFuture;

/// What a pool type can do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageCaps {
    /// Volumes are made, removed, resized and wiped here (not on a remote
    /// target, as iSCSI LUNs are).
    pub manages_volumes: bool,
    /// Volumes are files in a directory: copies, imports and clones go
    /// into such pools, and their part files are swept on start.
    pub files: bool,
    /// Volumes may be qcow2 images (else they are raw).
    pub qcow2: bool,
    /// A linked clone (a qcow2 overlay) may be made of a volume.
    pub linked_clones: bool,
    /// A same-format copy may share extents (FICLONE) where the
    /// filesystem can.
    pub reflink: bool,
    /// Starting the pool mounts a filesystem; stopping unmounts it.
    pub needs_mount: bool,
    /// The storage is reached over the network (NFS, iSCSI).
    pub remote: bool,
    /// Volumes are host block devices, so growing one a guest uses is
    /// done on the host before QEMU is told the new size.
    pub block_devices: bool,
    /// `build` prepares the storage here (mkdir, mkfs, vgcreate).
    pub buildable: bool,
    /// The pool's directory is made without being asked to build it, and
    /// removed with the pool (a dir pool in its default place).
    pub owns_directory: bool,
}

/// Capacity figures of a pool, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Space {
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
}

/// What a pool knows of one of its volumes without opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    /// The path or URL QEMU opens; empty when the volume cannot be opened
    /// on this host (an LV without device-mapper).
    pub path: String,
    pub format: VolumeFormat,
    pub virtual_size: u64,
    pub actual_size: u64,
    /// Whether the volume has a backing file (a linked clone).
    pub has_backing: bool,
}

/// One pool on this host. Records, locking and the question of which
/// instances use a volume belong to the daemon.
pub trait StorageDriver: Send + Sync + std::fmt::Debug {
    fn capabilities(&self) -> StorageCaps;

    /// The pool's directory, for pools whose volumes are files (where a
    /// new volume `name` is `directory/name`).
    fn directory(&self) -> Option<&Path>;

    /// Checks what the pool's type needs in its spec.
    fn check_spec(&self) -> Result<(), Error>;

    /// Prepares the storage; destroys what a device held.
    fn build(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// Makes the pool usable (idempotent).
    fn start(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// Undoes [`start`](Self::start).
    fn stop(&self) -> BoxFuture<'_, Result<(), Error>>;

    fn space(&self) -> BoxFuture<'_, Result<Space, Error>>;

    fn volumes(&self) -> BoxFuture<'_, Result<Vec<VolumeInfo>, Error>>;

    /// The volume called `name`, or a not-found error naming the pool.
    fn volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<VolumeInfo, Error>>;

    fn create<'a>(&'a self, req: &'a VolumeCreate) -> BoxFuture<'a, Result<VolumeInfo, Error>>;

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    /// Resizes a volume that no running guest has open.
    fn resize<'a>(&'a self, name: &'a str, size: u64) -> BoxFuture<'a, Result<(), Error>>;

    /// Zeroes a volume's content, keeping its size and format.
    fn wipe<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    /// How QEMU opens the volume.
    fn disk_source(&self, volume: &VolumeInfo) -> Result<DiskSource, Error>;
}
