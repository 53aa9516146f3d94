//! Live and offline migration between Ferrovirt hosts.
//!
//! The source drives; the destination is told over the TLS API (`POST
//! /1.0/migrations/incoming`) to start a paused QEMU waiting for the
//! migration stream (and, with `copy_storage`, to create empty disks and
//! export them over NBD, which the source mirrors into while the guest runs).
//! Then the source sends memory (`migrate`), and when it completes it asks
//! the destination to `finish` (resume the guest there) before it stops its
//! own QEMU and forgets the instance. Any failure or cancel before that
//! point leaves the guest running on the source and asks the destination to
//! `abort`, which removes everything it made. A destination that restarts
//! with a migration half-received removes it too (marker files).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferrovirt_api::{
    EventKind, IncomingPost, IncomingReply, InstanceSpec, InstanceStatus, MigratePost,
};
use ferrovirt_client::{Client, ClientError};
use ferrovirt_core::{Error, ValidSpec};
use ferrovirt_qemu::{img, process};
use ferrovirt_qmp::Qmp;
use ferrovirt_store::InstanceRecord;
use serde_json::json;

use crate::daemon::{Daemon, store_err};
use crate::lifecycle::{self, Resume};
use crate::monitor;
use crate::operations::OpCtx;
use crate::qmp_jobs;
use crate::snapshots::writable_disks;

/// What the destination's QEMU needs before the stream arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingSetup {
    pub host: String,
    pub migration_port: u16,
    pub nbd_port: Option<u16>,
    pub postcopy: bool,
    pub compress: bool,
}

fn qmp_err(doing: &str) -> impl Fn(ferrovirt_qmp::Error) -> Error + '_ {
    move |e| {
        Error::internal(format!(
            "{doing} failed: {}",
            ferrovirt_core::error::chain(&e)
        ))
    }
}

fn remote_err(doing: &str) -> impl Fn(ClientError) -> Error + '_ {
    move |e| match e {
        ClientError::Api(b) => Error {
            kind: match b.code {
                400 => ferrovirt_core::ErrorKind::Validation,
                403 => ferrovirt_core::ErrorKind::Forbidden,
                404 => ferrovirt_core::ErrorKind::NotFound,
                409 => ferrovirt_core::ErrorKind::Conflict,
                _ => ferrovirt_core::ErrorKind::Internal,
            },
            message: format!("the destination refused {doing}: {}", b.error),
            field: b.details.and_then(|d| d.field),
        },
        other => Error::internal(format!("{doing} failed: {other}")),
    }
}

/// Capabilities both ends must agree on.
async fn capabilities(
    qmp: &Qmp,
    postcopy: bool,
    compress: bool,
    auto_converge: bool,
) -> Result<(), Error> {
    let caps = json!([
        {"capability": "postcopy-ram", "state": postcopy},
        {"capability": "multifd", "state": compress},
        {"capability": "auto-converge", "state": auto_converge},
    ]);
    qmp.execute(
        "migrate-set-capabilities",
        Some(json!({"capabilities": caps})),
    )
    .await
    .map_err(qmp_err("setting migration capabilities"))?;
    if compress {
        qmp.execute(
            "migrate-set-parameters",
            Some(json!({"multifd-compression": "zstd"})),
        )
        .await
        .map_err(qmp_err("setting compression"))?;
    }
    Ok(())
}

