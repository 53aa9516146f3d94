//! Storage pools: definition, build, start/stop, autostart, the default
//! pool, and start-up reconciliation. Volumes are in [`volumes`], long
//! copies (import, export, clone, convert) in [`copy`]. The host work is
//! the pool's [`StorageDriver`]'s; this module keeps the records, the locks
//! and the rules, and branches on the driver's capabilities.

pub mod backing;
pub mod copy;
pub mod volumes;

use std::path::PathBuf;

use ferrovirt_api::{Pool, PoolCreate, PoolSpec, PoolType};
use ferrovirt_core::{Error, Reverter, StorageDriver};
use ferrovirt_store::PoolRecord;

use crate::daemon::{Daemon, store_err};

fn lock_key(name: &str) -> String {
    format!("pool/{name}")
}

/// The directory of a file pool.
pub fn dir(d: &Daemon, spec: &PoolSpec) -> PathBuf {
    spec.path
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(|| d.config.state_dir.join("pools").join(&spec.name))
}

/// The driver of a pool, running its tools through the daemon's runner.
pub fn driver(d: &Daemon, spec: &PoolSpec) -> Box<dyn StorageDriver> {
    ferrovirt_storage::driver(spec, dir(d, spec), d.runner.clone())
}

pub async fn records(d: &Daemon) -> Result<Vec<PoolRecord>, Error> {
    d.store.pools().await.map_err(store_err("reading pools"))
}

pub async fn record(d: &Daemon, name: &str) -> Result<PoolRecord, Error> {
    records(d)
        .await?
        .into_iter()
        .find(|r| r.spec.name == name)
        .ok_or_else(|| Error::not_found(format!("pool {name} does not exist")))
}

/// An active pool's record, or why it cannot be used.
pub async fn active(d: &Daemon, name: &str) -> Result<PoolRecord, Error> {
    let rec = record(d, name).await?;
    if !rec.active {
        return Err(Error::conflict(format!(
            "pool {name} is not running; start it first"
        )));
    }
    Ok(rec)
}

pub async fn view(d: &Daemon, rec: PoolRecord) -> Pool {
    let h = driver(d, &rec.spec);
    let (space, volumes) = if rec.active {
        (
            h.space().await.unwrap_or_default(),
            h.volumes().await.map(|v| v.len()).unwrap_or(0),
        )
    } else {
        Default::default()
    };
    Pool {
        active: rec.active,
        capacity: space.capacity,
        allocation: space.allocation,
        available: space.available,
        volumes,
        spec: rec.spec,
    }
}

async fn validate(d: &Daemon, spec: &PoolSpec) -> Result<(), Error> {
    ferrovirt_core::name::validate("name", &spec.name)?;
    ferrovirt_storage::check_spec(spec, &*driver(d, spec))?;
    let others = records(d).await?;
    let files = |s: &PoolSpec| driver(d, s).capabilities().files;
    if files(spec)
        && let Some(o) = others
            .iter()
            .find(|o| files(&o.spec) && dir(d, &o.spec) == dir(d, spec))
    {
        return Err(Error::validation(
            "path",
            format!(
                "{} is already the directory of pool {}",
                dir(d, spec).display(),
                o.spec.name
            ),
        ));
    }
    Ok(())
}

pub async fn create(d: &Daemon, req: PoolCreate) -> Result<Pool, Error> {
    let spec = req.spec;
    let _guard = d.locks.lock(&lock_key(&spec.name)).await;
    validate(d, &spec).await?;
    let rec = PoolRecord {
        spec,
        active: false,
    };
    d.store
        .insert_pool(&rec)
        .await
        .map_err(store_err("saving the pool"))?;
    let mut revert = Reverter::new();
    let (dd, name) = (d.clone(), rec.spec.name.clone());
    revert.add(move || {
        // The store queues a request when it is made: it runs, in order,
        // even though nothing awaits its reply here.
        drop(dd.store.delete_pool(&name));
    });
    let h = driver(d, &rec.spec);
    if req.build {
        h.build().await?;
    } else if h.capabilities().owns_directory {
        // The default place is ours: make it without being asked.
        let dir = dir(d, &rec.spec);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
    }
    if req.start {
        start_locked(d, &rec.spec.name).await?;
    }
    revert.success();
    Ok(view(d, record(d, &rec.spec.name).await?).await)
}

pub async fn start(d: &Daemon, name: &str) -> Result<Pool, Error> {
    let _guard = d.locks.lock(&lock_key(name)).await;
    start_locked(d, name).await?;
    Ok(view(d, record(d, name).await?).await)
}

