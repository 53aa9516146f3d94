//! An instance's disks while it runs: hot-attach and detach, cdrom media
//! changes, and I/O limits through QEMU throttle groups
//! (`block_set_io_throttle` with a group name).

use ferrovirt_api::{
    Disk, DiskBus, DiskMedia, EventKind, Instance, InstanceSpec, IoLimits, MachineKind, MediaPut,
};
use ferrovirt_core::{Error, ValidSpec};
use ferrovirt_qemu::command::{SCSI_CONTROLLER, blockdev_nodes, device_id, disk_device};
use ferrovirt_qmp::Qmp;
use serde_json::{Value, json};

use crate::daemon::{Daemon, store_err};
use crate::lifecycle::qmp_err;
use crate::storage::volumes;

/// The throttle group of a disk: its own unless it names a shared one.
fn group(instance: &str, node: &str, limits: &IoLimits) -> String {
    limits
        .group
        .clone()
        .unwrap_or_else(|| format!("{instance}-{node}"))
}

/// The QOM id `block_set_io_throttle` needs: the device itself, or for a
/// virtio-blk-pci proxy its virtio backend, which holds the block backend.
fn throttle_target(machine: MachineKind, disk: &Disk, node: &str) -> String {
    if disk.bus == DiskBus::Virtio && machine != MachineKind::Microvm {
        format!("/machine/peripheral/{}/virtio-backend", device_id(node))
    } else {
        device_id(node)
    }
}

/// The arguments of `block_set_io_throttle` for a disk's limits (all zero
/// lifts them).
pub fn throttle_args(instance: &str, target: &str, node: &str, l: &IoLimits) -> Value {
    let v = |x: Option<u64>| x.unwrap_or(0);
    let mut args = json!({
        "id": target,
        "bps": 0, "bps_rd": v(l.read_bytes), "bps_wr": v(l.write_bytes),
        "iops": 0, "iops_rd": v(l.read_iops), "iops_wr": v(l.write_iops),
        "bps_rd_max": v(l.read_bytes_burst), "bps_wr_max": v(l.write_bytes_burst),
        "iops_rd_max": v(l.read_iops_burst), "iops_wr_max": v(l.write_iops_burst),
        "group": group(instance, node, l),
    });
    let length = l.burst_seconds.unwrap_or(1);
    for (burst, key) in [
        (l.read_bytes_burst, "bps_rd_max_length"),
        (l.write_bytes_burst, "bps_wr_max_length"),
        (l.read_iops_burst, "iops_rd_max_length"),
        (l.write_iops_burst, "iops_wr_max_length"),
    ] {
        if burst.is_some() {
            args[key] = json!(length);
        }
    }
    args
}

/// Applies the I/O limits of every disk that has some (at start, before
/// the guest runs).
pub async fn apply_limits(qmp: &Qmp, spec: &InstanceSpec) -> Result<(), Error> {
    for (i, disk) in spec.disks.iter().enumerate() {
        if !disk.limits.is_empty() && ferrovirt_qemu::command::has_medium(disk) {
            let node = ferrovirt_core::disk::node_name(disk, i);
            set_throttle(qmp, spec, disk, &node, &disk.limits).await?;
        }
    }
    Ok(())
}

async fn set_throttle(
    qmp: &Qmp,
    spec: &InstanceSpec,
    disk: &Disk,
    node: &str,
    l: &IoLimits,
) -> Result<(), Error> {
    let target = throttle_target(spec.machine, disk, node);
    qmp.execute(
        "block_set_io_throttle",
        Some(throttle_args(&spec.name, &target, node, l)),
    )
    .await
    .map(drop)
    .map_err(qmp_err(
        &spec.name,
        &format!("set the I/O limits of disk {node} of"),
    ))
}

fn index_of(spec: &InstanceSpec, disk: &str) -> Result<usize, Error> {
    spec.disks
        .iter()
        .enumerate()
        .position(|(i, d)| ferrovirt_core::disk::node_name(d, i) == disk)
        .ok_or_else(|| Error::not_found(format!("instance {} has no disk {disk}", spec.name)))
}

async fn saved(d: &Daemon, spec: &InstanceSpec, what: String) -> Result<Instance, Error> {
    d.store
        .update_spec(spec)
        .await
        .map_err(store_err("saving the instance"))?;
    d.events.emit(EventKind::Updated, &spec.name, Some(what));
    d.record(&spec.name).await.map(|r| d.view(r))
}