/// Destination side, in the starting QEMU: exports the disks (when copying
/// storage) and starts listening for the migration stream.
pub async fn listen(qmp: &Qmp, spec: &InstanceSpec, s: &IncomingSetup) -> Result<(), Error> {
    capabilities(qmp, s.postcopy, s.compress, false).await?;
    if let Some(port) = s.nbd_port {
        qmp.execute(
            "nbd-server-start",
            Some(json!({"addr": {"type": "inet", "data": {"host": s.host, "port": port.to_string()}}})),
        )
        .await
        .map_err(qmp_err("starting the NBD server"))?;
        for (i, disk) in writable_disks(spec) {
            let node = ferrovirt_core::disk::node_name(disk, i);
            // Exporting activates the node: these copies are the
            // destination's own, not shared with the source.
            qmp.execute(
                "block-export-add",
                Some(
                    json!({"type": "nbd", "id": format!("exp-{node}"), "node-name": node,
                            "writable": true}),
                ),
            )
            .await
            .map_err(qmp_err("exporting a disk over NBD"))?;
        }
    }
    qmp.execute(
        "migrate-incoming",
        Some(json!({"uri": format!("tcp:{}:{}", s.host, s.migration_port)})),
    )
    .await
    .map_err(qmp_err("listening for the migration"))?;
    Ok(())
}

fn marker(d: &Daemon, name: &str) -> PathBuf {
    d.config
        .state_dir
        .join("migrations")
        .join(format!("incoming-{name}.json"))
}

fn free_port(host: &str) -> Result<u16, Error> {
    let l = std::net::TcpListener::bind((host, 0))
        .map_err(|e| Error::internal(format!("no free port on {host}: {e}")))?;
    Ok(l.local_addr().map(|a| a.port()).unwrap_or(0))
}

