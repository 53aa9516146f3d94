//! Address planning and validation of network specs.

use std::net::Ipv4Addr;

use ferrovirt_api::{Ipv4Config, NetworkSpec, NetworkType};
use ferrovirt_core::Error;
use ipnet::Ipv4Net;

/// A managed network's addresses, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Plan {
    /// The host's (gateway's) address.
    pub gateway: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub dhcp_start: Ipv4Addr,
    pub dhcp_end: Ipv4Addr,
}

fn addr(field: &str, s: &str) -> Result<Ipv4Addr, Error> {
    s.parse()
        .map_err(|_| Error::validation(field, format!("{s:?} is not an IPv4 address")))
}

/// Validates an IPv4 config: the address is a host address inside its
/// subnet, the DHCP range and static hosts lie inside the subnet.
pub fn ipv4_plan(cfg: &Ipv4Config) -> Result<Ipv4Plan, Error> {
    let net: Ipv4Net = cfg.address.parse().map_err(|_| {
        Error::validation(
            "ipv4.address",
            format!(
                "{:?} is not an address with a prefix, e.g. 192.168.150.1/24",
                cfg.address
            ),
        )
    })?;
    let subnet = net.trunc();
    if net.prefix_len() > 29 {
        return Err(Error::validation(
            "ipv4.address",
            "the prefix must be /29 or shorter to leave room for guests",
        ));
    }
    let gateway = net.addr();
    if gateway == subnet.network() || gateway == subnet.broadcast() {
        return Err(Error::validation(
            "ipv4.address",
            format!("{gateway} is the network or broadcast address of {subnet}"),
        ));
    }
    let first = u32::from(subnet.network()) + 2;
    let last = u32::from(subnet.broadcast()) - 1;
    let dhcp_start = match &cfg.dhcp_start {
        Some(s) => addr("ipv4.dhcp_start", s)?,
        None => Ipv4Addr::from(first.max(u32::from(gateway) + 1).min(last)),
    };
    let dhcp_end = match &cfg.dhcp_end {
        Some(s) => addr("ipv4.dhcp_end", s)?,
        None => Ipv4Addr::from(last),
    };
    for (field, a) in [("ipv4.dhcp_start", dhcp_start), ("ipv4.dhcp_end", dhcp_end)] {
        if !subnet.contains(&a) || a == subnet.network() || a == subnet.broadcast() {
            return Err(Error::validation(
                field,
                format!("{a} is outside the subnet {subnet}"),
            ));
        }
    }
    if u32::from(dhcp_start) > u32::from(dhcp_end) {
        return Err(Error::validation(
            "ipv4.dhcp_end",
            format!("{dhcp_end} comes before dhcp_start {dhcp_start}"),
        ));
    }
    if (u32::from(dhcp_start)..=u32::from(dhcp_end)).contains(&u32::from(gateway)) {
        return Err(Error::validation(
            "ipv4.dhcp_start",
            format!("the DHCP range {dhcp_start}-{dhcp_end} contains the gateway {gateway}"),
        ));
    }
    for (i, h) in cfg.hosts.iter().enumerate() {
        let ip = addr(&format!("ipv4.hosts[{i}].ip"), &h.ip)?;
        if !subnet.contains(&ip) || ip == gateway {
            return Err(Error::validation(
                format!("ipv4.hosts[{i}].ip"),
                format!("{ip} is not a free guest address of {subnet}"),
            ));
        }
        crate::plan::check_mac(&format!("ipv4.hosts[{i}].mac"), &h.mac)?;
        if let Some(name) = &h.name {
            ferrovirt_core::name::validate_host_label(&format!("ipv4.hosts[{i}].name"), name)?;
        }
    }
    Ok(Ipv4Plan {
        gateway,
        subnet,
        dhcp_start,
        dhcp_end,
    })
}

/// Checks a unicast MAC address `xx:xx:xx:xx:xx:xx`.
pub fn check_mac(field: &str, mac: &str) -> Result<(), Error> {
    let parts: Vec<&str> = mac.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if !ok {
        return Err(Error::validation(
            field,
            format!("{mac:?} is not a MAC address like 52:54:00:12:34:56"),
        ));
    }
    let first = u8::from_str_radix(parts[0], 16).unwrap_or(1);
    if first & 1 == 1 {
        return Err(Error::validation(
            field,
            format!("{mac} is a multicast address"),
        ));
    }
    Ok(())
}

/// Checks the non-address parts of a network spec.
pub fn check_spec(spec: &NetworkSpec) -> Result<(), Error> {
    ferrovirt_core::name::validate("name", &spec.name)?;
    if spec.name.len() > crate::MAX_NAME {
        return Err(Error::validation(
            "name",
            format!(
                "network names are at most {} characters (they name host interfaces)",
                crate::MAX_NAME
            ),
        ));
    }
    if let Some(domain) = &spec.domain {
        ferrovirt_core::name::validate_dns_name("domain", domain)?;
    }
    if let Some(parent) = &spec.parent {
        ferrovirt_core::name::validate_interface("parent", parent)?;
    }
    let needs_parent = matches!(
        spec.kind,
        NetworkType::Bridge | NetworkType::Macvtap | NetworkType::Ovs
    );
    match (&spec.parent, needs_parent) {
        (None, true) => Err(Error::validation(
            "parent",
            format!(
                "a {:?} network needs the host interface it attaches to",
                spec.kind
            )
            .to_lowercase(),
        )),
        (Some(_), false) => Err(Error::validation(
            "parent",
            "only bridge, macvtap and ovs networks attach to a host interface",
        )),
        _ if !spec.kind.is_managed() && spec.ipv4.is_some() => Err(Error::validation(
            "ipv4",
            "only managed networks (nat, routed, isolated, open) have addresses and DHCP",
        )),
        _ => Ok(()),
    }
}

