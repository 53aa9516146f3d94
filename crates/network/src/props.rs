//! Property tests of what the network crate writes for other programs:
//! whatever names, domains and host names a user gives, once they pass
//! validation they cannot add a line, a directive or a rule to the dnsmasq
//! configuration, its host files or the nftables ruleset; TAP names never
//! collide; arbitrary specs never panic the validators.

use std::path::Path;

use ferrovirt_api::{DhcpHost, Ipv4Config, NetworkSpec, NetworkType};
use proptest::prelude::*;

use crate::dnsmasq::{self, DnsmasqFiles};
use crate::firewall::{self, FirewallNet};
use crate::{host, plan};

/// Strings that are sometimes valid and often hostile.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,9}",
        "[a-z]{1,4}(\\.[a-z0-9-]{1,6}){0,3}",
        "[a-z]{1,5}[\n\r,=/ #\"'\\\\;{}\t\\x00.-][a-z=/-]{0,12}",
        ".{0,16}",
    ]
}

fn kind() -> impl Strategy<Value = NetworkType> {
    prop::sample::select(vec![
        NetworkType::Nat,
        NetworkType::Routed,
        NetworkType::Isolated,
        NetworkType::Open,
    ])
}

fn managed(
    name: String,
    kind: NetworkType,
    domain: Option<String>,
    host_name: Option<String>,
) -> NetworkSpec {
    NetworkSpec {
        name,
        kind,
        ipv4: Some(Ipv4Config {
            address: "10.9.0.1/24".into(),
            dhcp_start: None,
            dhcp_end: None,
            hosts: vec![DhcpHost {
                mac: "52:54:00:00:00:09".into(),
                ip: "10.9.0.9".into(),
                name: host_name,
            }],
        }),
        domain,
        parent: None,
        macvtap_mode: Default::default(),
        autostart: true,
        description: String::new(),
    }
}

fn config_of(spec: &NetworkSpec) -> Option<(String, String, String)> {
    plan::check_spec(spec).ok()?;
    let p = plan::ipv4_plan(spec.ipv4.as_ref()?).ok()?;
    let files = DnsmasqFiles {
        pid: Path::new("/s/dnsmasq.pid"),
        leases: Path::new("/s/leases"),
        hosts: Path::new("/s/hosts"),
    };
    let (hosts, names) = dnsmasq::static_hosts(spec);
    Some((dnsmasq::config(spec, &p, &files), hosts, names))
}

