//! Golden tests of the dnsmasq configuration and the nftables ruleset
//! (`UPDATE_GOLDEN=1` rewrites the expected files).

use std::path::{Path, PathBuf};

use ferrovirt_api::{DhcpHost, Ipv4Config, NetworkSpec, NetworkType};
use ferrovirt_network::{dnsmasq, firewall, plan};

fn check(case: &str, actual: &str) {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{case}"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&file, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&file)
        .unwrap_or_else(|_| panic!("{} missing; run with UPDATE_GOLDEN=1", file.display()));
    assert_eq!(actual, expected, "{case} changed");
}

fn spec(name: &str, kind: NetworkType, address: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        kind,
        ipv4: Some(Ipv4Config {
            address: address.into(),
            dhcp_start: None,
            dhcp_end: None,
            hosts: vec![DhcpHost {
                mac: "52:54:00:00:00:07".into(),
                ip: "192.168.150.7".into(),
                name: Some("db".into()),
            }],
        }),
        domain: None,
        parent: None,
        macvtap_mode: Default::default(),
        autostart: true,
        description: String::new(),
    }
}

#[test]
fn dnsmasq_config_of_nat_and_isolated() {
    for kind in [NetworkType::Nat, NetworkType::Isolated] {
        let s = spec("lab", kind, "192.168.150.1/24");
        let p = plan::ipv4_plan(s.ipv4.as_ref().unwrap()).unwrap();
        let files = dnsmasq::DnsmasqFiles {
            pid: Path::new("/var/lib/fv/networks/lab/dnsmasq.pid"),
            leases: Path::new("/var/lib/fv/networks/lab/leases"),
            hosts: Path::new("/var/lib/fv/networks/lab/hosts"),
        };
        let name = format!("dnsmasq_{kind:?}.conf").to_lowercase();
        check(&name, &dnsmasq::config(&s, &p, &files));
    }
    let (dhcp, names) = dnsmasq::static_hosts(&spec("lab", NetworkType::Nat, "192.168.150.1/24"));
    assert_eq!(dhcp, "52:54:00:00:00:07,192.168.150.7,db\n");
    assert_eq!(names, "192.168.150.7 db\n");
}

#[test]
fn nftables_ruleset_of_every_kind() {
    let nets = [
        ("default", NetworkType::Nat, "192.168.122.0/24"),
        ("lab", NetworkType::Routed, "10.254.1.0/24"),
        ("quiet", NetworkType::Isolated, "10.254.2.0/24"),
        ("wild", NetworkType::Open, "10.254.3.0/24"),
    ]
    .map(|(name, kind, sub)| firewall::FirewallNet {
        name: name.into(),
        kind,
        subnet: sub.parse().unwrap(),
    });
    check("ruleset.nft", &firewall::ruleset(&nets));
    assert_eq!(
        firewall::ruleset(&[]),
        "add table inet ferrovirt\ndelete table inet ferrovirt\n"
    );
}
