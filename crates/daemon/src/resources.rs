//! Live resource changes: vCPU hot-plug and unplug, memory hot-plug (DIMMs),
//! and the balloon target.

use std::time::Duration;

use ferrovirt_api::InstanceSpec;
use ferrovirt_core::Error;
use ferrovirt_qmp::Qmp;
use serde_json::{Value, json};

fn qmp_err(doing: &str) -> impl Fn(ferrovirt_qmp::Error) -> Error + '_ {
    move |e| {
        Error::internal(format!(
            "{doing} failed: {}",
            ferrovirt_core::error::chain(&e)
        ))
    }
}

/// Brings a running QEMU from `old` to `new` (cpus, memory, balloon).
pub async fn apply(qmp: &Qmp, old: &InstanceSpec, new: &InstanceSpec) -> Result<(), Error> {
    if new.cpus != old.cpus {
        set_cpus(qmp, new.cpus).await?;
    }
    if new.memory > old.memory {
        add_memory(qmp, new.memory - old.memory).await?;
    }
    if new.balloon != old.balloon || new.memory != old.memory {
        set_balloon(qmp, new).await?;
    }
    Ok(())
}

/// Sets the balloon target (all of `memory` when no target is set).
pub async fn set_balloon(qmp: &Qmp, spec: &InstanceSpec) -> Result<(), Error> {
    let mib = spec.balloon.unwrap_or(spec.memory);
    qmp.execute("balloon", Some(json!({"value": mib << 20})))
        .await
        .map(drop)
        .map_err(qmp_err("setting the balloon"))
}

/// Plugs or unplugs vCPUs until `want` are present.
async fn set_cpus(qmp: &Qmp, want: u32) -> Result<(), Error> {
    let slots = qmp
        .execute("query-hotpluggable-cpus", None)
        .await
        .map_err(qmp_err("listing CPU slots"))?;
    let slots: Vec<Value> = slots.as_array().cloned().unwrap_or_default();
    let present = slots.iter().filter(|s| s["qom-path"].is_string()).count() as u32;
    if want > present {
        let mut free: Vec<&Value> = slots.iter().filter(|s| s["qom-path"].is_null()).collect();
        free.sort_by_key(|s| s["props"]["socket-id"].as_u64().unwrap_or(0));
        for slot in free.into_iter().take((want - present) as usize) {
            let mut dev = slot["props"].clone();
            let id = format!(
                "vcpu-s{}-c{}-t{}",
                dev["socket-id"].as_u64().unwrap_or(0),
                dev["core-id"].as_u64().unwrap_or(0),
                dev["thread-id"].as_u64().unwrap_or(0)
            );
            dev["driver"] = slot["type"].clone();
            dev["id"] = json!(id);
            qmp.execute("device_add", Some(dev))
                .await
                .map_err(qmp_err("plugging a vCPU"))?;
        }
    } else if want < present {
        // Only hot-plugged vCPUs (with a device id) can go.
        let mut plugged: Vec<String> = slots
            .iter()
            .filter_map(|s| s["qom-path"].as_str())
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
        let mut events = qmp.subscribe();
        for id in plugged.iter().rev().take(remove) {
            qmp.execute("device_del", Some(json!({"id": id})))
                .await
                .map_err(qmp_err("unplugging a vCPU"))?;
            let gone = tokio::time::timeout(Duration::from_secs(20), async {
                while let Ok(ev) = events.recv().await {
                    if ev.event == "DEVICE_DELETED" && ev.data["device"] == id.as_str() {
                        return true;
                    }
                }
                false
            })
            .await
            .unwrap_or(false);
            if !gone {
                return Err(Error::conflict(format!(
                    "the guest did not release vCPU {id} within 20 s"
                )));
            }
        }
    }
    Ok(())
}

/// Adds `mib` of memory as a new DIMM.
async fn add_memory(qmp: &Qmp, mib: u64) -> Result<(), Error> {
    let id = format!("dimm-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    qmp.execute(
        "object-add",
        Some(
            json!({"qom-type": "memory-backend-ram", "id": format!("mem-{id}"), "size": mib << 20}),
        ),
    )
    .await
    .map_err(qmp_err("allocating hot-plugged memory"))?;
    if let Err(e) = qmp
        .execute(
            "device_add",
            Some(json!({"driver": "pc-dimm", "id": id, "memdev": format!("mem-{id}")})),
        )
        .await
    {
        let _ = qmp
            .execute("object-del", Some(json!({"id": format!("mem-{id}")})))
            .await;
        return Err(qmp_err("plugging memory")(e));
    }
    Ok(())
}
