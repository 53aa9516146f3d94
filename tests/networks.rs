//! Virtual networks, proved with real guests inside the test's own network
//! namespace: DHCP leases, DNS, NAT, isolation, routing, macvtap, OVS VLANs,
//! NIC hot-plug, and a clean host afterwards.

use ferrovirt_api::{InstanceStatus, StateAction};
use ferrovirt_client::{Client, ClientError};
use ferrovirt_e2e::*;
use ferrovirt_testkit::CommandChannel;
use serde_json::{Value, json};
use tokio::io::DuplexStream;

type Ch = CommandChannel<DuplexStream>;

async fn vm(c: &Client, name: &str, nics: Value) -> Ch {
    let mut spec = guest_spec(name);
    spec["nics"] = nics;
    create(c, spec).await;
    c.action(name, StateAction::Start).await.expect("start");
    let mut ch = channel(c, name).await;
    ch.wait_ready(BOOT).await.expect("ready");
    ch
}

async fn net(c: &Client, spec: Value) {
    c.create_network(&spec).await.expect("create network");
}

fn api_err(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, String, Option<String>) {
    match r {
        Err(ClientError::Api(b)) => (b.code, b.error, b.details.and_then(|d| d.field)),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nat_network_lease_gateway_and_dns() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    let default = c.network("default").await.expect("default network exists");
    assert!(default.active);
    let gw = default
        .spec
        .ipv4
        .unwrap()
        .address
        .split('/')
        .next()
        .unwrap()
        .to_owned();

    let mut ch = vm(c, "web", json!([{"network": "default"}])).await;
    let ip = dhcp(&mut ch, "eth0", "web").await;
    let prefix = gw.rsplit_once('.').unwrap().0;
    assert!(
        ip.starts_with(prefix) && ip != gw,
        "lease {ip} in {prefix}.0/24"
    );
    assert!(ping(&mut ch, &gw).await, "the guest pings its gateway");
    let ns = ch
        .run(&format!("nslookup web.default {gw}"), CMD)
        .await
        .unwrap();
    assert!(
        ns.output.contains(&ip),
        "the guest's name resolves to {ip}: {}",
        ns.output
    );

    let leases = c.leases("default").await.unwrap();
    let lease = leases.iter().find(|l| l.ip == ip).expect("lease listed");
    assert_eq!(lease.instance.as_deref(), Some("web"));
    assert_eq!(lease.hostname.as_deref(), Some("web"));
    let inst = c.instance("web").await.unwrap();
    assert_eq!(
        inst.state.addresses[0].ip, ip,
        "the lease shows on the instance"
    );
    let (ok, out, _) = d.cli(&["network", "leases", "default"]);
    assert!(ok && out.contains(&ip) && out.contains("web"), "{out}");

    // The host side reaches the guest too, and NAT is in the ruleset.
    let (ok, _) = in_netns(&d.netns, &["ping", "-c", "1", "-W", "2", &ip]);
    assert!(ok, "host pings guest");
    let (_, rules) = in_netns(&d.netns, &["nft", "list", "table", "inet", "ferrovirt"]);
    assert!(rules.contains("masquerade"), "{rules}");

    // A MAC is stable across restarts: the guest gets the same lease.
    let mac = inst.spec.nics[0].mac.clone().unwrap();
    c.change_state(
        "web",
        &ferrovirt_api::StatePut {
            action: StateAction::Stop,
            force: true,
            timeout: None,
        },
    )
    .await
    .unwrap();
    c.action("web", StateAction::Start).await.unwrap();
    assert_eq!(
        c.instance("web").await.unwrap().spec.nics[0].mac.as_deref(),
        Some(mac.as_str())
    );
    let mut ch = channel(c, "web").await;
    ch.wait_ready(BOOT).await.unwrap();
    assert_eq!(dhcp(&mut ch, "eth0", "web").await, ip);
}

#[tokio::test(flavor = "multi_thread")]
async fn isolated_guests_reach_each_other_not_the_host() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    net(
        c,
        json!({"name": "quiet", "type": "isolated", "ipv4": {"address": "10.77.0.1/24"}}),
    )
    .await;
    let mut a = vm(c, "iso-a", json!([{"network": "quiet"}])).await;
    let mut b = vm(c, "iso-b", json!([{"network": "quiet"}])).await;
    let ip_a = dhcp(&mut a, "eth0", "iso-a").await;
    let ip_b = dhcp(&mut b, "eth0", "iso-b").await;
    assert!(ping(&mut a, &ip_b).await, "a pings b");
    assert!(ping(&mut b, &ip_a).await, "b pings a");
    assert!(!ping(&mut a, "10.77.0.1").await, "the host is unreachable");
    let route = a.run("ip route", CMD).await.unwrap().output;
    assert!(!route.contains("default"), "no way beyond: {route}");
}