/// Adds a disk (hot-plugged when the instance runs: virtio or scsi).
pub async fn attach(d: &Daemon, name: &str, mut disk: Disk) -> Result<Instance, Error> {
    let _guard = d.locks.lock(name).await;
    let mut spec = d.record(name).await?.spec;
    volumes::resolve_disk(d, "volume", &mut disk).await?;
    if disk.name.is_none() {
        disk.name = Some(ferrovirt_core::disk::free_name(&spec.disks));
    }
    // Errors point at the request's fields, not at the spec's new disk.
    let added = format!("disks[{}].", spec.disks.len());
    spec.disks.push(disk);
    let spec = ValidSpec::new(spec, &d.limits, &Daemon::path_exists)
        .map_err(|mut e| {
            e.field = e.field.map(|f| f.replace(&added, ""));
            e
        })?
        .into_inner();
    let disk = spec.disks.last().cloned().expect("just pushed");
    let node = disk.name.clone().unwrap_or_default();
    if let Some(rt) = d.runtime(name) {
        plug(&rt.qmp, &spec, &disk, &node).await?;
    }
    saved(d, &spec, format!("disk {node} attached")).await
}

async fn plug(qmp: &Qmp, spec: &InstanceSpec, disk: &Disk, node: &str) -> Result<(), Error> {
    let name = &spec.name;
    if !matches!(disk.bus, DiskBus::Virtio | DiskBus::Scsi) || spec.machine == MachineKind::Microvm
    {
        return Err(Error::validation(
            "bus",
            "only virtio and scsi disks can be attached to a running instance (and not on microvm)",
        ));
    }
    let mut added: Vec<String> = Vec::new();
    let result = async {
        for b in blockdev_nodes(disk, node) {
            let id = b["node-name"].as_str().unwrap_or_default().to_owned();
            qmp.execute("blockdev-add", Some(b))
                .await
                .map_err(qmp_err(name, &format!("open the image of disk {node} for")))?;
            added.push(id);
        }
        let mut dev = disk_device(spec.machine, disk, node);
        if disk.bus == DiskBus::Scsi {
            ensure_scsi_controller(qmp, spec).await?;
            dev["scsi-id"] = json!(free_scsi_id(qmp).await?);
        } else if spec.machine == MachineKind::Q35 {
            dev["bus"] = json!(crate::networks::nics::free_root_port(qmp).await?);
        }
        qmp.execute("device_add", Some(dev))
            .await
            .map_err(qmp_err(name, &format!("plug disk {node} into")))?;
        if !disk.limits.is_empty() {
            set_throttle(qmp, spec, disk, node, &disk.limits).await?;
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        for id in added.iter().rev() {
            let _ = qmp
                .execute("blockdev-del", Some(json!({"node-name": id})))
                .await;
        }
    }
    result
}

async fn ensure_scsi_controller(qmp: &Qmp, spec: &InstanceSpec) -> Result<(), Error> {
    let tree = qmp
        .execute("qom-list", Some(json!({"path": "/machine/peripheral"})))
        .await
        .map_err(qmp_err(&spec.name, "list the devices of"))?;
    let exists = tree
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["name"] == SCSI_CONTROLLER);
    if exists {
        return Ok(());
    }
    let mut dev = json!({"driver": "virtio-scsi-pci", "id": SCSI_CONTROLLER});
    if spec.machine == MachineKind::Q35 {
        dev["bus"] = json!(crate::networks::nics::free_root_port(qmp).await?);
    }
    qmp.execute("device_add", Some(dev))
        .await
        .map(drop)
        .map_err(qmp_err(&spec.name, "add a SCSI controller to"))
}

/// A SCSI id no disk on the controller has.
async fn free_scsi_id(qmp: &Qmp) -> Result<u32, Error> {
    let blocks = qmp
        .execute("query-block", None)
        .await
        .map_err(|e| Error::internal(format!("cannot list disks: {e}")))?;
    let mut used = Vec::new();
    for b in blocks.as_array().into_iter().flatten() {
        if let Some(qdev) = b["qdev"].as_str() {
            let id = qdev.rsplit('/').next().unwrap_or(qdev);
            if let Ok(v) = qmp
                .execute(
                    "qom-get",
                    Some(
                        json!({"path": format!("/machine/peripheral/{id}"), "property": "scsi-id"}),
                    ),
                )
                .await
                && let Some(n) = v.as_u64()
            {
                used.push(n as u32);
            }
        }
    }
    Ok((0..).find(|i| !used.contains(i)).expect("a free id"))
}

