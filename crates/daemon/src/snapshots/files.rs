//! The image files of an instance's disk chains, which of them ferrovirt
//! made for the instance (and so removes with it), and where it puts new
//! ones.
//!
//! Ownership is what ferrovirt recorded when it made a file (the `owner`
//! of its [`record`]), never a file name: a file called like one of ours
//! that ferrovirt did not make is left alone.

use std::path::{Path, PathBuf};

use ferrovirt_api::{DiskFormat, InstanceSpec};
use ferrovirt_core::{DiskSource, Error};
use ferrovirt_storage::record::{self, ImageRecord};

use super::records;
use crate::daemon::Daemon;

/// Whether ferrovirt made `path` for `instance`.
pub fn is_ours(path: &str, instance: &str) -> bool {
    record::read(Path::new(path))
        .and_then(|r| r.owner)
        .is_some_and(|o| o == instance)
}

/// Records a new file ferrovirt makes for `instance` (before making it, so
/// a crash never leaves an unrecorded file): a qcow2 overlay on `backing`,
/// or a self-contained copy when `backing` is none.
pub fn record_new(
    path: &Path,
    instance: &str,
    format: DiskFormat,
    backing: Option<(&str, DiskFormat)>,
) -> Result<(), Error> {
    let rec = match backing {
        Some((b, f)) => ImageRecord::overlay(b, f),
        None => ImageRecord::plain(format),
    };
    record::write(path, &rec.owned_by(instance))
}

/// The directory where ferrovirt puts the files it makes for a disk
/// (snapshot overlays, clone copies): beside an image file; for a block
/// device or an iSCSI LUN, the directory of the `default` file pool, never
/// /dev or a URL.
pub async fn dir_for(d: &Daemon, disk_path: &str) -> Result<PathBuf, Error> {
    if let DiskSource::File { path, .. } = DiskSource::recorded(disk_path, DiskFormat::Raw)
        && let Some(dir) = path.parent()
    {
        return Ok(dir.to_path_buf());
    }
    let none = || {
        Error::conflict(format!(
            "{disk_path} is not a file, so its overlays and copies go into the default pool, \
             which is not a running file pool"
        ))
    };
    let rec = crate::storage::active(d, "default")
        .await
        .map_err(|_| none())?;
    let h = crate::storage::driver(d, &rec.spec);
    match h.directory().filter(|_| h.capabilities().files) {
        Some(dir) => Ok(dir.to_path_buf()),
        None => Err(none()),
    }
}

/// Every file of the instance's disk chains that ferrovirt knows of.
pub async fn chain_files(d: &Daemon, instance: &str, spec: &InstanceSpec) -> Vec<String> {
    let mut files: Vec<String> = records(d, instance)
        .await
        .unwrap_or_default()
        .iter()
        .flat_map(|r| {
            r.overlays
                .iter()
                .cloned()
                .chain(r.disks.iter().map(|x| x.frozen.clone()))
                .collect::<Vec<_>>()
        })
        .chain(spec.disks.iter().map(|x| x.path.clone()))
        .collect();
    files.sort();
    files.dedup();
    files
}

/// The disk files ferrovirt made for the instance (overlays of its
/// snapshots and reverts, its clone copies), which go when it goes.
pub async fn owned_files(d: &Daemon, instance: &str, spec: &InstanceSpec) -> Vec<String> {
    chain_files(d, instance, spec)
        .await
        .into_iter()
        .filter(|f| is_ours(f, instance))
        .collect()
}

/// Other instances whose disks' recorded backing chains contain one of
/// `files` (linked clones): those files must stay.
pub async fn files_backing_other_instances(
    d: &Daemon,
    files: &[String],
    instance: &str,
) -> Vec<String> {
    let mut users = Vec::new();
    for rec in d.store.list_instances().await.unwrap_or_default() {
        if rec.spec.name == instance {
            continue;
        }
        for disk in &rec.spec.disks {
            let chain = crate::storage::backing::chain(d, "", &disk.path, disk.format)
                .await
                .unwrap_or_default();
            if chain.iter().any(|b| files.contains(&b.path)) {
                users.push(rec.spec.name.clone());
                break;
            }
        }
    }
    users
}
