//! External snapshots: each writable disk's current file is frozen and a new
//! qcow2 overlay on top of it takes the writes; the memory (optional) goes to
//! its own file. Deleting a snapshot merges its frozen file away: committed
//! into when its only child is the live disk, streamed into its children
//! otherwise, so the other snapshots keep their content.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ferrovirt_api::{DiskFormat, InstanceStatus, SnapshotDisk};
use ferrovirt_core::{Error, ValidSpec};
use ferrovirt_qemu::monitor::{BlockJob, MigrationInfo};
use ferrovirt_qemu::{BootSource, img};
use ferrovirt_storage::record;
use ferrovirt_store::{SnapshotRecord, SnapshotState};

use super::files::{self, chain_files, files_backing_other_instances, is_ours};
use super::{records, writable_disks};
use crate::daemon::{Daemon, store_err};
use crate::instance::handle::InstanceHandle;
use crate::instance::job::Job;
use crate::instance::{job_err, qmp_err};

fn img_err(doing: String) -> impl Fn(img::ImgError) -> Error {
    move |e| Error::internal(format!("{doing}: {}", ferrovirt_core::error::chain(&e)))
}

/// `<dir>/<instance>-disk<i>.<tag>.qcow2`, `dir` from
/// [`files::dir_for`].
fn overlay_path(dir: &Path, instance: &str, index: usize, tag: &str) -> PathBuf {
    dir.join(format!("{instance}-disk{index}.{tag}.qcow2"))
}

