//! Virtual networks: definition, start/stop, the default network, the
//! firewall table, and start-up reconciliation.

mod dnsmasq;
pub mod nics;

use std::path::PathBuf;

use ferrovirt_api::{Lease, Network, NetworkSpec, NetworkType};
use ferrovirt_core::Error;
use ferrovirt_network::{firewall, host, plan};
use ferrovirt_store::NetworkRecord;
use ipnet::Ipv4Net;

use crate::daemon::{Daemon, store_err};

fn host_err(doing: &str) -> impl Fn(host::HostError) -> Error + '_ {
    move |e| Error::internal(format!("{doing}: {}", ferrovirt_core::error::chain(&e)))
}

/// The lock key of a network (instances and networks share the lock map).
fn lock_key(name: &str) -> String {
    format!("network/{name}")
}

pub fn dir(d: &Daemon, name: &str) -> PathBuf {
    d.config.state_dir.join("networks").join(name)
}

pub async fn records(d: &Daemon) -> Result<Vec<NetworkRecord>, Error> {
    d.store
        .networks()
        .await
        .map_err(store_err("reading networks"))
}

pub async fn record(d: &Daemon, name: &str) -> Result<NetworkRecord, Error> {
    records(d)
        .await?
        .into_iter()
        .find(|r| r.spec.name == name)
        .ok_or_else(|| Error::not_found(format!("network {name} does not exist")))
}

fn subnet_of(spec: &NetworkSpec) -> Option<Ipv4Net> {
    spec.ipv4
        .as_ref()
        .and_then(|v| plan::ipv4_plan(v).ok())
        .map(|p| p.subnet)
}

/// Instances with a NIC on `network`.
pub async fn used_by(d: &Daemon, network: &str) -> Vec<String> {
    d.store
        .list_instances()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.spec.nics.iter().any(|n| n.network == network))
        .map(|r| r.spec.name)
        .collect()
}

pub async fn view(d: &Daemon, rec: NetworkRecord) -> Network {
    let bridge = match rec.spec.kind {
        k if k.is_managed() => Some(ferrovirt_network::bridge_name(&rec.spec.name)),
        NetworkType::Bridge | NetworkType::Ovs => rec.spec.parent.clone(),
        _ => None,
    };
    Network {
        used_by: used_by(d, &rec.spec.name).await,
        active: rec.active,
        bridge,
        spec: rec.spec,
    }
}

/// Validates a spec and fills its defaults (a free subnet for managed
/// networks without one).
async fn validate(d: &Daemon, mut spec: NetworkSpec) -> Result<NetworkSpec, Error> {
    plan::check_spec(&spec)?;
    let others: Vec<NetworkRecord> = records(d)
        .await?
        .into_iter()
        .filter(|r| r.spec.name != spec.name)
        .collect();
    if spec.kind.is_managed() {
        let mut used: Vec<Ipv4Net> = others.iter().filter_map(|r| subnet_of(&r.spec)).collect();
        let host_used = host::used_subnets();
        if spec.ipv4.is_none() {
            used.extend(host_used.iter().copied());
            let free = plan::free_subnet(&used).ok_or_else(|| {
                Error::validation("ipv4", "no free private /24 subnet is left; give one")
            })?;
            spec.ipv4 = Some(plan::default_ipv4(free));
        }
        let p = plan::ipv4_plan(spec.ipv4.as_ref().expect("set"))?;
        if let Some(other) = others
            .iter()
            .find(|r| subnet_of(&r.spec).is_some_and(|s| plan::overlaps(&s, &p.subnet)))
        {
            return Err(Error::validation(
                "ipv4.address",
                format!(
                    "{} overlaps the subnet of network {}",
                    p.subnet, other.spec.name
                ),
            ));
        }
        let ours = ferrovirt_network::bridge_name(&spec.name);
        if let Some(route) = host_used.iter().find(|s| plan::overlaps(s, &p.subnet)) {
            let own = host::ip(&["-4", "-o", "addr", "show", "dev", &ours])
                .unwrap_or_default()
                .contains(&p.gateway.to_string());
            if !own {
                return Err(Error::validation(
                    "ipv4.address",
                    format!("{} overlaps {route}, which the host already uses", p.subnet),
                ));
            }
        }
    }
    if let Some(parent) = &spec.parent
        && spec.kind != NetworkType::Ovs
        && !host::link_exists(parent)
    {
        return Err(Error::validation(
            "parent",
            format!("the host has no interface {parent}"),
        ));
    }
    if spec.kind == NetworkType::Bridge
        && let Some(parent) = &spec.parent
        && !std::path::Path::new("/sys/class/net")
            .join(parent)
            .join("bridge")
            .exists()
    {
        return Err(Error::validation(
            "parent",
            format!("{parent} is not a bridge"),
        ));
    }
    Ok(spec)
}