async fn start_locked(d: &Daemon, name: &str) -> Result<(), Error> {
    let mut rec = record(d, name).await?;
    driver(d, &rec.spec).start().await?;
    rec.active = true;
    d.store
        .update_pool(&rec)
        .await
        .map_err(store_err("saving the pool"))
}

/// Instances with a disk in pool `name` that are running.
async fn running_users(d: &Daemon, name: &str) -> Vec<String> {
    let prefix = format!("{name}/");
    d.store
        .list_instances()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.spec
                .disks
                .iter()
                .any(|disk| disk.volume.as_ref().is_some_and(|v| v.starts_with(&prefix)))
        })
        .map(|r| r.spec.into_inner().name)
        .filter(|i| d.runtime(i).is_some())
        .collect()
}

pub async fn stop(d: &Daemon, name: &str) -> Result<Pool, Error> {
    let _guard = d.locks.lock(&lock_key(name)).await;
    let mut rec = record(d, name).await?;
    let users = running_users(d, name).await;
    if !users.is_empty() {
        return Err(Error::conflict(format!(
            "pool {name} is used by running instance(s) {}",
            users.join(", ")
        )));
    }
    driver(d, &rec.spec).stop().await?;
    rec.active = false;
    d.store
        .update_pool(&rec)
        .await
        .map_err(store_err("saving the pool"))?;
    Ok(view(d, rec).await)
}

/// Removes a pool's definition; its volumes go too only when asked (and
/// none is used). The storage itself (directory, filesystem, volume
/// group) is left as it is.
pub async fn delete(d: &Daemon, name: &str, with_volumes: bool) -> Result<(), Error> {
    let _guard = d.locks.lock(&lock_key(name)).await;
    let rec = record(d, name).await?;
    let h = driver(d, &rec.spec);
    let caps = h.capabilities();
    if rec.active {
        let vols = h.volumes().await?;
        if !vols.is_empty() && !with_volumes {
            return Err(Error::conflict(format!(
                "pool {name} holds {} volume(s); delete them first or ask to delete them with the pool",
                vols.len()
            )));
        }
        if caps.manages_volumes {
            for v in &vols {
                let users = volumes::used_by(d, name, &v.name, &v.path).await;
                if !users.is_empty() {
                    return Err(Error::conflict(format!(
                        "volume {} is used by instance(s) {}",
                        v.name,
                        users.join(", ")
                    )));
                }
            }
            for v in &vols {
                h.delete(&v.name).await?;
            }
        }
        h.stop().await?;
    }
    d.store
        .delete_pool(name)
        .await
        .map_err(store_err("deleting the pool"))?;
    if caps.owns_directory {
        let _ = std::fs::remove_dir(dir(d, &rec.spec));
    }
    Ok(())
}

/// Changes a pool's autostart and description (the rest needs a new pool).
pub async fn replace(d: &Daemon, name: &str, spec: PoolSpec) -> Result<Pool, Error> {
    let _guard = d.locks.lock(&lock_key(name)).await;
    let mut rec = record(d, name).await?;
    let strip = |s: &PoolSpec| PoolSpec {
        autostart: false,
        description: String::new(),
        ..s.clone()
    };
    if strip(&rec.spec) != strip(&spec) {
        return Err(Error::conflict(format!(
            "pool {name}: only autostart and description can change; define a new pool for the rest"
        )));
    }
    rec.spec = spec;
    d.store
        .update_pool(&rec)
        .await
        .map_err(store_err("saving the pool"))?;
    Ok(view(d, rec).await)
}

/// The `default` dir pool, made once on the daemon's first start. Deleted
/// by the user, it stays deleted.
pub async fn ensure_default(d: &Daemon) -> Result<(), Error> {
    let marker = d.config.state_dir.join("default-pool-created");
    if marker.exists() || records(d).await?.iter().any(|r| r.spec.name == "default") {
        return Ok(());
    }
    let spec = PoolSpec {
        name: "default".into(),
        kind: PoolType::Dir,
        path: None,
        source: Default::default(),
        autostart: true,
        description: "created by ferrovirtd on its first start".into(),
    };
    create(
        d,
        PoolCreate {
            spec,
            build: true,
            start: true,
        },
    )
    .await?;
    let _ = std::fs::write(&marker, b"");
    tracing::info!("created the default pool");
    Ok(())
}

/// Start-up: bring back pools that should be active (a host reboot
/// unmounted them) and start autostart ones.
pub async fn reconcile(d: &Daemon) {
    for rec in records(d).await.unwrap_or_default() {
        if (rec.active || rec.spec.autostart)
            && let Err(e) = start_locked(d, &rec.spec.name).await
        {
            tracing::error!(pool = rec.spec.name, error = %e, "cannot start the pool");
        }
    }
}
