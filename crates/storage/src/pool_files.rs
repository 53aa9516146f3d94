//! dir, fs and netfs pools: volumes are image files in a directory; fs and
//! netfs pools mount a filesystem or an NFS export there first.

use std::path::{Path, PathBuf};

use ferrovirt_api::{DiskFormat, PoolSpec, PoolType, VolumeCreate, VolumeFormat};
use ferrovirt_core::runner::BoxFuture;
use ferrovirt_core::{DiskSource, Error, Space, StorageCaps, StorageDriver, VolumeInfo};

use crate::run::Runner;
use crate::{check_new_volume, files, mount, not_found};

/// A pool whose volumes are files in `dir`.
#[derive(Debug)]
pub struct FilePool {
    spec: PoolSpec,
    dir: PathBuf,
    runner: Runner,
}

impl FilePool {
    pub fn new(spec: PoolSpec, dir: PathBuf, runner: Runner) -> Self {
        Self { spec, dir, runner }
    }

    fn mounted(&self) -> bool {
        matches!(self.spec.kind, PoolType::Fs | PoolType::Netfs)
    }

    fn mkdir(&self) -> Result<(), Error> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", self.dir.display())))
    }

    fn find(&self, name: &str) -> Result<VolumeInfo, Error> {
        crate::check_volume_name("volume", name)?;
        // One stat, not a listing of the whole pool.
        files::find(&self.dir, name).ok_or_else(|| not_found(&self.spec.name, name))
    }
}

impl StorageDriver for FilePool {
    fn capabilities(&self) -> StorageCaps {
        StorageCaps {
            manages_volumes: true,
            files: true,
            qcow2: true,
            linked_clones: true,
            reflink: true,
            needs_mount: self.mounted(),
            remote: self.spec.kind == PoolType::Netfs,
            block_devices: false,
            buildable: true,
            owns_directory: self.spec.kind == PoolType::Dir && self.spec.path.is_none(),
        }
    }

    fn directory(&self) -> Option<&Path> {
        Some(&self.dir)
    }

    fn check_spec(&self) -> Result<(), Error> {
        let s = &self.spec.source;
        if self.mounted() {
            mount::check_options(s.options.as_deref())?;
        }
        match self.spec.kind {
            PoolType::Fs => {
                crate::need(&self.spec, "device", &s.device)?;
                mount::check_filesystem(s.filesystem.as_deref())
            }
            PoolType::Netfs => {
                crate::need(&self.spec, "host", &s.host)?;
                crate::need(&self.spec, "export", &s.export)
            }
            _ => Ok(()),
        }
    }

    fn build(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.mkdir()?;
            if self.spec.kind == PoolType::Fs {
                mount::mkfs(&*self.runner, &self.spec.source).await?;
            }
            Ok(())
        })
    }

    fn start(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            if self.mounted() {
                self.mkdir()?;
                mount::mount(&*self.runner, &self.spec, &self.dir).await?;
            } else if !self.dir.is_dir() {
                return Err(Error::conflict(format!(
                    "pool {}: {} is not a directory (create the pool with build to make it)",
                    self.spec.name,
                    self.dir.display()
                )));
            }
            files::remove_parts(&self.dir);
            Ok(())
        })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            if self.mounted() {
                mount::unmount(&*self.runner, &self.dir).await?;
            }
            Ok(())
        })
    }

    fn space(&self) -> BoxFuture<'_, Result<Space, Error>> {
        Box::pin(async move { files::space(&self.dir) })
    }

    fn volumes(&self) -> BoxFuture<'_, Result<Vec<VolumeInfo>, Error>> {
        Box::pin(async move { files::list(&self.dir) })
    }

    fn volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<VolumeInfo, Error>> {
        Box::pin(async move { self.find(name) })
    }

    fn create<'a>(&'a self, req: &'a VolumeCreate) -> BoxFuture<'a, Result<VolumeInfo, Error>> {
        Box::pin(async move {
            check_new_volume(self, &self.spec.name, req).await?;
            files::create(&*self.runner, &self.dir, req).await?;
            self.find(&req.name)
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let vol = self.find(name)?;
            std::fs::remove_file(&vol.path)
                .map_err(|e| Error::internal(format!("cannot delete volume {name}: {e}")))?;
            crate::record::forget(Path::new(&vol.path));
            Ok(())
        })
    }

    fn resize<'a>(&'a self, name: &'a str, size: u64) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let vol = self.find(name)?;
            let shrink = size < vol.virtual_size;
            files::resize(&*self.runner, &vol, size, shrink).await
        })
    }

    fn wipe<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { files::wipe(&*self.runner, &self.find(name)?).await })
    }

    fn disk_source(&self, volume: &VolumeInfo) -> Result<DiskSource, Error> {
        Ok(DiskSource::File {
            path: volume.path.clone().into(),
            format: match volume.format {
                VolumeFormat::Qcow2 => DiskFormat::Qcow2,
                _ => DiskFormat::Raw,
            },
        })
    }
}