/// Destination: checks the request and gets ready.
pub async fn prepare_incoming(d: &Daemon, req: IncomingPost) -> Result<IncomingReply, Error> {
    let name = req.spec.name.clone();
    let _guard = d.locks.lock(&name).await;
    if d.store
        .get_instance(&name)
        .await
        .map_err(store_err("reading instances"))?
        .is_some()
    {
        return Err(Error::conflict(format!(
            "instance {name} already exists on the destination"
        )));
    }
    let available = ferrovirt_qemu::host::available_memory_mib();
    if req.live && available < req.spec.memory {
        return Err(Error::conflict(format!(
            "the destination has {available} MiB of memory available, {name} needs {} MiB",
            req.spec.memory
        )));
    }
    let qemu = d.qemu()?;
    if !qemu
        .machines
        .iter()
        .any(|m| m.name == req.spec.machine.qemu_name())
    {
        return Err(Error::validation(
            "machine",
            format!(
                "the destination's QEMU {} has no {} machine",
                qemu.version,
                req.spec.machine.qemu_name()
            ),
        ));
    }
    for nic in &req.spec.nics {
        let net = crate::networks::record(d, &nic.network)
            .await
            .map_err(|_| {
                Error::conflict(format!("the destination has no network {}", nic.network))
            })?;
        if req.live && !net.active {
            return Err(Error::conflict(format!(
                "network {} is not running on the destination",
                nic.network
            )));
        }
    }
    let host = d
        .config
        .listen
        .map(|a| a.ip().to_string())
        .ok_or_else(|| Error::conflict("the destination has no TLS listener address"))?;
    let mut spec = req.spec.clone();
    let mut created = Vec::new();
    if req.copy_storage {
        let dir = d.config.state_dir.join("disks").join(&name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        let indexes: Vec<usize> = writable_disks(&spec).iter().map(|(i, _)| *i).collect();
        if indexes.len() != req.disk_sizes.len() {
            return Err(Error::bad_request(
                "disk_sizes does not match the writable disks",
            ));
        }
        for (i, size) in indexes.into_iter().zip(&req.disk_sizes) {
            let fmt = spec.disks[i].format;
            let path = dir.join(format!("disk{i}.{}", fmt.as_str()));
            let out = tokio::process::Command::new("qemu-img")
                .args(["create", "-q", "-f", fmt.as_str()])
                .arg(&path)
                .arg(size.to_string())
                .output()
                .await
                .map_err(|e| Error::internal(format!("cannot run qemu-img: {e}")))?;
            if !out.status.success() {
                return Err(Error::internal(format!(
                    "cannot create {}: {}",
                    path.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            created.push(path.display().to_string());
            spec.disks[i].path = path.display().to_string();
        }
    }
    let spec = ValidSpec::new(spec, &d.limits, &Daemon::path_exists)?.into_inner();
    std::fs::create_dir_all(marker(d, &name).parent().expect("parent"))
        .map_err(|e| Error::internal(format!("cannot record the migration: {e}")))?;
    std::fs::write(
        marker(d, &name),
        serde_json::to_vec(&created).expect("serializes"),
    )
    .map_err(|e| Error::internal(format!("cannot record the migration: {e}")))?;
    d.store
        .insert_instance(&InstanceRecord {
            spec: spec.clone(),
            status: InstanceStatus::Shutoff,
            reason: "incoming migration".into(),
            created_at: Daemon::now(),
            managed_save: None,
            current_snapshot: None,
        })
        .await
        .map_err(store_err("saving the instance"))?;
    let mut reply = IncomingReply {
        host: host.clone(),
        migration_port: None,
        nbd_port: None,
    };
    if req.live || req.copy_storage {
        let setup = IncomingSetup {
            host: host.clone(),
            migration_port: free_port(&host)?,
            nbd_port: if req.copy_storage {
                Some(free_port(&host)?)
            } else {
                None
            },
            postcopy: req.postcopy,
            compress: req.compress,
        };
        reply.migration_port = Some(setup.migration_port);
        reply.nbd_port = setup.nbd_port;
        if let Err(e) = lifecycle::start_from(d, &name, Resume::Incoming(setup), None).await {
            abort_locked(d, &name).await;
            return Err(e);
        }
    }
    Ok(reply)
}

/// Destination: the source has sent everything; resume the guest here (or,
/// offline, keep it stopped).
pub async fn finish_incoming(d: &Daemon, name: &str, live: bool) -> Result<(), Error> {
    let _guard = d.locks.lock(name).await;
    if !marker(d, name).exists() {
        return Err(Error::not_found(format!("no incoming migration of {name}")));
    }
    if let Some(rt) = d.runtime(name) {
        if live {
            qmp_jobs::wait_migration(&rt.qmp, None, "receiving the migration", false).await?;
            let _ = rt.qmp.execute("nbd-server-stop", None).await;
            rt.qmp
                .execute("cont", None)
                .await
                .map_err(qmp_err("resuming the migrated guest"))?;
            d.set_status(
                name,
                InstanceStatus::Running,
                "migrated in",
                Some(EventKind::Started),
            )
            .await;
        } else {
            // Offline with storage: the QEMU only served the disks.
            let _ = rt.qmp.execute("nbd-server-stop", None).await;
            rt.intent().stopping = true;
            rt.expect_exit(InstanceStatus::Shutoff, "migrated in (offline)");
            rt.quit().await;
            rt.qmp.closed().await;
            monitor::finish_exit(d, name, &rt).await;
        }
    } else {
        d.set_status(name, InstanceStatus::Shutoff, "migrated in (offline)", None)
            .await;
    }
    let _ = std::fs::remove_file(marker(d, name));
    d.events
        .emit(EventKind::Created, name, Some("migrated in".into()));
    Ok(())
}

/// Destination: drop a migration that will not complete.
pub async fn abort_incoming(d: &Daemon, name: &str) -> Result<(), Error> {
    let _guard = d.locks.lock(name).await;
    if !marker(d, name).exists() {
        return Err(Error::not_found(format!("no incoming migration of {name}")));
    }
    abort_locked(d, name).await;
    Ok(())
}

async fn abort_locked(d: &Daemon, name: &str) {
    if let Some(rt) = d.runtime(name) {
        rt.intent().stopping = true;
        rt.expect_exit(InstanceStatus::Shutoff, "migration aborted");
        process::kill_now(rt.pid);
        rt.qmp.closed().await;
        monitor::finish_exit(d, name, &rt).await;
    }
    let created: Vec<String> = std::fs::read(marker(d, name))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    for f in created {
        let _ = std::fs::remove_file(&f);
        if let Some(dir) = Path::new(&f).parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
    let _ = d.store.delete_instance(name).await;
    let _ = std::fs::remove_file(marker(d, name));
    tracing::info!(instance = name, "dropped an incoming migration");
}

/// Start-up: incoming migrations a restart interrupted are dropped.
pub async fn reconcile(d: &Daemon) {
    let Ok(dir) = std::fs::read_dir(d.config.state_dir.join("migrations")) else {
        return;
    };
    for entry in dir.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(name) = file
            .strip_prefix("incoming-")
            .and_then(|f| f.strip_suffix(".json"))
        {
            let _guard = d.locks.lock(name).await;
            abort_locked(d, name).await;
        }
    }
}

/// Checks a migration request before the operation starts.
pub async fn check(d: &Daemon, name: &str, req: &MigratePost) -> Result<(), Error> {
    let rec = d.record(name).await?;
    let running = d.runtime(name).is_some();
    if req.offline && running {
        return Err(Error::conflict(format!(
            "instance {name} is running; stop it or migrate live"
        )));
    }
    if !req.offline && !running {
        return Err(Error::conflict(format!(
            "instance {name} is not running; use --offline"
        )));
    }
    if rec.managed_save.is_some() {
        return Err(Error::conflict(format!(
            "instance {name} has a managed save; start it first"
        )));
    }
    if !crate::snapshots::records(d, name).await?.is_empty() {
        return Err(Error::conflict(format!(
            "instance {name} has snapshots, which do not migrate yet; delete them first"
        )));
    }
    if req.postcopy && req.copy_storage {
        return Err(Error::validation(
            "postcopy",
            "post-copy cannot be combined with copy_storage",
        ));
    }
    Ok(())
}

/// Source side of a migration (run inside an operation).
pub async fn migrate(d: &Daemon, ctx: &OpCtx, name: &str, req: MigratePost) -> Result<(), Error> {
    let _guard = d.locks.lock(name).await;
    check(d, name, &req).await?;
    let rec = d.record(name).await?;
    let dest = Client::remote(&req.target.address, &d.identity, &req.target.fingerprint)
        .map_err(|e| Error::internal(format!("cannot set up TLS to the destination: {e}")))?;
    // Trusted already? If not, spend the token.
    if let Err(ClientError::Api(b)) = dest.host_info().await
        && b.code == 403
    {
        let token = req.target.token.as_deref().ok_or_else(|| {
            Error::forbidden("the destination does not trust this host; give a join token")
        })?;
        let t = ferrovirt_client::decode_token(token)
            .ok_or_else(|| Error::validation("target.token", "is not a Ferrovirt join token"))?;
        dest.redeem_token(&t.secret)
            .await
            .map_err(remote_err("the join token"))?;
    }
    let info = dest.host_info().await.map_err(remote_err("a host query"))?;
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
                img::info(Path::new(&disk.path))
                    .await
                    .map_err(|e| Error::internal(format!("cannot read {}: {e}", disk.path)))?
                    .virtual_size,
            );
        }
    }
    let incoming = IncomingPost {
        spec: rec.spec.clone(),
        live: !req.offline,
        copy_storage: req.copy_storage,
        disk_sizes,
        postcopy: req.postcopy,
        compress: req.compress,
    };
    ctx.progress("preparing the destination", 0.0, None);
    let reply: IncomingReply = dest
        .post_json("/1.0/migrations/incoming", &incoming)
        .await
        .map_err(remote_err("the migration"))?;
    let result = match d.runtime(name) {
        Some(rt) => live(ctx, &rt, &rec.spec, &req, &reply, &dest).await,
        None => offline_copy(ctx, &rec.spec, &req, &reply).await,
    };
    let path = format!("/1.0/migrations/incoming/{name}");
    if let Err(e) = result {
        let _ = dest.delete_path(&path).await;
        if let Some(rt) = d.runtime(name) {
            let _ = rt.qmp.execute("cont", None).await;
            d.set_status(name, rec.status, "running (migration failed)", None)
                .await;
        }
        return Err(e);
    }
    // The guest is paused here; it runs there once `finish` succeeds.
    let finished = dest
        .post_json::<serde_json::Value>(&format!("{path}/finish?live={}", !req.offline), &json!({}))
        .await;
    if let Err(e) = finished {
        let _ = dest.delete_path(&path).await;
        if let Some(rt) = d.runtime(name) {
            let _ = rt.qmp.execute("cont", None).await;
        }
        return Err(remote_err("finishing the migration")(e));
    }
    if let Some(rt) = d.runtime(name) {
        rt.intent().stopping = true;
        rt.expect_exit(InstanceStatus::Shutoff, "migrated away");
        rt.quit().await;
        rt.qmp.closed().await;
        monitor::finish_exit(d, name, &rt).await;
    }
    d.store
        .delete_instance(name)
        .await
        .map_err(store_err("forgetting the migrated instance"))?;
    let _ = std::fs::remove_dir_all(d.paths(name).log_dir);
    d.locks.forget(name);
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

async fn live(
    ctx: &OpCtx,
    rt: &crate::runtime::VmRuntime,
    spec: &InstanceSpec,
    req: &MigratePost,
    reply: &IncomingReply,
    dest: &Client,
) -> Result<(), Error> {
    let qmp = &rt.qmp;
    let mut mirrors = Vec::new();
    let result = async {
        if let Some(nbd_port) = reply.nbd_port {
            for (i, disk) in writable_disks(spec) {
                let node = format!("mig-nbd{i}");
                qmp.execute(
                    "blockdev-add",
                    Some(json!({"driver": "nbd", "node-name": node, "export": ferrovirt_core::disk::node_name(disk, i),
                        "server": {"type": "inet", "host": reply.host, "port": nbd_port.to_string()}})),
                )
                .await
                .map_err(qmp_err("connecting to the destination's disk"))?;
                let top = qmp_jobs::root_node_of(qmp, &disk.path)
                    .await?
                    .unwrap_or_else(|| ferrovirt_core::disk::node_name(disk, i));
                let job = format!("mirror{i}");
                qmp.execute(
                    "blockdev-mirror",
                    Some(json!({"job-id": job, "device": top, "target": node, "sync": "full",
                                "auto-dismiss": false})),
                )
                .await
                .map_err(qmp_err("starting the disk copy"))?;
                mirrors.push((job, node));
            }
            wait_mirrors_ready(qmp, ctx, &mirrors).await?;
        }
        capabilities(qmp, req.postcopy, req.compress, req.auto_converge).await?;
        // Without --bandwidth, no limit (QEMU's own default is 128 MiB/s).
        let mut params = json!({"max-bandwidth": req
            .bandwidth
            .map(|bw| bw * 1024 * 1024)
            .unwrap_or(qmp_jobs::UNLIMITED_BANDWIDTH)});
        if let Some(ms) = req.max_downtime {
            params["downtime-limit"] = json!(ms);
        }
        qmp.execute("migrate-set-parameters", Some(params))
            .await
            .map_err(qmp_err("setting migration limits"))?;
        let port = reply
            .migration_port
            .ok_or_else(|| Error::internal("the destination gave no migration port"))?;
        qmp.execute("migrate", Some(json!({"uri": format!("tcp:{}:{port}", reply.host)})))
            .await
            .map_err(qmp_err("starting the migration"))?;
        let downtime = follow(ctx, qmp, req.postcopy, dest).await?;
        ctx.set_result(json!({"downtime_ms": downtime}));
        Ok(())
    }
    .await;
    for (job, node) in &mirrors {
        // Cancelling a mirror that is in sync leaves the copy complete.
        let _ = qmp
            .execute("block-job-cancel", Some(json!({"device": job})))
            .await;
        let _ = qmp_jobs::wait_job(qmp, None, "finishing the disk copy", job).await;
        let _ = qmp
            .execute("blockdev-del", Some(json!({"node-name": node})))
            .await;
    }
    if result.is_err() {
        let _ = qmp.execute("migrate_cancel", None).await;
    }
    result
}

async fn wait_mirrors_ready(
    qmp: &Qmp,
    ctx: &OpCtx,
    mirrors: &[(String, String)],
) -> Result<(), Error> {
    loop {
        if ctx.is_cancelled() {
            return Err(Error::conflict("the migration was cancelled"));
        }
        let jobs = qmp
            .execute("query-jobs", None)
            .await
            .map_err(qmp_err("watching the disk copy"))?;
        let ours: Vec<&serde_json::Value> = jobs
            .as_array()
            .into_iter()
            .flatten()
            .filter(|j| mirrors.iter().any(|(id, _)| j["id"] == id.as_str()))
            .collect();
        if let Some(failed) = ours.iter().find(|j| j["status"] == "concluded") {
            return Err(Error::internal(format!(
                "copying the disks failed: {}",
                failed["error"].as_str().unwrap_or("the job ended early")
            )));
        }
        let (done, total) = ours.iter().fold((0u64, 0u64), |(d, t), j| {
            (
                d + j["current-progress"].as_u64().unwrap_or(0),
                t + j["total-progress"].as_u64().unwrap_or(0),
            )
        });
        if total > 0 {
            ctx.progress(
                "copying disks",
                done as f64 * 100.0 / total as f64,
                Some((done, total)),
            );
        }
        if !ours.is_empty() && ours.iter().all(|j| j["status"] == "ready") {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Follows the memory migration to its end; returns the downtime (ms).
async fn follow(ctx: &OpCtx, qmp: &Qmp, postcopy: bool, dest: &Client) -> Result<u64, Error> {
    let mut last_check = Instant::now();
    let mut postcopy_started = false;
    loop {
        let m = qmp
            .execute("query-migrate", None)
            .await
            .map_err(qmp_err("watching the migration"))?;
        match m["status"].as_str().unwrap_or("") {
            "completed" => return Ok(m["downtime"].as_u64().unwrap_or(0)),
            "failed" | "cancelled" => {
                return Err(Error::internal(format!(
                    "the migration failed: {}",
                    m["error-desc"].as_str().unwrap_or("no reason given")
                )));
            }
            _ => {}
        }
        let ram = &m["ram"];
        let (done, total, remaining) = (
            ram["transferred"].as_u64().unwrap_or(0),
            ram["total"].as_u64().unwrap_or(0),
            ram["remaining"].as_u64().unwrap_or(0),
        );
        if total > 0 {
            let pct = (total.saturating_sub(remaining)) as f64 * 100.0 / total as f64;
            let stage = format!(
                "migrating memory: {} MiB sent, {} MiB left, dirty {} pages/s, expected downtime {} ms",
                done >> 20,
                remaining >> 20,
                ram["dirty-pages-rate"].as_u64().unwrap_or(0),
                m["expected-downtime"].as_u64().unwrap_or(0)
            );
            ctx.progress(&stage, pct.min(99.0), Some((done, total)));
        }
        if postcopy && !postcopy_started && ram["dirty-sync-count"].as_u64().unwrap_or(0) >= 2 {
            qmp.execute("migrate-start-postcopy", None)
                .await
                .map_err(qmp_err("switching to post-copy"))?;
            postcopy_started = true;
        }
        if ctx.is_cancelled() {
            return Err(Error::conflict("the migration was cancelled"));
        }
        if last_check.elapsed() > Duration::from_secs(1) {
            last_check = Instant::now();
            if tokio::time::timeout(Duration::from_secs(3), dest.server_info())
                .await
                .map(|r| r.is_err())
                .unwrap_or(true)
            {
                return Err(Error::internal("the destination stopped answering"));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Offline with `copy_storage`: the destination's paused QEMU exports its
/// new, empty disks over NBD and qemu-img fills them.
async fn offline_copy(
    ctx: &OpCtx,
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
        ctx.progress(&format!("copying disk {i}"), n as f64 * 100.0 / total, None);
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
            _ = ctx.cancelled() => return Err(Error::conflict("the migration was cancelled")),
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
