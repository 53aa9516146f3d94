//! `host check`, in the spirit of virt-host-validate: each fact of the host
//! becomes PASS, WARN or FAIL with the fix. Pure: the facts are gathered by
//! the QEMU driver.

use ferrovirt_api::{CheckStatus, HostCheckItem};

use crate::accel::HostVirt;

/// Everything `host check` looks at.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub virt: HostVirt,
    pub vhost_net: bool,
    pub tun: bool,
    /// Controllers of the unified cgroup v2 hierarchy, `None` when
    /// /sys/fs/cgroup is not cgroup v2.
    pub cgroup2_controllers: Option<Vec<String>>,
    /// QEMU version, or the reason it is unusable.
    pub qemu: Result<String, String>,
    pub qemu_img: Result<String, String>,
    /// Number of IOMMU groups under /sys/kernel/iommu_groups.
    pub iommu_groups: usize,
}

fn item(name: &str, status: CheckStatus, message: String, fix: Option<&str>) -> HostCheckItem {
    HostCheckItem {
        name: name.to_owned(),
        status,
        message,
        fix: fix.map(str::to_owned),
    }
}

/// Minimum QEMU major version supported.
pub const MIN_QEMU_MAJOR: u32 = 8;

/// Turns the facts into check lines.
pub fn check(f: &HostFacts) -> Vec<HostCheckItem> {
    use CheckStatus::*;
    let mut out = Vec::new();
    out.push(match &f.virt.cpu_flag {
        Some(flag) => item(
            "hardware virtualization",
            Pass,
            format!("the CPU supports {flag}"),
            None,
        ),
        None => item(
            "hardware virtualization",
            Warn,
            "no vmx or svm flag in /proc/cpuinfo: guests run under TCG emulation, many times slower"
                .into(),
            Some("enable VT-x/AMD-V in the firmware, or nested virtualization on the parent hypervisor"),
        ),
    });
    out.push(
        match (
            f.virt.kvm_device,
            f.virt.is_paravirtual_kvm(),
            &f.virt.cpu_flag,
        ) {
            (false, _, _) => item(
                "/dev/kvm",
                Warn,
                "/dev/kvm is missing: only TCG emulation is possible".into(),
                Some("modprobe kvm_intel (or kvm_amd) on a CPU with vmx/svm"),
            ),
            (true, true, _) => item(
                "/dev/kvm",
                Warn,
                "/dev/kvm is the paravirtual kvm_pvm, not hardware KVM: Ferrovirt uses TCG".into(),
                Some("run on a host (or a nested-virtualization VM) whose CPU has vmx/svm"),
            ),
            (true, false, None) => item(
                "/dev/kvm",
                Warn,
                "/dev/kvm exists but the CPU shows no vmx/svm: Ferrovirt uses TCG".into(),
                Some("enable VT-x/AMD-V in the firmware"),
            ),
            (true, false, Some(_)) => match &f.virt.kvm_open {
                Ok(()) => item("/dev/kvm", Pass, "hardware KVM is usable".into(), None),
                Err(e) => item(
                    "/dev/kvm",
                    Fail,
                    format!("/dev/kvm cannot be opened: {e}"),
                    Some("run ferrovirtd as root or give it access to /dev/kvm (group kvm)"),
                ),
            },
        },
    );
    out.push(if f.vhost_net {
        item(
            "/dev/vhost-net",
            Pass,
            "vhost-net in-kernel virtio-net is available".into(),
            None,
        )
    } else {
        item(
            "/dev/vhost-net",
            Warn,
            "/dev/vhost-net is missing: virtio-net runs in QEMU userspace, slower".into(),
            Some("modprobe vhost_net"),
        )
    });
    out.push(if f.tun {
        item(
            "/dev/net/tun",
            Pass,
            "TAP devices can be created".into(),
            None,
        )
    } else {
        item(
            "/dev/net/tun",
            Fail,
            "/dev/net/tun is missing: guests cannot have TAP network interfaces".into(),
            Some("modprobe tun"),
        )
    });
    out.push(match &f.cgroup2_controllers {
        Some(c) => {
            let missing: Vec<&str> = ["cpu", "memory", "io", "pids"]
                .into_iter()
                .filter(|want| !c.iter().any(|have| have == want))
                .collect();
            if missing.is_empty() {
                item("cgroup v2", Pass, format!("controllers: {}", c.join(" ")), None)
            } else {
                item(
                    "cgroup v2",
                    Warn,
                    format!("controllers missing: {}", missing.join(" ")),
                    Some("enable them in the parent's cgroup.subtree_control"),
                )
            }
        }
        None => item(
            "cgroup v2",
            Warn,
            "/sys/fs/cgroup is not a unified cgroup v2 hierarchy: per-VM resource limits are unavailable"
                .into(),
            Some("boot with systemd.unified_cgroup_hierarchy=1"),
        ),
    });
    out.push(match &f.qemu {
        Ok(v) if major(v) >= MIN_QEMU_MAJOR => item("QEMU", Pass, format!("version {v}"), None),
        Ok(v) => item(
            "QEMU",
            Fail,
            format!("version {v} is older than {MIN_QEMU_MAJOR}.0"),
            Some("install qemu-system-x86 from bookworm-backports"),
        ),
        Err(e) => item(
            "QEMU",
            Fail,
            e.clone(),
            Some("apt-get install -t bookworm-backports qemu-system-x86"),
        ),
    });
    out.push(match &f.qemu_img {
        Ok(v) => item("qemu-img", Pass, format!("version {v}"), None),
        Err(e) => item(
            "qemu-img",
            Fail,
            e.clone(),
            Some("apt-get install -t bookworm-backports qemu-utils"),
        ),
    });
    out.push(if f.iommu_groups > 0 {
        item(
            "IOMMU",
            Pass,
            format!(
                "{} IOMMU groups: device passthrough possible",
                f.iommu_groups
            ),
            None,
        )
    } else {
        item(
            "IOMMU",
            Warn,
            "no IOMMU groups: PCI device passthrough is unavailable".into(),
            Some("enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on or amd_iommu=on"),
        )
    });
    out
}