/// Removes a disk (hot-unplugged when the instance runs).
pub async fn detach(d: &Daemon, name: &str, disk_name: &str) -> Result<Instance, Error> {
    let _guard = d.locks.lock(name).await;
    let mut spec = d.record(name).await?.spec;
    let index = index_of(&spec, disk_name)?;
    let disk = spec.disks[index].clone();
    if let Some(rt) = d.runtime(name) {
        if !matches!(disk.bus, DiskBus::Virtio | DiskBus::Scsi) {
            return Err(Error::conflict(format!(
                "disk {disk_name} is on {:?}, which cannot be unplugged while the instance runs",
                disk.bus
            )));
        }
        unplug(&rt.qmp, &disk, disk_name).await?;
    }
    spec.disks.remove(index);
    saved(d, &spec, format!("disk {disk_name} detached")).await
}

async fn unplug(qmp: &Qmp, disk: &Disk, node: &str) -> Result<(), Error> {
    crate::qmp_jobs::unplug_device(qmp, &device_id(node), &format!("disk {node}")).await?;
    for b in blockdev_nodes(disk, node).iter().rev() {
        let _ = qmp
            .execute("blockdev-del", Some(json!({"node-name": b["node-name"]})))
            .await;
    }
    Ok(())
}

/// Inserts a medium into a cdrom drive, or ejects it.
pub async fn change_media(
    d: &Daemon,
    name: &str,
    disk_name: &str,
    req: MediaPut,
) -> Result<Instance, Error> {
    let _guard = d.locks.lock(name).await;
    let mut spec = d.record(name).await?.spec;
    let index = index_of(&spec, disk_name)?;
    if spec.disks[index].media != DiskMedia::Cdrom {
        return Err(Error::validation(
            "disk",
            format!("{disk_name} is a disk, not a cdrom drive"),
        ));
    }
    if req.path.is_some() && req.volume.is_some() {
        return Err(Error::validation(
            "path",
            "give a path or a volume, not both",
        ));
    }
    let mut disk = spec.disks[index].clone();
    disk.volume = req.volume;
    disk.path = req.path.unwrap_or_default();
    volumes::resolve_disk(d, "volume", &mut disk).await?;
    if !disk.path.is_empty() {
        ferrovirt_core::disk::validate("media", &mut disk, spec.machine, &Daemon::path_exists)?;
    }
    if let Some(rt) = d.runtime(name) {
        let id = device_id(disk_name);
        if disk.path.is_empty() {
            rt.qmp
                .execute("eject", Some(json!({"id": id, "force": true})))
                .await
                .map_err(qmp_err(
                    name,
                    &format!("eject the medium of {disk_name} in"),
                ))?;
        } else {
            rt.qmp
                .execute(
                    "blockdev-change-medium",
                    Some(
                        json!({"id": id, "filename": disk.path, "format": disk.format.as_str(),
                                "read-only-mode": "read-only"}),
                    ),
                )
                .await
                .map_err(qmp_err(
                    name,
                    &format!("insert the medium into {disk_name} of"),
                ))?;
        }
    }
    let what = if disk.path.is_empty() {
        format!("medium of {disk_name} ejected")
    } else {
        format!("{} inserted into {disk_name}", disk.path)
    };
    spec.disks[index] = disk;
    saved(d, &spec, what).await
}

/// Replaces a disk's I/O limits, at once when the instance runs.
pub async fn set_limits(
    d: &Daemon,
    name: &str,
    disk_name: &str,
    limits: IoLimits,
) -> Result<Instance, Error> {
    let _guard = d.locks.lock(name).await;
    let mut spec = d.record(name).await?.spec;
    let index = index_of(&spec, disk_name)?;
    ferrovirt_core::disk::validate_limits("limits", &limits)?;
    if let Some(rt) = d.runtime(name)
        && ferrovirt_qemu::command::has_medium(&spec.disks[index])
    {
        let disk = spec.disks[index].clone();
        set_throttle(&rt.qmp, &spec, &disk, disk_name, &limits).await?;
    }
    spec.disks[index].limits = limits;
    saved(d, &spec, format!("I/O limits of {disk_name} changed")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_arguments() {
        let l = IoLimits {
            read_iops: Some(100),
            read_iops_burst: Some(200),
            write_bytes: Some(1 << 20),
            burst_seconds: Some(5),
            ..Default::default()
        };
        let a = throttle_args("vm", "disk1-dev", "disk1", &l);
        assert_eq!(a["id"], "disk1-dev");
        assert_eq!(a["iops_rd"], 100);
        assert_eq!(a["iops_rd_max"], 200);
        assert_eq!(a["iops_rd_max_length"], 5);
        assert_eq!(a["bps_wr"], 1 << 20);
        assert_eq!(a["group"], "vm-disk1");
        assert!(a.get("bps_wr_max_length").is_none());
        let lifted = throttle_args("vm", "disk1-dev", "disk1", &IoLimits::default());
        assert_eq!(lifted["iops_rd"], 0);
    }
}
