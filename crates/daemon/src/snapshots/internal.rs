//! Internal snapshots: the disks' state (and the memory, in the first disk)
//! stored inside the qcow2 images. QMP `snapshot-save/load/delete` jobs on a
//! running VM, `qemu-img snapshot` on a stopped one.

use std::path::Path;

use ferrovirt_api::{InstanceSpec, InstanceStatus};
use ferrovirt_core::Error;
use ferrovirt_qemu::img;
use ferrovirt_store::{SnapshotRecord, SnapshotState};
use serde_json::json;

use super::writable_disks;
use crate::daemon::{Daemon, store_err};
use crate::lifecycle::{self, Resume};
use crate::operations::OpCtx;
use crate::qmp_jobs::run_job;

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

pub async fn create(
    d: &Daemon,
    ctx: &OpCtx,
    spec: &InstanceSpec,
    snap: SnapshotRecord,
) -> Result<(), Error> {
    d.store
        .put_snapshot(&snap)
        .await
        .map_err(store_err("recording the snapshot"))?;
    let tag = snap.name.clone();
    let result = match d.runtime(&snap.instance) {
        Some(rt) if snap.memory => {
            let devices = nodes(spec);
            run_job(
                &rt.qmp,
                Some(ctx),
                "saving the snapshot",
                "snapshot-save",
                json!({"job-id": format!("snap-{tag}"), "tag": tag,
                       "vmstate": devices[0], "devices": devices}),
            )
            .await
        }
        Some(rt) => {
            let actions: Vec<_> = nodes(spec)
                .into_iter()
                .map(|n| {
                    json!({"type": "blockdev-snapshot-internal-sync",
                                "data": {"device": n, "name": tag}})
                })
                .collect();
            rt.qmp
                .execute("transaction", Some(json!({"actions": actions})))
                .await
                .map(drop)
                .map_err(|e| {
                    Error::internal(format!(
                        "disk snapshot failed: {}",
                        ferrovirt_core::error::chain(&e)
                    ))
                })
        }
        None => {
            let mut result = Ok(());
            for (_, disk) in writable_disks(spec) {
                result = img::snapshot('c', &tag, Path::new(&disk.path))
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
            remove_tags(d, spec, &snap).await;
            let _ = d.store.delete_snapshot(&snap.instance, &snap.name).await;
            Err(e)
        }
    }
}

/// Best-effort removal of a tag from every disk that has it.
async fn remove_tags(d: &Daemon, spec: &InstanceSpec, snap: &SnapshotRecord) {
    match d.runtime(&snap.instance) {
        Some(rt) => {
            let _ = run_job(
                &rt.qmp,
                None,
                "removing a half-made snapshot",
                "snapshot-delete",
                json!({"job-id": format!("undo-{}", snap.name), "tag": snap.name,
                       "devices": nodes(spec)}),
            )
            .await;
        }
        None => {
            for (_, disk) in writable_disks(spec) {
                let _ = img::snapshot('d', &snap.name, Path::new(&disk.path)).await;
            }
        }
    }
}

pub async fn revert(
    d: &Daemon,
    ctx: &OpCtx,
    instance: &str,
    s: &SnapshotRecord,
) -> Result<(), Error> {
    let spec = d.record(instance).await?.spec;
    if let Some(rt) = d.runtime(instance) {
        if s.memory {
            let devices = nodes(&spec);
            run_job(
                &rt.qmp,
                Some(ctx),
                "loading the snapshot",
                "snapshot-load",
                json!({"job-id": format!("load-{}", s.name), "tag": s.name,
                       "vmstate": devices[0], "devices": devices}),
            )
            .await?;
            resume_as_taken(d, instance, &rt, s).await;
            return Ok(());
        }
        lifecycle::stop_locked(d, instance, true, std::time::Duration::ZERO).await?;
    }
    if s.memory {
        // snapshot-load restores the disks and the memory together.
        lifecycle::start_from(d, instance, Resume::Snapshot(s.name.clone()), Some(ctx)).await?;
        if let Some(rt) = d.runtime(instance) {
            resume_as_taken(d, instance, &rt, s).await;
        }
        return Ok(());
    }
    for (_, disk) in writable_disks(&spec) {
        img::snapshot('a', &s.name, Path::new(&disk.path))
            .await
            .map_err(img_err(format!("cannot revert {}", disk.path)))?;
    }
    d.set_status(
        instance,
        InstanceStatus::Shutoff,
        &format!("reverted to snapshot {}", s.name),
        None,
    )
    .await;
    Ok(())
}

/// After loading a memory snapshot, run or pause the guest as it was.
pub(super) async fn resume_as_taken(
    d: &Daemon,
    instance: &str,
    rt: &crate::runtime::VmRuntime,
    s: &SnapshotRecord,
) {
    if s.taken_while == InstanceStatus::Paused {
        let _ = rt.qmp.execute("stop", None).await;
        d.set_status(
            instance,
            InstanceStatus::Paused,
            &format!("reverted to snapshot {}", s.name),
            None,
        )
        .await;
    } else {
        let _ = rt.qmp.execute("cont", None).await;
        d.set_status(
            instance,
            InstanceStatus::Running,
            &format!("reverted to snapshot {}", s.name),
            None,
        )
        .await;
    }
}

pub async fn delete(
    d: &Daemon,
    ctx: &OpCtx,
    instance: &str,
    s: &SnapshotRecord,
) -> Result<(), Error> {
    let spec = d.record(instance).await?.spec;
    match d.runtime(instance) {
        Some(rt) => {
            run_job(
                &rt.qmp,
                Some(ctx),
                "deleting the snapshot",
                "snapshot-delete",
                json!({"job-id": format!("del-{}", s.name), "tag": s.name,
                       "devices": nodes(&spec)}),
            )
            .await
        }
        None => {
            for (_, disk) in writable_disks(&spec) {
                img::snapshot('d', &s.name, Path::new(&disk.path))
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
pub async fn recover(d: &Daemon, s: &SnapshotRecord) -> bool {
    let Ok(rec) = d.record(&s.instance).await else {
        return false;
    };
    if let Some(rt) = d.runtime(&s.instance) {
        // The job may still be running in QEMU.
        let _ =
            crate::qmp_jobs::wait_job(&rt.qmp, None, "snapshot", &format!("snap-{}", s.name)).await;
    }
    let mut complete = true;
    for (i, (_, disk)) in writable_disks(&rec.spec).into_iter().enumerate() {
        let info = img::info(Path::new(&disk.path)).await.ok();
        let tag = info.and_then(|i| i.snapshots.into_iter().find(|t| t.name == s.name));
        complete &= match tag {
            Some(t) => !(s.memory && i == 0) || t.vm_state_size > 0,
            None => false,
        };
    }
    if !complete {
        remove_tags(d, &rec.spec, s).await;
    }
    complete
}
