//! Ferrovirt's nftables table: one `inet ferrovirt` table holding every rule
//! of every active managed network, replaced atomically as a whole. Other
//! tables (Docker's, ufw's, libvirt's) are never touched.

use std::fmt::Write;

use ferrovirt_api::NetworkType;
use ipnet::Ipv4Net;

/// What the firewall needs to know of an active managed network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallNet {
    pub name: String,
    pub kind: NetworkType,
    pub subnet: Ipv4Net,
}

/// The nft script that replaces the table in one transaction (an empty
/// network list removes it).
pub fn ruleset(nets: &[FirewallNet]) -> String {
    let mut s = String::new();
    // `add` then `delete` makes the delete valid whether or not the table exists.
    s.push_str("add table inet ferrovirt\ndelete table inet ferrovirt\n");
    let nets: Vec<&FirewallNet> = nets
        .iter()
        .filter(|n| n.kind != NetworkType::Open)
        .collect();
    if nets.is_empty() {
        return s;
    }
    s.push_str("table inet ferrovirt {\n");
    s.push_str("\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n");
    for n in nets.iter().filter(|n| n.kind == NetworkType::Isolated) {
        let br = crate::bridge_name(&n.name);
        let _ = writeln!(
            s,
            "\t\t# isolated {}: the host offers DHCP and DNS only",
            n.name
        );
        let _ = writeln!(s, "\t\tiifname \"{br}\" udp dport {{ 53, 67 }} accept");
        let _ = writeln!(s, "\t\tiifname \"{br}\" tcp dport 53 accept");
        let _ = writeln!(s, "\t\tiifname \"{br}\" drop");
    }
    s.push_str("\t}\n");
    s.push_str("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n");
    for n in &nets {
        let br = crate::bridge_name(&n.name);
        let sub = n.subnet;
        // Guests on one bridge always reach each other (this matters when
        // br_netfilter hands bridged traffic to this hook).
        let _ = writeln!(s, "\t\tiifname \"{br}\" oifname \"{br}\" accept");
        match n.kind {
            NetworkType::Nat => {
                let _ = writeln!(s, "\t\t# nat {}", n.name);
                let _ = writeln!(s, "\t\tiifname \"{br}\" ip saddr {sub} accept");
                let _ = writeln!(
                    s,
                    "\t\toifname \"{br}\" ip daddr {sub} ct state established,related accept"
                );
            }
            NetworkType::Routed => {
                let _ = writeln!(s, "\t\t# routed {}", n.name);
                let _ = writeln!(s, "\t\tiifname \"{br}\" ip saddr {sub} accept");
                let _ = writeln!(s, "\t\toifname \"{br}\" ip daddr {sub} accept");
            }
            _ => {
                let _ = writeln!(s, "\t\t# isolated {}", n.name);
            }
        }
        let _ = writeln!(s, "\t\tiifname \"{br}\" drop");
        let _ = writeln!(s, "\t\toifname \"{br}\" drop");
    }
    s.push_str("\t}\n");
    s.push_str(
        "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
    );
    for n in nets.iter().filter(|n| n.kind == NetworkType::Nat) {
        let sub = n.subnet;
        let _ = writeln!(s, "\t\t# nat {}", n.name);
        let _ = writeln!(
            s,
            "\t\tip saddr {sub} ip daddr != {{ {sub}, 224.0.0.0/24, 255.255.255.255 }} masquerade"
        );
    }
    s.push_str("\t}\n}\n");
    s
}
