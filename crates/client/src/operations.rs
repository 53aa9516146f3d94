//! `/1.0/operations`: long-running work, its progress and cancellation.

use ferrovirt_api::{ErrorBody, Operation, OperationStatus};
use reqwest::Method;

use crate::transport::{Client, ClientError, enc};

impl Client {
    pub async fn operations(&self) -> Result<Vec<Operation>, ClientError> {
        self.get("/1.0/operations").await
    }

    pub async fn operation(&self, id: &str) -> Result<Operation, ClientError> {
        self.get(&format!("/1.0/operations/{}", enc(id))).await
    }

    /// Waits up to `timeout_secs` for the operation to finish; returns it either way.
    pub async fn wait_operation(
        &self,
        id: &str,
        timeout_secs: f64,
    ) -> Result<Operation, ClientError> {
        self.get(&format!(
            "/1.0/operations/{}/wait?timeout={timeout_secs}",
            enc(id)
        ))
        .await
    }

    pub async fn cancel_operation(&self, id: &str) -> Result<Operation, ClientError> {
        let path = format!("/1.0/operations/{}", enc(id));
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    /// Waits for an operation to finish; a failed or cancelled one becomes
    /// an error carrying its message.
    pub async fn finish(&self, op: &Operation) -> Result<Operation, ClientError> {
        loop {
            let op = self.wait_operation(&op.id.to_string(), 30.0).await?;
            match op.status {
                OperationStatus::Running => continue,
                OperationStatus::Success => return Ok(op),
                _ => {
                    return Err(ClientError::Api(ErrorBody {
                        error: op
                            .error
                            .clone()
                            .unwrap_or_else(|| format!("{} failed", op.description)),
                        code: 500,
                        details: None,
                    }));
                }
            }
        }
    }
}
