//! dnsmasq configuration of a managed network: DHCP on the network's bridge,
//! DNS for guest names under the network's domain.

use std::fmt::Write;
use std::path::Path;

use ferrovirt_api::{NetworkSpec, NetworkType};

use crate::plan::Ipv4Plan;

/// Files of one network's dnsmasq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsmasqFiles<'a> {
    pub pid: &'a Path,
    pub leases: &'a Path,
    pub hosts: &'a Path,
}

/// The configuration file.
pub fn config(spec: &NetworkSpec, plan: &Ipv4Plan, files: &DnsmasqFiles<'_>) -> String {
    let bridge = crate::bridge_name(&spec.name);
    let domain = spec.domain.clone().unwrap_or_else(|| spec.name.clone());
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Written by ferrovirtd for network {}; do not edit.",
        spec.name
    );
    let _ = writeln!(c, "pid-file={}", files.pid.display());
    let _ = writeln!(c, "interface={bridge}");
    let _ = writeln!(c, "bind-interfaces");
    let _ = writeln!(c, "except-interface=lo");
    let _ = writeln!(c, "listen-address={}", plan.gateway);
    let _ = writeln!(c, "strict-order");
    let _ = writeln!(c, "domain-needed");
    let _ = writeln!(c, "bogus-priv");
    let _ = writeln!(c, "domain={domain}");
    let _ = writeln!(c, "local=/{domain}/");
    let _ = writeln!(c, "expand-hosts");
    if spec.kind == NetworkType::Isolated {
        // Nothing leaves an isolated network, DNS queries included.
        let _ = writeln!(c, "no-resolv");
    }
    let _ = writeln!(
        c,
        "dhcp-range={},{},{},1h",
        plan.dhcp_start,
        plan.dhcp_end,
        plan.subnet.netmask()
    );
    let _ = writeln!(c, "dhcp-authoritative");
    let _ = writeln!(c, "dhcp-no-override");
    let _ = writeln!(c, "dhcp-leasefile={}", files.leases.display());
    let _ = writeln!(c, "dhcp-hostsfile={}", files.hosts.display());
    let _ = writeln!(
        c,
        "addn-hosts={}",
        files.hosts.with_extension("names").display()
    );
    if spec.kind == NetworkType::Isolated {
        // No default route: guests only reach each other.
        let _ = writeln!(c, "dhcp-option=option:router");
    } else {
        let _ = writeln!(c, "dhcp-option=option:router,{}", plan.gateway);
    }
    let _ = writeln!(c, "dhcp-option=option:dns-server,{}", plan.gateway);
    c
}

/// `dhcp-hostsfile` lines (`mac,ip[,name]`) and `addn-hosts` lines (`ip name`).
pub fn static_hosts(spec: &NetworkSpec) -> (String, String) {
    let mut dhcp = String::new();
    let mut names = String::new();
    for h in spec.ipv4.iter().flat_map(|v| v.hosts.iter()) {
        match &h.name {
            Some(n) => {
                let _ = writeln!(dhcp, "{},{},{n}", h.mac, h.ip);
                let _ = writeln!(names, "{} {n}", h.ip);
            }
            None => {
                let _ = writeln!(dhcp, "{},{}", h.mac, h.ip);
            }
        }
    }
    (dhcp, names)
}

/// Parses a dnsmasq lease file: `expiry mac ip hostname client-id` per line.
pub fn parse_leases(text: &str) -> Vec<ferrovirt_api::Lease> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 {
                return None;
            }
            Some(ferrovirt_api::Lease {
                expires: f[0].parse().ok()?,
                mac: f[1].to_lowercase(),
                ip: f[2].to_owned(),
                hostname: (f[3] != "*").then(|| f[3].to_owned()),
                instance: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_parse() {
        let l = parse_leases(
            "1700000000 52:54:00:AA:bb:cc 192.168.122.50 vm1 01:52:54\n1700000001 52:54:00:00:00:01 192.168.122.51 * *\nbad\n",
        );
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].mac, "52:54:00:aa:bb:cc");
        assert_eq!(l[0].hostname.as_deref(), Some("vm1"));
        assert_eq!(l[1].hostname, None);
    }
}
