//! Long volume copies as operations with progress and cancel: import (any
//! format qemu-img reads, the disk side of V2V), export, clone (linked,
//! reflink, or a sparse copy) and convert. Every copy is written under a
//! part name and renamed into place when complete, so a failure, a cancel
//! or a killed daemon never leaves a half-made volume.

use std::path::{Path, PathBuf};

use ferrovirt_api::{
    Operation, VolumeClone, VolumeConvert, VolumeExport, VolumeFormat, VolumeImport,
};
use ferrovirt_core::Error;
use ferrovirt_qemu::img::{self, QemuImg};
use ferrovirt_storage::record::{self, ImageRecord};
use ferrovirt_storage::{check_volume_name, finish, part_path};

use super::volumes::{find, lock_key};
use crate::daemon::Daemon;
use crate::operations::OpCtx;

fn img_err(doing: String) -> impl Fn(img::ImgError) -> Error {
    move |e| Error::internal(format!("{doing}: {}", ferrovirt_core::error::chain(&e)))
}

/// The file pool a copy goes into, checked for the new name.
async fn target(d: &Daemon, pool: &str, name: &str, field: &str) -> Result<PathBuf, Error> {
    let rec = super::active(d, pool).await?;
    let h = super::driver(d, &rec.spec);
    let Some(dir) = h.directory().filter(|_| h.capabilities().files) else {
        return Err(Error::validation(
            field,
            format!(
                "pool {pool} is {}; copies go into dir, fs and netfs pools",
                rec.spec.kind.as_str()
            ),
        ));
    };
    check_volume_name(field, name)?;
    if h.volume(name).await.is_ok() {
        return Err(Error::conflict(format!(
            "pool {pool} already has a volume {name}"
        )));
    }
    Ok(dir.join(name))
}

/// Runs `copy` into the part file of `dest`, recording it as `rec` and
/// renaming it into place on success; a cancel kills the copy (qemu-img
/// dies with its future).
async fn copy_into<F>(
    ctx: &OpCtx,
    dest: &Path,
    rec: Option<&ImageRecord>,
    copy: F,
) -> Result<(), Error>
where
    F: std::future::Future<Output = Result<(), Error>>,
{
    let part = part_path(dest);
    let result = tokio::select! {
        r = copy => r,
        () = ctx.cancelled() => Err(Error::conflict("cancelled")),
    };
    finish(result, &part, dest, rec)
}

/// The record of a self-contained copy in a native format.
fn plain(format: VolumeFormat) -> ImageRecord {
    ImageRecord::plain(format.disk_format().unwrap_or_default())
}

/// qemu-img convert of `job` into the part file of its destination,
/// reporting progress; the copy is recorded when it is a volume.
async fn convert(img: QemuImg<'_>, ctx: &OpCtx, job: &Copy) -> Result<(), Error> {
    let total = std::fs::metadata(&job.src).map(|m| m.len()).unwrap_or(0);
    let part = part_path(&job.dest);
    let rec = job.record.then(|| plain(job.format));
    let stage = job.stage;
    copy_into(ctx, &job.dest, rec.as_ref(), async {
        img.convert_from(
            &job.src,
            job.src_format.as_str(),
            &part,
            job.format.as_str(),
            None,
            |p| {
                let done = (total as f64 * p / 100.0) as u64;
                ctx.progress(stage, p, (total > 0).then_some((done, total)));
            },
        )
        .await
        .map_err(img_err(format!("{stage} failed")))
    })
    .await
}

fn spawn<F, Fut>(d: &Daemon, description: String, resources: Vec<String>, task: F) -> Operation
where
    F: FnOnce(OpCtx) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>> + Send + 'static,
{
    d.operations.spawn(description, resources, true, task)
}

fn resource(pool: &str, name: &str) -> String {
    format!("/1.0/pools/{pool}/volumes/{name}")
}

