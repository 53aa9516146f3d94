//! Save and restore: the guest's memory state written to a file, QEMU
//! stopped, and later the same guest resumed where it was.
//!
//! A save file is a header (magic + the instance spec as JSON) in the first
//! [`HEADER_SIZE`] bytes, then QEMU's migration stream (`file:` migration at
//! that offset). The managed save of an instance lives in the state dir and
//! the next `start` resumes from it; `save --file` writes anywhere and
//! `restore FILE` brings it back, defining the instance if needed.
//!
//! Crash safety: the stream goes to `FILE.part`; the header is written and
//! the file fsynced, then renamed into place (and its dir fsynced); only
//! then is the managed save recorded, and only then does QEMU quit. So a
//! recorded save always names a complete file, and a daemon killed at any
//! point never restores memory older than the disks: start-up
//! ([`recover`]) drops a save whose QEMU still runs (the guest went on
//! after it), a record whose file is missing or not a save file, and any
//! file in the save dir without a record.

use std::path::{Path, PathBuf};

use ferrovirt_api::{EventKind, InstanceStatus};
use ferrovirt_core::Error;
use ferrovirt_store::InstanceRecord;

use ferrovirt_qemu::BootSource;
use ferrovirt_qemu::monitor::MigrationInfo;

use crate::daemon::{Daemon, store_err};
use crate::instance::{self, job::JobKind, job_err};
use crate::operations::OpCtx;
pub use crate::save_file::read_header;
use crate::save_file::{HEADER_SIZE, write_header};

/// Where the managed save of an instance lives.
pub fn managed_path(d: &Daemon, name: &str) -> PathBuf {
    d.config.state_dir.join("save").join(format!("{name}.sav"))
}

/// Saves a running instance's memory to `file` (or its managed save) and
/// stops it. On failure the guest keeps running as before.
pub async fn save(d: &Daemon, ctx: &OpCtx, name: &str, file: Option<String>) -> Result<(), Error> {
    let h = instance::handle(d, name).await?;
    let job = h.begin(JobKind::Save, Some(ctx))?;
    let rec = d.record(name).await?;
    let rt = h.running()?;
    let managed = file.is_none();
    let path = file
        .map(PathBuf::from)
        .unwrap_or_else(|| managed_path(d, name));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
    }
    let was_running = rec.status == InstanceStatus::Running;
    let part = part_path(&path);
    let hold = h.hold(&rt).await?;
    let uri = format!("file:{},offset={HEADER_SIZE}", part.display());
    let report = |m: &MigrationInfo| {
        if m.total > 0 {
            let pct = (m.transferred as f64 * 100.0 / m.total as f64).min(99.0);
            job.progress("saving memory", pct, Some((m.transferred, m.total)));
        }
    };
    let written = rt
        .monitor()
        .migrate_and_wait(&uri, &report, job.cancelled())
        .await
        .map(drop)
        .map_err(job_err("saving memory"))
        .and_then(|()| write_header(&part, &rec.spec))
        .and_then(|()| {
            crate::fault::point("save-before-rename");
            publish(&part, &path)
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&part);
        hold.release(&rt, was_running).await;
        return Err(e);
    }
    crate::fault::point("save-before-record");
    if managed {
        let recorded = d
            .store
            .set_managed_save(name, Some(&path.display().to_string()))
            .await
            .map_err(store_err("recording the managed save"));
        if let Err(e) = recorded {
            let _ = std::fs::remove_file(&path);
            hold.release(&rt, was_running).await;
            return Err(e);
        }
    }
    crate::fault::point("save-before-quit");
    let reason = if managed {
        "saved; the next start resumes it".to_owned()
    } else {
        format!("saved to {}", path.display())
    };
    h.quit(InstanceStatus::Shutoff, &reason, false).await?;
    hold.release(&rt, false).await;
    Ok(())
}

/// Where a save file is written until it is complete.
fn part_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".part");
    PathBuf::from(p)
}

/// Renames the complete `part` (already fsynced) to `path` and makes the
/// rename durable (fsync of the dir).
fn publish(part: &Path, path: &Path) -> Result<(), Error> {
    let fail = |e: std::io::Error| {
        Error::internal(format!("cannot move the save into {}: {e}", path.display()))
    };
    std::fs::rename(part, path).map_err(fail)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(fail)?;
    }
    Ok(())
}

/// Start-up, after live QEMUs were re-attached: a managed save is dropped
/// when its QEMU still runs (the guest went on after it), when its file is
/// missing or not a complete save file; files in the save dir that no
/// record names (a save killed before it was recorded) are removed.
pub async fn recover(d: &Daemon) {
    let Ok(records) = d.store.list_instances().await else {
        return;
    };
    let mut kept = Vec::new();
    for rec in records {
        let Some(file) = rec.managed_save.as_deref() else {
            continue;
        };
        let name = &rec.spec.name;
        let why = if d.instances.is_active(name) {
            Some("its QEMU was still running after the daemon restarted, so the guest went on after the save".to_owned())
        } else {
            crate::save_file::check(Path::new(file))
                .err()
                .map(|e| e.message)
        };
        match why {
            None => kept.push(PathBuf::from(file)),
            Some(why) => {
                tracing::warn!(
                    instance = name,
                    file,
                    reason = why,
                    "dropping the managed save"
                );
                let _ = std::fs::remove_file(file);
                if let Err(e) = d.store.set_managed_save(name, None).await {
                    tracing::error!(instance = name, error = %e, "cannot drop the managed save");
                }
            }
        }
    }
    let dir = d.config.state_dir.join("save");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if !kept.contains(&path) {
            tracing::warn!(file = %path.display(), "removing a save file no instance records (a save was interrupted)");
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Restores a save file: defines its instance if it does not exist, then
/// resumes the guest from the file. Returns the instance's name.
pub async fn restore(d: &Daemon, ctx: &OpCtx, file: &Path) -> Result<(), Error> {
    let spec = read_header(file)?;
    let name = spec.name.clone();
    let _guard = d.locks.lock(&name).await;
    match d
        .store
        .get_instance(&name)
        .await
        .map_err(store_err("reading the instance"))?
    {
        Some(existing) => {
            if existing.spec.uuid != spec.uuid {
                return Err(Error::conflict(format!(
                    "instance {name} exists and is not the instance saved in {}",
                    file.display()
                )));
            }
            if d.instances.is_active(&name) {
                return Err(Error::conflict(format!(
                    "instance {name} is already running"
                )));
            }
        }
        None => {
            let spec = d.validate(spec)?;
            d.store
                .insert_instance(&InstanceRecord {
                    spec,
                    status: InstanceStatus::Shutoff,
                    reason: format!("restored from {}", file.display()),
                    created_at: Daemon::now(),
                    managed_save: None,
                    current_snapshot: None,
                })
                .await
                .map_err(store_err("saving the instance"))?;
            d.events.emit(EventKind::Created, &name, None);
        }
    }
    let h = instance::handle(d, &name).await?;
    let job = h.begin(JobKind::Restore, Some(ctx))?;
    let source = BootSource::RestoreFile {
        path: file.display().to_string(),
        offset: HEADER_SIZE,
    };
    instance::start::boot(d, &h, &job, source).await
}
