//! Destination side of a migration: get ready (a paused QEMU waiting for the
//! stream, and with `copy_storage` empty disks exported over NBD), finish
//! (run the guest here) or abort (remove everything made). A destination
//! that restarts with a migration half-received removes it (marker files).

use std::path::{Path, PathBuf};

use ferrovirt_api::{EventKind, IncomingPost, IncomingReply, InstanceStatus};
use ferrovirt_core::Error;
use ferrovirt_qemu::{BootSource, IncomingSetup};
use ferrovirt_store::InstanceRecord;

use crate::daemon::{Daemon, store_err};
use crate::instance::job::JobKind;
use crate::instance::{self, qmp_err};
use crate::snapshots::writable_disks;

/// How long the received stream may take to end after the source says it
/// has sent everything.
const INCOMING_END_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

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

/// Checks the request and gets ready.
pub async fn prepare(d: &Daemon, req: IncomingPost) -> Result<IncomingReply, Error> {
    let name = req.spec.name.clone();
    // The name makes paths below, before the whole spec is validated.
    ferrovirt_core::name::validate("spec.name", &name)?;
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
            let cmd = ferrovirt_core::runner::Command::new("qemu-img")
                .args(["create", "-q", "-f", fmt.as_str()])
                .arg(path.display().to_string())
                .arg(size.to_string());
            d.runner.run(&cmd).await.map_err(|e| {
                Error::internal(format!(
                    "cannot create {}: {}",
                    path.display(),
                    ferrovirt_core::error::chain(&e)
                ))
            })?;
            created.push(path.display().to_string());
            spec.disks[i].path = path.display().to_string();
        }
    }
    let spec = d.validate(spec)?;
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
            exports: writable_disks(&spec)
                .iter()
                .map(|(i, disk)| ferrovirt_core::disk::node_name(disk, *i))
                .collect(),
            postcopy: req.postcopy,
            compress: req.compress,
        };
        reply.migration_port = Some(setup.migration_port);
        reply.nbd_port = setup.nbd_port;
        let started = async {
            let h = instance::handle(d, &name).await?;
            let job = h.begin(JobKind::IncomingMigration, None)?;
            instance::start::boot(d, &h, &job, BootSource::Incoming(setup)).await
        };
        if let Err(e) = started.await {
            abort_locked(d, &name).await;
            return Err(e);
        }
    }
    Ok(reply)
}

/// The source has sent everything: resume the guest here (or, offline,
/// keep it stopped).
pub async fn finish(d: &Daemon, name: &str, live: bool) -> Result<(), Error> {
    let _guard = d.locks.lock(name).await;
    if !marker(d, name).exists() {
        return Err(Error::not_found(format!("no incoming migration of {name}")));
    }
    let h = instance::handle(d, name).await?;
    if let Some(rt) = h.live() {
        let m = rt.monitor();
        if live {
            // The source has sent everything: the stream ends at once
            // (post-copy: once the last pages are pulled).
            tokio::time::timeout(INCOMING_END_TIMEOUT, m.wait_incoming())
                .await
                .map_err(|_| {
                    Error::internal(format!(
                        "the incoming migration of {name} did not end within {} s of the source's finish",
                        INCOMING_END_TIMEOUT.as_secs()
                    ))
                })?
                .map_err(qmp_err(name, "receive the migration of"))?;
            let _ = m.nbd_server_stop().await;
            h.set_running(true, "migrated in", Some(EventKind::Started))
                .await?;
        } else {
            // Offline with storage: the QEMU only served the disks.
            let _ = m.nbd_server_stop().await;
            h.quit(InstanceStatus::Shutoff, "migrated in (offline)", false)
                .await?;
        }
    } else {
        h.set_status(InstanceStatus::Shutoff, "migrated in (offline)", None)
            .await?;
    }
    let _ = std::fs::remove_file(marker(d, name));
    d.events
        .emit(EventKind::Created, name, Some("migrated in".into()));
    Ok(())
}

/// Drops a migration that will not complete.
pub async fn abort(d: &Daemon, name: &str) -> Result<(), Error> {
    let _guard = d.locks.lock(name).await;
    if !marker(d, name).exists() {
        return Err(Error::not_found(format!("no incoming migration of {name}")));
    }
    abort_locked(d, name).await;
    Ok(())
}

async fn abort_locked(d: &Daemon, name: &str) {
    if let Ok(h) = instance::handle(d, name).await
        && h.live().is_some()
    {
        let _ = h
            .quit(InstanceStatus::Shutoff, "migration aborted", true)
            .await;
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
    d.forget(name);
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
