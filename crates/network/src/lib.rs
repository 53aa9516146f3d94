//! Virtual networks: one [`NetworkDriver`] per kind of network, and the
//! pure generators behind them.
//!
//! - [`ManagedNetwork`] (nat, routed, isolated, open): Ferrovirt's bridge,
//!   a [`dhcp::Dnsmasq`], rules in Ferrovirt's nftables table;
//! - [`AttachedNetwork`] (bridge, macvtap, ovs): the host's own interfaces;
//! - [`plan`] validates a network's addresses and picks free subnets;
//! - [`dnsmasq`] writes the configuration of a managed network's dnsmasq;
//! - [`firewall`] writes Ferrovirt's whole nftables table from the active
//!   networks, which [`nft::apply`] applies atomically (`nft -f`).
//!
//! Every tool (ip, ovs-vsctl, dnsmasq, nft) runs through the daemon's
//! [`CommandRunner`]; the daemon branches on
//! [`NetworkCaps`](ferrovirt_core::NetworkCaps), never on network types.
//!
//! Host interface names: managed bridges are `fvbr-NAME`, TAPs `fvtXXXXXXXXXXXX`,
//! macvtaps `fvmXXXXXXXXXXXX` (the NIC's whole MAC) — everything Ferrovirt creates starts with `fv`.

mod attached;
pub mod dhcp;
pub mod dnsmasq;
pub mod firewall;
pub mod host;
mod managed;
pub mod nft;
pub mod plan;

use std::path::PathBuf;
use std::sync::Arc;

use ferrovirt_api::NetworkSpec;
use ferrovirt_core::{CommandRunner, Error, NetworkDriver};

pub use attached::AttachedNetwork;
pub use managed::ManagedNetwork;

/// The shared handle every driver runs its tools through.
type Runner = Arc<dyn CommandRunner>;

/// The driver of a network; `dir` holds a managed network's files.
pub fn driver(spec: &NetworkSpec, dir: PathBuf, runner: Runner) -> Box<dyn NetworkDriver> {
    if spec.kind.is_managed() {
        Box::new(ManagedNetwork::new(spec.clone(), dir, runner))
    } else {
        Box::new(AttachedNetwork::new(spec.clone(), runner))
    }
}

/// The error of a failed host step: what was being done, and why.
fn host_err(doing: &str) -> impl Fn(host::HostError) -> Error + '_ {
    move |e| Error::internal(format!("{doing}: {}", ferrovirt_core::error::chain(&e)))
}

/// The bridge of a managed network.
pub fn bridge_name(network: &str) -> String {
    format!("fvbr-{network}")
}

/// Longest network name: interface names are limited to 15 bytes.
pub const MAX_NAME: usize = 10;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