pub async fn create(d: &Daemon, spec: NetworkSpec, start_now: bool) -> Result<Network, Error> {
    let _guard = d.locks.lock(&lock_key(&spec.name)).await;
    let spec = validate(d, spec).await?;
    let rec = NetworkRecord {
        spec,
        active: false,
    };
    d.store
        .insert_network(&rec)
        .await
        .map_err(store_err("saving the network"))?;
    if start_now && let Err(e) = start_locked(d, &rec.spec.name).await {
        let _ = d.store.delete_network(&rec.spec.name).await;
        return Err(e);
    }
    Ok(view(d, record(d, &rec.spec.name).await?).await)
}

/// Replaces a network's spec; an active network may change only its
/// description, autostart and static hosts.
pub async fn replace(d: &Daemon, name: &str, spec: NetworkSpec) -> Result<Network, Error> {
    let _guard = d.locks.lock(&lock_key(name)).await;
    let old = record(d, name).await?;
    if spec.name != name {
        return Err(Error::validation("name", "cannot be changed"));
    }
    let spec = validate(d, spec).await?;
    if old.active {
        let strip = |s: &NetworkSpec| {
            let mut s = s.clone();
            s.description.clear();
            s.autostart = false;
            if let Some(v) = &mut s.ipv4 {
                v.hosts.clear();
            }
            s
        };
        if strip(&old.spec) != strip(&spec) {
            return Err(Error::conflict(format!(
                "network {name} is running; only description, autostart and ipv4.hosts change live; stop it first"
            )));
        }
    }
    let rec = NetworkRecord {
        spec,
        active: old.active,
    };
    d.store
        .update_network(&rec)
        .await
        .map_err(store_err("saving the network"))?;
    if rec.active && rec.spec.kind.is_managed() && rec.spec.ipv4 != old.spec.ipv4 {
        dnsmasq::restart(d, &rec.spec)?;
    }
    Ok(view(d, rec).await)
}

pub async fn delete(d: &Daemon, name: &str) -> Result<(), Error> {
    let _guard = d.locks.lock(&lock_key(name)).await;
    let rec = record(d, name).await?;
    let users = used_by(d, name).await;
    if !users.is_empty() {
        return Err(Error::conflict(format!(
            "network {name} is used by instance(s) {}; remove their NICs first",
            users.join(", ")
        )));
    }
    if rec.active {
        stop_locked(d, name).await?;
    }
    d.store
        .delete_network(name)
        .await
        .map_err(store_err("deleting the network"))?;
    let _ = std::fs::remove_dir_all(dir(d, name));
    Ok(())
}

pub async fn start(d: &Daemon, name: &str) -> Result<Network, Error> {
    let _guard = d.locks.lock(&lock_key(name)).await;
    start_locked(d, name).await?;
    Ok(view(d, record(d, name).await?).await)
}

async fn start_locked(d: &Daemon, name: &str) -> Result<(), Error> {
    let mut rec = record(d, name).await?;
    bring_up(d, &rec.spec)?;
    rec.active = true;
    d.store
        .update_network(&rec)
        .await
        .map_err(store_err("saving the network"))?;
    apply_firewall(d).await
}

/// Creates what an active network needs on the host (idempotent).
fn bring_up(d: &Daemon, spec: &NetworkSpec) -> Result<(), Error> {
    let name = &spec.name;
    match spec.kind {
        k if k.is_managed() => {
            let cfg = spec.ipv4.as_ref().ok_or_else(|| {
                Error::internal(format!("network {name} has no IPv4 configuration"))
            })?;
            let plan = plan::ipv4_plan(cfg)?;
            let br = ferrovirt_network::bridge_name(name);
            let address = format!("{}/{}", plan.gateway, plan.subnet.prefix_len());
            host::create_bridge(&br, &address).map_err(host_err(&format!(
                "cannot create the bridge of network {name}"
            )))?;
            if matches!(k, NetworkType::Nat | NetworkType::Routed) {
                host::enable_forwarding().map_err(host_err("cannot enable IPv4 forwarding"))?;
            }
            dnsmasq::restart(d, spec)
        }
        NetworkType::Ovs => {
            let parent = spec.parent.as_deref().unwrap_or_default();
            host::ovs_ensure_bridge(parent)
                .map_err(host_err(&format!("cannot set up the OVS bridge {parent}")))
        }
        _ => {
            let parent = spec.parent.as_deref().unwrap_or_default();
            if !host::link_exists(parent) {
                return Err(Error::conflict(format!(
                    "network {name}: the host interface {parent} is gone"
                )));
            }
            Ok(())
        }
    }
}

pub async fn stop(d: &Daemon, name: &str) -> Result<Network, Error> {
    let _guard = d.locks.lock(&lock_key(name)).await;
    stop_locked(d, name).await?;
    Ok(view(d, record(d, name).await?).await)
}

