//! Guest NICs: MACs, TAP/macvtap devices handed to QEMU as file
//! descriptors over QMP, hot-plug and unplug, cleanup when QEMU exits.

use ferrovirt_api::{InstanceSpec, MachineKind, NetworkType, Nic};
use ferrovirt_core::{Error, NicPort};
use ferrovirt_network::plan;
use ferrovirt_qemu::Monitor;

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
pub async fn prepare(d: &Daemon, spec: &mut InstanceSpec) -> Result<(), Error> {
    if spec.nics.is_empty() {
        // Nothing to check: keep create O(1) in the number of instances.
        return Ok(());
    }
    let networks = super::records(d).await?;
    let taken: Vec<String> = d
        .store
        .list_instances()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.spec.name != spec.name)
        .flat_map(|r| r.spec.into_inner().nics.into_iter().filter_map(|n| n.mac))
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
        if nic.vlan.is_some() && net.spec.kind != NetworkType::Ovs {
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
pub async fn plug(d: &Daemon, qmp: &Monitor, spec: &InstanceSpec, nic: &Nic) -> Result<(), Error> {
    let mac = nic.mac.clone().unwrap_or_default();
    let net = super::record(d, &nic.network).await?;
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
        move |e: ferrovirt_qemu::MonitorError| {
            let message = match &e {
                ferrovirt_qemu::MonitorError::NoFreeSlot(_) => e.to_string(),
                e => format!(
                    "cannot {what} NIC {mac}: {}",
                    ferrovirt_core::error::chain(e)
                ),
            };
            crate::monitor_error::classified(&e, message)
        }
    };
    let fd_name = format!("fd-{sfx}");
    qmp.getfd(&fd_name, std::os::fd::AsFd::as_fd(&fd))
        .await
        .map_err(qmp_err("hand QEMU the TAP of"))?;
    drop(fd);
    // In-kernel virtio-net when the host has it (virtio NICs only).
    let mut vhost_fd = None;
    if nic.model == ferrovirt_api::NicModel::Virtio
        && let Ok(vhost) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/vhost-net")
    {
        let name = format!("vhost-{sfx}");
        qmp.getfd(&name, std::os::fd::AsFd::as_fd(&vhost))
            .await
            .map_err(qmp_err("hand QEMU vhost-net for"))?;
        vhost_fd = Some(name);
    }
    let netdev = format!("net-{sfx}");
    qmp.add_tap_netdev(&netdev, &fd_name, vhost_fd.as_deref())
        .await
        .map_err(qmp_err("create the backend of"))?;
    let bus = if spec.machine == MachineKind::Q35 {
        Some(
            qmp.free_root_port(ROOT_PORTS)
                .await
                .map_err(qmp_err("find a slot for"))?,
        )
    } else {
        None
    };
    let dev = ferrovirt_qemu::command::nic_device(
        nic.model,
        spec.machine,
        &format!("nic-{sfx}"),
        &netdev,
        &mac,
        bus.as_deref(),
    );
    if let Err(e) = qmp.device_add(&dev).await {
        let _ = qmp.netdev_del(&netdev).await;
        cleanup_nic(d, nic).await;
        return Err(qmp_err("attach")(e));
    }
    Ok(())
}

/// Unplugs a NIC from the running QEMU and removes its host side.
pub async fn unplug(d: &Daemon, qmp: &Monitor, nic: &Nic) -> Result<(), Error> {
    let mac = nic.mac.clone().unwrap_or_default();
    let sfx = id_suffix(&mac);
    qmp.device_del(&format!("nic-{sfx}"), &format!("NIC {mac}"))
        .await
        .map_err(|e| crate::monitor_error::monitor_error(&format!("unplugging NIC {mac}"), e))?;
    let _ = qmp.netdev_del(&format!("net-{sfx}")).await;
    cleanup_nic(d, nic).await;
    Ok(())
}

/// Removes the host side of a NIC whose QEMU is gone (TAPs vanish with
/// their last fd; macvtaps and OVS ports do not).
pub async fn cleanup_nic(d: &Daemon, nic: &Nic) {
    let Some(mac) = nic.mac.clone() else { return };
    let Ok(net) = super::record(d, &nic.network).await else {
        return;
    };
    let port = NicPort {
        mac,
        vlan: nic.vlan,
    };
    super::driver(d, &net.spec).unplug(&port).await;
}

/// Removes the host side of every NIC of an instance.
pub async fn cleanup(d: &Daemon, spec: &InstanceSpec) {
    for nic in &spec.nics {
        cleanup_nic(d, nic).await;
    }
}
