//! The network driver interface: what every network type does on the host,
//! and the capability flags the daemon branches on instead of types.

use std::os::fd::OwnedFd;

use ferrovirt_api::Lease;

use crate::Error;
use crate::runner::BoxFuture;

/// What a network type can do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkCaps {
    /// The network has its own bridge, address plan and dnsmasq (DHCP and
    /// DNS); it is in Ferrovirt's firewall table.
    pub managed: bool,
    /// Guests reach outside through masquerading.
    pub nat: bool,
    /// The host forwards the network's packets (nat and routed).
    pub forwarding: bool,
    /// NICs are TAPs in a Linux bridge (managed or the host's own).
    pub bridge: bool,
    /// NICs are ports of an Open vSwitch bridge, and may carry VLAN tags.
    pub ovs: bool,
    /// NICs are macvtap devices on a host interface.
    pub macvtap: bool,
    /// The network sits on a host interface named in its spec's `parent`.
    pub parent: bool,
}

/// The host side of one guest NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicPort {
    pub mac: String,
    pub vlan: Option<u16>,
}

/// One network on this host. Records, locking and which instances use it
/// belong to the daemon.
pub trait NetworkDriver: Send + Sync + std::fmt::Debug {
    fn capabilities(&self) -> NetworkCaps;

    /// The bridge NICs join, when there is one.
    fn bridge(&self) -> Option<String>;

    /// Checks the host has what the spec names (its parent interface).
    fn check_host(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// Creates what the network needs on the host (idempotent).
    fn start(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// Whether what [`start`](Self::start) creates is all there.
    fn is_up(&self) -> BoxFuture<'_, bool>;

    /// Removes what [`start`](Self::start) created.
    fn stop(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// Applies a changed configuration to a running network (static
    /// hosts of a managed one).
    fn reload(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// The DHCP leases handed out (none for unmanaged networks).
    fn leases(&self) -> Vec<Lease>;

    /// Creates the host side of a NIC and returns the fd QEMU gets.
    fn plug<'a>(&'a self, port: &'a NicPort) -> BoxFuture<'a, Result<OwnedFd, Error>>;

    /// Removes the host side of a NIC whose QEMU let it go (TAPs vanish
    /// with their last fd; macvtaps and OVS ports do not).
    fn unplug<'a>(&'a self, port: &'a NicPort) -> BoxFuture<'a, ()>;
}
