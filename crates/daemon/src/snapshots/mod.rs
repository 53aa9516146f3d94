//! Instance snapshots: internal (inside qcow2 images) and external (frozen
//! files + overlays), with or without memory, as a tree.
//!
//! An instance uses one kind: mixing internal and external snapshots on the
//! same disks would make reverts ambiguous, so it is refused.

mod external;
mod files;
mod internal;

use ferrovirt_api::{
    Disk, DiskMedia, InstanceSpec, InstanceStatus, Snapshot, SnapshotKind, SnapshotsPost,
};
use ferrovirt_core::{Error, name};
use ferrovirt_store::{SnapshotRecord, SnapshotState};

use crate::daemon::{Daemon, store_err};
use crate::instance::handle::InstanceHandle;
use crate::instance::job::{Job, JobKind};
use crate::operations::OpCtx;

pub use files::{chain_files, dir_for, files_backing_other_instances, owned_files, record_new};

/// Disks whose content changes, i.e. what a snapshot must capture.
pub fn writable_disks(spec: &InstanceSpec) -> Vec<(usize, &Disk)> {
    spec.disks
        .iter()
        .enumerate()
        .filter(|(_, d)| d.media == DiskMedia::Disk && !d.readonly)
        .collect()
}

pub async fn records(d: &Daemon, instance: &str) -> Result<Vec<SnapshotRecord>, Error> {
    d.store
        .snapshots(instance)
        .await
        .map_err(store_err("reading snapshots"))
}

async fn find(d: &Daemon, instance: &str, snap: &str) -> Result<SnapshotRecord, Error> {
    records(d, instance)
        .await?
        .into_iter()
        .find(|r| r.name == snap && r.state == SnapshotState::Ready)
        .ok_or_else(|| Error::not_found(format!("instance {instance} has no snapshot {snap}")))
}

/// The API view of an instance's snapshots, with children and current.
pub async fn views(d: &Daemon, instance: &str) -> Result<Vec<Snapshot>, Error> {
    let current = d.record(instance).await?.current_snapshot;
    let recs: Vec<SnapshotRecord> = records(d, instance)
        .await?
        .into_iter()
        .filter(|r| r.state == SnapshotState::Ready)
        .collect();
    Ok(recs
        .iter()
        .map(|r| Snapshot {
            name: r.name.clone(),
            instance: r.instance.clone(),
            kind: r.kind,
            description: r.description.clone(),
            parent: r.parent.clone(),
            children: recs
                .iter()
                .filter(|c| c.parent.as_deref() == Some(&r.name))
                .map(|c| c.name.clone())
                .collect(),
            current: current.as_deref() == Some(&r.name),
            memory: r.memory,
            taken_while: r.taken_while,
            disks: r.disks.clone(),
            memory_file: r.memory_file.clone(),
            created_at: r.created_at,
        })
        .collect())
}

pub async fn view(d: &Daemon, instance: &str, snap: &str) -> Result<Snapshot, Error> {
    views(d, instance)
        .await?
        .into_iter()
        .find(|s| s.name == snap)
        .ok_or_else(|| Error::not_found(format!("instance {instance} has no snapshot {snap}")))
}

/// Checks a create request before the operation starts; returns whether the
/// memory is saved.
pub async fn check_create(d: &Daemon, instance: &str, req: &SnapshotsPost) -> Result<bool, Error> {
    name::validate("name", &req.name)?;
    let rec = d.record(instance).await?;
    let existing = records(d, instance).await?;
    if existing.iter().any(|r| r.name == req.name) {
        return Err(Error::conflict(format!(
            "instance {instance} already has a snapshot {}",
            req.name
        )));
    }
    if let Some(other) = existing.iter().find(|r| r.kind != req.kind) {
        return Err(Error::validation(
            "kind",
            format!(
                "instance {instance} has {:?} snapshots (e.g. {}); one instance uses one kind",
                other.kind, other.name
            )
            .to_lowercase(),
        ));
    }
    let active = d.instances.is_active(instance);
    let memory = req.memory.unwrap_or(active);
    if memory && !active {
        return Err(Error::validation(
            "memory",
            format!("instance {instance} is not running, so it has no memory to save"),
        ));
    }
    if rec.managed_save.is_some() {
        return Err(Error::conflict(format!(
            "instance {instance} has a managed save; start it first"
        )));
    }
    let disks = writable_disks(&rec.spec);
    if req.kind == SnapshotKind::Internal {
        if let Some((i, _)) = disks.iter().find(|(_, d)| d.format.as_str() != "qcow2") {
            return Err(Error::validation(
                format!("disks[{i}].format"),
                "internal snapshots need qcow2 disks; use an external snapshot",
            ));
        }
        if disks.is_empty() {
            return Err(Error::validation(
                "kind",
                "internal snapshots need a writable qcow2 disk to live in; use an external snapshot",
            ));
        }
    } else if disks.is_empty() && !memory {
        return Err(Error::validation(
            "memory",
            format!("instance {instance} has no writable disk, so a disk-only snapshot is empty"),
        ));
    }
    Ok(memory)
}

