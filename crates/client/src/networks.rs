//! `/1.0/networks`: virtual networks and their DHCP leases.

use ferrovirt_api::{Lease, Network, NetworkAction, NetworkSpec, NetworkStatePut};
use reqwest::Method;

use crate::instances::SpecBody;
use crate::transport::{Client, ClientError, enc};

fn path(name: &str) -> String {
    format!("/1.0/networks/{}", enc(name))
}

impl Client {
    pub async fn networks(&self) -> Result<Vec<Network>, ClientError> {
        self.get("/1.0/networks").await
    }

    pub async fn network(&self, name: &str) -> Result<Network, ClientError> {
        self.get(&path(name)).await
    }

    /// Defines and starts a network.
    pub async fn create_network(
        &self,
        spec: &impl SpecBody<NetworkSpec>,
    ) -> Result<Network, ClientError> {
        self.call(Method::POST, "/1.0/networks", Some(spec)).await
    }

    pub async fn replace_network(
        &self,
        name: &str,
        spec: &impl SpecBody<NetworkSpec>,
    ) -> Result<Network, ClientError> {
        self.call(Method::PUT, &path(name), Some(spec)).await
    }

    pub async fn delete_network(&self, name: &str) -> Result<(), ClientError> {
        self.send_only(Method::DELETE, &path(name), None::<&()>)
            .await
    }

    /// Starts or stops a network.
    pub async fn network_action(
        &self,
        name: &str,
        action: NetworkAction,
    ) -> Result<Network, ClientError> {
        let path = format!("{}/state", path(name));
        self.call(Method::PUT, &path, Some(&NetworkStatePut { action }))
            .await
    }

    pub async fn leases(&self, name: &str) -> Result<Vec<Lease>, ClientError> {
        self.get(&format!("{}/leases", path(name))).await
    }
}
