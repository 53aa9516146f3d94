//! Defining, changing and deleting instances.

use std::time::Duration;

use ferrovirt_api::{
    AccelDecision, EventKind, Instance, InstanceSpec, InstanceState, InstanceStatus,
};
use ferrovirt_core::Error;
use ferrovirt_core::spec::check_update;
use ferrovirt_store::InstanceRecord;
use serde_json::Value;

use crate::daemon::{Daemon, store_err};
use crate::instance::{self, job::JobKind};

/// The API view of an instance.
pub fn view(d: &Daemon, rec: InstanceRecord) -> Instance {
    let rt = d.runtime(&rec.spec.name);
    let (pid, accel): (Option<u32>, Option<AccelDecision>) = match &rt {
        Some(rt) => (Some(rt.pid()), Some(rt.accel.clone())),
        None => (None, None),
    };
    Instance {
        state: InstanceState {
            status: rec.status,
            reason: rec.reason,
            pid,
            accel,
            saved: rec.managed_save.is_some(),
            current_snapshot: rec.current_snapshot.clone(),
            addresses: addresses(d, &rec.spec),
        },
        spec: rec.spec.into_inner(),
        created_at: rec.created_at,
    }
}

/// The NICs' addresses from their networks' leases.
fn addresses(d: &Daemon, spec: &ferrovirt_api::InstanceSpec) -> Vec<ferrovirt_api::NicAddress> {
    spec.nics
        .iter()
        .filter_map(|nic| {
            let mac = nic.mac.as_deref()?.to_lowercase();
            let lease = crate::networks::dhcp_leases(d, &nic.network)
                .into_iter()
                .find(|l| l.mac == mac)?;
            Some(ferrovirt_api::NicAddress {
                mac,
                network: nic.network.clone(),
                ip: lease.ip,
            })
        })
        .collect()
}

pub async fn create(d: &Daemon, mut spec: InstanceSpec) -> Result<Instance, Error> {
    crate::storage::volumes::resolve_disks(d, &mut spec).await?;
    crate::networks::nics::prepare(d, &mut spec).await?;
    let spec = d.validate(spec)?;
    let name = spec.name.clone();
    let _guard = d.locks.lock(&name).await;
    let rec = InstanceRecord {
        spec,
        status: InstanceStatus::Shutoff,
        reason: "defined".into(),
        created_at: Daemon::now(),
        managed_save: None,
        current_snapshot: None,
    };
    d.store
        .insert_instance(&rec)
        .await
        .map_err(store_err("saving the instance"))?;
    d.events.emit(EventKind::Created, &name, None);
    Ok(view(d, rec))
}

/// Replaces the spec (PUT). Running instances may change only live fields.
pub async fn replace(d: &Daemon, name: &str, mut spec: InstanceSpec) -> Result<Instance, Error> {
    let h = instance::handle(d, name).await?;
    let _job = h.begin(JobKind::Update, None)?;
    let old = d.record(name).await?;
    if spec.uuid.is_none() {
        spec.uuid = old.spec.uuid;
    }
    // Maximums left at their default follow cpus/memory of a stopped instance.
    if h.live().is_none() {
        if spec.max_cpus == old.spec.max_cpus && old.spec.max_cpus == Some(old.spec.cpus) {
            spec.max_cpus = None;
        }
        if spec.max_memory == old.spec.max_memory && old.spec.max_memory == Some(old.spec.memory) {
            spec.max_memory = None;
        }
    }
    crate::storage::volumes::resolve_disks(d, &mut spec).await?;
    crate::networks::nics::prepare(d, &mut spec).await?;
    let spec = d.validate(spec)?;
    check_update(&old.spec, &spec, h.live().is_some())?;
    if let Some(rt) = h.live() {
        crate::resources::apply(rt.monitor(), &old.spec, &spec).await?;
    }
    d.store
        .update_spec(&spec)
        .await
        .map_err(store_err("saving the instance"))?;
    d.events.emit(EventKind::Updated, name, None);
    d.record(name).await.map(|r| view(d, r))
}

/// Applies a JSON merge patch (RFC 7396) to the spec (PATCH).
pub async fn patch(d: &Daemon, name: &str, patch: Value) -> Result<Instance, Error> {
    let old = d.record(name).await?;
    let mut doc = serde_json::to_value(old.spec.get()).expect("spec serializes");
    merge(&mut doc, patch);
    let spec = crate::json::from_value::<InstanceSpec>(doc)?;
    replace(d, name, spec).await
}

