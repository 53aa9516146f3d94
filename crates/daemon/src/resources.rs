//! Live resource changes: vCPU hot-plug and unplug, memory hot-plug (DIMMs),
//! and the balloon target.

use ferrovirt_api::InstanceSpec;
use ferrovirt_core::Error;
use ferrovirt_qemu::Monitor;

use crate::monitor_error::job_err;

/// Brings a running QEMU from `old` to `new` (cpus, memory, balloon).
pub async fn apply(qmp: &Monitor, old: &InstanceSpec, new: &InstanceSpec) -> Result<(), Error> {
    if new.cpus != old.cpus {
        set_cpus(qmp, new.cpus).await?;
    }
    if new.memory > old.memory {
        let id = format!("dimm-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        qmp.plug_memory(&id, (new.memory - old.memory) << 20)
            .await
            .map_err(job_err("plugging memory"))?;
    }
    if new.balloon != old.balloon || new.memory != old.memory {
        set_balloon(qmp, new).await?;
    }
    Ok(())
}

/// Sets the balloon target (all of `memory` when no target is set).
pub async fn set_balloon(qmp: &Monitor, spec: &InstanceSpec) -> Result<(), Error> {
    let mib = spec.balloon.unwrap_or(spec.memory);
    qmp.balloon(mib << 20)
        .await
        .map_err(job_err("setting the balloon"))
}

/// Plugs or unplugs vCPUs until `want` are present.
async fn set_cpus(qmp: &Monitor, want: u32) -> Result<(), Error> {
    let slots = qmp
        .query_hotpluggable_cpus()
        .await
        .map_err(job_err("listing CPU slots"))?;
    let present = slots.iter().filter(|s| s.qom_path.is_some()).count() as u32;
    if want > present {
        let mut free: Vec<_> = slots.iter().filter(|s| s.qom_path.is_none()).collect();
        free.sort_by_key(|s| s.socket());
        for slot in free.into_iter().take((want - present) as usize) {
            qmp.plug_cpu(slot)
                .await
                .map_err(job_err("plugging a vCPU"))?;
        }
    } else if want < present {
        // Only hot-plugged vCPUs (with a device id) can go.
        let mut plugged: Vec<String> = slots
            .iter()
            .filter_map(|s| s.qom_path.as_deref())
            .filter_map(|p| p.strip_prefix("/machine/peripheral/"))
            .map(str::to_owned)
            .collect();
        plugged.sort();
        let remove = (present - want) as usize;
        if plugged.len() < remove {
            return Err(Error::conflict(format!(
                "only hot-plugged vCPUs can be removed live; {} of them exist",
                plugged.len()
            )));
        }
        for id in plugged.iter().rev().take(remove) {
            qmp.device_del(id, &format!("vCPU {id}"))
                .await
                .map_err(job_err("unplugging a vCPU"))?;
        }
    }
    Ok(())
}
