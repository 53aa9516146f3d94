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

/// `POST /1.0/host/tokens`: make a join token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenPost {
    /// Name the joining client will be trusted as.
    pub name: String,
    /// What the client may do once trusted; default admin.
    #[serde(default)]
    pub role: TrustRole,
    /// Instances a restricted client may manage (besides those it creates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<String>,
    /// The trust ends this many days after the token is made; default never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

impl TokenPost {
    /// A token for an admin client (or another host) called `name`.
    pub fn admin(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            role: TrustRole::Admin,
            instances: Vec::new(),
            expires_in_days: None,
        }
    }
}

/// What a trusted client certificate may do.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TrustRole {
    /// Everything; what other hosts get for migration.
    #[default]
    Admin,
    /// Only the instances it was granted or created; no host paths outside
    /// the pools' directories, no pool or network creation or deletion, no
    /// trust management, no incoming migrations.
    Restricted,
}

/// The answer to [`TokenPost`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TokenReply {
    /// Pass to `ferrovirt remote add NAME URL --token TOKEN` on the client.
    pub token: String,
}

/// `POST /1.0/host/trust`: redeem a join token's secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustPost {
    /// The secret of a join token.
    pub secret: String,
}

/// The answer to [`TrustPost`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TrustReply {
    /// The name the caller's certificate is now trusted as.
    pub trusted_as: String,
}

/// A trusted client certificate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TrustedClient {
    /// SHA-256 of the certificate.
    pub fingerprint: String,
    pub name: String,
    pub role: TrustRole,
    /// The instances a restricted client may manage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<String>,
    /// When the trust ends, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<chrono::DateTime<chrono::Utc>>,
}