/// Whether two subnets overlap.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first /24 among the usual private ranges that overlaps none of `used`.
pub fn free_subnet(used: &[Ipv4Net]) -> Option<Ipv4Net> {
    let candidates = (122..=254u8)
        .map(|c| Ipv4Net::new(Ipv4Addr::new(192, 168, c, 0), 24).expect("valid"))
        .chain((0..=255u8).map(|c| Ipv4Net::new(Ipv4Addr::new(10, 254, c, 0), 24).expect("valid")));
    candidates
        .into_iter()
        .find(|c| !used.iter().any(|u| overlaps(c, u)))
}

/// The default config for a free subnet: gateway .1.
pub fn default_ipv4(subnet: Ipv4Net) -> Ipv4Config {
    let gw = Ipv4Addr::from(u32::from(subnet.network()) + 1);
    Ipv4Config {
        address: format!("{gw}/{}", subnet.prefix_len()),
        dhcp_start: None,
        dhcp_end: None,
        hosts: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovirt_api::DhcpHost;

    fn cfg(address: &str, start: Option<&str>, end: Option<&str>) -> Ipv4Config {
        Ipv4Config {
            address: address.into(),
            dhcp_start: start.map(Into::into),
            dhcp_end: end.map(Into::into),
            hosts: vec![],
        }
    }

    #[test]
    fn defaults_and_bounds() {
        let p = ipv4_plan(&cfg("192.168.150.1/24", None, None)).unwrap();
        assert_eq!(p.dhcp_start, Ipv4Addr::new(192, 168, 150, 2));
        assert_eq!(p.dhcp_end, Ipv4Addr::new(192, 168, 150, 254));
        let field = |c| ipv4_plan(&c).unwrap_err().field;
        assert_eq!(
            field(cfg("192.168.150.1/24", Some("192.168.151.5"), None)).as_deref(),
            Some("ipv4.dhcp_start")
        );
        assert_eq!(
            field(cfg("192.168.150.1/24", None, Some("10.0.0.9"))).as_deref(),
            Some("ipv4.dhcp_end")
        );
        assert_eq!(
            field(cfg("192.168.150.0/24", None, None)).as_deref(),
            Some("ipv4.address")
        );
        assert_eq!(
            field(cfg("nonsense", None, None)).as_deref(),
            Some("ipv4.address")
        );
        assert_eq!(
            field(cfg("192.168.150.1/24", Some("192.168.150.1"), None)).as_deref(),
            Some("ipv4.dhcp_start")
        );
        let mut c = cfg("192.168.150.1/24", None, None);
        c.hosts.push(DhcpHost {
            mac: "01:00:00:00:00:01".into(),
            ip: "192.168.150.9".into(),
            name: None,
        });
        assert_eq!(field(c).as_deref(), Some("ipv4.hosts[0].mac"));
    }

    #[test]
    fn dhcp_host_names_are_host_names() {
        let mut c = cfg("192.168.150.1/24", None, None);
        c.hosts.push(DhcpHost {
            mac: "52:54:00:00:00:01".into(),
            ip: "192.168.150.9".into(),
            name: Some("web\ndhcp-script=/tmp/evil".into()),
        });
        let err = ipv4_plan(&c).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("ipv4.hosts[0].name"));
        c.hosts[0].name = Some("web-1".into());
        ipv4_plan(&c).unwrap();
    }

    fn network(extra: serde_json::Value) -> NetworkSpec {
        let mut v = serde_json::json!({"name": "n1", "type": "nat"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn domains_are_dns_names() {
        let err = check_spec(&network(
            serde_json::json!({"domain": "x\ndhcp-script=/tmp/evil"}),
        ))
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("domain"));
        check_spec(&network(serde_json::json!({"domain": "lab.example"}))).unwrap();
    }

    #[test]
    fn parents_are_interface_names() {
        for bad in ["../../etc", "-dev", "eth0\nx", "a-very-long-interface"] {
            let spec = network(serde_json::json!({"type": "macvtap", "parent": bad}));
            assert_eq!(
                check_spec(&spec).unwrap_err().field.as_deref(),
                Some("parent"),
                "{bad:?}"
            );
        }
        check_spec(&network(
            serde_json::json!({"type": "macvtap", "parent": "eth0"}),
        ))
        .unwrap();
    }

    #[test]
    fn free_subnets_avoid_used_ones() {
        let used: Vec<Ipv4Net> = vec![
            "192.168.122.0/24".parse().unwrap(),
            "192.168.0.0/17".parse().unwrap(),
        ];
        assert_eq!(free_subnet(&used).unwrap().to_string(), "192.168.128.0/24");
        let all: Vec<Ipv4Net> = vec!["192.168.0.0/16".parse().unwrap()];
        assert_eq!(free_subnet(&all).unwrap().to_string(), "10.254.0.0/24");
    }
}
