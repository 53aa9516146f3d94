//! `/1.0/pools`: storage pools and their volumes.

use ferrovirt_api::{
    Operation, Pool, PoolAction, PoolCreate, PoolSpec, PoolStatePut, Volume, VolumeClone,
    VolumeConvert, VolumeCreate, VolumeExport, VolumeImport, VolumeResize,
};
use reqwest::Method;

use crate::transport::{Client, ClientError, enc};

fn pool_path(name: &str) -> String {
    format!("/1.0/pools/{}", enc(name))
}

fn volume_path(pool: &str, name: &str) -> String {
    format!("{}/volumes/{}", pool_path(pool), enc(name))
}

impl Client {
    pub async fn pools(&self) -> Result<Vec<Pool>, ClientError> {
        self.get("/1.0/pools").await
    }

    pub async fn pool(&self, name: &str) -> Result<Pool, ClientError> {
        self.get(&pool_path(name)).await
    }

    pub async fn create_pool(&self, req: &PoolCreate) -> Result<Pool, ClientError> {
        self.call(Method::POST, "/1.0/pools", Some(req)).await
    }

    pub async fn replace_pool(&self, spec: &PoolSpec) -> Result<Pool, ClientError> {
        self.call(Method::PUT, &pool_path(&spec.name), Some(spec))
            .await
    }

    /// Deletes a pool; `volumes` deletes its volumes too.
    pub async fn delete_pool(&self, name: &str, volumes: bool) -> Result<(), ClientError> {
        let path = format!("{}?volumes={volumes}", pool_path(name));
        self.delete_path(&path).await
    }

    /// Starts, stops or refreshes a pool.
    pub async fn pool_action(&self, name: &str, action: PoolAction) -> Result<Pool, ClientError> {
        let path = format!("{}/state", pool_path(name));
        self.call(Method::PUT, &path, Some(&PoolStatePut { action }))
            .await
    }

    pub async fn volumes(&self, pool: &str) -> Result<Vec<Volume>, ClientError> {
        self.get(&format!("{}/volumes", pool_path(pool))).await
    }

    pub async fn volume(&self, pool: &str, name: &str) -> Result<Volume, ClientError> {
        self.get(&volume_path(pool, name)).await
    }

    pub async fn create_volume(
        &self,
        pool: &str,
        req: &VolumeCreate,
    ) -> Result<Volume, ClientError> {
        let path = format!("{}/volumes", pool_path(pool));
        self.call(Method::POST, &path, Some(req)).await
    }

    pub async fn delete_volume(&self, pool: &str, name: &str) -> Result<(), ClientError> {
        self.delete_path(&volume_path(pool, name)).await
    }

    pub async fn resize_volume(
        &self,
        pool: &str,
        name: &str,
        req: &VolumeResize,
    ) -> Result<Volume, ClientError> {
        let path = format!("{}/resize", volume_path(pool, name));
        self.call(Method::POST, &path, Some(req)).await
    }

    /// Zeroes a volume's content.
    pub async fn wipe_volume(&self, pool: &str, name: &str) -> Result<Volume, ClientError> {
        let path = format!("{}/wipe", volume_path(pool, name));
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// Starts copying a volume; returns the operation.
    pub async fn clone_volume(
        &self,
        pool: &str,
        name: &str,
        req: &VolumeClone,
    ) -> Result<Operation, ClientError> {
        let path = format!("{}/clone", volume_path(pool, name));
        self.call(Method::POST, &path, Some(req)).await
    }

    /// Starts rewriting a volume in another format; returns the operation.
    pub async fn convert_volume(
        &self,
        pool: &str,
        name: &str,
        req: &VolumeConvert,
    ) -> Result<Operation, ClientError> {
        let path = format!("{}/convert", volume_path(pool, name));
        self.call(Method::POST, &path, Some(req)).await
    }

    /// Starts writing a volume to a host file; returns the operation.
    pub async fn export_volume(
        &self,
        pool: &str,
        name: &str,
        req: &VolumeExport,
    ) -> Result<Operation, ClientError> {
        let path = format!("{}/export", volume_path(pool, name));
        self.call(Method::POST, &path, Some(req)).await
    }

    pub async fn import_volume(
        &self,
        pool: &str,
        req: &VolumeImport,
    ) -> Result<Operation, ClientError> {
        let path = format!("{}/import", pool_path(pool));
        self.call(Method::POST, &path, Some(req)).await
    }
}
