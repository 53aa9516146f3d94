//! Source side of a migration: pre-checks on the destination, then live
//! (NBD mirrors when copying storage, then memory, followed through
//! `MIGRATION` events) or offline (definition, and disks copied over NBD).

use std::path::Path;
use std::time::{Duration, Instant};

use ferrovirt_api::{
    EventKind, IncomingPost, IncomingReply, InstanceSpec, InstanceStatus, MigratePost,
};
use ferrovirt_client::{Client, ClientError};
use ferrovirt_core::Error;
use ferrovirt_qemu::monitor::{
    BlockJob, MigrationCaps, MigrationInfo, MigrationParams, MonitorError,
};
use serde_json::json;

use super::{check, remote};
use crate::daemon::{Daemon, store_err};
use crate::instance::handle::InstanceHandle;
use crate::instance::job::{Job, JobKind};
use crate::instance::{self, live::Live, monitor_error};
use crate::operations::OpCtx;
use crate::snapshots::writable_disks;

/// How long a cancelled (in sync) mirror may take to end.
const MIRROR_END_TIMEOUT: Duration = Duration::from_secs(30);

/// Source side of a migration (run inside an operation).
pub async fn migrate(d: &Daemon, ctx: &OpCtx, name: &str, req: MigratePost) -> Result<(), Error> {
    let h = instance::handle(d, name).await?;
    let job = h.begin(JobKind::Migration, Some(ctx))?;
    check(d, name, &req).await?;
    let rec = d.record(name).await?;
    let dest = Client::remote(&req.target.address, &d.identity, &req.target.fingerprint)
        .map_err(|e| Error::internal(format!("cannot set up TLS to the destination: {e}")))?;
    // Trusted already? If not, spend the token.
    let first = tokio::time::timeout(Duration::from_secs(30), dest.host_info())
        .await
        .map_err(|_| Error::internal("the destination did not answer a host query within 30 s"))?;
    if let Err(ClientError::Api(b)) = first
        && b.code == 403
    {
        let token = req.target.token.as_deref().ok_or_else(|| {
            Error::forbidden("the destination does not trust this host; give a join token")
        })?;
        let t = ferrovirt_client::decode_token(token)
            .ok_or_else(|| Error::validation("target.token", "is not a Ferrovirt join token"))?;
        remote("the join token", dest.redeem_token(&t.secret)).await?;
    }
    let info = remote("a host query", dest.host_info()).await?;
    let ours = d.qemu()?;
    if version_tuple(&info.qemu.version) < version_tuple(&ours.version) {
        return Err(Error::conflict(format!(
            "the destination's QEMU {} is older than this host's {}",
            info.qemu.version, ours.version
        )));
    }
    if let ferrovirt_api::CpuModel::Named(m) = &rec.spec.cpu_model
        && !info.qemu.cpu_models.contains(m)
    {
        return Err(Error::conflict(format!(
            "the destination's QEMU does not know the CPU model {m}"
        )));
    }
    if rec.spec.cpu_model == ferrovirt_api::CpuModel::HostPassthrough
        && info.accel.accel == "kvm"
        && info.cpu_model != ferrovirt_qemu::host::cpu_model_name()
    {
        return Err(Error::conflict(format!(
            "host CPU passthrough needs the same CPU on both hosts: {} here, {} there",
            ferrovirt_qemu::host::cpu_model_name(),
            info.cpu_model
        )));
    }
    let mut disk_sizes = Vec::new();
    if req.copy_storage {
        for (_, disk) in writable_disks(&rec.spec) {
            disk_sizes.push(
                d.img()
                    .info(Path::new(&disk.path), disk.format)
                    .await
                    .map_err(|e| Error::internal(format!("cannot read {}: {e}", disk.path)))?
                    .virtual_size,
            );
        }
    }
    let incoming = IncomingPost {
        spec: rec.spec.get().clone(),
        live: !req.offline,
        copy_storage: req.copy_storage,
        disk_sizes,
        postcopy: req.postcopy,
        compress: req.compress,
    };
    job.progress("preparing the destination", 0.0, None);
    let reply: IncomingReply = remote(
        "the migration",
        dest.post_json("/1.0/migrations/incoming", &incoming),
    )
    .await?;
    let result = match h.live() {
        Some(rt) => live(&job, &rt, &rec.spec, &req, &reply, &dest).await,
        None => offline_copy(&job, &rec.spec, &req, &reply).await,
    };
    let path = format!("/1.0/migrations/incoming/{name}");
    if let Err(e) = result {
        let _ = remote("the abort", dest.delete_path(&path)).await;
        give_back(&h, rec.status).await;
        return Err(e);
    }
    // The guest is paused here; it runs there once `finish` succeeds.
    let finished = remote(
        "finishing the migration",
        dest.post_json::<serde_json::Value>(
            &format!("{path}/finish?live={}", !req.offline),
            &json!({}),
        ),
    )
    .await;
    if let Err(e) = finished {
        let _ = remote("the abort", dest.delete_path(&path)).await;
        give_back(&h, rec.status).await;
        return Err(e);
    }
    if h.live().is_some() {
        h.quit(InstanceStatus::Shutoff, "migrated away", false)
            .await?;
    }
    d.store
        .delete_instance(name)
        .await
        .map_err(store_err("forgetting the migrated instance"))?;
    drop(job);
    d.forget(name);
    d.events.emit(
        EventKind::Deleted,
        name,
        Some(format!("migrated to {}", req.target.address)),
    );
    Ok(())
}

