//! The honest accelerator choice.
//!
//! `/dev/kvm` existing is not enough: a host may expose a paravirtual KVM
//! (the `kvm_pvm` module) that cannot run ordinary guests fast. Real KVM is
//! used only when the CPU advertises vmx or svm *and* `/dev/kvm` opens;
//! otherwise TCG, with the reason in words.

use ferrovirt_api::{AccelDecision, Accelerator};

use crate::Error;

/// What the host tells about hardware virtualization, gathered by the QEMU
/// driver (this module does no I/O).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVirt {
    /// `vmx` (Intel VT-x) or `svm` (AMD-V) when `/proc/cpuinfo` lists it.
    pub cpu_flag: Option<String>,
    /// `/dev/kvm` exists.
    pub kvm_device: bool,
    /// Loaded KVM modules, e.g. `kvm_intel`, `kvm_amd`, `kvm_pvm`.
    pub kvm_modules: Vec<String>,
    /// Result of opening `/dev/kvm` read-write: `Err` holds the reason.
    pub kvm_open: Result<(), String>,
}

impl HostVirt {
    /// Whether the host's KVM is a paravirtual one (no hardware assist).
    pub fn is_paravirtual_kvm(&self) -> bool {
        self.kvm_modules.iter().any(|m| m == "kvm_pvm")
    }

    /// `Ok(description)` when real hardware KVM is usable, else `Err(reason)`.
    pub fn hardware_kvm(&self) -> Result<String, String> {
        let Some(flag) = &self.cpu_flag else {
            let pvm = if self.is_paravirtual_kvm() {
                " (/dev/kvm is the paravirtual kvm_pvm, which runs ordinary guests very slowly)"
            } else if self.kvm_device {
                " (/dev/kvm exists but without hardware support behind it)"
            } else {
                ""
            };
            return Err(format!(
                "the CPU has no hardware virtualization (no vmx or svm flag in /proc/cpuinfo){pvm}"
            ));
        };
        if !self.kvm_device {
            return Err(format!(
                "the CPU supports {flag} but /dev/kvm is missing (load kvm_intel or kvm_amd)"
            ));
        }
        if let Err(why) = &self.kvm_open {
            return Err(format!("/dev/kvm cannot be opened: {why}"));
        }
        Ok(format!("the CPU has {flag} and /dev/kvm opens"))
    }
}

/// Chooses the accelerator for a requested mode. Asking for `kvm` on a host
/// without usable hardware KVM is an error, not a silent fallback.
pub fn decide(requested: Accelerator, host: &HostVirt) -> Result<AccelDecision, Error> {
    let kvm = host.hardware_kvm();
    match (requested, kvm) {
        (Accelerator::Tcg, _) => Ok(AccelDecision {
            accel: "tcg".into(),
            reason: "TCG emulation was requested".into(),
        }),
        (Accelerator::Auto | Accelerator::Kvm, Ok(why)) => Ok(AccelDecision {
            accel: "kvm".into(),
            reason: format!("KVM hardware acceleration: {why}"),
        }),
        (Accelerator::Auto, Err(why)) => Ok(AccelDecision {
            accel: "tcg".into(),
            reason: format!("TCG emulation because {why}"),
        }),
        (Accelerator::Kvm, Err(why)) => Err(Error::validation(
            "accel",
            format!("kvm was requested but cannot be used: {why}; use accel auto or tcg"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(flag: Option<&str>, dev: bool, modules: &[&str]) -> HostVirt {
        HostVirt {
            cpu_flag: flag.map(str::to_owned),
            kvm_device: dev,
            kvm_modules: modules.iter().map(|m| m.to_string()).collect(),
            kvm_open: if dev { Ok(()) } else { Err("missing".into()) },
        }
    }

    #[test]
    fn real_kvm_when_vmx_and_device() {
        let d = decide(Accelerator::Auto, &host(Some("vmx"), true, &["kvm_intel"])).unwrap();
        assert_eq!(d.accel, "kvm");
        assert!(d.reason.contains("vmx"), "{}", d.reason);
    }

    #[test]
    fn paravirtual_kvm_means_tcg_with_the_reason() {
        let h = host(None, true, &["kvm", "kvm_pvm"]);
        let d = decide(Accelerator::Auto, &h).unwrap();
        assert_eq!(d.accel, "tcg");
        assert!(d.reason.contains("kvm_pvm"), "{}", d.reason);
        let err = decide(Accelerator::Kvm, &h).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("accel"));
    }

    #[test]
    fn missing_device_with_vmx_is_explained() {
        let d = decide(Accelerator::Auto, &host(Some("svm"), false, &[])).unwrap();
        assert_eq!(d.accel, "tcg");
        assert!(d.reason.contains("/dev/kvm is missing"), "{}", d.reason);
    }

    #[test]
    fn tcg_on_request() {
        let d = decide(Accelerator::Tcg, &host(Some("vmx"), true, &[])).unwrap();
        assert_eq!(d.accel, "tcg");
    }
}