fn merge(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let map = target.as_object_mut().expect("object");
            for (k, v) in fields {
                if v.is_null() {
                    map.remove(&k);
                } else {
                    merge(map.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other,
    }
}

/// Refuses to delete an instance whose files back linked clones.
async fn refuse_if_backing(d: &Daemon, name: &str) -> Result<(), Error> {
    let rec = d.record(name).await?;
    let files = crate::snapshots::chain_files(d, name, &rec.spec).await;
    let users = crate::snapshots::files_backing_other_instances(d, &files, name).await;
    if users.is_empty() {
        return Ok(());
    }
    Err(Error::conflict(format!(
        "instance {name} backs the disks of linked clone(s) {}; delete them first",
        users.join(", ")
    )))
}

pub async fn delete(d: &Daemon, name: &str, force: bool) -> Result<(), Error> {
    let h = instance::handle(d, name).await?;
    refuse_if_backing(d, name).await?;
    if h.live().is_some() && !force {
        return Err(Error::conflict(format!(
            "instance {name} is running; stop it first or delete with --force"
        )));
    }
    if h.live().is_some() {
        // Preempts whatever job runs, then waits for it to clean up.
        h.stop(true, Duration::ZERO).await?;
        h.wait_idle(Duration::from_secs(30)).await;
    }
    let _job = h.begin(JobKind::Delete, None)?;
    let _guard = d.locks.lock(name).await;
    // Checked again under the job: a clone may have been made meanwhile.
    refuse_if_backing(d, name).await?;
    let rec = d.record(name).await?;
    let ours = crate::snapshots::owned_files(d, name, &rec.spec).await;
    if h.live().is_some() {
        return Err(Error::conflict(format!(
            "instance {name} is running; stop it first or delete with --force"
        )));
    }
    for file in &ours {
        ferrovirt_storage::record::remove_image(std::path::Path::new(file));
    }
    if let Some(save) = &rec.managed_save {
        let _ = std::fs::remove_file(save);
    }
    let _ = std::fs::remove_dir_all(d.config.state_dir.join("snapshots").join(name));
    d.store
        .delete_instance(name)
        .await
        .map_err(store_err("deleting the instance"))?;
    d.forget(name);
    d.events.emit(EventKind::Deleted, name, None);
    Ok(())
}

/// Adds a NIC (hot-plugged when the instance runs).
pub async fn add_nic(d: &Daemon, name: &str, nic: ferrovirt_api::Nic) -> Result<Instance, Error> {
    let h = instance::handle(d, name).await?;
    let _job = h.begin(JobKind::NicChange, None)?;
    let mut spec = d.record(name).await?.spec.into_inner();
    spec.nics.push(nic);
    crate::networks::nics::prepare(d, &mut spec).await?;
    let spec = d.validate(spec)?;
    let nic = spec.nics.last().cloned().expect("just pushed");
    if let Some(rt) = h.live() {
        crate::networks::nics::plug(d, rt.monitor(), &spec, &nic).await?;
    }
    d.store
        .update_spec(&spec)
        .await
        .map_err(store_err("saving the instance"))?;
    d.events.emit(
        EventKind::Updated,
        name,
        Some(format!("NIC {} added", nic.mac.unwrap_or_default())),
    );
    d.record(name).await.map(|r| view(d, r))
}

/// Removes the NIC with `mac` (hot-unplugged when the instance runs).
pub async fn remove_nic(d: &Daemon, name: &str, mac: &str) -> Result<Instance, Error> {
    let h = instance::handle(d, name).await?;
    let _job = h.begin(JobKind::NicChange, None)?;
    let mut spec = d.record(name).await?.spec.into_inner();
    let mac = mac.to_lowercase();
    let index = spec
        .nics
        .iter()
        .position(|n| n.mac.as_deref() == Some(mac.as_str()))
        .ok_or_else(|| Error::not_found(format!("instance {name} has no NIC {mac}")))?;
    let nic = spec.nics.remove(index);
    let spec = d.validate(spec)?;
    if let Some(rt) = h.live() {
        crate::networks::nics::unplug(d, rt.monitor(), &nic).await?;
    }
    d.store
        .update_spec(&spec)
        .await
        .map_err(store_err("saving the instance"))?;
    d.events
        .emit(EventKind::Updated, name, Some(format!("NIC {mac} removed")));
    d.record(name).await.map(|r| view(d, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut doc = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge(
            &mut doc,
            serde_json::json!({"a": null, "b": {"c": 5}, "e": [1]}),
        );
        assert_eq!(doc, serde_json::json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }
}