fn version_tuple(v: &str) -> Vec<u32> {
    v.split('.').filter_map(|p| p.parse().ok()).collect()
}

/// After a failed or cancelled migration the guest stays here, as it was
/// (unless `stop --force` ended it).
async fn give_back(h: &InstanceHandle, was: InstanceStatus) {
    if h.live().is_none() {
        return;
    }
    let _ = h
        .set_running(
            was == InstanceStatus::Running,
            "running (migration failed)",
            None,
        )
        .await;
}

/// The migration's QEMU failures as user-facing errors.
fn mig_err(e: MonitorError) -> Error {
    match e {
        MonitorError::Migration { reason } => {
            Error::internal(format!("the migration failed: {reason}"))
        }
        e => monitor_error("the migration", e),
    }
}

async fn live(
    job: &Job,
    rt: &Live,
    spec: &InstanceSpec,
    req: &MigratePost,
    reply: &IncomingReply,
    dest: &Client,
) -> Result<(), Error> {
    let m = rt.monitor();
    let mut mirrors = Vec::new();
    let result = async {
        if let Some(nbd_port) = reply.nbd_port {
            for (i, disk) in writable_disks(spec) {
                let node = format!("mig-nbd{i}");
                let export = ferrovirt_core::disk::node_name(disk, i);
                m.add_nbd_node(&node, &reply.host, nbd_port, &export)
                    .await
                    .map_err(|e| monitor_error("connecting to the destination's disk", e))?;
                let top = m
                    .root_node_of(&disk.path)
                    .await
                    .map_err(|e| monitor_error("listing the disks", e))?
                    .unwrap_or(export);
                let mirror = BlockJob::Mirror {
                    device: top,
                    target: node.clone(),
                };
                let watch = m
                    .start_job(&format!("mirror{i}"), &mirror)
                    .await
                    .map_err(|e| monitor_error("starting the disk copy", e))?;
                mirrors.push((watch, node));
            }
            let report = job.reporter("copying disks");
            for (watch, _) in &mut mirrors {
                watch
                    .ready(Some(&report), job.cancelled())
                    .await
                    .map_err(|e| monitor_error("copying the disks", e))?;
            }
        }
        m.migrate_set_capabilities(MigrationCaps {
            postcopy: req.postcopy,
            multifd: req.compress,
            auto_converge: req.auto_converge,
        })
        .await
        .map_err(|e| monitor_error("setting migration capabilities", e))?;
        // Without --bandwidth, no limit (QEMU's own default is 128 MiB/s).
        m.migrate_set_parameters(MigrationParams {
            max_bandwidth: super::bandwidth_bytes(req)?,
            downtime_limit_ms: req.max_downtime,
            zstd: req.compress,
        })
        .await
        .map_err(|e| monitor_error("setting migration limits", e))?;
        let port = reply
            .migration_port
            .ok_or_else(|| Error::internal("the destination gave no migration port"))?;
        let mut events = m.events();
        m.migrate(&format!("tcp:{}:{port}", reply.host))
            .await
            .map_err(|e| monitor_error("starting the migration", e))?;
        let info = follow(job, rt, req.postcopy, dest, &mut events).await?;
        if let Some(op) = job.op() {
            op.set_result(json!({"downtime_ms": info.downtime_ms}));
        }
        Ok(())
    }
    .await;
    for (watch, node) in &mut mirrors {
        // Cancelling a mirror that is in sync leaves the copy complete.
        let _ = m.job_cancel(watch.id()).await;
        let ended = watch.concluded(false, None, std::future::pending());
        if tokio::time::timeout(MIRROR_END_TIMEOUT, ended)
            .await
            .is_err()
        {
            tracing::warn!(
                job = watch.id(),
                "the disk copy did not end within {} s of its cancel",
                MIRROR_END_TIMEOUT.as_secs()
            );
        }
        let _ = m.blockdev_del(node).await;
    }
    if result.is_err() {
        let _ = m.migrate_cancel().await;
    }
    result
}

