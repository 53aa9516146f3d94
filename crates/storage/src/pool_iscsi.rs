//! iSCSI pools: the volumes are the LUNs of one target, made and removed
//! on the target; QEMU opens them with its own initiator.

use std::path::Path;

use ferrovirt_api::{PoolSpec, VolumeCreate};
use ferrovirt_core::disk_source::IscsiUrl;
use ferrovirt_core::runner::BoxFuture;
use ferrovirt_core::{DiskSource, Error, Space, StorageCaps, StorageDriver, VolumeInfo};

use crate::iscsi;
use crate::run::Runner;

/// A pool over the LUNs of `source.target` at `source.host`.
#[derive(Debug)]
pub struct IscsiPool {
    spec: PoolSpec,
    runner: Runner,
}

impl IscsiPool {
    pub fn new(spec: PoolSpec, runner: Runner) -> Self {
        Self { spec, runner }
    }

    fn fixed<T>(&self) -> Result<T, Error> {
        Err(Error::conflict(format!(
            "pool {}: the volumes of an iscsi pool are the target's LUNs; make or remove them on the target",
            self.spec.name
        )))
    }
}

impl StorageDriver for IscsiPool {
    fn capabilities(&self) -> StorageCaps {
        StorageCaps {
            remote: true,
            block_devices: true,
            ..StorageCaps::default()
        }
    }

    fn directory(&self) -> Option<&Path> {
        None
    }

    fn check_spec(&self) -> Result<(), Error> {
        let s = &self.spec.source;
        crate::need(&self.spec, "host", &s.host)?;
        crate::need(&self.spec, "target", &s.target)
    }

    fn build(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async {
            Err(Error::validation(
                "build",
                "an iscsi pool is built on the target, not here",
            ))
        })
    }

    fn start(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            iscsi::luns(&*self.runner, &self.spec.source)
                .await
                .map(drop)
        })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn space(&self) -> BoxFuture<'_, Result<Space, Error>> {
        Box::pin(async move {
            let total: u64 = iscsi::luns(&*self.runner, &self.spec.source)
                .await?
                .iter()
                .map(|l| l.virtual_size)
                .sum();
            Ok(Space {
                capacity: total,
                allocation: total,
                available: 0,
            })
        })
    }

    fn volumes(&self) -> BoxFuture<'_, Result<Vec<VolumeInfo>, Error>> {
        Box::pin(iscsi::luns(&*self.runner, &self.spec.source))
    }

    fn volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<VolumeInfo, Error>> {
        Box::pin(async move {
            crate::check_volume_name("volume", name)?;
            self.volumes()
                .await?
                .into_iter()
                .find(|v| v.name == name)
                .ok_or_else(|| crate::not_found(&self.spec.name, name))
        })
    }

    fn create<'a>(&'a self, _req: &'a VolumeCreate) -> BoxFuture<'a, Result<VolumeInfo, Error>> {
        Box::pin(async move { self.fixed() })
    }

    fn delete<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.fixed() })
    }

    fn resize<'a>(&'a self, _name: &'a str, _size: u64) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.fixed() })
    }

    fn wipe<'a>(&'a self, _name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.fixed() })
    }

    fn disk_source(&self, volume: &VolumeInfo) -> Result<DiskSource, Error> {
        IscsiUrl::parse(&volume.path)
            .map(DiskSource::Iscsi)
            .ok_or_else(|| {
                Error::internal(format!(
                    "LUN {} has no iSCSI URL ({:?})",
                    volume.name, volume.path
                ))
            })
    }
}
