//! Volumes of a pool: list, show, create, delete, resize, wipe; which
//! instances use a volume; and turning an instance disk's `pool/volume`
//! into the [`DiskSource`](ferrovirt_core::DiskSource) QEMU opens.

use std::path::Path;

use ferrovirt_api::{BackingImage, InstanceSpec, Volume, VolumeCreate, VolumeResize};
use ferrovirt_core::{Error, StorageDriver, VolumeInfo};
use ferrovirt_storage::record;

use crate::daemon::Daemon;

/// The lock key of a volume (held while it is created, resized or copied).
pub fn lock_key(pool: &str, name: &str) -> String {
    format!("volume/{pool}/{name}")
}

/// Instances with a disk on the volume (by `pool/volume` or by path).
pub async fn used_by(d: &Daemon, pool: &str, name: &str, path: &str) -> Vec<String> {
    users_in(&instance_specs(d).await, pool, name, path)
}

/// Every instance's spec (read once for a listing).
async fn instance_specs(d: &Daemon) -> Vec<InstanceSpec> {
    d.store
        .list_instances()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.spec.into_inner())
        .collect()
}

fn users_in(specs: &[InstanceSpec], pool: &str, name: &str, path: &str) -> Vec<String> {
    let id = format!("{pool}/{name}");
    specs
        .iter()
        .filter(|spec| {
            spec.disks.iter().any(|disk| {
                disk.volume.as_deref() == Some(id.as_str())
                    || (!path.is_empty() && disk.path == path)
            })
        })
        .map(|spec| spec.name.clone())
        .collect()
}

async fn view(d: &Daemon, pool: &str, v: VolumeInfo) -> Volume {
    view_with(&instance_specs(d).await, pool, v)
}

fn view_with(specs: &[InstanceSpec], pool: &str, v: VolumeInfo) -> Volume {
    Volume {
        used_by: users_in(specs, pool, &v.name, &v.path),
        name: v.name,
        pool: pool.to_owned(),
        path: v.path,
        format: v.format,
        virtual_size: v.virtual_size,
        actual_size: v.actual_size,
        backing_chain: Vec::new(),
    }
}

pub async fn list(d: &Daemon, pool: &str) -> Result<Vec<Volume>, Error> {
    let rec = super::active(d, pool).await?;
    let vols = super::driver(d, &rec.spec).volumes().await?;
    let specs = instance_specs(d).await;
    Ok(vols
        .into_iter()
        .map(|v| view_with(&specs, pool, v))
        .collect())
}

/// A volume, found in an active pool.
pub async fn find(d: &Daemon, pool: &str, name: &str) -> Result<VolumeInfo, Error> {
    let rec = super::active(d, pool).await?;
    super::driver(d, &rec.spec).volume(name).await
}

/// A volume with its recorded backing chain and the sizes qemu-img reads
/// (each image named with its recorded format).
pub async fn show(d: &Daemon, pool: &str, name: &str) -> Result<Volume, Error> {
    let info = find(d, pool, name).await?;
    let mut vol = view(d, pool, info.clone()).await;
    if info.path.is_empty() {
        return Ok(vol);
    }
    let read_err = |e: ferrovirt_qemu::img::ImgError| {
        Error::internal(format!(
            "cannot read volume {name}: {}",
            ferrovirt_core::error::chain(&e)
        ))
    };
    let format = info.format.disk_format().unwrap_or_default();
    let img = d.img();
    vol.virtual_size = img
        .info(Path::new(&info.path), format)
        .await
        .map_err(read_err)?
        .virtual_size;
    for b in super::backing::chain(d, "volume", &info.path, format).await? {
        let size = img
            .info(Path::new(&b.path), b.format)
            .await
            .map_err(read_err)?
            .virtual_size;
        vol.backing_chain.push(BackingImage {
            path: b.path,
            format: b.format.as_str().to_owned(),
            virtual_size: size,
        });
    }
    Ok(vol)
}

pub async fn create(d: &Daemon, pool: &str, req: VolumeCreate) -> Result<Volume, Error> {
    let rec = super::active(d, pool).await?;
    let _guard = d.locks.lock(&lock_key(pool, &req.name)).await;
    let info = super::driver(d, &rec.spec).create(&req).await?;
    Ok(view(d, pool, info).await)
}

async fn refuse_if_used(d: &Daemon, pool: &str, v: &VolumeInfo, doing: &str) -> Result<(), Error> {
    let users = used_by(d, pool, &v.name, &v.path).await;
    if !users.is_empty() {
        return Err(Error::conflict(format!(
            "cannot {doing} volume {}: instance(s) {} use it",
            v.name,
            users.join(", ")
        )));
    }
    Ok(())
}

pub async fn delete(d: &Daemon, pool: &str, name: &str) -> Result<(), Error> {
    let rec = super::active(d, pool).await?;
    let _guard = d.locks.lock(&lock_key(pool, name)).await;
    let h = super::driver(d, &rec.spec);
    let v = h.volume(name).await?;
    refuse_if_used(d, pool, &v, "delete").await?;
    let backs = backed_by(&*h, &v).await;
    if !backs.is_empty() {
        return Err(Error::conflict(format!(
            "cannot delete volume {name}: it is the base of linked clone(s) {}",
            backs.join(", ")
        )));
    }
    h.delete(name).await
}

