//! An instance's disks while it runs: hot-attach and detach, cdrom media
//! changes, and live I/O limits.

use ferrovirt_api::{
    Disk, DiskBus, DiskMedia, EventKind, Instance, InstanceSpec, IoLimits, MachineKind, MediaPut,
};
use ferrovirt_core::{BackingFile, Error, ValidSpec};
use ferrovirt_qemu::Monitor;
use ferrovirt_qemu::command::{
    ROOT_PORTS, SCSI_CONTROLLER, blockdev_nodes, device_id, placed_disk_device,
};

use crate::daemon::{Daemon, store_err};
use crate::instance::{self, job::JobKind, qmp_err};
use crate::storage::{backing, volumes};

fn index_of(spec: &InstanceSpec, disk: &str) -> Result<usize, Error> {
    spec.disks
        .iter()
        .enumerate()
        .position(|(i, d)| ferrovirt_core::disk::node_name(d, i) == disk)
        .ok_or_else(|| Error::not_found(format!("instance {} has no disk {disk}", spec.name)))
}

async fn saved(d: &Daemon, spec: &ValidSpec, what: String) -> Result<Instance, Error> {
    d.store
        .update_spec(spec)
        .await
        .map_err(store_err("saving the instance"))?;
    d.events.emit(EventKind::Updated, &spec.name, Some(what));
    d.record(&spec.name)
        .await
        .map(|r| crate::instances::view(d, r))
}

/// Adds a disk (hot-plugged when the instance runs: virtio or scsi).
pub async fn attach(d: &Daemon, name: &str, mut disk: Disk) -> Result<Instance, Error> {
    let h = instance::handle(d, name).await?;
    let _job = h.begin(JobKind::DiskChange, None)?;
    let mut spec = d.record(name).await?.spec.into_inner();
    volumes::resolve_disk(d, "", &mut disk).await?;
    if disk.name.is_none() {
        disk.name = Some(ferrovirt_core::disk::free_name(&spec.disks));
    }
    // Errors point at the request's fields, not at the spec's new disk.
    let added = format!("disks[{}].", spec.disks.len());
    spec.disks.push(disk);
    let spec = d.validate(spec).map_err(|mut e| {
        e.field = e.field.map(|f| f.replace(&added, ""));
        e
    })?;
    let disk = spec.disks.last().cloned().expect("just pushed");
    let node = disk.name.clone().unwrap_or_default();
    if let Some(rt) = h.live() {
        let chain = backing::chain(d, "path", &disk.path, disk.format).await?;
        plug(rt.monitor(), &spec, &disk, &node, &chain).await?;
    }
    saved(d, &spec, format!("disk {node} attached")).await
}

async fn plug(
    qmp: &Monitor,
    spec: &InstanceSpec,
    disk: &Disk,
    node: &str,
    chain: &[BackingFile],
) -> Result<(), Error> {
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
        for b in blockdev_nodes(disk, node, chain) {
            let id = b["node-name"].as_str().unwrap_or_default().to_owned();
            qmp.blockdev_add(&b)
                .await
                .map_err(qmp_err(name, &format!("open the image of disk {node} for")))?;
            added.push(id);
        }
        let (bus, scsi_id) = if disk.bus == DiskBus::Scsi {
            ensure_scsi_controller(qmp, spec).await?;
            let used = qmp
                .scsi_ids_in_use()
                .await
                .map_err(qmp_err(name, "list the SCSI disks of"))?;
            (
                None,
                Some((0..).find(|i| !used.contains(i)).expect("a free id")),
            )
        } else if spec.machine == MachineKind::Q35 {
            (Some(free_port(qmp, name).await?), None)
        } else {
            (None, None)
        };
        let dev = placed_disk_device(spec.machine, disk, node, bus.as_deref(), scsi_id);
        qmp.device_add(&dev)
            .await
            .map_err(qmp_err(name, &format!("plug disk {node} into")))?;
        if !disk.limits.is_empty() {
            crate::throttle::set(qmp, spec, disk, node, &disk.limits).await?;
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        for id in added.iter().rev() {
            let _ = qmp.blockdev_del(id).await;
        }
    }
    result
}

