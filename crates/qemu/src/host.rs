//! Host facts read from /proc, /sys and /dev.

use std::path::Path;

use ferrovirt_core::accel::HostVirt;

/// Reads the facts behind the accelerator choice.
pub fn virt() -> HostVirt {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    // /sys/module lists loadable and built-in modules alike (/proc/modules
    // only the loadable ones, and may not exist at all).
    let modules: Vec<String> = std::fs::read_dir("/sys/module")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let kvm_device = Path::new("/dev/kvm").exists();
    HostVirt {
        cpu_flag: cpu_virt_flag(&cpuinfo),
        kvm_device,
        kvm_modules: kvm_modules(&modules),
        kvm_open: std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map(drop)
            .map_err(|e| e.to_string()),
    }
}

/// `vmx` or `svm` when a `flags` line of cpuinfo carries it.
pub fn cpu_virt_flag(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(|l| l.split_whitespace())
        .find(|f| *f == "vmx" || *f == "svm")
        .map(str::to_owned)
}

/// The KVM modules among the host's module names, sorted.
pub fn kvm_modules(module_names: &[String]) -> Vec<String> {
    let mut kvm: Vec<String> = module_names
        .iter()
        .filter(|m| m.starts_with("kvm"))
        .cloned()
        .collect();
    kvm.sort();
    kvm
}

/// Total memory in MiB from /proc/meminfo.
pub fn memory_mib() -> u64 {
    meminfo_field("MemTotal:").unwrap_or(0) / 1024
}

/// Available memory in MiB from /proc/meminfo.
pub fn available_memory_mib() -> u64 {
    meminfo_field("MemAvailable:").unwrap_or(0) / 1024
}

fn meminfo_field(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The CPU's marketing name.
pub fn cpu_model_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default()
}

/// Number of online CPUs.
pub fn cpu_count() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// Gathers every fact `host check` needs. `qemu` is the probed version of
/// the QEMU binary or the reason it is unusable.
pub fn facts(qemu: Result<String, String>) -> ferrovirt_core::hostcheck::HostFacts {
    let cgroup2_controllers = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .ok()
        .map(|s| s.split_whitespace().map(str::to_owned).collect());
    let iommu_groups = std::fs::read_dir("/sys/kernel/iommu_groups")
        .map(|d| d.count())
        .unwrap_or(0);
    ferrovirt_core::hostcheck::HostFacts {
        virt: virt(),
        vhost_net: Path::new("/dev/vhost-net").exists(),
        tun: Path::new("/dev/net/tun").exists(),
        cgroup2_controllers,
        qemu,
        qemu_img: qemu_img_version(),
        iommu_groups,
    }
}

/// `qemu-img --version`, or why it cannot be run.
pub fn qemu_img_version() -> Result<String, String> {
    let out = std::process::Command::new("qemu-img")
        .arg("--version")
        .output()
        .map_err(|e| format!("qemu-img cannot be run: {e}"))?;
    Ok(crate::probe::parse_version(&String::from_utf8_lossy(
        &out.stdout,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_flags_and_modules() {
        assert_eq!(
            cpu_virt_flag("flags\t: fpu vme svm sse\n").as_deref(),
            Some("svm")
        );
        assert_eq!(cpu_virt_flag("flags\t: fpu hypervisor\n"), None);
        let names: Vec<String> = ["kvm_pvm", "fuse", "kvm"].map(String::from).into();
        assert_eq!(kvm_modules(&names), vec!["kvm", "kvm_pvm"]);
    }
}
