//! I/O limits of an instance's disks through QEMU throttle groups
//! (`block_set_io_throttle` with a group name): at start and live.

use ferrovirt_api::{Disk, InstanceSpec, IoLimits};
use ferrovirt_core::Error;
use ferrovirt_qemu::Monitor;
use ferrovirt_qemu::command::throttle_target;
use ferrovirt_qemu::monitor::Throttle;

use crate::monitor_error::qmp_err;

/// The throttle group of a disk: its own unless it names a shared one.
fn group(instance: &str, node: &str, limits: &IoLimits) -> String {
    limits
        .group
        .clone()
        .unwrap_or_else(|| format!("{instance}-{node}"))
}

/// Applies the I/O limits of every disk that has some (at start, before
/// the guest runs).
pub async fn apply_limits(qmp: &Monitor, spec: &InstanceSpec) -> Result<(), Error> {
    for (i, disk) in spec.disks.iter().enumerate() {
        if !disk.limits.is_empty() && ferrovirt_qemu::command::has_medium(disk) {
            let node = ferrovirt_core::disk::node_name(disk, i);
            set(qmp, spec, disk, &node, &disk.limits).await?;
        }
    }
    Ok(())
}

pub async fn set(
    qmp: &Monitor,
    spec: &InstanceSpec,
    disk: &Disk,
    node: &str,
    l: &IoLimits,
) -> Result<(), Error> {
    let throttle = Throttle {
        target: throttle_target(spec.machine, disk, node),
        group: group(&spec.name, node, l),
        limits: l.clone(),
    };
    qmp.set_io_throttle(&throttle).await.map_err(qmp_err(
        &spec.name,
        &format!("set the I/O limits of disk {node} of"),
    ))
}
