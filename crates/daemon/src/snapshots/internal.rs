//! Internal snapshots: the disks' state (and the memory, in the first disk)
//! stored inside the qcow2 images. QMP `snapshot-save/load/delete` jobs on a
//! running VM, `qemu-img snapshot` on a stopped one.

use std::path::Path;

use ferrovirt_api::{InstanceSpec, InstanceStatus};
use ferrovirt_core::Error;
use ferrovirt_qemu::BootSource;
use ferrovirt_qemu::img;
use ferrovirt_qemu::monitor::BlockJob;
use ferrovirt_store::{SnapshotRecord, SnapshotState};

use super::writable_disks;
use crate::daemon::{Daemon, store_err};
use crate::instance::handle::InstanceHandle;
use crate::instance::job::Job;
use crate::instance::job_err;
use crate::instance::live::Live;

fn img_err(doing: String) -> impl Fn(img::ImgError) -> Error {
    move |e| Error::internal(format!("{doing}: {}", ferrovirt_core::error::chain(&e)))
}

/// Node names of the writable disks (as the command-line builder names them).
pub fn nodes(spec: &InstanceSpec) -> Vec<String> {
    writable_disks(spec)
        .iter()
        .map(|(i, disk)| ferrovirt_core::disk::node_name(disk, *i))
        .collect()
}

/// Where a guest starts from an internal snapshot with memory.
pub fn boot_source(spec: &InstanceSpec, tag: &str) -> BootSource {
    let devices = nodes(spec);
    BootSource::Snapshot {
        tag: tag.to_owned(),
        vmstate: devices.first().cloned().unwrap_or_default(),
        devices,
    }
}

pub async fn create(
    d: &Daemon,
    h: &InstanceHandle,
    job: &Job,
    spec: &InstanceSpec,
    snap: SnapshotRecord,
) -> Result<(), Error> {
    d.store
        .put_snapshot(&snap)
        .await
        .map_err(store_err("recording the snapshot"))?;
    let tag = snap.name.clone();
    let result = match h.live() {
        Some(rt) if snap.memory => {
            let devices = nodes(spec);
            let save = BlockJob::SnapshotSave {
                tag: tag.clone(),
                vmstate: devices[0].clone(),
                devices,
            };
            let stage = "saving the snapshot";
            let report = job.reporter(stage);
            rt.monitor()
                .run_job(
                    &format!("snap-{tag}"),
                    &save,
                    Some(&report),
                    job.cancelled(),
                )
                .await
                .map_err(job_err(stage))
        }
        Some(rt) => rt
            .monitor()
            .snapshot_internal_sync(&nodes(spec), &tag)
            .await
            .map_err(job_err("the disk snapshot")),
        None => {
            let mut result = Ok(());
            for (_, disk) in writable_disks(spec) {
                result = d
                    .img()
                    .snapshot('c', &tag, Path::new(&disk.path))
                    .await
                    .map_err(img_err(format!("cannot snapshot {}", disk.path)));
                if result.is_err() {
                    break;
                }
            }
            result
        }
    };
    match result {
        Ok(()) => {
            let mut done = snap;
            done.state = SnapshotState::Ready;
            d.store
                .put_snapshot(&done)
                .await
                .map_err(store_err("recording the snapshot"))
        }
        Err(e) => {
            remove_tags(d, h, spec, &snap).await;
            let _ = d.store.delete_snapshot(&snap.instance, &snap.name).await;
            Err(e)
        }
    }
}

/// Best-effort removal of a tag from every disk that has it.
async fn remove_tags(d: &Daemon, h: &InstanceHandle, spec: &InstanceSpec, snap: &SnapshotRecord) {
    match h.live() {
        Some(rt) => {
            let job = BlockJob::SnapshotDelete {
                tag: snap.name.clone(),
                devices: nodes(spec),
            };
            let _ = rt
                .monitor()
                .run_job(
                    &format!("undo-{}", snap.name),
                    &job,
                    None,
                    std::future::pending(),
                )
                .await;
        }
        None => {
            for (_, disk) in writable_disks(spec) {
                let _ = d
                    .img()
                    .snapshot('d', &snap.name, Path::new(&disk.path))
                    .await;
            }
        }
    }
}

