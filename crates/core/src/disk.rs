//! Validation of an instance's disks: names, sources, buses, cache and I/O
//! limits.

use std::path::Path;

use ferrovirt_api::{
    Disk, DiskAio, DiskBus, DiskCache, DiskMedia, InstanceSpec, IoLimits, MachineKind,
};

use crate::Error;
use crate::spec::check_file;

/// Whether a disk path is a network URL QEMU opens itself (no host file).
pub fn is_url(path: &str) -> bool {
    path.starts_with("iscsi://")
}

/// The next free `diskN` name of an instance.
pub fn free_name(disks: &[Disk]) -> String {
    (0..)
        .map(|i| format!("disk{i}"))
        .find(|n| !disks.iter().any(|d| d.name.as_deref() == Some(n)))
        .expect("a free name exists")
}

/// The QEMU node name of the `index`th disk: its name, or `disk<index>` for
/// instances defined before disks had names.
pub fn node_name(disk: &Disk, index: usize) -> String {
    disk.node_name(index)
}

/// Validates every disk of `spec`, naming the unnamed ones.
pub fn validate_all(spec: &mut InstanceSpec, exists: &dyn Fn(&Path) -> bool) -> Result<(), Error> {
    for i in 0..spec.disks.len() {
        if spec.disks[i].name.is_none() {
            let name = free_name(&spec.disks);
            spec.disks[i].name = Some(name);
        }
    }
    let machine = spec.machine;
    for (i, disk) in spec.disks.iter_mut().enumerate() {
        validate(&format!("disks[{i}]"), disk, machine, exists)?;
    }
    for (i, disk) in spec.disks.iter().enumerate() {
        if spec.disks[..i].iter().any(|d| d.name == disk.name) {
            return Err(Error::validation(
                format!("disks[{i}].name"),
                format!(
                    "{} is used by another disk",
                    disk.name.as_deref().unwrap_or("")
                ),
            ));
        }
    }
    let ide = spec.disks.iter().filter(|d| d.bus == DiskBus::Ide).count();
    if ide > 4 {
        return Err(Error::validation(
            "disks",
            "at most 4 IDE devices fit on the pc machine",
        ));
    }
    let sata = spec.disks.iter().filter(|d| d.bus == DiskBus::Sata).count();
    if sata > 6 {
        return Err(Error::validation(
            "disks",
            "at most 6 SATA devices fit on one AHCI controller",
        ));
    }
    Ok(())
}