async fn stop_locked(d: &Daemon, name: &str) -> Result<(), Error> {
    let mut rec = record(d, name).await?;
    let running: Vec<String> = used_by(d, name)
        .await
        .into_iter()
        .filter(|i| d.runtime(i).is_some())
        .collect();
    if !running.is_empty() {
        return Err(Error::conflict(format!(
            "network {name} is used by running instance(s) {}",
            running.join(", ")
        )));
    }
    if rec.spec.kind.is_managed() {
        dnsmasq::stop(d, name);
        host::delete_link(&ferrovirt_network::bridge_name(name)).map_err(host_err(&format!(
            "cannot delete the bridge of network {name}"
        )))?;
    }
    rec.active = false;
    d.store
        .update_network(&rec)
        .await
        .map_err(store_err("saving the network"))?;
    apply_firewall(d).await
}

/// Replaces Ferrovirt's nftables table with the rules of the active networks.
pub async fn apply_firewall(d: &Daemon) -> Result<(), Error> {
    let nets: Vec<firewall::FirewallNet> = records(d)
        .await?
        .into_iter()
        .filter(|r| r.active && r.spec.kind.is_managed())
        .filter_map(|r| {
            Some(firewall::FirewallNet {
                subnet: subnet_of(&r.spec)?,
                name: r.spec.name,
                kind: r.spec.kind,
            })
        })
        .collect();
    if nets.is_empty() && !table_exists() {
        // Nothing to add and nothing of ours to remove: leave nft alone.
        return Ok(());
    }
    let script = firewall::ruleset(&nets);
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::internal(format!("cannot run nft: {e}; install nftables")))?;
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| Error::internal(format!("cannot feed nft: {e}")))?;
    let out = child
        .wait_with_output()
        .map_err(|e| Error::internal(format!("nft failed: {e}")))?;
    if !out.status.success() {
        return Err(Error::internal(format!(
            "nft refused Ferrovirt's ruleset: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn table_exists() -> bool {
    std::process::Command::new("nft")
        .args(["list", "table", "inet", "ferrovirt"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The DHCP leases of network `name` as dnsmasq recorded them, without
/// their owners (an unknown network has none).
pub fn dhcp_leases(d: &Daemon, name: &str) -> Vec<Lease> {
    dnsmasq::leases(d, name)
}

pub async fn leases(d: &Daemon, name: &str) -> Result<Vec<Lease>, Error> {
    record(d, name).await?;
    let mut leases = dnsmasq::leases(d, name);
    let owners: Vec<(String, String)> = d
        .store
        .list_instances()
        .await
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| {
            let inst = r.spec.name.clone();
            r.spec
                .nics
                .into_iter()
                .filter_map(move |n| n.mac.map(|m| (m.to_lowercase(), inst.clone())))
        })
        .collect();
    for l in &mut leases {
        l.instance = owners
            .iter()
            .find(|(m, _)| *m == l.mac)
            .map(|(_, i)| i.clone());
    }
    Ok(leases)
}

/// The default network, made once on the daemon's first start: nat, on a
/// free private subnet. Deleted by the user, it stays deleted.
pub async fn ensure_default(d: &Daemon) -> Result<(), Error> {
    let marker = d.config.state_dir.join("default-network-created");
    if marker.exists() || records(d).await?.iter().any(|r| r.spec.name == "default") {
        return Ok(());
    }
    let spec = NetworkSpec {
        name: "default".into(),
        kind: NetworkType::Nat,
        ipv4: None,
        domain: None,
        parent: None,
        macvtap_mode: Default::default(),
        autostart: true,
        description: "created by ferrovirtd on its first start".into(),
    };
    create(d, spec, true).await?;
    let _ = std::fs::write(&marker, b"");
    tracing::info!("created the default network");
    Ok(())
}

/// Start-up: bring back every network that should be active (a host reboot
/// removed its bridge and dnsmasq), start autostart ones, re-apply the firewall.
pub async fn reconcile(d: &Daemon) {
    for rec in records(d).await.unwrap_or_default() {
        if rec.active || rec.spec.autostart {
            let name = rec.spec.name.clone();
            let result = if rec.active {
                bring_up_kept(d, &rec.spec)
            } else {
                start_locked(d, &name).await
            };
            if let Err(e) = result {
                tracing::error!(network = name, error = %e, "cannot bring the network up");
            }
        }
    }
    if let Err(e) = apply_firewall(d).await {
        tracing::error!(error = %e, "cannot apply the firewall");
    }
}

/// Like [`bring_up`] but keeps a dnsmasq that still runs.
fn bring_up_kept(d: &Daemon, spec: &NetworkSpec) -> Result<(), Error> {
    if spec.kind.is_managed()
        && dnsmasq::running(d, &spec.name)
        && host::link_exists(&ferrovirt_network::bridge_name(&spec.name))
    {
        return Ok(());
    }
    bring_up(d, spec)
}
