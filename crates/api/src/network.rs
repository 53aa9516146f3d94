use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a virtual network connects its guests.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum NetworkType {
    /// A bridge with DHCP/DNS; guests reach outside through NAT.
    #[default]
    Nat,
    /// A bridge with DHCP/DNS; guest addresses are routed, not translated.
    Routed,
    /// A bridge with DHCP/DNS; guests reach each other only.
    Isolated,
    /// A bridge with DHCP/DNS; Ferrovirt adds no firewall rules.
    Open,
    /// An existing host bridge (`parent`); Ferrovirt manages nothing on it.
    Bridge,
    /// macvtap devices on a host interface (`parent`, `macvtap_mode`).
    Macvtap,
    /// An Open vSwitch bridge (`parent`, created if missing); NICs may carry a VLAN tag.
    Ovs,
}

impl NetworkType {
    /// Types where Ferrovirt owns a bridge, an address and dnsmasq.
    pub fn is_managed(self) -> bool {
        matches!(self, Self::Nat | Self::Routed | Self::Isolated | Self::Open)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum MacvtapMode {
    Vepa,
    #[default]
    Bridge,
    Private,
    Passthrough,
}

impl MacvtapMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vepa => "vepa",
            Self::Bridge => "bridge",
            Self::Private => "private",
            Self::Passthrough => "passthru",
        }
    }
}

/// A static DHCP host: this MAC always gets this address and name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DhcpHost {
    pub mac: String,
    pub ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// IPv4 of a managed network.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Ipv4Config {
    /// The host's address on the bridge with the prefix, e.g. `192.168.150.1/24`;
    /// it is the guests' gateway and DNS server.
    pub address: String,
    /// First address handed out by DHCP (default: .100 of the subnet… see docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp_end: Option<String>,
    #[serde(default)]
    pub hosts: Vec<DhcpHost>,
}

/// Body of `POST /1.0/networks`, and the definition `show` prints.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// DNS-label-like, at most 11 characters (it names host interfaces).
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: NetworkType,
    /// Managed types: the IPv4 subnet (chosen free when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Config>,
    /// DNS domain of guest names (default: the network's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// bridge: the existing host bridge; macvtap: the host interface; ovs:
    /// the OVS bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default)]
    pub macvtap_mode: MacvtapMode,
    #[serde(default = "yes")]
    pub autostart: bool,
    #[serde(default)]
    pub description: String,
}

fn yes() -> bool {
    true
}

/// A network as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub spec: NetworkSpec,
    pub active: bool,
    /// The host bridge guests' TAPs join (managed, bridge and ovs types).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// Instances with a NIC on this network.
    pub used_by: Vec<String>,
}

/// One DHCP lease.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    pub mac: String,
    pub ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Unix time the lease expires.
    pub expires: u64,
    /// The instance owning the MAC, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// Guest NIC model.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum NicModel {
    #[default]
    Virtio,
    E1000,
    Rtl8139,
}

impl NicModel {
    pub fn qemu_driver(self, microvm: bool) -> &'static str {
        match self {
            Self::Virtio if microvm => "virtio-net-device",
            Self::Virtio => "virtio-net-pci",
            Self::E1000 => "e1000",
            Self::Rtl8139 => "rtl8139",
        }
    }
}

/// A guest network interface.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    /// The network the NIC is on.
    pub network: String,
    #[serde(default)]
    pub model: NicModel,
    /// `52:54:00:xx:xx:xx`, generated (stable) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// ovs networks: the access VLAN of the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
}

/// What `PUT /1.0/networks/{name}/state` does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NetworkAction {
    Start,
    Stop,
}

/// `PUT /1.0/networks/{name}/state`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NetworkStatePut {
    pub action: NetworkAction,
}
