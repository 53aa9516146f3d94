//! Device verbs: hot-plug and unplug (waiting for `DEVICE_DELETED`), NIC
//! back ends from passed file descriptors, vCPU and memory hot-plug, the
//! balloon.

use std::collections::HashSet;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use serde_json::{Value, json};

use super::events::Event;
use super::{Monitor, MonitorError, Result};

/// Hot-pluggable PCIe root ports are named `rp0`, `rp1`, … by the builder.
pub const ROOT_PORT_PREFIX: &str = "rp";

/// How long a guest may take to release an unplugged device.
const UNPLUG_TIMEOUT: Duration = Duration::from_secs(20);

/// A vCPU slot (`query-hotpluggable-cpus`).
#[derive(Debug, Clone, PartialEq)]
pub struct CpuSlot {
    /// The device type to plug into the slot.
    pub driver: String,
    /// socket-id, core-id, thread-id …
    pub props: Value,
    /// Set when a vCPU is present.
    pub qom_path: Option<String>,
}

impl CpuSlot {
    fn prop(&self, key: &str) -> u64 {
        self.props[key].as_u64().unwrap_or(0)
    }

    pub fn socket(&self) -> u64 {
        self.prop("socket-id")
    }

    /// The id a vCPU plugged into this slot gets.
    pub fn device_id(&self) -> String {
        format!(
            "vcpu-s{}-c{}-t{}",
            self.prop("socket-id"),
            self.prop("core-id"),
            self.prop("thread-id")
        )
    }
}

impl Monitor {
    /// Hands QEMU the file descriptor `fd` under `name` (SCM_RIGHTS).
    pub async fn getfd(&self, name: &str, fd: BorrowedFd<'_>) -> Result<()> {
        Ok(self.qmp.send_fd(name, fd).await?)
    }

    /// A TAP back end `id` on the passed fd `fd_name`, with in-kernel
    /// virtio-net on the passed fd `vhost_fd` when given.
    pub async fn add_tap_netdev(
        &self,
        id: &str,
        fd_name: &str,
        vhost_fd: Option<&str>,
    ) -> Result<()> {
        let mut netdev = json!({"type": "tap", "id": id, "fd": fd_name});
        if let Some(v) = vhost_fd {
            netdev["vhost"] = json!(true);
            netdev["vhostfd"] = json!(v);
        }
        self.run("netdev_add", Some(netdev)).await
    }

    pub async fn netdev_del(&self, id: &str) -> Result<()> {
        self.run("netdev_del", Some(json!({"id": id}))).await
    }

    /// Plugs a device (the JSON comes from the pure builder).
    pub async fn device_add(&self, device: &Value) -> Result<()> {
        self.run("device_add", Some(device.clone())).await
    }

    /// Unplugs device `id` and waits until the guest has released it;
    /// `what` names it in the error, e.g. `NIC 52:54:…`.
    pub async fn device_del(&self, id: &str, what: &str) -> Result<()> {
        let mut events = self.events();
        self.run("device_del", Some(json!({"id": id}))).await?;
        let released = async {
            while let Some(ev) = events.next().await {
                if let Event::DeviceDeleted { device: Some(d) } = ev
                    && d == id
                {
                    return true;
                }
            }
            false
        };
        match tokio::time::timeout(UNPLUG_TIMEOUT, released).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ferrovirt_qmp::Error::Closed.into()),
            Err(_) => Err(MonitorError::Unplug {
                what: what.to_owned(),
                secs: UNPLUG_TIMEOUT.as_secs(),
            }),
        }
    }

    /// The first of `count` hot-pluggable root ports with nothing behind it.
    pub async fn free_root_port(&self, count: usize) -> Result<String> {
        let pci = self.call("query-pci", None).await?;
        let mut used = HashSet::new();
        for bus in pci.as_array().into_iter().flatten() {
            for dev in bus["devices"].as_array().into_iter().flatten() {
                let id = dev["qdev_id"].as_str().unwrap_or("");
                let behind = dev["pci_bridge"]["devices"]
                    .as_array()
                    .is_some_and(|d| !d.is_empty());
                if id.starts_with(ROOT_PORT_PREFIX) && behind {
                    used.insert(id.to_owned());
                }
            }
        }
        (0..count)
            .map(|i| format!("{ROOT_PORT_PREFIX}{i}"))
            .find(|p| !used.contains(p))
            .ok_or(MonitorError::NoFreeSlot(count))
    }

    /// Whether a device with id `id` exists (`/machine/peripheral`).
    pub async fn has_device(&self, id: &str) -> Result<bool> {
        let tree = self
            .call("qom-list", Some(json!({"path": "/machine/peripheral"})))
            .await?;
        Ok(tree
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == id))
    }

    /// The SCSI ids the disks on the SCSI bus use.
    pub async fn scsi_ids_in_use(&self) -> Result<Vec<u32>> {
        let mut used = Vec::new();
        for b in self.query_block().await? {
            let id = b.qdev.rsplit('/').next().unwrap_or(&b.qdev).to_owned();
            if id.is_empty() {
                continue;
            }
            let v = self
                .call(
                    "qom-get",
                    Some(json!({"path": format!("/machine/peripheral/{id}"),
                                "property": "scsi-id"})),
                )
                .await;
            if let Ok(n) = v
                && let Some(n) = n.as_u64()
            {
                used.push(n as u32);
            }
        }
        Ok(used)
    }

    pub async fn query_hotpluggable_cpus(&self) -> Result<Vec<CpuSlot>> {
        let v = self.call("query-hotpluggable-cpus", None).await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .map(|s| CpuSlot {
                driver: s["type"].as_str().unwrap_or_default().to_owned(),
                props: s["props"].clone(),
                qom_path: s["qom-path"].as_str().map(str::to_owned),
            })
            .collect())
    }

    /// Plugs a vCPU into a free slot.
    pub async fn plug_cpu(&self, slot: &CpuSlot) -> Result<()> {
        let mut dev = slot.props.clone();
        dev["driver"] = json!(slot.driver);
        dev["id"] = json!(slot.device_id());
        self.device_add(&dev).await
    }

    /// The vCPU threads' host thread ids, by vCPU index.
    pub async fn query_cpus_fast(&self) -> Result<Vec<(u32, u32)>> {
        let v = self.call("query-cpus-fast", None).await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["cpu-index"].as_u64().unwrap_or(0) as u32,
                    c["thread-id"].as_u64().unwrap_or(0) as u32,
                )
            })
            .collect())
    }

    /// Adds `bytes` of RAM as a DIMM `id` (backed by object `mem-<id>`).
    pub async fn plug_memory(&self, id: &str, bytes: u64) -> Result<()> {
        let backend = format!("mem-{id}");
        self.run(
            "object-add",
            Some(json!({"qom-type": "memory-backend-ram", "id": backend, "size": bytes})),
        )
        .await?;
        let plugged = self
            .device_add(&json!({"driver": "pc-dimm", "id": id, "memdev": backend}))
            .await;
        if plugged.is_err() {
            let _ = self.run("object-del", Some(json!({"id": backend}))).await;
        }
        plugged
    }

    /// Sets the balloon target to `bytes`.
    pub async fn balloon(&self, bytes: u64) -> Result<()> {
        self.run("balloon", Some(json!({"value": bytes}))).await
    }

    /// The guest's memory as the balloon sees it, in bytes.
    pub async fn query_balloon(&self) -> Result<Option<u64>> {
        Ok(self.call("query-balloon", None).await?["actual"].as_u64())
    }
}
