//! Devices of an instance: disks (attach, detach, media, I/O limits) and NICs.

use ferrovirt_api::{Disk, Instance, IoLimits, MediaPut, Nic};
use reqwest::Method;

use crate::transport::{Client, ClientError, enc};

fn disk_path(name: &str, disk: &str) -> String {
    format!("/1.0/instances/{}/disks/{}", enc(name), enc(disk))
}

impl Client {
    pub async fn attach_disk(&self, name: &str, disk: &Disk) -> Result<Instance, ClientError> {
        let path = format!("/1.0/instances/{}/disks", enc(name));
        self.call(Method::POST, &path, Some(disk)).await
    }

    pub async fn detach_disk(&self, name: &str, disk: &str) -> Result<Instance, ClientError> {
        self.call(Method::DELETE, &disk_path(name, disk), None::<&()>)
            .await
    }

    pub async fn change_media(
        &self,
        name: &str,
        disk: &str,
        req: &MediaPut,
    ) -> Result<Instance, ClientError> {
        let path = format!("{}/media", disk_path(name, disk));
        self.call(Method::PUT, &path, Some(req)).await
    }

    pub async fn set_disk_limits(
        &self,
        name: &str,
        disk: &str,
        limits: &IoLimits,
    ) -> Result<Instance, ClientError> {
        let path = format!("{}/limits", disk_path(name, disk));
        self.call(Method::PUT, &path, Some(limits)).await
    }

    pub async fn add_nic(&self, name: &str, nic: &Nic) -> Result<Instance, ClientError> {
        let path = format!("/1.0/instances/{}/nics", enc(name));
        self.call(Method::POST, &path, Some(nic)).await
    }

    pub async fn remove_nic(&self, name: &str, mac: &str) -> Result<Instance, ClientError> {
        let path = format!("/1.0/instances/{}/nics/{}", enc(name), enc(mac));
        self.call(Method::DELETE, &path, None::<&()>).await
    }
}
