//! Snapshots, clones, save and restore of instances.

use ferrovirt_api::{ClonePost, Operation, RestorePost, SavePost, Snapshot, SnapshotsPost};
use reqwest::Method;

use crate::transport::{Client, ClientError, enc};

fn snapshots_path(name: &str) -> String {
    format!("/1.0/instances/{}/snapshots", enc(name))
}

fn snapshot_path(name: &str, snap: &str) -> String {
    format!("{}/{}", snapshots_path(name), enc(snap))
}

impl Client {
    pub async fn snapshots(&self, name: &str) -> Result<Vec<Snapshot>, ClientError> {
        self.get(&snapshots_path(name)).await
    }

    pub async fn snapshot(&self, name: &str, snap: &str) -> Result<Snapshot, ClientError> {
        self.get(&snapshot_path(name, snap)).await
    }

    /// Starts taking a snapshot; returns the operation.
    pub async fn create_snapshot(
        &self,
        name: &str,
        req: &SnapshotsPost,
    ) -> Result<Operation, ClientError> {
        self.call(Method::POST, &snapshots_path(name), Some(req))
            .await
    }

    pub async fn revert_snapshot(&self, name: &str, snap: &str) -> Result<Operation, ClientError> {
        let path = format!("{}/revert", snapshot_path(name, snap));
        self.call(Method::POST, &path, None::<&()>).await
    }

    pub async fn delete_snapshot(&self, name: &str, snap: &str) -> Result<Operation, ClientError> {
        self.call(Method::DELETE, &snapshot_path(name, snap), None::<&()>)
            .await
    }

    pub async fn clone_instance(
        &self,
        name: &str,
        req: &ClonePost,
    ) -> Result<Operation, ClientError> {
        let path = format!("/1.0/instances/{}/clone", enc(name));
        self.call(Method::POST, &path, Some(req)).await
    }

    pub async fn save_instance(
        &self,
        name: &str,
        req: &SavePost,
    ) -> Result<Operation, ClientError> {
        let path = format!("/1.0/instances/{}/save", enc(name));
        self.call(Method::POST, &path, Some(req)).await
    }

    pub async fn restore(&self, req: &RestorePost) -> Result<Operation, ClientError> {
        self.call(Method::POST, "/1.0/restore", Some(req)).await
    }
}
