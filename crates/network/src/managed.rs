//! Managed networks (nat, routed, isolated, open): Ferrovirt's own bridge
//! with the gateway address, a dnsmasq for DHCP and DNS, and rules in
//! Ferrovirt's nftables table (applied by the daemon across networks).

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use ferrovirt_api::{Lease, NetworkSpec, NetworkType};
use ferrovirt_core::runner::BoxFuture;
use ferrovirt_core::{Error, NetworkCaps, NetworkDriver, NicPort};

use crate::dhcp::Dnsmasq;
use crate::{Runner, bridge_name, host, host_err, plan};

/// A managed network whose files (dnsmasq's) are in `dir`.
#[derive(Debug)]
pub struct ManagedNetwork {
    spec: NetworkSpec,
    dnsmasq: Dnsmasq,
    runner: Runner,
}

impl ManagedNetwork {
    pub fn new(spec: NetworkSpec, dir: PathBuf, runner: Runner) -> Self {
        Self {
            spec,
            dnsmasq: Dnsmasq::new(&dir),
            runner,
        }
    }

    fn bridge_name(&self) -> String {
        bridge_name(&self.spec.name)
    }

    async fn bring_up(&self) -> Result<(), Error> {
        let name = &self.spec.name;
        let cfg =
            self.spec.ipv4.as_ref().ok_or_else(|| {
                Error::internal(format!("network {name} has no IPv4 configuration"))
            })?;
        let plan = plan::ipv4_plan(cfg)?;
        let address = format!("{}/{}", plan.gateway, plan.subnet.prefix_len());
        host::create_bridge(&*self.runner, &self.bridge_name(), &address)
            .await
            .map_err(host_err(&format!(
                "cannot create the bridge of network {name}"
            )))?;
        if self.capabilities().forwarding {
            host::enable_forwarding().map_err(host_err("cannot enable IPv4 forwarding"))?;
        }
        self.dnsmasq.restart(&*self.runner, &self.spec).await
    }
}

impl NetworkDriver for ManagedNetwork {
    fn capabilities(&self) -> NetworkCaps {
        let kind = self.spec.kind;
        NetworkCaps {
            managed: true,
            nat: kind == NetworkType::Nat,
            forwarding: matches!(kind, NetworkType::Nat | NetworkType::Routed),
            bridge: true,
            ..NetworkCaps::default()
        }
    }

    fn bridge(&self) -> Option<String> {
        Some(self.bridge_name())
    }

    fn check_host(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn start(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.bring_up())
    }

    fn is_up(&self) -> BoxFuture<'_, bool> {
        Box::pin(
            async move { self.dnsmasq.pid().is_some() && host::link_exists(&self.bridge_name()) },
        )
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.dnsmasq.stop().await;
            host::delete_link(&*self.runner, &self.bridge_name())
                .await
                .map_err(host_err(&format!(
                    "cannot delete the bridge of network {}",
                    self.spec.name
                )))
        })
    }

    fn reload(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.dnsmasq.restart(&*self.runner, &self.spec))
    }

    fn leases(&self) -> Vec<Lease> {
        self.dnsmasq.leases()
    }

    fn plug<'a>(&'a self, port: &'a NicPort) -> BoxFuture<'a, Result<OwnedFd, Error>> {
        Box::pin(crate::attached::tap_in_bridge(
            &*self.runner,
            port,
            self.bridge_name(),
        ))
    }

    fn unplug<'a>(&'a self, _port: &'a NicPort) -> BoxFuture<'a, ()> {
        // The TAP vanishes with QEMU's fd.
        Box::pin(async {})
    }
}