#[tokio::test(flavor = "multi_thread")]
async fn routed_guest_is_reachable_from_outside_without_nat() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    net(
        c,
        json!({"name": "lab", "type": "routed", "ipv4": {"address": "10.78.0.1/24"}}),
    )
    .await;
    let mut g = vm(c, "rt", json!([{"network": "lab"}])).await;
    let guest_ip = dhcp(&mut g, "eth0", "rt").await;
    // An "outside" namespace joined to the host namespace by a veth pair,
    // with a route to the guests' subnet through the host.
    let outside = format!("{}-out", d.netns);
    ip(&["netns", "add", &outside]);
    let cleanup = scopeguard(&outside);
    ip(&[
        "-n",
        &d.netns,
        "link",
        "add",
        "fvtest-up",
        "type",
        "veth",
        "peer",
        "name",
        "fvtest-out",
        "netns",
        &outside,
    ]);
    ip(&[
        "-n",
        &d.netns,
        "addr",
        "add",
        "10.79.0.1/24",
        "dev",
        "fvtest-up",
    ]);
    ip(&["-n", &d.netns, "link", "set", "fvtest-up", "up"]);
    ip(&[
        "-n",
        &outside,
        "addr",
        "add",
        "10.79.0.2/24",
        "dev",
        "fvtest-out",
    ]);
    ip(&["-n", &outside, "link", "set", "fvtest-out", "up"]);
    ip(&[
        "-n",
        &outside,
        "route",
        "add",
        "10.78.0.0/24",
        "via",
        "10.79.0.1",
    ]);
    let (ok, out) = in_netns(&outside, &["ping", "-c", "2", "-W", "2", &guest_ip]);
    assert!(ok, "outside reaches the routed guest: {out}");
    // The guest sees the outside address itself (no NAT): its ARP/neigh
    // table does not matter; ask it to ping back through its gateway.
    assert!(ping(&mut g, "10.79.0.2").await, "the guest reaches outside");
    let (_, rules) = in_netns(&d.netns, &["nft", "list", "table", "inet", "ferrovirt"]);
    assert!(
        !rules.contains("10.78.0.0/24 ip daddr != "),
        "no masquerade for routed: {rules}"
    );
    drop(cleanup);
}

