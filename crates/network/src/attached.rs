//! Networks on what the host already has: a Linux bridge (bridge), a host
//! interface for macvtap devices (macvtap), an Open vSwitch bridge (ovs).

use std::os::fd::OwnedFd;

use ferrovirt_api::{Lease, NetworkSpec, NetworkType};
use ferrovirt_core::runner::{BoxFuture, CommandRunner};
use ferrovirt_core::{Error, NetworkCaps, NetworkDriver, NicPort};

use crate::{Runner, host, host_err};

/// A TAP for the NIC, in Linux bridge `bridge`.
pub(crate) async fn tap_in_bridge(
    runner: &dyn CommandRunner,
    port: &NicPort,
    bridge: String,
) -> Result<OwnedFd, Error> {
    let tap = host::tap_name(&port.mac);
    let fd = host::open_tap(&tap).map_err(host_err(&format!(
        "cannot create the TAP of NIC {}",
        port.mac
    )))?;
    host::attach_to_bridge(runner, &tap, &bridge)
        .await
        .map_err(host_err(&format!("cannot attach {tap} to bridge {bridge}")))?;
    Ok(fd)
}

/// A bridge, macvtap or ovs network over the host's `parent`.
#[derive(Debug)]
pub struct AttachedNetwork {
    spec: NetworkSpec,
    runner: Runner,
}

impl AttachedNetwork {
    pub fn new(spec: NetworkSpec, runner: Runner) -> Self {
        Self { spec, runner }
    }

    fn parent(&self) -> &str {
        self.spec.parent.as_deref().unwrap_or_default()
    }

    fn check_parent(&self) -> Result<(), Error> {
        let parent = self.parent();
        if self.spec.kind != NetworkType::Ovs && !host::link_exists(parent) {
            return Err(Error::validation(
                "parent",
                format!("the host has no interface {parent}"),
            ));
        }
        if self.spec.kind == NetworkType::Bridge
            && !std::path::Path::new("/sys/class/net")
                .join(parent)
                .join("bridge")
                .exists()
        {
            return Err(Error::validation(
                "parent",
                format!("{parent} is not a bridge"),
            ));
        }
        Ok(())
    }
}

impl NetworkDriver for AttachedNetwork {
    fn capabilities(&self) -> NetworkCaps {
        let kind = self.spec.kind;
        NetworkCaps {
            bridge: kind == NetworkType::Bridge,
            ovs: kind == NetworkType::Ovs,
            macvtap: kind == NetworkType::Macvtap,
            parent: true,
            ..NetworkCaps::default()
        }
    }

    fn bridge(&self) -> Option<String> {
        matches!(self.spec.kind, NetworkType::Bridge | NetworkType::Ovs)
            .then(|| self.spec.parent.clone())
            .flatten()
    }

    fn check_host(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            match self.spec.parent {
                Some(_) => self.check_parent(),
                None => Ok(()),
            }
        })
    }

    fn start(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let parent = self.parent();
            if self.spec.kind == NetworkType::Ovs {
                return host::ovs_ensure_bridge(&*self.runner, parent)
                    .await
                    .map_err(host_err(&format!("cannot set up the OVS bridge {parent}")));
            }
            if !host::link_exists(parent) {
                return Err(Error::conflict(format!(
                    "network {}: the host interface {parent} is gone",
                    self.spec.name
                )));
            }
            Ok(())
        })
    }

    fn is_up(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move { host::link_exists(self.parent()) })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn reload(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn leases(&self) -> Vec<Lease> {
        Vec::new()
    }

    fn plug<'a>(&'a self, port: &'a NicPort) -> BoxFuture<'a, Result<OwnedFd, Error>> {
        Box::pin(async move {
            let parent = self.parent();
            let mac = &port.mac;
            match self.spec.kind {
                NetworkType::Macvtap => host::open_macvtap(
                    &*self.runner,
                    &host::macvtap_name(mac),
                    parent,
                    self.spec.macvtap_mode.as_str(),
                    mac,
                )
                .await
                .map_err(host_err(&format!("cannot create the macvtap of NIC {mac}"))),
                NetworkType::Ovs => {
                    let tap = host::tap_name(mac);
                    let fd = host::open_tap(&tap)
                        .map_err(host_err(&format!("cannot create the TAP of NIC {mac}")))?;
                    host::ovs_add_port(&*self.runner, parent, &tap, port.vlan)
                        .await
                        .map_err(host_err(&format!(
                            "cannot add {tap} to OVS bridge {parent}"
                        )))?;
                    Ok(fd)
                }
                _ => tap_in_bridge(&*self.runner, port, parent.to_owned()).await,
            }
        })
    }

    fn unplug<'a>(&'a self, port: &'a NicPort) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match self.spec.kind {
                NetworkType::Macvtap => {
                    let _ = host::delete_link(&*self.runner, &host::macvtap_name(&port.mac)).await;
                }
                NetworkType::Ovs => {
                    host::ovs_del_port(&*self.runner, &host::tap_name(&port.mac)).await;
                }
                _ => {}
            }
        })
    }
}
