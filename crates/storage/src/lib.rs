//! Storage pools on the host: each pool type maps onto the real tool that
//! manages it — files handled with qemu-img (dir, and fs/netfs once
//! mounted), LVM for logical pools, iscsi-ls for the LUNs of a target that
//! QEMU then opens with its own initiator.
//!
//! Everything here acts on the host and returns [`ferrovirt_core::Error`]s
//! that name what failed; records and locking belong to the daemon.

mod files;
mod iscsi;
mod lvm;
mod mount;
mod run;

use std::path::{Path, PathBuf};

use ferrovirt_api::{PoolSpec, PoolType, VolumeCreate, VolumeFormat};
use ferrovirt_core::Error;

pub use files::{PART_PREFIX, clone_file, finish, part_path, remove_parts};
pub use iscsi::lun_url;
pub use lvm::{has_device_mapper, inactive};

/// Capacity figures of a pool, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Space {
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
}

/// What a pool knows of one of its volumes without opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    pub path: String,
    pub format: VolumeFormat,
    pub virtual_size: u64,
    pub actual_size: u64,
    /// Whether the volume has a backing file (a linked clone).
    pub has_backing: bool,
}

/// A pool as the host sees it: its spec and the directory of file pools.
#[derive(Debug, Clone)]
pub struct PoolHost<'a> {
    pub spec: &'a PoolSpec,
    /// The directory of dir/fs/netfs pools (resolved default).
    pub dir: PathBuf,
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

impl PoolHost<'_> {
    fn kind(&self) -> PoolType {
        self.spec.kind
    }

    fn vg(&self) -> &str {
        self.spec.source.vg.as_deref().unwrap_or(&self.spec.name)
    }

    /// Checks what the pool's type needs in its spec.
    pub fn check_spec(&self) -> Result<(), Error> {
        let s = &self.spec.source;
        let need = |field: &str, v: &Option<String>| match v {
            Some(x) if !x.is_empty() => Ok(()),
            _ => Err(Error::validation(
                format!("source.{field}"),
                format!("a {} pool needs it", self.kind().as_str()),
            )),
        };
        match self.kind() {
            PoolType::Dir => Ok(()),
            PoolType::Fs => {
                need("device", &s.device)?;
                mount::check_filesystem(s.filesystem.as_deref())
            }
            PoolType::Netfs => {
                need("host", &s.host)?;
                need("export", &s.export)
            }
            PoolType::Logical => Ok(()),
            PoolType::Iscsi => {
                need("host", &s.host)?;
                need("target", &s.target)
            }
        }?;
        if let Some(p) = &self.spec.path
            && !Path::new(p).is_absolute()
        {
            return Err(Error::validation(
                "path",
                format!("{p:?} must be an absolute path"),
            ));
        }
        if !self.kind().has_files() && self.spec.path.is_some() {
            return Err(Error::validation(
                "path",
                format!("a {} pool has no directory", self.kind().as_str()),
            ));
        }
        Ok(())
    }

    /// Prepares the storage: makes the directory, formats the filesystem
    /// or creates the volume group. Destroys what the device held.
    pub async fn build(&self) -> Result<(), Error> {
        match self.kind() {
            PoolType::Dir | PoolType::Netfs => mkdir(&self.dir),
            PoolType::Fs => {
                mkdir(&self.dir)?;
                mount::mkfs(&self.spec.source).await
            }
            PoolType::Logical => {
                let dev = self.spec.source.device.as_deref().ok_or_else(|| {
                    Error::validation("source.device", "building a logical pool needs a device")
                })?;
                lvm::create_vg(self.vg(), dev).await
            }
            PoolType::Iscsi => Err(Error::validation(
                "build",
                "an iscsi pool is built on the target, not here",
            )),
        }
    }

    /// Makes the pool usable: mounts, checks the volume group or the target.
    pub async fn start(&self) -> Result<(), Error> {
        match self.kind() {
            PoolType::Dir => {
                if !self.dir.is_dir() {
                    return Err(Error::conflict(format!(
                        "pool {}: {} is not a directory (create the pool with build to make it)",
                        self.spec.name,
                        self.dir.display()
                    )));
                }
                Ok(())
            }
            PoolType::Fs | PoolType::Netfs => {
                mkdir(&self.dir)?;
                mount::mount(self.spec, &self.dir).await
            }
            PoolType::Logical => lvm::check_vg(self.vg()).await,
            PoolType::Iscsi => iscsi::luns(&self.spec.source).await.map(drop),
        }
    }

    /// Undoes [`start`](Self::start): unmounts fs and netfs pools.
    pub async fn stop(&self) -> Result<(), Error> {
        match self.kind() {
            PoolType::Fs | PoolType::Netfs => mount::unmount(&self.dir).await,
            _ => Ok(()),
        }
    }

    pub async fn space(&self) -> Result<Space, Error> {
        match self.kind() {
            PoolType::Dir | PoolType::Fs | PoolType::Netfs => files::space(&self.dir),
            PoolType::Logical => lvm::space(self.vg()).await,
            PoolType::Iscsi => {
                let total: u64 = iscsi::luns(&self.spec.source)
                    .await?
                    .iter()
                    .map(|l| l.virtual_size)
                    .sum();
                Ok(Space {
                    capacity: total,
                    allocation: total,
                    available: 0,
                })
            }
        }
    }

    pub async fn volumes(&self) -> Result<Vec<VolumeInfo>, Error> {
        match self.kind() {
            PoolType::Dir | PoolType::Fs | PoolType::Netfs => files::list(&self.dir),
            PoolType::Logical => lvm::list(self.vg()).await,
            PoolType::Iscsi => iscsi::luns(&self.spec.source).await,
        }
    }

    /// The volume called `name`.
    pub async fn volume(&self, name: &str) -> Result<VolumeInfo, Error> {
        check_volume_name("volume", name)?;
        let found = if self.kind().has_files() {
            // One stat, not a listing of the whole pool.
            files::find(&self.dir, name)
        } else {
            self.volumes().await?.into_iter().find(|v| v.name == name)
        };
        found.ok_or_else(|| {
            Error::not_found(format!("pool {} has no volume {name}", self.spec.name))
        })
    }

    fn fixed_volumes(&self) -> Result<(), Error> {
        if self.kind() == PoolType::Iscsi {
            return Err(Error::conflict(format!(
                "pool {}: the volumes of an iscsi pool are the target's LUNs; make or remove them on the target",
                self.spec.name
            )));
        }
        Ok(())
    }

    /// Where a new volume called `name` lives.
    pub fn volume_path(&self, name: &str) -> PathBuf {
        match self.kind() {
            PoolType::Logical => lvm::lv_path(self.vg(), name),
            _ => self.dir.join(name),
        }
    }

    pub async fn create(&self, req: &VolumeCreate) -> Result<VolumeInfo, Error> {
        self.fixed_volumes()?;
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
        if self.volume(&req.name).await.is_ok() {
            return Err(Error::conflict(format!(
                "pool {} already has a volume {}",
                self.spec.name, req.name
            )));
        }
        match self.kind() {
            PoolType::Logical => {
                if req.format != VolumeFormat::Raw {
                    return Err(Error::validation(
                        "format",
                        "logical volumes are raw block devices",
                    ));
                }
                lvm::create(self.vg(), &req.name, req.size).await?;
            }
            _ => files::create(&self.dir, req).await?,
        }
        self.volume(&req.name).await
    }

    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        self.fixed_volumes()?;
        let vol = self.volume(name).await?;
        match self.kind() {
            PoolType::Logical => lvm::remove(self.vg(), name).await,
            _ => std::fs::remove_file(&vol.path)
                .map_err(|e| Error::internal(format!("cannot delete volume {name}: {e}"))),
        }
    }

    /// Resizes a volume that no running guest has open.
    pub async fn resize(&self, name: &str, size: u64) -> Result<(), Error> {
        self.fixed_volumes()?;
        let vol = self.volume(name).await?;
        let shrink = size < vol.virtual_size;
        match self.kind() {
            PoolType::Logical => lvm::resize(self.vg(), name, size).await,
            _ => files::resize(&vol, size, shrink).await,
        }
    }

    /// Zeroes a volume's content, keeping its size and format.
    pub async fn wipe(&self, name: &str) -> Result<(), Error> {
        self.fixed_volumes()?;
        let vol = self.volume(name).await?;
        match self.kind() {
            PoolType::Logical => lvm::wipe(&vol).await,
            _ => files::wipe(&vol).await,
        }
    }
}

