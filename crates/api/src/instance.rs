use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::host::AccelDecision;

/// A virtual machine's definition: what users write in YAML and what the API
/// speaks as JSON. Every field except `name` has an explicit default, and
/// `show` prints them all.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// DNS-label-like name: lowercase letters, digits and `-`, 1–63 characters.
    pub name: String,
    /// Stable identity; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Uuid>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Number of virtual CPUs.
    #[serde(default = "default_cpus")]
    pub cpus: u32,
    /// Guest memory in MiB.
    #[serde(default = "default_memory")]
    pub memory: u64,
    /// Most vCPUs the instance may have: `cpus` can grow to it while
    /// running (CPU hot-plug). Defaults to `cpus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpus: Option<u32>,
    /// Most memory in MiB: `memory` can grow to it while running (memory
    /// hot-plug, pc and q35). Defaults to `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<u64>,
    /// Balloon target in MiB: how much of `memory` the guest may use
    /// (the balloon takes the rest back). Absent: all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balloon: Option<u64>,
    #[serde(default)]
    pub machine: MachineKind,
    #[serde(default)]
    pub accel: Accelerator,
    #[serde(default)]
    pub cpu_model: CpuModel,
    #[serde(default)]
    pub boot: BootConfig,
    #[serde(default)]
    pub disks: Vec<Disk>,
    /// Network interfaces.
    #[serde(default)]
    pub nics: Vec<crate::Nic>,
    /// Whether the instance has a serial console (ttyS0).
    #[serde(default = "default_true")]
    pub serial: bool,
    #[serde(default)]
    pub graphics: Graphics,
    /// What to do when the guest powers off.
    #[serde(default = "LifecycleAction::destroy")]
    pub on_poweroff: LifecycleAction,
    /// What to do when the guest reboots.
    #[serde(default = "LifecycleAction::restart")]
    pub on_reboot: LifecycleAction,
    /// What to do when QEMU dies unexpectedly or the guest panics.
    #[serde(default = "LifecycleAction::destroy")]
    pub on_crash: LifecycleAction,
    /// Start the instance when the daemon starts.
    #[serde(default)]
    pub autostart: bool,
}

fn default_cpus() -> u32 {
    1
}
fn default_memory() -> u64 {
    512
}
fn default_true() -> bool {
    true
}

/// QEMU machine type family.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum MachineKind {
    /// i440FX + PIIX, the widest guest compatibility.
    Pc,
    /// Q35 + ICH9, PCIe; the modern default.
    #[default]
    Q35,
    /// Minimal virtio-mmio machine for direct kernel boot.
    Microvm,
}

impl MachineKind {
    /// The QEMU `-machine` type name.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Self::Pc => "pc",
            Self::Q35 => "q35",
            Self::Microvm => "microvm",
        }
    }
}

/// Which accelerator the instance asks for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Accelerator {
    /// Real KVM when the host has hardware virtualization, TCG otherwise.
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// The virtual CPU model.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CpuModel {
    /// `host` under KVM, `max` under TCG.
    #[default]
    HostPassthrough,
    /// A named QEMU CPU model such as `qemu64` or `Skylake-Client`.
    Named(String),
}

/// How the instance boots.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BootConfig {
    /// Kernel for direct boot (a bzImage or a PVH-capable ELF vmlinux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// Firmware boot order when no kernel is given.
    #[serde(default = "default_boot_order")]
    pub order: Vec<BootDevice>,
}

fn default_boot_order() -> Vec<BootDevice> {
    vec![BootDevice::Disk, BootDevice::Cdrom]
}

impl Default for BootConfig {
    fn default() -> Self {
        Self {
            kernel: None,
            initrd: None,
            cmdline: None,
            order: default_boot_order(),
        }
    }
}

/// A firmware boot device class.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BootDevice {
    Disk,
    Cdrom,
    Network,
}

/// A disk or cdrom attached to the instance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// The disk's stable name within the instance (`disk0`, `disk1`…,
    /// given at creation when absent); attach, detach and media changes
    /// use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Path of the image file or block device on the host (or an
    /// `iscsi://` URL). Filled in from `volume` when that is given; empty
    /// for a cdrom drive without a medium.
    #[serde(default)]
    pub path: String,
    /// A pool volume, as `pool/volume`, instead of a path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// Image format (taken from the volume when `volume` is given).
    #[serde(default)]
    pub format: DiskFormat,
    #[serde(default)]
    pub bus: DiskBus,
    #[serde(default)]
    pub media: DiskMedia,
    #[serde(default)]
    pub readonly: bool,
    #[serde(default)]
    pub cache: DiskCache,
    #[serde(default)]
    pub aio: DiskAio,
    /// I/O limits (QEMU throttle groups); changeable while running.
    #[serde(default, skip_serializing_if = "IoLimits::is_empty")]
    pub limits: IoLimits,
}

/// Host page-cache use of a disk, as in libvirt.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DiskCache {
    /// Host cache off (O_DIRECT), guest write cache on.
    None,
    /// Host page cache, guest write cache on: QEMU's and libvirt's default,
    /// and the one that works on every filesystem (tmpfs has no O_DIRECT).
    #[default]
    Writeback,
    Writethrough,
    Directsync,
    /// Ignores flushes: fast, loses data on a host crash.
    Unsafe,
}

