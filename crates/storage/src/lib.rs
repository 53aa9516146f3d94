//! Storage pools on the host, one [`StorageDriver`] per pool type, each
//! mapping onto the real tool that manages it: image files handled with
//! qemu-img ([`FilePool`]: dir, and fs/netfs once mounted), LVM for
//! logical pools ([`LogicalPool`]), iscsi-ls for the LUNs of a target that
//! QEMU then opens with its own initiator ([`IscsiPool`]).
//!
//! Every tool runs through the daemon's [`CommandRunner`]; everything here
//! returns [`ferrovirt_core::Error`]s that name what failed. Records and
//! locking belong to the daemon, which branches on
//! [`StorageCaps`](ferrovirt_core::StorageCaps), never on pool types.

mod files;
mod image;
mod iscsi;
mod lvm;
mod mount;
mod pool_files;
mod pool_iscsi;
mod pool_logical;
pub mod record;
mod run;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferrovirt_api::{PoolSpec, PoolType, VolumeCreate};
use ferrovirt_core::{CommandRunner, Error, StorageDriver};

pub use files::{PART_PREFIX, clone_file, finish, part_path};
pub use iscsi::lun_url;
pub use lvm::{has_device_mapper, inactive};
pub use pool_files::FilePool;
pub use pool_iscsi::IscsiPool;
pub use pool_logical::LogicalPool;

/// The driver of a pool; `dir` is the directory of file pools (their
/// `path`, or the daemon's default place for them).
pub fn driver(
    spec: &PoolSpec,
    dir: PathBuf,
    runner: Arc<dyn CommandRunner>,
) -> Box<dyn StorageDriver> {
    let spec = spec.clone();
    match spec.kind {
        PoolType::Dir | PoolType::Fs | PoolType::Netfs => {
            Box::new(FilePool::new(spec, dir, runner))
        }
        PoolType::Logical => Box::new(LogicalPool::new(spec, runner)),
        PoolType::Iscsi => Box::new(IscsiPool::new(spec, runner)),
    }
}

/// Checks a pool's spec: what its type needs, and a directory only where
/// volumes are files.
pub fn check_spec(spec: &PoolSpec, driver: &dyn StorageDriver) -> Result<(), Error> {
    driver.check_spec()?;
    if let Some(p) = &spec.path
        && !Path::new(p).is_absolute()
    {
        return Err(Error::validation(
            "path",
            format!("{p:?} must be an absolute path"),
        ));
    }
    if !driver.capabilities().files && spec.path.is_some() {
        return Err(Error::validation(
            "path",
            format!("a {} pool has no directory", spec.kind.as_str()),
        ));
    }
    Ok(())
}

/// Checks a volume name: it must stay inside its pool and be a plain file
/// or LV name.
pub fn check_volume_name(field: &str, name: &str) -> Result<(), Error> {
    let bad = |why: &str| Err(Error::validation(field, format!("{name:?} {why}")));
    if name.is_empty() || name.len() > 128 {
        return bad("must be 1-128 characters");
    }
    if name.starts_with(['.', '-']) {
        return bad("must not start with '.' or '-'");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')))
    {
        return bad(&format!(
            "contains {c:?}; use letters, digits, '.', '_', '+' and '-'"
        ));
    }
    Ok(())
}

/// A spec field the pool's type needs.
fn need(spec: &PoolSpec, field: &str, value: &Option<String>) -> Result<(), Error> {
    match value {
        Some(x) if !x.is_empty() => Ok(()),
        _ => Err(Error::validation(
            format!("source.{field}"),
            format!("a {} pool needs it", spec.kind.as_str()),
        )),
    }
}

fn not_found(pool: &str, name: &str) -> Error {
    Error::not_found(format!("pool {pool} has no volume {name}"))
}

/// What every new volume must be: a good name, a native format, a size,
/// and not there yet.
async fn check_new_volume(
    driver: &dyn StorageDriver,
    pool: &str,
    req: &VolumeCreate,
) -> Result<(), Error> {
    check_volume_name("name", &req.name)?;
    if !req.format.is_native() {
        return Err(Error::validation(
            "format",
            format!(
                "volumes are raw or qcow2; {} is for import",
                req.format.as_str()
            ),
        ));
    }
    if req.size == 0 {
        return Err(Error::validation("size", "must be more than 0"));
    }
    if driver.volume(&req.name).await.is_ok() {
        return Err(Error::conflict(format!(
            "pool {pool} already has a volume {}",
            req.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