pub async fn import(d: &Daemon, pool: &str, req: VolumeImport) -> Result<Operation, Error> {
    let dest = target(d, pool, &req.name, "name").await?;
    let src = PathBuf::from(&req.source);
    if !src.is_absolute() {
        return Err(Error::validation(
            "source",
            format!("{:?} must be an absolute path", req.source),
        ));
    }
    if !src.is_file() {
        return Err(Error::validation(
            "source",
            format!("{} does not exist", req.source),
        ));
    }
    let src_format = identify(d, &req).await?;
    let format = req.format.unwrap_or(VolumeFormat::Qcow2);
    native("format", format)?;
    Ok(spawn_copy(
        d,
        format!("import {} as {pool}/{}", req.source, req.name),
        vec![resource(pool, &req.name)],
        lock_key(pool, &req.name),
        Copy {
            src,
            src_format,
            dest,
            format,
            record: true,
            stage: "importing",
        },
    ))
}

/// The format of a file to import: the one the user declares, or the one
/// qemu-img finds (under limits) when they do not. The file comes from
/// outside: it must be self-contained, as the copy would read the backing
/// or data file its header names.
async fn identify(d: &Daemon, req: &VolumeImport) -> Result<VolumeFormat, Error> {
    let declared = req.source_format.map(VolumeFormat::as_str);
    let info = d
        .img()
        .identify(Path::new(&req.source), declared)
        .await
        .map_err(|e| {
            Error::validation(
                "source",
                format!(
                    "qemu-img cannot read it: {}",
                    ferrovirt_core::error::chain(&e)
                ),
            )
        })?;
    let format = VolumeFormat::from_qemu(&info.format).ok_or_else(|| {
        Error::validation(
            "source",
            format!(
                "{} images cannot be imported (raw, qcow2, vmdk, vdi, vhdx, vpc)",
                info.format
            ),
        )
    })?;
    let named = info
        .named_backing()
        .map(|b| ("backing file", b))
        .or(info.data_file().map(|f| ("external data file", f)));
    if let Some((what, file)) = named {
        return Err(Error::validation(
            "source",
            format!(
                "{} is a {} image naming {what} {file}; imports take self-contained images{}",
                req.source,
                info.format,
                if declared.is_none() {
                    " (give source_format raw if the file is raw)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(format)
}

/// One qemu-img copy of an operation; `record` says whether the copy is
/// a volume (recorded with its format) or a file outside pools (an export).
struct Copy {
    src: PathBuf,
    src_format: VolumeFormat,
    dest: PathBuf,
    format: VolumeFormat,
    record: bool,
    stage: &'static str,
}

/// Runs `job` as a cancellable operation holding the lock `lock`.
fn spawn_copy(
    d: &Daemon,
    description: String,
    resources: Vec<String>,
    lock: String,
    job: Copy,
) -> Operation {
    let dd = d.clone();
    spawn(d, description, resources, move |ctx| async move {
        let _guard = dd.locks.lock(&lock).await;
        convert(dd.img(), &ctx, &job).await
    })
}

fn native(field: &str, f: VolumeFormat) -> Result<(), Error> {
    if !f.is_native() {
        return Err(Error::validation(
            field,
            format!("volumes are raw or qcow2, not {}", f.as_str()),
        ));
    }
    Ok(())
}

pub async fn export(
    d: &Daemon,
    pool: &str,
    name: &str,
    req: VolumeExport,
) -> Result<Operation, Error> {
    let v = find(d, pool, name).await?;
    if v.path.is_empty() || !Path::new(&v.path).is_file() {
        return Err(Error::validation(
            "volume",
            format!("volume {name} is not a file; export works on file volumes"),
        ));
    }
    let dest = PathBuf::from(&req.path);
    if !dest.is_absolute() {
        return Err(Error::validation(
            "path",
            format!("{:?} must be an absolute path", req.path),
        ));
    }
    if dest.exists() {
        return Err(Error::validation(
            "path",
            format!("{} already exists", req.path),
        ));
    }
    if !dest.parent().is_some_and(Path::is_dir) {
        return Err(Error::validation(
            "path",
            format!("the directory of {} does not exist", req.path),
        ));
    }
    let format = req.format.unwrap_or(v.format);
    Ok(spawn_copy(
        d,
        format!("export {pool}/{name} to {}", req.path),
        vec![resource(pool, name)],
        lock_key(pool, name),
        Copy {
            src: PathBuf::from(&v.path),
            src_format: v.format,
            dest,
            format,
            record: false,
            stage: "exporting",
        },
    ))
}

pub async fn clone(
    d: &Daemon,
    pool: &str,
    name: &str,
    req: VolumeClone,
) -> Result<Operation, Error> {
    let v = find(d, pool, name).await?;
    let to_pool = req.pool.clone().unwrap_or_else(|| pool.to_owned());
    let dest = target(d, &to_pool, &req.name, "name").await?;
    if v.path.is_empty() || !Path::new(&v.path).is_file() {
        return Err(Error::validation(
            "volume",
            format!("volume {name} is not a file; clone works on file volumes"),
        ));
    }
    let format = req.format.unwrap_or(v.format);
    native("format", format)?;
    if req.linked && req.format.is_some_and(|f| f != VolumeFormat::Qcow2) {
        return Err(Error::validation(
            "format",
            "a linked clone is a qcow2 overlay",
        ));
    }
    let users: Vec<String> = super::volumes::used_by(d, pool, name, &v.path)
        .await
        .into_iter()
        .filter(|i| d.runtime(i).is_some())
        .collect();
    if !users.is_empty() {
        return Err(Error::conflict(format!(
            "volume {name} is in use by running instance {}; its content is changing, so stop it first",
            users[0]
        )));
    }
    let src = PathBuf::from(&v.path);
    let dd = d.clone();
    let (pool, name) = (pool.to_owned(), name.to_owned());
    let kind = if req.linked { "linked" } else { "full" };
    Ok(spawn(
        d,
        format!("{kind} clone of {pool}/{name} as {to_pool}/{}", req.name),
        vec![resource(&pool, &name), resource(&to_pool, &req.name)],
        move |ctx| async move {
            let _guard = dd.locks.lock(&lock_key(&to_pool, &req.name)).await;
            let part = part_path(&dest);
            if req.linked {
                let base_format = v.format.disk_format().unwrap_or_default();
                let rec = ImageRecord::overlay(&v.path, base_format);
                return copy_into(&ctx, &dest, Some(&rec), async {
                    dd.img()
                        .create_overlay_sized(&part, &src, v.format.as_str(), v.virtual_size)
                        .await
                        .map_err(img_err("cannot create the linked clone".into()))
                })
                .await;
            }
            if format == v.format {
                // Same format: share extents where the filesystem can.
                if ferrovirt_storage::clone_file(&src, &part)? {
                    ctx.set_result(serde_json::json!({"method": "reflink"}));
                    // A reflink of a linked clone keeps its backing file.
                    let rec = record::read(&src).unwrap_or(plain(format));
                    return finish(Ok(()), &part, &dest, Some(&rec));
                }
            }
            ctx.set_result(serde_json::json!({"method": "copy"}));
            let job = Copy {
                src,
                src_format: v.format,
                dest,
                format,
                record: true,
                stage: "copying",
            };
            convert(dd.img(), &ctx, &job).await
        },
    ))
}

pub async fn convert_volume(
    d: &Daemon,
    pool: &str,
    name: &str,
    req: VolumeConvert,
) -> Result<Operation, Error> {
    let rec = super::active(d, pool).await?;
    if super::driver(d, &rec.spec).capabilities().block_devices {
        return Err(Error::validation(
            "volume",
            format!(
                "volumes of {} pools are raw block devices",
                rec.spec.kind.as_str()
            ),
        ));
    }
    native("format", req.format)?;
    let v = find(d, pool, name).await?;
    let dest = match &req.name {
        Some(new) => target(d, pool, new, "name").await?,
        None => {
            let users = super::volumes::used_by(d, pool, name, &v.path).await;
            if !users.is_empty() {
                return Err(Error::conflict(format!(
                    "cannot convert volume {name} in place: instance(s) {} use it",
                    users.join(", ")
                )));
            }
            PathBuf::from(&v.path)
        }
    };
    let new_name = req.name.clone().unwrap_or_else(|| name.to_owned());
    Ok(spawn_copy(
        d,
        format!(
            "convert {pool}/{name} to {} as {new_name}",
            req.format.as_str()
        ),
        vec![resource(pool, name)],
        lock_key(pool, &new_name),
        Copy {
            src: PathBuf::from(&v.path),
            src_format: v.format,
            dest,
            format: req.format,
            record: true,
            stage: "converting",
        },
    ))
}
