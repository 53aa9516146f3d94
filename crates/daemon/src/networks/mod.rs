//! Virtual networks: definition, start/stop, the default network, the
//! firewall table, and start-up reconciliation. The host work is the
//! network's [`NetworkDriver`]'s; this module keeps the records, the locks
//! and the rules, and branches on the driver's capabilities.

pub mod nics;

use std::path::PathBuf;

use ferrovirt_api::{Lease, Network, NetworkSpec, NetworkType};
use ferrovirt_core::{Error, NetworkDriver};
use ferrovirt_network::{firewall, host, plan};
use ferrovirt_store::NetworkRecord;
use ipnet::Ipv4Net;

use crate::daemon::{Daemon, store_err};

/// The driver of a network, running its tools through the daemon's runner.
pub fn driver(d: &Daemon, spec: &NetworkSpec) -> Box<dyn NetworkDriver> {
    ferrovirt_network::driver(spec, dir(d, &spec.name), d.runner.clone())
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
        .map(|r| r.spec.into_inner().name)
        .collect()
}

pub async fn view(d: &Daemon, rec: NetworkRecord) -> Network {
    let bridge = driver(d, &rec.spec).bridge();
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
    let drv = driver(d, &spec);
    if drv.capabilities().managed {
        let mut used: Vec<Ipv4Net> = others.iter().filter_map(|r| subnet_of(&r.spec)).collect();
        let host_used = host::used_subnets(&*d.runner).await;
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
        let ours = drv.bridge().unwrap_or_default();
        if let Some(route) = host_used.iter().find(|s| plan::overlaps(s, &p.subnet))
            && !host::has_address(&*d.runner, &ours, &p.gateway.to_string()).await
        {
            return Err(Error::validation(
                "ipv4.address",
                format!("{} overlaps {route}, which the host already uses", p.subnet),
            ));
        }
    }
    drv.check_host().await?;
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
    if rec.active && rec.spec.ipv4 != old.spec.ipv4 {
        driver(d, &rec.spec).reload().await?;
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
    driver(d, &rec.spec).start().await?;
    rec.active = true;
    d.store
        .update_network(&rec)
        .await
        .map_err(store_err("saving the network"))?;
    apply_firewall(d).await
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
    driver(d, &rec.spec).stop().await?;
    rec.active = false;
    d.store
        .update_network(&rec)
        .await
        .map_err(store_err("saving the network"))?;
    apply_firewall(d).await
}

/// Replaces Ferrovirt's nftables table with the rules of the active
/// managed networks.
pub async fn apply_firewall(d: &Daemon) -> Result<(), Error> {
    let nets: Vec<firewall::FirewallNet> = records(d)
        .await?
        .into_iter()
        .filter(|r| r.active && driver(d, &r.spec).capabilities().managed)
        .filter_map(|r| {
            Some(firewall::FirewallNet {
                subnet: subnet_of(&r.spec)?,
                name: r.spec.name,
                kind: r.spec.kind,
            })
        })
        .collect();
    ferrovirt_network::nft::apply(&*d.runner, &nets).await
}

pub async fn leases(d: &Daemon, name: &str) -> Result<Vec<Lease>, Error> {
    let rec = record(d, name).await?;
    let mut leases = driver(d, &rec.spec).leases();
    let owners: Vec<(String, String)> = d
        .store
        .list_instances()
        .await
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| {
            let inst = r.spec.name.clone();
            r.spec
                .into_inner()
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
                bring_up_kept(d, &rec.spec).await
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

/// Brings an active network up again unless all of it is still there (a
/// dnsmasq that still runs is kept).
async fn bring_up_kept(d: &Daemon, spec: &NetworkSpec) -> Result<(), Error> {
    let drv = driver(d, spec);
    if drv.capabilities().managed && drv.is_up().await {
        return Ok(());
    }
    drv.start().await
}

/// The DHCP leases of network `name` as dnsmasq keeps them (no store read:
/// used to show an instance's addresses).
pub fn dhcp_leases(d: &Daemon, name: &str) -> Vec<Lease> {
    ferrovirt_network::dhcp::Dnsmasq::new(&dir(d, name)).leases()
}