/// The directive of each line (`key` of `key=value`; comments are `#`).
fn keys(conf: &str) -> Vec<&str> {
    conf.lines()
        .map(|l| {
            if l.starts_with('#') {
                "#"
            } else {
                l.split('=').next().unwrap_or_default()
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A spec that passes validation gives the same directives, line for
    /// line, as a plain one: the user's strings are only ever values.
    #[test]
    fn validated_strings_cannot_inject_into_dnsmasq(
        name in text(),
        kind in kind(),
        domain in prop::option::of(text()),
        host_name in prop::option::of(text()),
    ) {
        let spec = managed(name, kind, domain.clone(), host_name.clone());
        let Some((conf, hosts, names)) = config_of(&spec) else {
            return Ok(());
        };
        let plain = managed("plain".into(), kind, domain.as_ref().map(|_| "lab".into()),
            host_name.as_ref().map(|_| "web".into()));
        let (plain_conf, plain_hosts, plain_names) = config_of(&plain).unwrap();
        prop_assert_eq!(keys(&conf), keys(&plain_conf), "{}", conf);
        for line in conf.lines().filter(|l| !l.starts_with('#')) {
            prop_assert!(!line.contains(['\r', '\0', ' ', '\t', '#']), "{:?}", line);
        }
        prop_assert_eq!(hosts.lines().count(), plain_hosts.lines().count());
        for line in hosts.lines() {
            prop_assert_eq!(line.split(',').count(), if host_name.is_some() { 3 } else { 2 }, "{:?}", line);
        }
        prop_assert_eq!(names.lines().count(), plain_names.lines().count());
        for line in names.lines() {
            prop_assert_eq!(line.split_whitespace().count(), 2, "{:?}", line);
        }
    }

    /// Network names that pass validation add no rule to the ruleset and
    /// appear only as the quoted bridge name or in comments.
    #[test]
    fn validated_names_cannot_inject_into_nftables(
        nets in prop::collection::vec((text(), kind()), 1..4),
    ) {
        let valid: Vec<FirewallNet> = nets
            .into_iter()
            .enumerate()
            .filter_map(|(i, (name, kind))| {
                plan::check_spec(&managed(name.clone(), kind, None, None)).ok()?;
                Some(FirewallNet {
                    name,
                    kind,
                    subnet: format!("10.{i}.0.0/24").parse().unwrap(),
                })
            })
            .collect();
        let plain: Vec<FirewallNet> = valid
            .iter()
            .map(|n| FirewallNet { name: "plain".into(), ..n.clone() })
            .collect();
        let rules = firewall::ruleset(&valid);
        prop_assert_eq!(rules.lines().count(), firewall::ruleset(&plain).lines().count(), "{}", rules);
        for n in &valid {
            prop_assert!(n.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        }
        prop_assert_eq!(rules.matches('{').count(), rules.matches('}').count());
    }

    /// Arbitrary network specs (any JSON the API might get) never panic
    /// the validators.
    #[test]
    fn arbitrary_network_specs_never_panic(
        name in text(),
        kind in prop::sample::select(vec!["nat", "routed", "isolated", "open", "bridge", "macvtap", "ovs", "x"]),
        address in prop_oneof!["[0-9./]{0,20}", Just("10.1.2.3/24".to_owned()), Just("10.0.0.1/31".to_owned())],
        start in prop::option::of("[0-9.]{0,16}"),
        end in prop::option::of("[0-9.]{0,16}"),
        parent in prop::option::of(text()),
        domain in prop::option::of(text()),
        hosts in prop::collection::vec(("[0-9a-fA-F:]{0,20}", "[0-9.]{0,16}", prop::option::of(text())), 0..3),
    ) {
        let value = serde_json::json!({
            "name": name, "type": kind, "parent": parent, "domain": domain,
            "ipv4": {"address": address, "dhcp_start": start, "dhcp_end": end,
                "hosts": hosts.into_iter().map(|(mac, ip, name)| serde_json::json!({"mac": mac, "ip": ip, "name": name})).collect::<Vec<_>>()},
        });
        if let Ok(spec) = serde_json::from_value::<NetworkSpec>(value) {
            let _ = plan::check_spec(&spec);
            if let Some(cfg) = &spec.ipv4 {
                let _ = plan::ipv4_plan(cfg);
            }
        }
    }

    /// Distinct MACs give distinct TAP and macvtap names, all short enough
    /// for Linux (15 bytes).
    #[test]
    fn tap_names_are_injective(
        (a, b) in (any::<[u8; 6]>(), any::<[u8; 6]>(), any::<bool>()).prop_map(|(a, mut b, share)| {
            // Half the pairs share their 4 low bytes, as colliding ones did.
            if share {
                b[2..].copy_from_slice(&a[2..]);
            }
            (a, b)
        }),
    ) {
        let mac = |m: [u8; 6]| m.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":");
        let (ma, mb) = (mac(a), mac(b));
        for name in [host::tap_name(&ma), host::macvtap_name(&ma)] {
            prop_assert!(name.len() <= 15, "{}", name);
        }
        prop_assert_eq!(a == b, host::tap_name(&ma) == host::tap_name(&mb));
        prop_assert_eq!(a == b, host::macvtap_name(&ma) == host::macvtap_name(&mb));
        prop_assert_eq!(host::tap_name(&ma), host::tap_name(&ma.to_uppercase()));
    }
}