fn mkdir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_stay_in_their_pool() {
        for ok in ["disk.qcow2", "a", "root_1+x-2"] {
            check_volume_name("name", ok).unwrap();
        }
        for bad in ["", "../etc/passwd", "a/b", ".hidden", "-rf", "a b", "x\0"] {
            let err = check_volume_name("name", bad).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("name"), "{bad}");
        }
    }

    #[test]
    fn specs_need_their_type_fields() {
        let spec: PoolSpec = serde_json::from_value(serde_json::json!({
            "name": "p", "type": "iscsi", "source": {"host": "127.0.0.1"}}))
        .unwrap();
        let host = PoolHost {
            spec: &spec,
            dir: "/x".into(),
        };
        assert_eq!(
            host.check_spec().unwrap_err().field.as_deref(),
            Some("source.target")
        );
        let spec: PoolSpec = serde_json::from_value(serde_json::json!({
            "name": "p", "type": "fs", "source": {"device": "/dev/x", "filesystem": "ntfs"}}))
        .unwrap();
        let host = PoolHost {
            spec: &spec,
            dir: "/x".into(),
        };
        assert_eq!(
            host.check_spec().unwrap_err().field.as_deref(),
            Some("source.filesystem")
        );
        let spec: PoolSpec = serde_json::from_value(serde_json::json!({
            "name": "p", "path": "rel"}))
        .unwrap();
        let host = PoolHost {
            spec: &spec,
            dir: "/x".into(),
        };
        assert_eq!(
            host.check_spec().unwrap_err().field.as_deref(),
            Some("path")
        );
    }
}