/// Follows the memory migration to its end: progress every 100 ms, the
/// switch to post-copy after the second dirty pass, and a check every
/// second that the destination still answers.
async fn follow(
    job: &Job,
    rt: &Live,
    postcopy: bool,
    dest: &Client,
    events: &mut ferrovirt_qemu::Events,
) -> Result<MigrationInfo, Error> {
    let m = rt.monitor().clone();
    let mut postcopy_started = false;
    let mut last_check = Instant::now();
    let mut tick = |info: &MigrationInfo| {
        if info.total > 0 {
            let pct = info.total.saturating_sub(info.remaining) as f64 * 100.0 / info.total as f64;
            let stage = format!(
                "migrating memory: {} MiB sent, {} MiB left, dirty {} pages/s, expected downtime {} ms",
                info.transferred >> 20,
                info.remaining >> 20,
                info.dirty_pages_rate,
                info.expected_downtime_ms
            );
            job.progress(&stage, pct.min(99.0), Some((info.transferred, info.total)));
        }
        let switch = postcopy && !postcopy_started && info.dirty_sync_count >= 2;
        postcopy_started |= switch;
        let check = last_check.elapsed() > Duration::from_secs(1);
        if check {
            last_check = Instant::now();
        }
        let (m, dest) = (m.clone(), dest.clone());
        async move {
            if switch {
                m.migrate_start_postcopy().await?;
            }
            if check
                && tokio::time::timeout(Duration::from_secs(3), dest.server_info())
                    .await
                    .map(|r| r.is_err())
                    .unwrap_or(true)
            {
                return Err(MonitorError::Migration {
                    reason: "the destination stopped answering".into(),
                });
            }
            Ok(())
        }
    };
    rt.monitor()
        .follow_migration(
            events,
            Duration::from_millis(100),
            &mut tick,
            job.cancelled(),
        )
        .await
        .map_err(mig_err)
}

/// Offline with `copy_storage`: the destination's paused QEMU exports its
/// new, empty disks over NBD and qemu-img fills them.
async fn offline_copy(
    job: &Job,
    spec: &InstanceSpec,
    req: &MigratePost,
    reply: &IncomingReply,
) -> Result<(), Error> {
    if !req.copy_storage {
        return Ok(());
    }
    let port = reply
        .nbd_port
        .ok_or_else(|| Error::internal("the destination gave no NBD port"))?;
    let disks = writable_disks(spec);
    let total = disks.len().max(1) as f64;
    for (n, (i, disk)) in disks.into_iter().enumerate() {
        job.progress(&format!("copying disk {i}"), n as f64 * 100.0 / total, None);
        let target = format!(
            "nbd://{}:{port}/{}",
            reply.host,
            ferrovirt_core::disk::node_name(disk, i)
        );
        let copy = tokio::process::Command::new("qemu-img")
            .args([
                "convert",
                "-n",
                "-f",
                disk.format.as_str(),
                "-O",
                "raw",
                &disk.path,
                &target,
            ])
            .kill_on_drop(true)
            .output();
        let out = tokio::select! {
            out = copy => out.map_err(|e| Error::internal(format!("cannot run qemu-img: {e}")))?,
            () = job.cancelled() => return Err(Error::conflict("the migration was cancelled")),
        };
        if !out.status.success() {
            return Err(Error::internal(format!(
                "copying {} failed: {}",
                disk.path,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}