fn major(version: &str) -> u32 {
    version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            virt: HostVirt {
                cpu_flag: None,
                kvm_device: true,
                kvm_modules: vec!["kvm_pvm".into(), "kvm".into()],
                kvm_open: Ok(()),
            },
            vhost_net: true,
            tun: true,
            cgroup2_controllers: None,
            qemu: Ok("10.0.2".into()),
            qemu_img: Err("qemu-img is not installed".into()),
            iommu_groups: 0,
        }
    }

    fn status_of(items: &[HostCheckItem], name: &str) -> CheckStatus {
        items.iter().find(|i| i.name == name).unwrap().status
    }

    #[test]
    fn paravirtual_kvm_is_a_warning_with_a_fix() {
        let items = check(&facts());
        assert_eq!(status_of(&items, "/dev/kvm"), CheckStatus::Warn);
        assert_eq!(
            status_of(&items, "hardware virtualization"),
            CheckStatus::Warn
        );
        assert_eq!(status_of(&items, "QEMU"), CheckStatus::Pass);
        assert_eq!(status_of(&items, "qemu-img"), CheckStatus::Fail);
        assert!(
            items
                .iter()
                .all(|i| i.status == CheckStatus::Pass || i.fix.is_some())
        );
    }

    #[test]
    fn real_kvm_passes_and_old_qemu_fails() {
        let mut f = facts();
        f.virt.cpu_flag = Some("vmx".into());
        f.virt.kvm_modules = vec!["kvm_intel".into()];
        f.qemu = Ok("7.2.0".into());
        let items = check(&f);
        assert_eq!(status_of(&items, "/dev/kvm"), CheckStatus::Pass);
        assert_eq!(status_of(&items, "QEMU"), CheckStatus::Fail);
    }
}
