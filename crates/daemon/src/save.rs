//! Save and restore: the guest's memory state written to a file, QEMU
//! stopped, and later the same guest resumed where it was.
//!
//! A save file is a header (magic + the instance spec as JSON) in the first
//! [`HEADER_SIZE`] bytes, then QEMU's migration stream (`file:` migration at
//! that offset). The managed save of an instance lives in the state dir and
//! the next `start` resumes from it; `save --file` writes anywhere and
//! `restore FILE` brings it back, defining the instance if needed.

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
    let hold = h.hold(&rt).await?;
    let uri = format!("file:{},offset={HEADER_SIZE}", path.display());
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
        .and_then(|()| write_header(&path, &rec.spec));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        hold.release(&rt, was_running).await;
        return Err(e);
    }
    let reason = if managed {
        "saved; the next start resumes it".to_owned()
    } else {
        format!("saved to {}", path.display())
    };
    h.quit(InstanceStatus::Shutoff, &reason, false).await?;
    hold.release(&rt, false).await;
    if managed {
        d.store
            .set_managed_save(name, Some(&path.display().to_string()))
            .await
            .map_err(store_err("recording the managed save"))?;
    }
    Ok(())
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