/// Volumes of the pool recorded as linked clones of `base`.
async fn backed_by(h: &dyn StorageDriver, base: &VolumeInfo) -> Vec<String> {
    h.volumes()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|v| {
            v.has_backing
                && record::read(Path::new(&v.path))
                    .and_then(|r| r.backing)
                    .is_some_and(|b| b.path == base.path)
        })
        .map(|v| v.name)
        .collect()
}

pub async fn wipe(d: &Daemon, pool: &str, name: &str) -> Result<Volume, Error> {
    let rec = super::active(d, pool).await?;
    let _guard = d.locks.lock(&lock_key(pool, name)).await;
    let h = super::driver(d, &rec.spec);
    let v = h.volume(name).await?;
    refuse_if_used(d, pool, &v, "wipe").await?;
    h.wipe(name).await?;
    Ok(view(d, pool, h.volume(name).await?).await)
}

/// Resizes a volume; growing one a running guest uses goes through QEMU
/// (`block_resize`), so the guest sees the new size at once.
pub async fn resize(
    d: &Daemon,
    pool: &str,
    name: &str,
    req: VolumeResize,
) -> Result<Volume, Error> {
    let rec = super::active(d, pool).await?;
    let _guard = d.locks.lock(&lock_key(pool, name)).await;
    let h = super::driver(d, &rec.spec);
    let v = h.volume(name).await?;
    if req.size == 0 {
        return Err(Error::validation("size", "must be more than 0"));
    }
    let shrink = req.size < v.virtual_size;
    if shrink && !req.force {
        return Err(Error::validation(
            "size",
            format!(
                "{} is smaller than the volume's {} bytes: shrinking loses the data past the new end; pass force to do it",
                req.size, v.virtual_size
            ),
        ));
    }
    let mut running: Vec<(String, String)> = Vec::new();
    for i in used_by(d, pool, name, &v.path).await {
        if d.runtime(&i).is_none() {
            continue;
        }
        let Ok(rec) = d.record(&i).await else {
            continue;
        };
        if let Some(node) = disk_node(&rec.spec, pool, name, &v.path) {
            running.push((i, node));
        }
    }
    if running.is_empty() {
        h.resize(name, req.size).await?;
    } else {
        if shrink {
            return Err(Error::conflict(format!(
                "volume {name} is in use by running instance {}; only growing is done live",
                running[0].0
            )));
        }
        if h.capabilities().block_devices {
            // QEMU cannot grow a block device; the host does, then QEMU
            // is told the new size.
            h.resize(name, req.size).await?;
        }
        for (inst, node) in &running {
            let rt = d
                .runtime(inst)
                .ok_or_else(|| Error::conflict(format!("instance {inst} is not running")))?;
            rt.monitor()
                .block_resize(node, req.size)
                .await
                .map_err(crate::monitor_error::qmp_err(inst, "resize a disk of"))?;
        }
    }
    Ok(view(d, pool, h.volume(name).await?).await)
}

/// The format node of the disk of `spec` on the volume.
fn disk_node(spec: &InstanceSpec, pool: &str, name: &str, path: &str) -> Option<String> {
    let id = format!("{pool}/{name}");
    spec.disks
        .iter()
        .enumerate()
        .find(|(_, d)| d.volume.as_deref() == Some(id.as_str()) || d.path == path)
        .map(|(i, d)| ferrovirt_core::disk::node_name(d, i))
}

/// Splits `pool/volume`.
pub fn split(field: &str, id: &str) -> Result<(String, String), Error> {
    id.split_once('/')
        .filter(|(p, v)| !p.is_empty() && !v.is_empty() && !v.contains('/'))
        .map(|(p, v)| (p.to_owned(), v.to_owned()))
        .ok_or_else(|| Error::validation(field, format!("{id:?} is not pool/volume")))
}

/// Fills `path` and `format` of a disk given as `volume` (the volume's
/// recorded format), and checks the disk's backing chain; `at` is the
/// disk's field path (`disks[2]`), or empty for a request that is one disk.
pub async fn resolve_disk(
    d: &Daemon,
    at: &str,
    disk: &mut ferrovirt_api::Disk,
) -> Result<(), Error> {
    if let Some(id) = disk.volume.clone() {
        let field = super::backing::field(at, "volume");
        let (pool, name) = split(&field, &id)?;
        let rec = super::record(d, &pool)
            .await
            .map_err(|e| Error::validation(&field, e.message))?;
        if !rec.active {
            return Err(Error::validation(
                field,
                format!("pool {pool} is not running"),
            ));
        }
        let h = super::driver(d, &rec.spec);
        let v = h
            .volume(&name)
            .await
            .map_err(|e| Error::validation(&field, e.message))?;
        let source = h.disk_source(&v)?;
        disk.path = source.location();
        disk.format = source.format();
    }
    super::backing::check_disk(d, at, disk).await
}

/// Resolves every volume disk of a spec and checks every disk's chain.
pub async fn resolve_disks(d: &Daemon, spec: &mut InstanceSpec) -> Result<(), Error> {
    for (i, disk) in spec.disks.iter_mut().enumerate() {
        resolve_disk(d, &format!("disks[{i}]"), disk).await?;
    }
    Ok(())
}

/// Before a start: every pool the disks live in must be running.
pub async fn check_pools(d: &Daemon, spec: &InstanceSpec) -> Result<(), Error> {
    for (i, disk) in spec.disks.iter().enumerate() {
        if let Some(id) = &disk.volume {
            let (pool, _) = split(&format!("disks[{i}].volume"), id)?;
            super::active(d, &pool).await?;
        }
    }
    Ok(())
}
