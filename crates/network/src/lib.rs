//! Virtual networks: the parts with no I/O.
//!
//! - [`plan`] validates a network's addresses and picks free subnets;
//! - [`dnsmasq`] writes the configuration of a managed network's dnsmasq;
//! - [`firewall`] writes Ferrovirt's whole nftables table from the active
//!   networks, applied atomically by the daemon (`nft -f`).
//!
//! Host interface names: managed bridges are `fvbr-NAME`, TAPs `fvtNNNNNNNN`,
//! macvtaps `fvmNNNNNNNN` — everything Ferrovirt creates starts with `fv`.

pub mod dnsmasq;
pub mod firewall;
pub mod host;
pub mod plan;

/// The bridge of a managed network.
pub fn bridge_name(network: &str) -> String {
    format!("fvbr-{network}")
}

/// Longest network name: interface names are limited to 15 bytes.
pub const MAX_NAME: usize = 10;