/// A recorded format name (`raw`, `qcow2`) as a format.
fn disk_format(name: &str) -> DiskFormat {
    DiskFormat::from_qemu(name).unwrap_or_default()
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// Files frozen by the instance's snapshots.
async fn frozen_by_snapshots(d: &Daemon, instance: &str) -> HashSet<String> {
    records(d, instance)
        .await
        .unwrap_or_default()
        .iter()
        .flat_map(|r| r.disks.iter().map(|disk| disk.frozen.clone()))
        .collect()
}

pub async fn create(
    d: &Daemon,
    h: &InstanceHandle,
    job: &Job,
    spec: &ValidSpec,
    mut snap: SnapshotRecord,
) -> Result<(), Error> {
    let instance = snap.instance.clone();
    for (i, disk) in writable_disks(spec) {
        let dir = files::dir_for(d, &disk.path).await?;
        let overlay = overlay_path(&dir, &instance, i, &snap.name);
        if overlay.exists() {
            return Err(Error::conflict(format!(
                "{} already exists; remove it or pick another snapshot name",
                overlay.display()
            )));
        }
        snap.disks.push(SnapshotDisk {
            frozen: disk.path.clone(),
            format: disk.format.as_str().to_owned(),
        });
        snap.overlays.push(overlay.display().to_string());
    }
    if snap.memory {
        let dir = d.config.state_dir.join("snapshots").join(&instance);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        snap.memory_file = Some(dir.join(format!("{}.mem", snap.name)).display().to_string());
    }
    d.store
        .put_snapshot(&snap)
        .await
        .map_err(store_err("recording the snapshot"))?;
    let recorded = snap
        .disks
        .iter()
        .zip(&snap.overlays)
        .try_for_each(|(x, o)| {
            let backing = Some((x.frozen.as_str(), disk_format(&x.format)));
            files::record_new(Path::new(o), &instance, DiskFormat::Qcow2, backing)
        });
    let taken = match recorded {
        Ok(()) => take(d, h, job, &snap).await,
        Err(e) => Err(e),
    };
    match taken {
        Ok(()) => {
            let new_spec = point_disks_at(d, spec, &snap.overlays)?;
            d.store
                .update_spec(&new_spec)
                .await
                .map_err(store_err("recording the new disk files"))?;
            snap.state = SnapshotState::Ready;
            d.store
                .put_snapshot(&snap)
                .await
                .map_err(store_err("recording the snapshot"))
        }
        Err(e) => {
            discard(&snap);
            let _ = d.store.delete_snapshot(&instance, &snap.name).await;
            Err(e)
        }
    }
}

/// The spec with its writable disks on `files` (qcow2 overlays).
fn point_disks_at(d: &Daemon, spec: &ValidSpec, files: &[String]) -> Result<ValidSpec, Error> {
    spec.edit(&d.limits, &Daemon::path_exists, |spec| {
        let indexes: Vec<usize> = writable_disks(spec).iter().map(|(i, _)| *i).collect();
        for (i, file) in indexes.into_iter().zip(files) {
            spec.disks[i].path = file.clone();
            spec.disks[i].format = DiskFormat::Qcow2;
        }
    })
}

/// Removes the files a failed or half-made snapshot created.
fn discard(snap: &SnapshotRecord) {
    for f in &snap.overlays {
        record::remove_image(Path::new(f));
    }
    if let Some(mem) = &snap.memory_file {
        let _ = std::fs::remove_file(mem);
    }
}

async fn take(
    d: &Daemon,
    h: &InstanceHandle,
    job: &Job,
    snap: &SnapshotRecord,
) -> Result<(), Error> {
    let Some(rt) = h.live() else {
        for (disk, overlay) in snap.disks.iter().zip(&snap.overlays) {
            d.img()
                .create_overlay(Path::new(overlay), Path::new(&disk.frozen), &disk.format)
                .await
                .map_err(img_err(format!("cannot create {overlay}")))?;
        }
        return Ok(());
    };
    let name = &snap.instance;
    let was_running = snap.taken_while == InstanceStatus::Running;
    let m = rt.monitor();
    // Pause so the memory and all disks are captured at one instant.
    let hold = h.hold(&rt).await?;
    let result = async {
        if let Some(mem) = &snap.memory_file {
            let report = |i: &MigrationInfo| {
                if i.total > 0 {
                    let pct = (i.transferred as f64 * 100.0 / i.total as f64).min(99.0);
                    job.progress("saving memory", pct, Some((i.transferred, i.total)));
                }
            };
            m.migrate_and_wait(&format!("file:{mem}"), &report, job.cancelled())
                .await
                .map_err(job_err("saving memory"))?;
        }
        let mut pairs = Vec::new();
        for (disk, overlay) in snap.disks.iter().zip(&snap.overlays) {
            let size = d
                .img()
                .info(Path::new(&disk.frozen), disk_format(&disk.format))
                .await
                .map_err(img_err(format!("cannot read {}", disk.frozen)))?
                .virtual_size;
            d.img()
                .create_overlay_sized(
                    Path::new(overlay),
                    Path::new(&disk.frozen),
                    &disk.format,
                    size,
                )
                .await
                .map_err(img_err(format!("cannot create {overlay}")))?;
            let top = m
                .node_of_file(&disk.frozen)
                .await
                .map_err(qmp_err(name, "list the disks of"))?
                .ok_or_else(|| {
                    Error::internal(format!("QEMU of {name} does not have {} open", disk.frozen))
                })?;
            let node = format!("ov{}", short_id());
            m.add_overlay(&node, overlay)
                .await
                .map_err(qmp_err(name, "open the overlay of"))?;
            pairs.push((top, node));
        }
        if !pairs.is_empty() {
            m.snapshot_overlays(&pairs)
                .await
                .map_err(qmp_err(name, "switch to the overlays of"))?;
        }
        Ok(())
    }
    .await;
    hold.release(&rt, was_running).await;
    result
}

pub async fn revert(
    d: &Daemon,
    h: &InstanceHandle,
    job: &Job,
    s: &SnapshotRecord,
) -> Result<(), Error> {
    let instance = h.name();
    let rec = d.record(instance).await?;
    let writable = writable_disks(&rec.spec).len();
    if writable != s.disks.len() {
        return Err(Error::conflict(format!(
            "instance {instance} has {writable} writable disks but snapshot {} captured {}",
            s.name,
            s.disks.len()
        )));
    }
    if h.live().is_some() {
        h.quit(InstanceStatus::Shutoff, "stopped by force", true)
            .await?;
    }
    let frozen = frozen_by_snapshots(d, instance).await;
    let spec = d.record(instance).await?.spec;
    let mut new_files = Vec::new();
    for ((i, _), snap_disk) in writable_disks(&spec).into_iter().zip(&s.disks) {
        let dir = files::dir_for(d, &snap_disk.frozen).await?;
        let overlay = overlay_path(&dir, instance, i, &format!("{}-{}", s.name, short_id()));
        let backing = (snap_disk.frozen.as_str(), disk_format(&snap_disk.format));
        files::record_new(&overlay, instance, DiskFormat::Qcow2, Some(backing))?;
        d.img()
            .create_overlay(&overlay, Path::new(&snap_disk.frozen), &snap_disk.format)
            .await
            .map_err(img_err(format!("cannot create {}", overlay.display())))?;
        new_files.push(overlay.display().to_string());
    }
    // The state since the last snapshot is discarded, as a revert means.
    let old: Vec<String> = writable_disks(&spec)
        .iter()
        .map(|(_, d)| d.path.clone())
        .collect();
    let spec = point_disks_at(d, &spec, &new_files)?;
    d.store
        .update_spec(&spec)
        .await
        .map_err(store_err("recording the new disk files"))?;
    for f in old {
        if is_ours(&f, instance) && !frozen.contains(&f) {
            record::remove_image(Path::new(&f));
        }
    }
    match &s.memory_file {
        Some(mem) => {
            let source = BootSource::RestoreFile {
                path: mem.clone(),
                offset: 0,
            };
            crate::instance::start::boot(d, h, job, source).await?;
            if let Some(rt) = h.live() {
                super::internal::resume_as_taken(h, &rt, s).await;
            }
        }
        None => {
            h.set_status(
                InstanceStatus::Shutoff,
                &format!("reverted to snapshot {}", s.name),
                None,
            )
            .await?
        }
    }
    Ok(())
}

pub async fn delete(
    d: &Daemon,
    h: &InstanceHandle,
    job: &Job,
    s: &SnapshotRecord,
) -> Result<(), Error> {
    let instance = h.name();
    let frozen: Vec<String> = s.disks.iter().map(|x| x.frozen.clone()).collect();
    let users = files_backing_other_instances(d, &frozen, instance).await;
    if !users.is_empty() {
        return Err(Error::conflict(format!(
            "snapshot {} of {instance} backs the disks of linked clone(s) {}; delete them first",
            s.name,
            users.join(", ")
        )));
    }
    let others: HashSet<String> = records(d, instance)
        .await?
        .iter()
        .filter(|r| r.name != s.name)
        .flat_map(|r| {
            r.disks
                .iter()
                .chain([])
                .map(|x| x.frozen.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    for (j, snap_disk) in s.disks.iter().enumerate() {
        merge_away(d, h, job, j, snap_disk, &others).await?;
    }
    if let Some(mem) = &s.memory_file {
        let _ = std::fs::remove_file(mem);
    }
    Ok(())
}

/// Removes frozen file F of disk `j` from the chains without changing what
/// any remaining snapshot or the live disk contains.
async fn merge_away(
    d: &Daemon,
    h: &InstanceHandle,
    job: &Job,
    j: usize,
    f: &SnapshotDisk,
    frozen_by_others: &HashSet<String>,
) -> Result<(), Error> {
    let instance = h.name();
    let mut spec = d.record(instance).await?.spec.into_inner();
    let live_index = writable_disks(&spec).get(j).map(|(i, _)| *i);
    let live = live_index.map(|i| spec.disks[i].path.clone());
    let backing_of = |file: &str| record::read(Path::new(file)).and_then(|r| r.backing);
    let children: Vec<String> = chain_files(d, instance, &spec)
        .await
        .into_iter()
        .filter(|c| Path::new(c).exists())
        .filter(|c| backing_of(c).is_some_and(|b| b.path == f.frozen))
        .collect();
    // What F stands on, as ferrovirt made it (nothing for a base image).
    let below = backing_of(&f.frozen);
    let backing = below.as_ref().map(|b| b.path.clone());
    let rt = h.live();
    let stage = "merging the snapshot's disk state";
    let report = job.reporter(stage);
    let list_err = || qmp_err(instance, "list the disks of");
    // The frozen file's only child is the live disk: write the live disk's
    // data down into it and make it the live disk again.
    if let ([child], Some(live), Some(index)) = (children.as_slice(), &live, live_index)
        && child == live
        && is_ours(child, instance)
        && !frozen_by_others.contains(child)
        && !frozen_by_others.contains(&f.frozen)
    {
        match &rt {
            Some(rt) => {
                let m = rt.monitor();
                let (top, base) = tokio::join!(m.root_node_of(child), m.node_of_file(&f.frozen));
                let top = top.map_err(list_err())?.unwrap_or_default();
                let base = base.map_err(list_err())?.unwrap_or_default();
                let commit = BlockJob::Commit {
                    device: top.clone(),
                    base_node: base,
                };
                m.run_job(
                    &format!("commit{}", short_id()),
                    &commit,
                    Some(&report),
                    job.cancelled(),
                )
                .await
                .map_err(job_err(stage))?;
                m.drop_node(&top).await;
            }
            None => d
                .img()
                .commit(Path::new(child))
                .await
                .map_err(img_err(format!("cannot commit {child}")))?,
        }
        spec.disks[index].path = f.frozen.clone();
        spec.disks[index].format = if f.format == "raw" {
            DiskFormat::Raw
        } else {
            DiskFormat::Qcow2
        };
        d.store
            .update_spec(&d.validate(spec)?)
            .await
            .map_err(store_err("recording the disk file"))?;
        record::remove_image(Path::new(child));
        return Ok(());
    }
    // Otherwise pull F's data into each child and skip F in the chain.
    for child in &children {
        let node = match &rt {
            Some(rt) => rt.monitor().node_of_file(child).await.map_err(list_err())?,
            None => None,
        };
        match (&rt, node) {
            (Some(rt), Some(node)) => {
                let m = rt.monitor();
                let base_node = match &backing {
                    Some(b) => Some(
                        m.node_of_file(b)
                            .await
                            .map_err(list_err())?
                            .unwrap_or_default(),
                    ),
                    None => None,
                };
                let stream = BlockJob::Stream {
                    device: node,
                    base_node,
                };
                m.run_job(
                    &format!("stream{}", short_id()),
                    &stream,
                    Some(&report),
                    job.cancelled(),
                )
                .await
                .map_err(job_err(stage))?;
                if let Some(gone) = m.node_of_file(&f.frozen).await.map_err(list_err())? {
                    m.drop_node(&gone).await;
                }
            }
            _ => {
                let b = below.as_ref().map(|b| (Path::new(&b.path), b.format));
                d.img()
                    .rebase(Path::new(child), b)
                    .await
                    .map_err(img_err(format!("cannot rebase {child}")))?;
            }
        }
        // The child now stands on what F stood on.
        if let Some(mut rec) = record::read(Path::new(child)) {
            rec.backing = below.clone();
            record::write(Path::new(child), &rec)?;
        }
    }
    if is_ours(&f.frozen, instance)
        && !frozen_by_others.contains(&f.frozen)
        && Some(&f.frozen) != live.as_ref()
    {
        record::remove_image(Path::new(&f.frozen));
    }
    Ok(())
}

/// A snapshot interrupted by a daemon restart is complete when the disks
/// already use its overlays (in the spec or in the running QEMU); otherwise
/// its files are removed.
pub async fn recover(d: &Daemon, h: &InstanceHandle, s: &SnapshotRecord) -> bool {
    let Ok(rec) = d.record(&s.instance).await else {
        return false;
    };
    let live: Vec<String> = writable_disks(&rec.spec)
        .iter()
        .map(|(_, x)| x.path.clone())
        .collect();
    if live == s.overlays {
        return true;
    }
    if let Some(rt) = h.live() {
        let m = rt.monitor();
        let migrating = matches!(
            m.query_migrate().await.ok().and_then(|i| i.status),
            Some(
                ferrovirt_qemu::monitor::MigrationStatus::Setup
                    | ferrovirt_qemu::monitor::MigrationStatus::Active
            )
        );
        if s.memory && migrating {
            let mut events = m.events();
            let mut tick = |_: &MigrationInfo| std::future::ready(Ok(()));
            let every = std::time::Duration::from_millis(100);
            let _ = m
                .follow_migration(&mut events, every, &mut tick, std::future::pending())
                .await;
        }
        let active = m.active_files().await.unwrap_or_default();
        if !s.overlays.is_empty() && s.overlays.iter().all(|o| active.contains(o)) {
            return match point_disks_at(d, &rec.spec, &s.overlays) {
                Ok(spec) => d.store.update_spec(&spec).await.is_ok(),
                Err(_) => false,
            };
        }
    }
    discard(s);
    false
}
