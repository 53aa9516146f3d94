//! Validation of instance specs.

use std::path::Path;

use ferrovirt_api::{BootDevice, CpuModel, GraphicsType, InstanceSpec, MachineKind};
use uuid::Uuid;

use crate::{Error, name};

/// Smallest guest memory accepted, in MiB.
pub const MIN_MEMORY_MIB: u64 = 16;
/// Largest guest memory accepted, in MiB (1 PiB): whatever the host, so
/// MiB → bytes (`<< 20`) can never overflow.
pub const MAX_MEMORY_MIB: u64 = 1 << 30;
/// Most vCPUs accepted.
pub const MAX_CPUS: u32 = 255;

/// What validation needs to know about the host.
#[derive(Debug, Clone, Default)]
pub struct HostLimits {
    /// Total host memory in MiB.
    pub memory_mib: u64,
    /// CPU model names the QEMU binary knows.
    pub cpu_models: Vec<String>,
}

/// A spec that passed validation, with its defaults filled in (uuid).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSpec(InstanceSpec);

impl ValidSpec {
    /// Validates `spec` against the host; `exists` tells whether a host path
    /// exists (injected so this stays free of I/O in tests).
    pub fn new(
        mut spec: InstanceSpec,
        host: &HostLimits,
        exists: &dyn Fn(&Path) -> bool,
    ) -> Result<Self, Error> {
        name::validate("name", &spec.name)?;
        if spec.uuid.is_none() {
            spec.uuid = Some(Uuid::new_v4());
        }
        if spec.cpus == 0 || spec.cpus > MAX_CPUS {
            return Err(Error::validation(
                "cpus",
                format!("must be between 1 and {MAX_CPUS}, got {}", spec.cpus),
            ));
        }
        if spec.memory < MIN_MEMORY_MIB {
            return Err(Error::validation(
                "memory",
                format!("must be at least {MIN_MEMORY_MIB} MiB, got {}", spec.memory),
            ));
        }
        if host.memory_mib > 0 && spec.memory > host.memory_mib {
            return Err(Error::validation(
                "memory",
                format!(
                    "{} MiB is more than the host's {} MiB",
                    spec.memory, host.memory_mib
                ),
            ));
        }
        if spec.memory > MAX_MEMORY_MIB {
            return Err(Error::validation(
                "memory",
                format!("must be at most {MAX_MEMORY_MIB} MiB, got {}", spec.memory),
            ));
        }
        let max_cpus = *spec.max_cpus.get_or_insert(spec.cpus);
        if max_cpus < spec.cpus || max_cpus > MAX_CPUS {
            return Err(Error::validation(
                "max_cpus",
                format!(
                    "must be between cpus ({}) and {MAX_CPUS}, got {max_cpus}",
                    spec.cpus
                ),
            ));
        }
        let max_memory = *spec.max_memory.get_or_insert(spec.memory);
        let ceiling = match host.memory_mib {
            0 => MAX_MEMORY_MIB,
            host_mib => host_mib.min(MAX_MEMORY_MIB),
        };
        if max_memory < spec.memory || max_memory > ceiling {
            return Err(Error::validation(
                "max_memory",
                format!(
                    "must be between memory ({} MiB) and {ceiling} MiB, got {max_memory}",
                    spec.memory
                ),
            ));
        }
        if max_memory > spec.memory && spec.machine == MachineKind::Microvm {
            return Err(Error::validation(
                "max_memory",
                "the microvm machine has no memory hot-plug",
            ));
        }
        if let Some(b) = spec.balloon
            && (b < MIN_MEMORY_MIB || b > spec.memory)
        {
            return Err(Error::validation(
                "balloon",
                format!(
                    "must be between {MIN_MEMORY_MIB} and memory ({} MiB), got {b}",
                    spec.memory
                ),
            ));
        }
        if let CpuModel::Named(model) = &spec.cpu_model
            && !host.cpu_models.is_empty()
            && !host.cpu_models.iter().any(|m| m == model)
        {
            return Err(Error::validation(
                "cpu_model",
                format!("QEMU does not know the CPU model {model:?} (see `ferrovirt host info`)"),
            ));
        }
        validate_boot(&spec, exists)?;
        crate::disk::validate_all(&mut spec, exists)?;
        if spec.machine == MachineKind::Microvm && spec.graphics.kind != GraphicsType::None {
            return Err(Error::validation(
                "graphics.type",
                "the microvm machine has no display; use none",
            ));
        }
        Ok(Self(spec))
    }

    /// A spec the store recorded: it passed [`ValidSpec::new`] before it
    /// was written, so it is not checked against the host again (a disk
    /// may be gone by now; starting the instance says so).
    pub fn from_store(spec: InstanceSpec) -> Self {
        Self(spec)
    }

