//! Migration of an instance to another host.

use ferrovirt_api::{MigratePost, Operation};
use reqwest::Method;

use crate::transport::{Client, ClientError, enc};

impl Client {
    /// Starts a migration of `name`; returns the operation.
    pub async fn migrate(&self, name: &str, req: &MigratePost) -> Result<Operation, ClientError> {
        let path = format!("/1.0/instances/{}/migrate", enc(name));
        self.call(Method::POST, &path, Some(req)).await
    }
}