/// Deletes a namespace when dropped.
fn scopeguard(ns: &str) -> impl Drop + use<> {
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    Del(ns.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn macvtap_bridge_mode_between_two_guests() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    // A parent interface inside the test namespace: one end of a veth pair.
    ip(&[
        "-n",
        &d.netns,
        "link",
        "add",
        "fvtest-par",
        "type",
        "veth",
        "peer",
        "name",
        "fvtest-peer",
    ]);
    ip(&["-n", &d.netns, "link", "set", "fvtest-par", "up"]);
    ip(&["-n", &d.netns, "link", "set", "fvtest-peer", "up"]);
    net(
        c,
        json!({"name": "mvt", "type": "macvtap", "parent": "fvtest-par", "macvtap_mode": "bridge"}),
    )
    .await;
    let mut a = vm(c, "mv-a", json!([{"network": "mvt"}])).await;
    let mut b = vm(c, "mv-b", json!([{"network": "mvt"}])).await;
    static_ip(&mut a, "eth0", "10.80.0.11/24").await;
    static_ip(&mut b, "eth0", "10.80.0.12/24").await;
    assert!(
        ping(&mut a, "10.80.0.12").await,
        "macvtap bridge mode: a pings b"
    );
    let (_, links) = in_netns(&d.netns, &["ip", "-d", "link", "show", "type", "macvtap"]);
    assert!(links.contains("macvtap mode bridge"), "{links}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ovs_vlans_keep_pairs_apart() {
    let mut d = TestDaemon::start().await;
    start_ovs(&d);
    // The daemon's ovs-vsctl must find the private OVS.
    d.env
        .push(("OVS_RUNDIR".into(), ovs_dir(&d).display().to_string()));
    d.restart().await;
    let c = &d.client;
    net(
        c,
        json!({"name": "sw", "type": "ovs", "parent": "fvtest-ovs"}),
    )
    .await;
    let mut chans = Vec::new();
    for (i, (name, vlan)) in [("v10a", 10), ("v10b", 10), ("v20a", 20), ("v20b", 20)]
        .iter()
        .enumerate()
    {
        let mut ch = vm(c, name, json!([{"network": "sw", "vlan": vlan}])).await;
        static_ip(&mut ch, "eth0", &format!("10.81.0.{}/24", i + 11)).await;
        chans.push(ch);
    }
    assert!(ping(&mut chans[0], "10.81.0.12").await, "same VLAN 10");
    assert!(ping(&mut chans[2], "10.81.0.14").await, "same VLAN 20");
    assert!(
        !ping(&mut chans[0], "10.81.0.13").await,
        "VLAN 10 does not reach VLAN 20"
    );
    assert!(
        !ping(&mut chans[1], "10.81.0.14").await,
        "VLAN 10 does not reach VLAN 20"
    );
    let cmd = ovs_env_cmd(&d, &["ovs-vsctl", "show"]);
    let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let (_, show) = in_netns(&d.netns, &refs);
    assert!(
        show.contains("tag: 10") && show.contains("tag: 20"),
        "{show}"
    );
}

fn ovs_dir(d: &TestDaemon) -> std::path::PathBuf {
    d.dir.path().join("ovs")
}

fn ovs_env_cmd(d: &TestDaemon, cmd: &[&str]) -> Vec<String> {
    let dir = ovs_dir(d).display().to_string();
    let mut v = vec![
        "env".to_owned(),
        format!("OVS_RUNDIR={dir}"),
        format!("OVS_DBDIR={dir}"),
        format!("OVS_LOGDIR={dir}"),
    ];
    v.extend(cmd.iter().map(|s| s.to_string()));
    v
}

/// A private Open vSwitch (database + vswitchd, userspace datapath) inside
/// the test namespace; the daemon is restarted to see its OVS_RUNDIR.
fn start_ovs(d: &TestDaemon) {
    let dir = ovs_dir(d);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("conf.db");
    let run = |cmd: Vec<String>| {
        let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let (ok, out) = in_netns(&d.netns, &refs);
        assert!(ok, "{cmd:?}: {out}");
    };
    run(vec![
        "ovsdb-tool".into(),
        "create".into(),
        db.display().to_string(),
        "/usr/share/openvswitch/vswitch.ovsschema".into(),
    ]);
    run(ovs_env_cmd(
        d,
        &[
            "ovsdb-server",
            "--remote=punix:db.sock",
            "--pidfile",
            "--detach",
            "--no-chdir",
            "--log-file",
            &db.display().to_string(),
        ],
    )
    .into_iter()
    .map(|s| {
        if s == "--remote=punix:db.sock" {
            format!("--remote=punix:{}/db.sock", dir.display())
        } else {
            s
        }
    })
    .collect());
    run(ovs_env_cmd(d, &["ovs-vsctl", "--no-wait", "init"]));
    run(ovs_env_cmd(
        d,
        &[
            "ovs-vswitchd",
            "--pidfile",
            "--detach",
            "--no-chdir",
            "--log-file",
            &format!("unix:{}/db.sock", dir.display()),
        ],
    ));
    run(ovs_env_cmd(
        d,
        &[
            "ovs-vsctl",
            "add-br",
            "fvtest-ovs",
            "--",
            "set",
            "bridge",
            "fvtest-ovs",
            "datapath_type=netdev",
        ],
    ));
}

/// Two NICs whose MACs share their 4 low bytes used to get one TAP name
/// (the second start failed, or joined the first's device); the whole MAC
/// now names the TAP.
#[tokio::test(flavor = "multi_thread")]
async fn macs_sharing_low_bytes_get_their_own_taps() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    for (name, mac) in [
        ("tap-a", "52:54:00:ab:cd:0e"),
        ("tap-b", "02:00:00:ab:cd:0e"),
    ] {
        let mut spec = guest_spec(name);
        spec["nics"] = json!([{"network": "default", "mac": mac}]);
        create(c, spec).await;
        c.action(name, StateAction::Start)
            .await
            .unwrap_or_else(|e| panic!("start {name} ({mac}): {e:?}"));
    }
    let (_, links) = in_netns(&d.netns, &["ip", "-o", "link", "show"]);
    for tap in ["fvt525400abcd0e", "fvt020000abcd0e"] {
        assert!(links.contains(tap), "{tap} exists: {links}");
    }
    for name in ["tap-a", "tap-b"] {
        force_stop(c, name).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_plugged_nic_gets_a_lease_and_everything_cleans_up() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    let mut ch = vm(c, "hp", json!([])).await;
    let inst = c
        .add_nic(
            "hp",
            &serde_json::from_value(json!({"network": "default"})).unwrap(),
        )
        .await
        .expect("hot-plug");
    let mac = inst.spec.nics[0].mac.clone().unwrap();
    let mut iface = String::new();
    for _ in 0..50 {
        let out = ch.run("ls /sys/class/net", CMD).await.unwrap().output;
        if let Some(i) = out.split_whitespace().find(|i| i.starts_with("eth")) {
            iface = i.to_owned();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(!iface.is_empty(), "the guest sees the new NIC");
    let ip = dhcp(&mut ch, &iface, "hp").await;
    assert!(
        c.leases("default")
            .await
            .unwrap()
            .iter()
            .any(|l| l.ip == ip && l.mac == mac)
    );
    c.remove_nic("hp", &mac).await.expect("hot-unplug");
    let out = ch.run("ls /sys/class/net", CMD).await.unwrap().output;
    assert!(
        !out.contains(&iface),
        "the NIC is gone from the guest: {out}"
    );

    // Bad input.
    let (code, msg, field) = api_err(
        c.create_network(&json!({"name": "dup", "ipv4": {"address": "192.168.122.5/24"}}))
            .await,
    );
    assert_eq!(
        (code, field.as_deref()),
        (400, Some("ipv4.address")),
        "{msg}"
    );
    assert!(
        msg.contains("overlaps the subnet of network default"),
        "{msg}"
    );
    let (_, msg, field) = api_err(
        c.create_network(
            &json!({"name": "bad", "ipv4": {"address": "10.90.0.1/24", "dhcp_start": "10.91.0.5"}}),
        )
        .await,
    );
    assert_eq!(field.as_deref(), Some("ipv4.dhcp_start"), "{msg}");
    let (_, msg, field) = api_err(
        c.create_network(&json!({"name": "bad", "ipv4": {"address": "10.90.0.0/24"}}))
            .await,
    );
    assert_eq!(field.as_deref(), Some("ipv4.address"), "{msg}");
    let (_, msg, field) = api_err(
        c.create_network(&json!({"name": "mv", "type": "macvtap", "parent": "nosuch0"}))
            .await,
    );
    assert_eq!(field.as_deref(), Some("parent"), "{msg}");
    assert!(msg.contains("no interface nosuch0"), "{msg}");
    let mut spec = guest_spec("nonet");
    spec["nics"] = json!([{"network": "ghost"}]);
    let (_, msg, field) = api_err(c.create_instance(&spec).await);
    assert_eq!(field.as_deref(), Some("nics[0].network"), "{msg}");
    c.add_nic(
        "hp",
        &serde_json::from_value(json!({"network": "default"})).unwrap(),
    )
    .await
    .unwrap();
    let (code, msg, _) = api_err(c.delete_network("default").await);
    assert_eq!(code, 409);
    assert!(msg.contains("used by instance(s) hp"), "{msg}");

    // Delete everything: nothing of ours is left in the namespace.
    c.delete_instance("hp", true).await.unwrap();
    assert_eq!(
        c.instance("hp").await.map(|i| i.state.status).ok(),
        None::<InstanceStatus>
    );
    c.delete_network("default").await.expect("delete default");
    let (_, links) = in_netns(&d.netns, &["ip", "-o", "link"]);
    assert!(!links.contains("fv"), "links left: {links}");
    let (ok, rules) = in_netns(&d.netns, &["nft", "list", "table", "inet", "ferrovirt"]);
    assert!(!ok, "our table is gone: {rules}");
    let (_, pids) = in_netns(&d.netns, &["ip", "netns", "pids", &d.netns]);
    let procs: Vec<String> = pids
        .split_whitespace()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
        .collect();
    assert!(
        !procs.iter().any(|p| p.trim() == "dnsmasq"),
        "dnsmasq left: {procs:?}"
    );
}