    /// Changes the spec and validates the result again: a change never
    /// yields an invalid spec.
    pub fn edit(
        &self,
        host: &HostLimits,
        exists: &dyn Fn(&Path) -> bool,
        change: impl FnOnce(&mut InstanceSpec),
    ) -> Result<Self, Error> {
        let mut spec = self.0.clone();
        change(&mut spec);
        Self::new(spec, host, exists)
    }

    pub fn get(&self) -> &InstanceSpec {
        &self.0
    }

    pub fn into_inner(self) -> InstanceSpec {
        self.0
    }
}

impl std::ops::Deref for ValidSpec {
    type Target = InstanceSpec;

    fn deref(&self) -> &InstanceSpec {
        &self.0
    }
}

impl AsRef<InstanceSpec> for ValidSpec {
    fn as_ref(&self) -> &InstanceSpec {
        &self.0
    }
}

fn validate_boot(spec: &InstanceSpec, exists: &dyn Fn(&Path) -> bool) -> Result<(), Error> {
    let boot = &spec.boot;
    for (field, path) in [("boot.kernel", &boot.kernel), ("boot.initrd", &boot.initrd)] {
        if let Some(path) = path {
            check_file(field, path, exists)?;
        }
    }
    if boot.kernel.is_none() {
        if boot.initrd.is_some() {
            return Err(Error::validation("boot.initrd", "needs boot.kernel"));
        }
        if boot.cmdline.is_some() {
            return Err(Error::validation("boot.cmdline", "needs boot.kernel"));
        }
        if spec.machine == MachineKind::Microvm {
            return Err(Error::validation(
                "boot.kernel",
                "the microvm machine has no firmware boot; give a kernel",
            ));
        }
    }
    if boot.order.is_empty() {
        return Err(Error::validation(
            "boot.order",
            "must list at least one device",
        ));
    }
    for (i, dev) in boot.order.iter().enumerate() {
        if boot.order[..i].contains(dev) {
            return Err(Error::validation(
                format!("boot.order[{i}]"),
                format!("{dev:?} is listed twice"),
            ));
        }
    }
    if boot.order.contains(&BootDevice::Network) {
        return Err(Error::validation(
            "boot.order",
            "network boot needs a NIC, which this version does not support yet",
        ));
    }
    Ok(())
}

