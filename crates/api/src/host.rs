use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The accelerator chosen for a VM and the reason, in words.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AccelDecision {
    /// `kvm` or `tcg`.
    pub accel: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
}

/// One line of `host check`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostCheckItem {
    pub name: String,
    pub status: CheckStatus,
    pub message: String,
    /// How to fix a WARN or FAIL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Result of `GET /1.0/host/check`, in the spirit of virt-host-validate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostCheck {
    pub items: Vec<HostCheckItem>,
    /// The accelerator an `auto` instance would get.
    pub accel: AccelDecision,
}

/// A QEMU machine type.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MachineType {
    pub name: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// What the QEMU binary can do, probed once per binary.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QemuInfo {
    pub binary: String,
    pub version: String,
    pub machines: Vec<MachineType>,
    pub cpu_models: Vec<String>,
    pub accelerators: Vec<String>,
}

/// Result of `GET /1.0/host`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostInfo {
    pub hostname: String,
    pub cpus: u32,
    pub cpu_model: String,
    pub memory_mib: u64,
    pub accel: AccelDecision,
    pub qemu: QemuInfo,
    pub qemu_img_version: Option<String>,
}

/// A one-time join token: who the server is (certificate fingerprint and
/// addresses) and a secret that buys trust for the client presenting it.
/// Encoded as URL-safe base64 of this JSON.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JoinToken {
    /// The name the client will be trusted as.
    pub name: String,
    /// SHA-256 of the server's certificate.
    pub fingerprint: String,
    /// The server's TLS addresses.
    pub addresses: Vec<String>,
    pub secret: String,
}
