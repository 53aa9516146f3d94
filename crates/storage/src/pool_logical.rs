//! Logical pools: the volumes are the LVs of an LVM volume group.

use std::path::Path;

use ferrovirt_api::{PoolSpec, VolumeCreate, VolumeFormat};
use ferrovirt_core::runner::BoxFuture;
use ferrovirt_core::{DiskSource, Error, Space, StorageCaps, StorageDriver, VolumeInfo};

use crate::run::Runner;
use crate::{check_new_volume, lvm};

/// A pool over the volume group of its spec (default: the pool's name).
#[derive(Debug)]
pub struct LogicalPool {
    spec: PoolSpec,
    runner: Runner,
}

impl LogicalPool {
    pub fn new(spec: PoolSpec, runner: Runner) -> Self {
        Self { spec, runner }
    }

    fn vg(&self) -> &str {
        self.spec.source.vg.as_deref().unwrap_or(&self.spec.name)
    }

    async fn find(&self, name: &str) -> Result<VolumeInfo, Error> {
        crate::check_volume_name("volume", name)?;
        lvm::list(&*self.runner, self.vg())
            .await?
            .into_iter()
            .find(|v| v.name == name)
            .ok_or_else(|| crate::not_found(&self.spec.name, name))
    }
}

impl StorageDriver for LogicalPool {
    fn capabilities(&self) -> StorageCaps {
        StorageCaps {
            manages_volumes: true,
            block_devices: true,
            buildable: true,
            ..StorageCaps::default()
        }
    }

    fn directory(&self) -> Option<&Path> {
        None
    }

    fn check_spec(&self) -> Result<(), Error> {
        Ok(())
    }

    fn build(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let dev = self.spec.source.device.as_deref().ok_or_else(|| {
                Error::validation("source.device", "building a logical pool needs a device")
            })?;
            lvm::create_vg(&*self.runner, self.vg(), dev).await
        })
    }

    fn start(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(lvm::check_vg(&*self.runner, self.vg()))
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn space(&self) -> BoxFuture<'_, Result<Space, Error>> {
        Box::pin(lvm::space(&*self.runner, self.vg()))
    }

    fn volumes(&self) -> BoxFuture<'_, Result<Vec<VolumeInfo>, Error>> {
        Box::pin(lvm::list(&*self.runner, self.vg()))
    }

    fn volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<VolumeInfo, Error>> {
        Box::pin(self.find(name))
    }

    fn create<'a>(&'a self, req: &'a VolumeCreate) -> BoxFuture<'a, Result<VolumeInfo, Error>> {
        Box::pin(async move {
            check_new_volume(self, &self.spec.name, req).await?;
            if req.format != VolumeFormat::Raw {
                return Err(Error::validation(
                    "format",
                    "logical volumes are raw block devices",
                ));
            }
            lvm::create(&*self.runner, self.vg(), &req.name, req.size).await?;
            self.find(&req.name).await
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.find(name).await?;
            lvm::remove(&*self.runner, self.vg(), name).await
        })
    }

    fn resize<'a>(&'a self, name: &'a str, size: u64) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.find(name).await?;
            lvm::resize(&*self.runner, self.vg(), name, size).await
        })
    }

    fn wipe<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { lvm::wipe(&*self.runner, &self.find(name).await?).await })
    }

    fn disk_source(&self, volume: &VolumeInfo) -> Result<DiskSource, Error> {
        if volume.path.is_empty() {
            return Err(lvm::inactive(&volume.name));
        }
        Ok(DiskSource::BlockDevice {
            path: volume.path.clone().into(),
        })
    }
}