pub async fn revert(
    d: &Daemon,
    h: &InstanceHandle,
    job: &Job,
    s: &SnapshotRecord,
) -> Result<(), Error> {
    let spec = d.record(h.name()).await?.spec;
    if let Some(rt) = h.live() {
        if s.memory {
            let stage = "loading the snapshot";
            let report = job.reporter(stage);
            let BootSource::Snapshot {
                tag,
                vmstate,
                devices,
            } = boot_source(&spec, &s.name)
            else {
                unreachable!("an internal snapshot boots from a snapshot")
            };
            let load = BlockJob::SnapshotLoad {
                tag,
                vmstate,
                devices,
            };
            rt.monitor()
                .run_job(
                    &format!("load-{}", s.name),
                    &load,
                    Some(&report),
                    job.cancelled(),
                )
                .await
                .map_err(job_err(stage))?;
            resume_as_taken(h, &rt, s).await;
            return Ok(());
        }
        h.quit(InstanceStatus::Shutoff, "stopped by force", true)
            .await?;
    }
    if s.memory {
        // snapshot-load restores the disks and the memory together.
        crate::instance::start::boot(d, h, job, boot_source(&spec, &s.name)).await?;
        if let Some(rt) = h.live() {
            resume_as_taken(h, &rt, s).await;
        }
        return Ok(());
    }
    for (_, disk) in writable_disks(&spec) {
        d.img()
            .snapshot('a', &s.name, Path::new(&disk.path))
            .await
            .map_err(img_err(format!("cannot revert {}", disk.path)))?;
    }
    h.set_status(
        InstanceStatus::Shutoff,
        &format!("reverted to snapshot {}", s.name),
        None,
    )
    .await
}

/// After loading a memory snapshot, run or pause the guest as it was.
pub(super) async fn resume_as_taken(h: &InstanceHandle, _rt: &Live, s: &SnapshotRecord) {
    let running = s.taken_while != InstanceStatus::Paused;
    let _ = h
        .set_running(running, &format!("reverted to snapshot {}", s.name), None)
        .await;
}

pub async fn delete(
    d: &Daemon,
    h: &InstanceHandle,
    job: &Job,
    s: &SnapshotRecord,
) -> Result<(), Error> {
    let spec = d.record(h.name()).await?.spec;
    match h.live() {
        Some(rt) => {
            let stage = "deleting the snapshot";
            let report = job.reporter(stage);
            let del = BlockJob::SnapshotDelete {
                tag: s.name.clone(),
                devices: nodes(&spec),
            };
            rt.monitor()
                .run_job(
                    &format!("del-{}", s.name),
                    &del,
                    Some(&report),
                    job.cancelled(),
                )
                .await
                .map_err(job_err(stage))
        }
        None => {
            for (_, disk) in writable_disks(&spec) {
                d.img()
                    .snapshot('d', &s.name, Path::new(&disk.path))
                    .await
                    .map_err(img_err(format!(
                        "cannot delete the snapshot from {}",
                        disk.path
                    )))?;
            }
            Ok(())
        }
    }
}

/// A snapshot interrupted by a daemon restart is complete when every disk
/// has its tag (with the memory in the first one when asked); otherwise the
/// tags present are removed.
pub async fn recover(d: &Daemon, h: &InstanceHandle, s: &SnapshotRecord) -> bool {
    let Ok(rec) = d.record(&s.instance).await else {
        return false;
    };
    if let Some(rt) = h.live() {
        // The job may still be running in QEMU.
        let _ = rt.monitor().follow_job(&format!("snap-{}", s.name)).await;
    }
    let mut complete = true;
    for (i, (_, disk)) in writable_disks(&rec.spec).into_iter().enumerate() {
        let info = d.img().info(Path::new(&disk.path), disk.format).await.ok();
        let tag = info.and_then(|i| i.snapshots.into_iter().find(|t| t.name == s.name));
        complete &= match tag {
            Some(t) => !(s.memory && i == 0) || t.vm_state_size > 0,
            None => false,
        };
    }
    if !complete {
        remove_tags(d, h, &rec.spec, s).await;
    }
    complete
}