async fn free_port(qmp: &Monitor, name: &str) -> Result<String, Error> {
    qmp.free_root_port(ROOT_PORTS)
        .await
        .map_err(qmp_err(name, "find a hot-plug slot in"))
}

async fn ensure_scsi_controller(qmp: &Monitor, spec: &InstanceSpec) -> Result<(), Error> {
    let exists = qmp
        .has_device(SCSI_CONTROLLER)
        .await
        .map_err(qmp_err(&spec.name, "list the devices of"))?;
    if exists {
        return Ok(());
    }
    let bus = if spec.machine == MachineKind::Q35 {
        Some(free_port(qmp, &spec.name).await?)
    } else {
        None
    };
    let dev = ferrovirt_qemu::command::scsi_controller(bus.as_deref());
    qmp.device_add(&dev)
        .await
        .map_err(qmp_err(&spec.name, "add a SCSI controller to"))
}

/// Removes a disk (hot-unplugged when the instance runs).
pub async fn detach(d: &Daemon, name: &str, disk_name: &str) -> Result<Instance, Error> {
    let h = instance::handle(d, name).await?;
    let _job = h.begin(JobKind::DiskChange, None)?;
    let mut spec = d.record(name).await?.spec.into_inner();
    let index = index_of(&spec, disk_name)?;
    let disk = spec.disks[index].clone();
    if let Some(rt) = h.live() {
        if !matches!(disk.bus, DiskBus::Virtio | DiskBus::Scsi) {
            return Err(Error::conflict(format!(
                "disk {disk_name} is on {:?}, which cannot be unplugged while the instance runs",
                disk.bus
            )));
        }
        unplug(rt.monitor(), &disk, disk_name).await?;
    }
    spec.disks.remove(index);
    saved(d, &d.validate(spec)?, format!("disk {disk_name} detached")).await
}

async fn unplug(qmp: &Monitor, disk: &Disk, node: &str) -> Result<(), Error> {
    qmp.device_del(&device_id(node), &format!("disk {node}"))
        .await
        .map_err(|e| crate::monitor_error::monitor_error(&format!("unplugging disk {node}"), e))?;
    for b in blockdev_nodes(disk, node, &[]).iter().rev() {
        let _ = qmp
            .blockdev_del(b["node-name"].as_str().unwrap_or_default())
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
    let h = instance::handle(d, name).await?;
    let _job = h.begin(JobKind::DiskChange, None)?;
    let mut spec = d.record(name).await?.spec.into_inner();
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
    volumes::resolve_disk(d, "", &mut disk).await?;
    if !disk.path.is_empty() {
        ferrovirt_core::disk::validate("media", &mut disk, spec.machine, &Daemon::path_exists)?;
    }
    if let Some(rt) = h.live() {
        let id = device_id(disk_name);
        if disk.path.is_empty() {
            rt.monitor().eject(&id).await.map_err(qmp_err(
                name,
                &format!("eject the medium of {disk_name} in"),
            ))?;
        } else {
            rt.monitor()
                .change_medium(&id, &disk.path, disk.format.as_str())
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
    saved(d, &d.validate(spec)?, what).await
}

/// Replaces a disk's I/O limits, at once when the instance runs.
pub async fn set_limits(
    d: &Daemon,
    name: &str,
    disk_name: &str,
    limits: IoLimits,
) -> Result<Instance, Error> {
    let h = instance::handle(d, name).await?;
    let _job = h.begin(JobKind::DiskChange, None)?;
    let mut spec = d.record(name).await?.spec.into_inner();
    let index = index_of(&spec, disk_name)?;
    ferrovirt_core::disk::validate_limits("limits", &limits)?;
    if let Some(rt) = h.live()
        && ferrovirt_qemu::command::has_medium(&spec.disks[index])
    {
        let disk = spec.disks[index].clone();
        crate::throttle::set(rt.monitor(), &spec, &disk, disk_name, &limits).await?;
    }
    spec.disks[index].limits = limits;
    saved(
        d,
        &d.validate(spec)?,
        format!("I/O limits of {disk_name} changed"),
    )
    .await
}
