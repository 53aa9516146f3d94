//! Cloning an instance: full (a sparse copy of every writable disk) or
//! linked (qcow2 overlays on frozen files of the source), from the current
//! state or from a snapshot. The clone gets a new name and UUID; read-only
//! disks (cdroms) are shared.
//!
//! The source's current files are never shared with a clone while they can
//! still change: a linked clone first freezes them with an external
//! snapshot named `clone-<new>`, which stays (protected) while the clone
//! uses it; a full clone of a running source copies from a temporary
//! external snapshot that is merged away afterwards.

use std::path::Path;

use ferrovirt_api::{
    ClonePost, DiskFormat, EventKind, InstanceStatus, SnapshotKind, SnapshotsPost,
};
use ferrovirt_core::{Error, name};
use ferrovirt_qemu::img;
use ferrovirt_store::InstanceRecord;

use crate::daemon::{Daemon, store_err};
use crate::instance::handle::InstanceHandle;
use crate::instance::job::{Job, JobKind};
use crate::operations::OpCtx;
use crate::snapshots::{self, writable_disks};

fn img_err(doing: String) -> impl Fn(img::ImgError) -> Error {
    move |e| Error::internal(format!("{doing}: {}", ferrovirt_core::error::chain(&e)))
}

/// Checks a clone request before the operation starts.
pub async fn check(d: &Daemon, source: &str, req: &ClonePost) -> Result<(), Error> {
    name::validate("name", &req.name)?;
    d.record(source).await?;
    if d.store
        .get_instance(&req.name)
        .await
        .map_err(store_err("reading instances"))?
        .is_some()
    {
        return Err(Error::conflict(format!(
            "instance {} already exists",
            req.name
        )));
    }
    if let Some(snap) = &req.from_snapshot {
        let s = snapshots::view(d, source, snap).await?;
        if req.linked && s.kind == SnapshotKind::Internal {
            return Err(Error::validation(
                "linked",
                format!("a linked clone needs an external snapshot; {snap} is internal"),
            ));
        }
    } else if req.linked
        && snapshots::records(d, source)
            .await?
            .iter()
            .any(|r| r.kind == SnapshotKind::Internal)
    {
        return Err(Error::validation(
            "linked",
            format!(
                "{source} uses internal snapshots; a linked clone needs to freeze its disks with an external one"
            ),
        ));
    }
    Ok(())
}

/// Where the clone's copy of disk `i` goes: `<clone>-disk<i>.<format>`
/// in the directory [`snapshots::dir_for`] picks for the source's file.
async fn clone_file(
    d: &Daemon,
    source_disk: &str,
    clone: &str,
    i: usize,
    format: &str,
) -> Result<String, Error> {
    let dir = snapshots::dir_for(d, source_disk).await?;
    Ok(dir
        .join(format!("{clone}-disk{i}.{format}"))
        .display()
        .to_string())
}