pub(crate) fn check_file(
    field: &str,
    path: &str,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<(), Error> {
    if path.is_empty() {
        return Err(Error::validation(field, "must not be empty"));
    }
    if !Path::new(path).is_absolute() {
        return Err(Error::validation(
            field,
            format!("{path:?} must be an absolute path"),
        ));
    }
    if !exists(Path::new(path)) {
        return Err(Error::validation(field, format!("{path} does not exist")));
    }
    Ok(())
}

/// Fields a running instance may change; everything else needs a stop.
/// `cpus` and `memory` change within `max_cpus` / `max_memory` (hot-plug;
/// memory only grows), `balloon` anywhere up to `memory`.
pub const LIVE_FIELDS: &[&str] = &[
    "description",
    "autostart",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "cpus",
    "memory",
    "balloon",
];

/// Checks that replacing `old` with `new` is allowed in the current state.
pub fn check_update(old: &InstanceSpec, new: &InstanceSpec, active: bool) -> Result<(), Error> {
    if new.name != old.name {
        return Err(Error::validation("name", "cannot be changed"));
    }
    if new.uuid != old.uuid {
        return Err(Error::validation("uuid", "cannot be changed"));
    }
    if !active {
        return Ok(());
    }
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return Err(Error::internal("cannot compare instance specs"));
    };
    if new.memory < old.memory {
        return Err(Error::conflict(format!(
            "memory of running instance {} can only grow; shrink it with balloon, or stop it first",
            old.name
        )));
    }
    let keys = a.keys().chain(b.keys());
    for key in keys {
        if a.get(key) != b.get(key) && !LIVE_FIELDS.contains(&key.as_str()) {
            return Err(Error::conflict(format!(
                "{key} cannot change while instance {} is running; stop it first (live fields: {})",
                old.name,
                LIVE_FIELDS.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovirt_api::{Disk, DiskBus, DiskMedia, LifecycleAction};

    fn spec(yaml: serde_json::Value) -> InstanceSpec {
        serde_json::from_value(yaml).unwrap()
    }

    fn host() -> HostLimits {
        HostLimits {
            memory_mib: 4096,
            cpu_models: vec!["qemu64".into()],
        }
    }

    fn all_exist(_: &Path) -> bool {
        true
    }

    fn field_of(s: InstanceSpec) -> Option<String> {
        ValidSpec::new(s, &host(), &all_exist).unwrap_err().field
    }

    #[test]
    fn fills_defaults_and_uuid() {
        let v = ValidSpec::new(
            spec(serde_json::json!({"name": "vm1"})),
            &host(),
            &all_exist,
        )
        .unwrap();
        assert!(v.get().uuid.is_some());
        assert_eq!(v.get().memory, 512);
        assert_eq!(v.get().on_reboot, LifecycleAction::Restart);
    }

    #[test]
    fn rejects_bad_fields_with_their_path() {
        assert_eq!(
            field_of(spec(serde_json::json!({"name": "a/b"}))).as_deref(),
            Some("name")
        );
        assert_eq!(
            field_of(spec(serde_json::json!({"name": "a", "memory": 0}))).as_deref(),
            Some("memory")
        );
        assert_eq!(
            field_of(spec(serde_json::json!({"name": "a", "memory": 9999}))).as_deref(),
            Some("memory")
        );
        assert_eq!(
            field_of(spec(serde_json::json!({"name": "a", "cpus": 0}))).as_deref(),
            Some("cpus")
        );
        assert_eq!(
            field_of(spec(
                serde_json::json!({"name": "a", "cpu_model": {"named": "nope"}})
            ))
            .as_deref(),
            Some("cpu_model")
        );
        assert_eq!(
            field_of(spec(
                serde_json::json!({"name": "a", "boot": {"cmdline": "x"}})
            ))
            .as_deref(),
            Some("boot.cmdline")
        );
        assert_eq!(
            field_of(spec(serde_json::json!({"name": "a", "machine": "q35",
                "disks": [{"path": "/x", "bus": "ide"}]})))
            .as_deref(),
            Some("disks[0].bus")
        );
    }

    #[test]
    fn huge_memory_is_refused_even_when_host_memory_is_unknown() {
        let unknown = HostLimits::default();
        for (json, field) in [
            (
                serde_json::json!({"name": "a", "memory": u64::MAX}),
                "memory",
            ),
            (
                serde_json::json!({"name": "a", "memory": MAX_MEMORY_MIB + 1}),
                "memory",
            ),
            (
                serde_json::json!({"name": "a", "max_memory": u64::MAX}),
                "max_memory",
            ),
        ] {
            let err = ValidSpec::new(spec(json.clone()), &unknown, &all_exist).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{json}");
        }
        ValidSpec::new(
            spec(serde_json::json!({"name": "a", "memory": MAX_MEMORY_MIB})),
            &unknown,
            &all_exist,
        )
        .unwrap();
    }

    #[test]
    fn readonly_ide_and_sata_disks_are_refused() {
        let s = spec(serde_json::json!({"name": "a", "machine": "pc",
            "disks": [{"path": "/x", "bus": "ide", "readonly": true}]}));
        assert_eq!(field_of(s).as_deref(), Some("disks[0].readonly"));
    }

    #[test]
    fn missing_files_are_named() {
        let s = spec(serde_json::json!({"name": "a", "boot": {"kernel": "/no/such"}}));
        let err = ValidSpec::new(s, &host(), &|_| false).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("boot.kernel"));
        assert!(
            err.message.contains("/no/such does not exist"),
            "{}",
            err.message
        );
    }

    #[test]
    fn cdrom_becomes_readonly() {
        let mut s = spec(serde_json::json!({"name": "a"}));
        s.disks.push(Disk {
            path: "/iso".into(),
            bus: DiskBus::Sata,
            media: DiskMedia::Cdrom,
            ..crate::disk::test_disk()
        });
        let v = ValidSpec::new(s, &host(), &all_exist).unwrap();
        assert!(v.get().disks[0].readonly);
    }

    #[test]
    fn live_updates_only_touch_live_fields() {
        let old = spec(serde_json::json!({"name": "a", "uuid": Uuid::nil()}));
        let mut new = old.clone();
        new.autostart = true;
        new.on_crash = LifecycleAction::Restart;
        check_update(&old, &new, true).unwrap();
        new.machine = ferrovirt_api::MachineKind::Pc;
        let err = check_update(&old, &new, true).unwrap_err();
        assert!(err.message.contains("machine"), "{}", err.message);
        new.machine = old.machine;
        new.memory = 256;
        let err = check_update(&old, &new, true).unwrap_err();
        assert!(err.message.contains("can only grow"), "{}", err.message);
        check_update(&old, &new, false).unwrap();
        new.memory = 1024;
        check_update(&old, &new, true).unwrap();
        new.name = "b".into();
        assert_eq!(
            check_update(&old, &new, false)
                .unwrap_err()
                .field
                .as_deref(),
            Some("name")
        );
    }
}