/// Validates one disk; `at` is its field path (`disks[2]`).
pub fn validate(
    at: &str,
    disk: &mut Disk,
    machine: MachineKind,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<(), Error> {
    let field = |f: &str| format!("{at}.{f}");
    if let Some(name) = &disk.name {
        crate::name::validate(&field("name"), name)?;
    }
    let empty_drive = disk.media == DiskMedia::Cdrom && disk.path.is_empty();
    if disk.path.is_empty() && disk.volume.is_some() {
        return Err(Error::validation(
            field("volume"),
            "was not resolved to a path",
        ));
    }
    if !empty_drive && !is_url(&disk.path) {
        check_file(&field("path"), &disk.path, exists)?;
    }
    if disk.media == DiskMedia::Cdrom {
        if disk.bus == DiskBus::Virtio {
            return Err(Error::validation(
                field("bus"),
                "a cdrom cannot be on virtio; use sata, ide or scsi",
            ));
        }
        disk.readonly = true;
    } else if disk.readonly && matches!(disk.bus, DiskBus::Sata | DiskBus::Ide) {
        return Err(Error::validation(
            field("readonly"),
            format!(
                "QEMU cannot attach a read-only hard disk on {:?}; use virtio or scsi",
                disk.bus
            ),
        ));
    }
    match (machine, disk.bus) {
        (MachineKind::Microvm, DiskBus::Virtio) => {}
        (MachineKind::Microvm, bus) => {
            return Err(Error::validation(
                field("bus"),
                format!("the microvm machine only has virtio disks, not {bus:?}"),
            ));
        }
        (MachineKind::Q35, DiskBus::Ide) => {
            return Err(Error::validation(
                field("bus"),
                "the q35 machine has no IDE controller; use sata",
            ));
        }
        _ => {}
    }
    if disk.aio == DiskAio::Native && !matches!(disk.cache, DiskCache::None | DiskCache::Directsync)
    {
        return Err(Error::validation(
            field("aio"),
            "native AIO needs cache none or directsync (O_DIRECT)",
        ));
    }
    validate_limits(&field("limits"), &disk.limits)
}

/// Largest I/O limit QEMU accepts (its `THROTTLE_VALUE_MAX`), also for a
/// burst times its length.
pub const MAX_IO_LIMIT: u64 = 1_000_000_000_000_000;

/// Checks I/O limits: bursts need the sustained rate they exceed; no
/// value, and no burst times `burst_seconds`, is beyond QEMU's limit.
pub fn validate_limits(at: &str, l: &IoLimits) -> Result<(), Error> {
    let pairs = [
        (
            "read_iops",
            l.read_iops,
            "read_iops_burst",
            l.read_iops_burst,
        ),
        (
            "write_iops",
            l.write_iops,
            "write_iops_burst",
            l.write_iops_burst,
        ),
        (
            "read_bytes",
            l.read_bytes,
            "read_bytes_burst",
            l.read_bytes_burst,
        ),
        (
            "write_bytes",
            l.write_bytes,
            "write_bytes_burst",
            l.write_bytes_burst,
        ),
    ];
    for (base_name, base, burst_name, burst) in pairs {
        for (name, value) in [(base_name, base), (burst_name, burst)] {
            if let Some(v) = value
                && v > MAX_IO_LIMIT
            {
                return Err(Error::validation(
                    format!("{at}.{name}"),
                    format!("{v} is more than QEMU's limit of {MAX_IO_LIMIT}"),
                ));
            }
        }
        if let (Some(b), Some(secs)) = (burst, l.burst_seconds)
            && b.checked_mul(secs).is_none_or(|total| total > MAX_IO_LIMIT)
        {
            return Err(Error::validation(
                format!("{at}.burst_seconds"),
                format!(
                    "{burst_name} ({b}) for {secs} seconds is more than QEMU's limit of {MAX_IO_LIMIT}"
                ),
            ));
        }
        if base == Some(0) {
            return Err(Error::validation(
                format!("{at}.{base_name}"),
                "must be more than 0 (leave it out for no limit)",
            ));
        }
        if let Some(b) = burst {
            match base {
                None => {
                    return Err(Error::validation(
                        format!("{at}.{burst_name}"),
                        format!("a burst needs {base_name}"),
                    ));
                }
                Some(v) if b < v => {
                    return Err(Error::validation(
                        format!("{at}.{burst_name}"),
                        format!("{b} is below {base_name} ({v})"),
                    ));
                }
                _ => {}
            }
        }
    }
    if l.burst_seconds == Some(0) {
        return Err(Error::validation(
            format!("{at}.burst_seconds"),
            "must be at least 1",
        ));
    }
    if let Some(g) = &l.group {
        crate::name::validate(&format!("{at}.group"), g)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) fn test_disk() -> Disk {
    Disk::at("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_exist(_: &Path) -> bool {
        true
    }

    #[test]
    fn names_are_given_and_unique() {
        let mut s: InstanceSpec = serde_json::from_value(serde_json::json!({"name": "a",
            "disks": [{"path": "/a", "name": "disk1"}, {"path": "/b"}, {"path": "/c"}]}))
        .unwrap();
        validate_all(&mut s, &all_exist).unwrap();
        let names: Vec<_> = s.disks.iter().map(|d| d.name.clone().unwrap()).collect();
        assert_eq!(names, ["disk1", "disk0", "disk2"]);
        s.disks[2].name = Some("disk0".into());
        let err = validate_all(&mut s, &all_exist).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("disks[2].name"));
    }

    #[test]
    fn empty_cdrom_and_urls_need_no_file() {
        let mut d = Disk {
            media: DiskMedia::Cdrom,
            bus: DiskBus::Sata,
            ..test_disk()
        };
        validate("disks[0]", &mut d, MachineKind::Q35, &|_| false).unwrap();
        let mut d = Disk {
            path: "iscsi://127.0.0.1/iqn.x:t/1".into(),
            ..test_disk()
        };
        validate("disks[0]", &mut d, MachineKind::Q35, &|_| false).unwrap();
        let mut d = test_disk();
        let err = validate("disks[0]", &mut d, MachineKind::Q35, &|_| false).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("disks[0].path"));
    }

    #[test]
    fn limits_and_aio_rules() {
        let l = IoLimits {
            read_iops_burst: Some(10),
            ..Default::default()
        };
        let err = validate_limits("disks[0].limits", &l).unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("disks[0].limits.read_iops_burst")
        );
        let l = IoLimits {
            write_bytes: Some(100),
            write_bytes_burst: Some(50),
            ..Default::default()
        };
        assert!(
            validate_limits("l", &l)
                .unwrap_err()
                .message
                .contains("below")
        );
        let mut d = Disk {
            path: "/a".into(),
            aio: DiskAio::Native,
            ..test_disk()
        };
        let err = validate("disks[0]", &mut d, MachineKind::Q35, &all_exist).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("disks[0].aio"));
        let l = IoLimits {
            read_bytes: Some(u64::MAX),
            ..Default::default()
        };
        let err = validate_limits("l", &l).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("l.read_bytes"));
        let l = IoLimits {
            read_bytes: Some(1 << 40),
            read_bytes_burst: Some(1 << 40),
            burst_seconds: Some(u64::MAX),
            ..Default::default()
        };
        let err = validate_limits("l", &l).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("l.burst_seconds"));
        d.cache = DiskCache::None;
        validate("disks[0]", &mut d, MachineKind::Q35, &all_exist).unwrap();
    }
}
