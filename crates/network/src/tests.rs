//! The network drivers against the fake command runner: the commands each
//! operation runs, and how failures become errors.

use std::sync::Arc;

use ferrovirt_core::fake_runner::{FakeRunner, Reply};
use ferrovirt_core::{ErrorKind, NicPort};

use super::*;

fn spec(json: serde_json::Value) -> NetworkSpec {
    serde_json::from_value(json).unwrap()
}

fn with_fake(spec: &NetworkSpec, dir: PathBuf) -> (Arc<FakeRunner>, Box<dyn NetworkDriver>) {
    let fake = Arc::new(FakeRunner::new());
    let d = driver(spec, dir, fake.clone());
    (fake, d)
}

#[test]
fn capabilities_say_what_each_type_does() {
    let caps = |json| {
        let s = spec(json);
        with_fake(&s, "/x".into()).1.capabilities()
    };
    let nat = caps(serde_json::json!({"name": "a", "type": "nat"}));
    assert!(nat.managed && nat.nat && nat.forwarding && nat.bridge && !nat.parent);
    let iso = caps(serde_json::json!({"name": "a", "type": "isolated"}));
    assert!(iso.managed && !iso.nat && !iso.forwarding);
    let ovs = caps(serde_json::json!({"name": "a", "type": "ovs", "parent": "br0"}));
    assert!(ovs.ovs && ovs.parent && !ovs.managed && !ovs.bridge);
    let mv = caps(serde_json::json!({"name": "a", "type": "macvtap", "parent": "eth0"}));
    assert!(mv.macvtap && !mv.bridge);
}

#[tokio::test]
async fn a_managed_network_starts_its_bridge_and_dnsmasq() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(serde_json::json!({"name": "fvtest0", "type": "isolated",
        "ipv4": {"address": "10.77.0.1/24"}}));
    let (fake, d) = with_fake(&s, dir.path().to_owned());
    assert_eq!(d.bridge().as_deref(), Some("fvbr-fvtest0"));
    d.start().await.unwrap();
    let conf = dir.path().join("dnsmasq.conf");
    assert_eq!(
        fake.lines(),
        [
            "ip link add fvbr-fvtest0 type bridge".to_owned(),
            "ip addr add 10.77.0.1/24 dev fvbr-fvtest0".to_owned(),
            "ip link set fvbr-fvtest0 up".to_owned(),
            format!("dnsmasq --conf-file={}", conf.display()),
        ]
    );
    assert!(!d.is_up().await, "no dnsmasq runs");
    fake.on(
        "ip",
        &["link", "add"],
        Reply::fail(2, "RTNETLINK answers: Operation not permitted"),
    );
    let err = d.start().await.unwrap_err();
    assert_eq!(
        err.message,
        "cannot create the bridge of network fvtest0: `ip link add fvbr-fvtest0 type bridge` did not succeed: ip failed (exit status 2): RTNETLINK answers: Operation not permitted"
    );
}

#[tokio::test]
async fn ovs_networks_set_up_their_bridge_and_ports() {
    let s = spec(serde_json::json!({"name": "o", "type": "ovs", "parent": "fvtestovs"}));
    let (fake, d) = with_fake(&s, "/x".into());
    d.start().await.unwrap();
    let lines = fake.lines();
    assert_eq!(
        lines[0],
        "ovs-vsctl --timeout=10 --may-exist add-br fvtestovs"
    );
    assert_eq!(lines.last().unwrap(), "ip link set fvtestovs up");
    let port = NicPort {
        mac: "52:54:00:ab:cd:0e".into(),
        vlan: Some(5),
    };
    d.unplug(&port).await;
    assert_eq!(
        fake.lines().last().unwrap(),
        "ovs-vsctl --timeout=10 --if-exists del-port fvt525400abcd0e"
    );
    fake.on(
        "ovs-vsctl",
        &[],
        Reply::fail(1, "database connection failed"),
    );
    let err = d.start().await.unwrap_err();
    assert!(
        err.message
            .starts_with("cannot set up the OVS bridge fvtestovs: "),
        "{}",
        err.message
    );
    assert!(
        err.message.ends_with("database connection failed"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn attached_networks_need_their_host_interface() {
    let s = spec(serde_json::json!({"name": "b", "type": "bridge", "parent": "lo"}));
    let (fake, d) = with_fake(&s, "/x".into());
    let err = d.check_host().await.unwrap_err();
    assert_eq!(err.message, "parent: lo is not a bridge");
    let s = spec(serde_json::json!({"name": "m", "type": "macvtap", "parent": "fvnosuch0"}));
    let (_, d) = with_fake(&s, "/x".into());
    assert_eq!(
        d.check_host().await.unwrap_err().message,
        "parent: the host has no interface fvnosuch0"
    );
    let err = d.start().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert_eq!(
        err.message,
        "network m: the host interface fvnosuch0 is gone"
    );
    assert!(fake.lines().is_empty());
}
