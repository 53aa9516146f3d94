//! Guest NICs: MACs, TAP/macvtap devices handed to QEMU as file
//! descriptors over QMP, hot-plug and unplug, cleanup when QEMU exits.

use ferrovirt_api::{InstanceSpec, MachineKind, Nic};
use ferrovirt_core::{Error, NicPort};
use ferrovirt_network::plan;
use ferrovirt_qmp::Qmp;
use serde_json::json;

use crate::daemon::Daemon;

/// How many hot-pluggable PCIe root ports a q35 instance has (the
/// command-line builder creates them; see `ferrovirt_qemu::command`).
pub use ferrovirt_qemu::command::ROOT_PORTS;

fn random_mac() -> String {
    let b = uuid::Uuid::new_v4().into_bytes();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

fn id_suffix(mac: &str) -> String {
    mac.replace(':', "").to_lowercase()
}

/// Checks the NICs of a spec and gives MAC-less ones a unique MAC (kept in
/// the spec, so it is stable across restarts).
pub fn prepare(d: &Daemon, spec: &mut InstanceSpec) -> Result<(), Error> {
    if spec.nics.is_empty() {
        // Nothing to check: keep create O(1) in the number of instances.
        return Ok(());
    }
    let networks = super::records(d)?;
    let taken: Vec<String> = d
        .store
        .list_instances()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.spec.name != spec.name)
        .flat_map(|r| r.spec.nics.into_iter().filter_map(|n| n.mac))
        .map(|m| m.to_lowercase())
        .collect();
    let mut seen: Vec<String> = Vec::new();
    for (i, nic) in spec.nics.iter_mut().enumerate() {
        let field = |f: &str| format!("nics[{i}].{f}");
        let net = networks
            .iter()
            .find(|r| r.spec.name == nic.network)
            .ok_or_else(|| {
                Error::validation(
                    field("network"),
                    format!("network {} does not exist", nic.network),
                )
            })?;
        if nic.vlan.is_some() && !super::driver(d, &net.spec).capabilities().ovs {
            return Err(Error::validation(
                field("vlan"),
                "VLAN tags need an ovs network",
            ));
        }
        if let Some(v) = nic.vlan
            && !(1..=4094).contains(&v)
        {
            return Err(Error::validation(
                field("vlan"),
                format!("{v} is not a VLAN id (1-4094)"),
            ));
        }
        let mac = match &nic.mac {
            Some(m) => {
                plan::check_mac(&field("mac"), m)?;
                m.to_lowercase()
            }
            None => loop {
                let m = random_mac();
                if !taken.contains(&m) && !seen.contains(&m) {
                    break m;
                }
            },
        };
        if taken.contains(&mac) || seen.contains(&mac) {
            return Err(Error::validation(
                field("mac"),
                format!("{mac} is already in use"),
            ));
        }
        seen.push(mac.clone());
        nic.mac = Some(mac);
    }
    Ok(())
}