impl DiskCache {
    /// (`cache.direct`, `cache.no-flush`, device `write-cache`).
    pub fn qemu_flags(self) -> (bool, bool, bool) {
        match self {
            Self::None => (true, false, true),
            Self::Writeback => (false, false, true),
            Self::Writethrough => (false, false, false),
            Self::Directsync => (true, false, false),
            Self::Unsafe => (false, true, true),
        }
    }
}

/// How QEMU submits a disk's I/O.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DiskAio {
    #[default]
    Threads,
    /// Linux AIO; needs cache `none` or `directsync`.
    Native,
    IoUring,
}

impl DiskAio {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Threads => "threads",
            Self::Native => "native",
            Self::IoUring => "io_uring",
        }
    }
}

/// Per-disk I/O limits: sustained rates per second, optional bursts above
/// them for up to `burst_seconds`. Disks naming the same `group` share one
/// budget.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct IoLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_iops: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_iops: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_iops_burst: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_iops_burst: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_bytes_burst: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_bytes_burst: Option<u64>,
    /// How long a burst may last, in seconds (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_seconds: Option<u64>,
    /// Throttle group name; default one group per disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl IoLimits {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DiskFormat {
    #[default]
    Raw,
    Qcow2,
}

impl DiskFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Qcow2 => "qcow2",
        }
    }

    /// The format QEMU names `name` (`raw`, `qcow2`), if a disk can have it.
    pub fn from_qemu(name: &str) -> Option<Self> {
        match name {
            "raw" => Some(Self::Raw),
            "qcow2" => Some(Self::Qcow2),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DiskBus {
    #[default]
    Virtio,
    Scsi,
    Sata,
    Ide,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DiskMedia {
    #[default]
    Disk,
    Cdrom,
}

/// Graphical console.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct Graphics {
    #[serde(default, rename = "type")]
    pub kind: GraphicsType,
    #[serde(default)]
    pub adapter: GraphicsAdapter,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum GraphicsType {
    #[default]
    None,
    /// VNC on a unix socket in the instance's runtime dir.
    Vnc,
    /// SPICE on a unix socket in the instance's runtime dir.
    Spice,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum GraphicsAdapter {
    #[default]
    Std,
    Cirrus,
    Vmware,
    Qxl,
    Virtio,
}

/// What the daemon does on a guest poweroff, reboot or crash.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleAction {
    /// Stop QEMU; the instance becomes shutoff (or stays crashed).
    Destroy,
    /// Boot the guest again.
    Restart,
    /// Keep QEMU as it is, stopped, for inspection.
    Preserve,
}

impl LifecycleAction {
    pub fn destroy() -> Self {
        Self::Destroy
    }
    pub fn restart() -> Self {
        Self::Restart
    }
}

/// Run state of an instance.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    Shutoff,
    Running,
    Paused,
    Crashed,
}

impl InstanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shutoff => "shutoff",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Crashed => "crashed",
        }
    }

    /// Whether a QEMU process exists for the instance.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Running | Self::Paused)
    }
}

/// Live state of an instance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstanceState {
    pub status: InstanceStatus,
    /// Why the instance is in this state, e.g. `guest powered off`.
    pub reason: String,
    /// PID of the QEMU process while active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The accelerator in use and why it was chosen (while active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel: Option<AccelDecision>,
    /// A managed save exists: the next start resumes the saved guest.
    #[serde(default)]
    pub saved: bool,
    /// The snapshot the instance currently descends from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_snapshot: Option<String>,
    /// Addresses the NICs leased from their networks' DHCP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NicAddress>,
}

/// An address of a NIC, from its network's DHCP leases.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NicAddress {
    pub mac: String,
    pub network: String,
    pub ip: String,
}

/// An instance as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub spec: InstanceSpec,
    pub state: InstanceState,
    pub created_at: DateTime<Utc>,
}

/// Body of `PUT /1.0/instances/{name}/state`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatePut {
    pub action: StateAction,
    /// For `stop`: skip the ACPI shutdown and kill QEMU at once.
    #[serde(default)]
    pub force: bool,
    /// For `stop`: seconds to wait for the guest before killing QEMU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StateAction {
    Start,
    /// ACPI shutdown, then force after the timeout.
    Stop,
    Pause,
    Resume,
    /// ACPI-style reboot request (guest cooperation through the reset).
    Reboot,
    /// Hard reset, like pressing the reset button.
    Reset,
}

/// Body of `PUT /1.0/instances/{name}/disks/{disk}/media`: insert a medium
/// into a cdrom drive (`path` or `volume`), or eject it (both absent).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct MediaPut {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
}

impl Disk {
    /// A disk of the image at `path`, every other field at its default.
    pub fn at(path: &str) -> Self {
        Self {
            name: None,
            path: path.to_owned(),
            volume: None,
            format: Default::default(),
            bus: Default::default(),
            media: Default::default(),
            readonly: false,
            cache: Default::default(),
            aio: Default::default(),
            limits: Default::default(),
        }
    }

    /// The QEMU node name of this disk when it is the `index`th: its name,
    /// or `disk<index>` for instances defined before disks had names.
    pub fn node_name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("disk{index}"))
    }
}