/// Creates a snapshot (run inside an operation).
pub async fn create(
    d: &Daemon,
    ctx: &OpCtx,
    instance: &str,
    req: SnapshotsPost,
) -> Result<(), Error> {
    let h = crate::instance::handle(d, instance).await?;
    let job = h.begin(JobKind::Snapshot, Some(ctx))?;
    create_in(d, &h, &job, req).await
}

/// Creates a snapshot within a job the caller holds.
pub async fn create_in(
    d: &Daemon,
    h: &InstanceHandle,
    job: &Job,
    req: SnapshotsPost,
) -> Result<(), Error> {
    let instance = h.name();
    let memory = check_create(d, instance, &req).await?;
    let rec = d.record(instance).await?;
    let snap = SnapshotRecord {
        instance: instance.to_owned(),
        name: req.name.clone(),
        kind: req.kind,
        description: req.description,
        parent: rec.current_snapshot.clone(),
        memory,
        taken_while: if h.live().is_some() {
            rec.status
        } else {
            InstanceStatus::Shutoff
        },
        disks: vec![],
        overlays: vec![],
        memory_file: None,
        state: SnapshotState::Creating,
        created_at: Daemon::now(),
    };
    let result = match req.kind {
        SnapshotKind::Internal => internal::create(d, h, job, &rec.spec, snap).await,
        SnapshotKind::External => external::create(d, h, job, &rec.spec, snap).await,
    };
    if result.is_ok() {
        d.store
            .set_current_snapshot(instance, Some(&req.name))
            .await
            .map_err(store_err("recording the current snapshot"))?;
    }
    result
}

/// Reverts to a snapshot (run inside an operation).
pub async fn revert(d: &Daemon, ctx: &OpCtx, instance: &str, snap: &str) -> Result<(), Error> {
    let h = crate::instance::handle(d, instance).await?;
    let job = h.begin(JobKind::Revert, Some(ctx))?;
    let s = find(d, instance, snap).await?;
    match s.kind {
        SnapshotKind::Internal => internal::revert(d, &h, &job, &s).await?,
        SnapshotKind::External => external::revert(d, &h, &job, &s).await?,
    }
    d.store
        .set_current_snapshot(instance, Some(snap))
        .await
        .map_err(store_err("recording the current snapshot"))
}

/// Deletes a snapshot (run inside an operation).
pub async fn delete(d: &Daemon, ctx: &OpCtx, instance: &str, snap: &str) -> Result<(), Error> {
    let h = crate::instance::handle(d, instance).await?;
    let job = h.begin(JobKind::SnapshotDelete, Some(ctx))?;
    delete_in(d, &h, &job, snap).await
}

/// Deletes a snapshot within a job the caller holds.
pub async fn delete_in(d: &Daemon, h: &InstanceHandle, job: &Job, snap: &str) -> Result<(), Error> {
    let instance = h.name();
    let s = find(d, instance, snap).await?;
    match s.kind {
        SnapshotKind::Internal => internal::delete(d, h, job, &s).await?,
        SnapshotKind::External => external::delete(d, h, job, &s).await?,
    }
    d.store
        .delete_snapshot(instance, snap)
        .await
        .map_err(store_err("deleting the snapshot"))
}

/// Start-up recovery: finishes or removes snapshots a killed daemon left in
/// `creating`.
pub async fn recover(d: &Daemon, instance: &str) {
    let Ok(recs) = records(d, instance).await else {
        return;
    };
    let Ok(h) = crate::instance::handle(d, instance).await else {
        return;
    };
    for s in recs
        .into_iter()
        .filter(|r| r.state == SnapshotState::Creating)
    {
        let completed = match s.kind {
            SnapshotKind::Internal => internal::recover(d, &h, &s).await,
            SnapshotKind::External => external::recover(d, &h, &s).await,
        };
        if completed {
            let mut done = s.clone();
            done.state = SnapshotState::Ready;
            let _ = d.store.put_snapshot(&done).await;
            let _ = d.store.set_current_snapshot(instance, Some(&s.name)).await;
            tracing::info!(
                instance,
                snapshot = s.name,
                "completed a snapshot a restart interrupted"
            );
        } else {
            let _ = d.store.delete_snapshot(instance, &s.name).await;
            tracing::info!(instance, snapshot = s.name, "removed a half-made snapshot");
        }
        // A memory snapshot pauses the guest; give it back its run state.
        if s.taken_while == InstanceStatus::Running
            && let Some(rt) = h.live()
        {
            let state = rt.monitor().query_status().await.ok();
            if matches!(
                state,
                Some(ferrovirt_qemu::RunState::Paused | ferrovirt_qemu::RunState::PostMigrate)
            ) {
                let _ = h.set_running(true, "running", None).await;
            }
        }
    }
}