/// Creates the host side of a NIC and plugs it into the running QEMU.
pub async fn plug(d: &Daemon, qmp: &Qmp, spec: &InstanceSpec, nic: &Nic) -> Result<(), Error> {
    let mac = nic.mac.clone().unwrap_or_default();
    let net = super::record(d, &nic.network)?;
    if !net.active {
        return Err(Error::conflict(format!(
            "network {} is not running; start it first",
            nic.network
        )));
    }
    let port = NicPort {
        mac: mac.clone(),
        vlan: nic.vlan,
    };
    let fd = super::driver(d, &net.spec).plug(&port).await?;
    let sfx = id_suffix(&mac);
    let qmp_err = |what: &'static str| {
        let mac = mac.clone();
        move |e: ferrovirt_qmp::Error| {
            Error::internal(format!(
                "cannot {what} NIC {mac}: {}",
                ferrovirt_core::error::chain(&e)
            ))
        }
    };
    qmp.send_fd(&format!("fd-{sfx}"), std::os::fd::AsFd::as_fd(&fd))
        .await
        .map_err(qmp_err("hand QEMU the TAP of"))?;
    drop(fd);
    let mut netdev = json!({"type": "tap", "id": format!("net-{sfx}"), "fd": format!("fd-{sfx}")});
    // In-kernel virtio-net when the host has it (virtio NICs only).
    if nic.model == ferrovirt_api::NicModel::Virtio
        && let Ok(vhost) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/vhost-net")
    {
        qmp.send_fd(&format!("vhost-{sfx}"), std::os::fd::AsFd::as_fd(&vhost))
            .await
            .map_err(qmp_err("hand QEMU vhost-net for"))?;
        netdev["vhost"] = json!(true);
        netdev["vhostfd"] = json!(format!("vhost-{sfx}"));
    }
    qmp.execute("netdev_add", Some(netdev))
        .await
        .map_err(qmp_err("create the backend of"))?;
    let mut dev = json!({
        "driver": nic.model.qemu_driver(spec.machine == MachineKind::Microvm),
        "id": format!("nic-{sfx}"),
        "netdev": format!("net-{sfx}"),
        "mac": mac,
    });
    if spec.machine == MachineKind::Q35 {
        dev["bus"] = json!(free_root_port(qmp).await?);
    }
    if let Err(e) = qmp.execute("device_add", Some(dev)).await {
        let _ = qmp
            .execute("netdev_del", Some(json!({"id": format!("net-{sfx}")})))
            .await;
        cleanup_nic(d, nic);
        return Err(qmp_err("attach")(e));
    }
    Ok(())
}

/// The first hot-pluggable root port with nothing behind it.
pub async fn free_root_port(qmp: &Qmp) -> Result<String, Error> {
    let pci = qmp
        .execute("query-pci", None)
        .await
        .map_err(|e| Error::internal(format!("cannot list PCI devices: {e}")))?;
    let mut used = std::collections::HashSet::new();
    for bus in pci.as_array().into_iter().flatten() {
        for dev in bus["devices"].as_array().into_iter().flatten() {
            let id = dev["qdev_id"].as_str().unwrap_or("");
            let behind = dev["pci_bridge"]["devices"]
                .as_array()
                .is_some_and(|d| !d.is_empty());
            if id.starts_with("rp") && behind {
                used.insert(id.to_owned());
            }
        }
    }
    (0..ROOT_PORTS)
        .map(|i| format!("rp{i}"))
        .find(|p| !used.contains(p))
        .ok_or_else(|| Error::conflict(format!("all {ROOT_PORTS} hot-plug slots are taken")))
}

/// Unplugs a NIC from the running QEMU and removes its host side.
pub async fn unplug(d: &Daemon, qmp: &Qmp, nic: &Nic) -> Result<(), Error> {
    let mac = nic.mac.clone().unwrap_or_default();
    let sfx = id_suffix(&mac);
    crate::qmp_jobs::unplug_device(qmp, &format!("nic-{sfx}"), &format!("NIC {mac}")).await?;
    let _ = qmp
        .execute("netdev_del", Some(json!({"id": format!("net-{sfx}")})))
        .await;
    cleanup_nic(d, nic);
    Ok(())
}

/// Removes the host side of a NIC whose QEMU is gone (TAPs vanish with
/// their last fd; macvtaps and OVS ports do not). Callers are not async,
/// so the removal runs as a task of its own.
pub fn cleanup_nic(d: &Daemon, nic: &Nic) {
    let Some(mac) = nic.mac.clone() else { return };
    let Ok(net) = super::record(d, &nic.network) else {
        return;
    };
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(nic = mac, "no runtime to remove the host side of the NIC");
        return;
    };
    let drv = super::driver(d, &net.spec);
    let port = NicPort {
        mac,
        vlan: nic.vlan,
    };
    rt.spawn(async move { drv.unplug(&port).await });
}

/// Removes the host side of every NIC of an instance.
pub fn cleanup(d: &Daemon, spec: &InstanceSpec) {
    for nic in &spec.nics {
        cleanup_nic(d, nic);
    }
}