pub async fn clone(d: &Daemon, ctx: &OpCtx, source: &str, req: ClonePost) -> Result<(), Error> {
    check(d, source, &req).await?;
    let h = crate::instance::handle(d, source).await?;
    let job = h.begin(JobKind::Clone, Some(ctx))?;
    let src = d.record(source).await?;
    // Which files hold the state to clone, and from which internal tag.
    let (files, tag, temp) = match (&req.from_snapshot, req.linked) {
        (Some(snap), _) => {
            let s = snapshots::view(d, source, snap).await?;
            match s.kind {
                SnapshotKind::External => (
                    s.disks
                        .iter()
                        .map(|x| (x.frozen.clone(), x.format.clone()))
                        .collect(),
                    None,
                    None,
                ),
                SnapshotKind::Internal => (live_files(&src.spec), Some(snap.clone()), None),
            }
        }
        (None, true) => {
            let frozen = freeze(d, &h, &job, &format!("clone-{}", req.name)).await?;
            (frozen, None, None)
        }
        (None, false) if h.live().is_some() => {
            let temp = format!(
                "clone-tmp-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            );
            let frozen = freeze(d, &h, &job, &temp).await?;
            (frozen, None, Some(temp))
        }
        (None, false) => (live_files(&src.spec), None, None),
    };
    let mut spec = src.spec.get().clone();
    spec.name = req.name.clone();
    spec.uuid = None;
    spec.autostart = false;
    for nic in &mut spec.nics {
        nic.mac = None;
    }
    let indexes: Vec<usize> = writable_disks(&spec).iter().map(|(i, _)| *i).collect();
    let mut created: Vec<String> = Vec::new();
    let result = async {
        let total = indexes.len().max(1) as f64;
        for (n, (i, (file, format))) in indexes.iter().zip(&files).enumerate() {
            let out_format = if req.linked { "qcow2" } else { format.as_str() };
            let dst = clone_file(d, file, &req.name, *i, out_format).await?;
            if Path::new(&dst).exists() {
                return Err(Error::conflict(format!("{dst} already exists")));
            }
            let disk_format = |f: &str| DiskFormat::from_qemu(f).unwrap_or_default();
            let backing = req.linked.then(|| (file.as_str(), disk_format(format)));
            created.push(dst.clone());
            snapshots::record_new(Path::new(&dst), &req.name, disk_format(out_format), backing)?;
            if req.linked {
                d.img()
                    .create_overlay(Path::new(&dst), Path::new(file), format)
                    .await
                    .map_err(img_err(format!("cannot create {dst}")))?;
            } else {
                let stage = format!("copying disk {i}");
                let img = d.img();
                let copy = img.convert_from(
                    Path::new(file),
                    format,
                    Path::new(&dst),
                    format,
                    tag.as_deref(),
                    |p| job.progress(&stage, (n as f64 * 100.0 + p) / total, None),
                );
                tokio::select! {
                    r = copy => r.map_err(img_err(format!("cannot copy {file}")))?,
                    () = job.cancelled() => return Err(Error::conflict("the clone was cancelled")),
                }
            }
            spec.disks[*i].path = dst;
            spec.disks[*i].format = disk_format(out_format);
        }
        crate::networks::nics::prepare(d, &mut spec).await?;
        let spec = d.validate(spec)?;
        d.store
            .insert_instance(&InstanceRecord {
                spec,
                status: InstanceStatus::Shutoff,
                reason: format!("cloned from {source}"),
                created_at: Daemon::now(),
                managed_save: None,
                current_snapshot: None,
            })
            .await
            .map_err(store_err("saving the clone"))?;
        Ok(())
    }
    .await;
    // Cleanup is not cancelled; after `stop --force`, it runs on the
    // stopped source's files.
    job.shield();
    if job.is_preempted() {
        h.wait_stopped(std::time::Duration::from_secs(10)).await;
    }
    if let Some(temp) = temp
        && let Err(e) = snapshots::delete_in(d, &h, &job, &temp).await
    {
        tracing::error!(instance = source, snapshot = temp, error = %e, "cannot remove the temporary clone snapshot");
    }
    match result {
        Ok(()) => {
            d.events.emit(
                EventKind::Created,
                &req.name,
                Some(format!("cloned from {source}")),
            );
            Ok(())
        }
        Err(e) => {
            for f in created {
                ferrovirt_storage::record::remove_image(Path::new(&f));
            }
            Err(e)
        }
    }
}

fn live_files(spec: &ferrovirt_api::InstanceSpec) -> Vec<(String, String)> {
    writable_disks(spec)
        .iter()
        .map(|(_, x)| (x.path.clone(), x.format.as_str().to_owned()))
        .collect()
}

/// Takes a disk-only external snapshot of the source and returns the files
/// it froze.
async fn freeze(
    d: &Daemon,
    h: &InstanceHandle,
    job: &Job,
    snap: &str,
) -> Result<Vec<(String, String)>, Error> {
    let req = SnapshotsPost {
        name: snap.to_owned(),
        kind: SnapshotKind::External,
        memory: Some(false),
        description: "frozen disks for a clone".into(),
    };
    snapshots::create_in(d, h, job, req).await?;
    Ok(snapshots::view(d, h.name(), snap)
        .await?
        .disks
        .into_iter()
        .map(|x| (x.frozen, x.format))
        .collect())
}
