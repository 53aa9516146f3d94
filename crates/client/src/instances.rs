//! `/1.0/instances`: define, change, delete and drive instances; their logs.

use ferrovirt_api::{Instance, InstanceSpec, StateAction, StatePut};
use reqwest::Method;
use serde::Serialize;

use crate::transport::{Client, ClientError, enc};

/// A request body that stands for a `T`: the typed value itself, or a JSON
/// document as a user wrote it (a YAML spec file, say), which the daemon
/// validates field by field, naming the path of an unknown or bad one.
pub trait SpecBody<T>: Serialize {}

impl SpecBody<InstanceSpec> for InstanceSpec {}
impl SpecBody<InstanceSpec> for serde_json::Value {}
impl SpecBody<ferrovirt_api::NetworkSpec> for ferrovirt_api::NetworkSpec {}
impl SpecBody<ferrovirt_api::NetworkSpec> for serde_json::Value {}

fn path(name: &str) -> String {
    format!("/1.0/instances/{}", enc(name))
}

impl Client {
    pub async fn list_instances(&self) -> Result<Vec<Instance>, ClientError> {
        self.get("/1.0/instances").await
    }

    pub async fn instance(&self, name: &str) -> Result<Instance, ClientError> {
        self.get(&path(name)).await
    }

    pub async fn create_instance(
        &self,
        spec: &impl SpecBody<InstanceSpec>,
    ) -> Result<Instance, ClientError> {
        self.call(Method::POST, "/1.0/instances", Some(spec)).await
    }

    pub async fn replace_instance(
        &self,
        name: &str,
        spec: &impl SpecBody<InstanceSpec>,
    ) -> Result<Instance, ClientError> {
        self.call(Method::PUT, &path(name), Some(spec)).await
    }

    /// Applies a JSON merge patch (RFC 7396) to the spec.
    pub async fn patch_instance(
        &self,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<Instance, ClientError> {
        self.call(Method::PATCH, &path(name), Some(patch)).await
    }

    pub async fn delete_instance(&self, name: &str, force: bool) -> Result<(), ClientError> {
        let path = format!("{}?force={force}", path(name));
        self.send_only(Method::DELETE, &path, None::<&()>).await
    }

    pub async fn change_state(&self, name: &str, req: &StatePut) -> Result<Instance, ClientError> {
        let path = format!("{}/state", path(name));
        self.call(Method::PUT, &path, Some(req)).await
    }

    /// Shorthand for an action without options.
    pub async fn action(&self, name: &str, action: StateAction) -> Result<Instance, ClientError> {
        self.change_state(
            name,
            &StatePut {
                action,
                force: false,
                timeout: None,
            },
        )
        .await
    }

    /// A log of an instance: `console` or `qemu`.
    pub async fn log(
        &self,
        name: &str,
        log: &str,
        tail: Option<u64>,
    ) -> Result<Vec<u8>, ClientError> {
        let tail = tail.map(|t| format!("?tail={t}")).unwrap_or_default();
        let path = format!("{}/logs/{}{tail}", path(name), enc(log));
        let resp = self.send(Method::GET, &path, None::<&()>).await?;
        Ok(resp
            .bytes()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_vec())
    }
}
