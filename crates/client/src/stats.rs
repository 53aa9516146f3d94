//! Usage figures of running instances, as JSON or Prometheus text.

use ferrovirt_api::InstanceStats;
use reqwest::Method;

use crate::transport::{Client, ClientError, enc};

impl Client {
    pub async fn instance_stats(&self, name: &str) -> Result<InstanceStats, ClientError> {
        self.get(&format!("/1.0/instances/{}/stats", enc(name)))
            .await
    }

    pub async fn stats(&self) -> Result<Vec<InstanceStats>, ClientError> {
        self.get("/1.0/stats").await
    }

    /// The Prometheus exposition text of `/metrics`.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        self.send(Method::GET, "/metrics", None::<&()>)
            .await?
            .text()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }
}
