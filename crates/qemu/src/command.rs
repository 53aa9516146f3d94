//! The pure QEMU command-line builder: spec + accelerator + paths → argv.
//!
//! No I/O happens here, so the output is covered by golden tests. Devices
//! are given in QEMU's JSON syntax (`-blockdev`, `-device`) wherever QEMU
//! accepts it, so user strings such as paths never need comma escaping; the
//! few legacy options that take `key=value` lists escape `,` as `,,`.

use ferrovirt_api::{
    AccelDecision, BootDevice, CpuModel, Disk, DiskBus, DiskFormat, DiskMedia, GraphicsAdapter,
    GraphicsType, InstanceSpec, MachineKind,
};
use ferrovirt_core::ValidSpec;
use ferrovirt_core::disk::node_name;
use ferrovirt_core::disk_source::{BackingChains, BackingFile, DiskSource};
use serde_json::{Value, json};

use crate::InstancePaths;

/// Hot-pluggable PCIe root ports of a q35 instance (`rp0`…): NICs and
/// later disks are plugged behind them, so they can also be unplugged.
pub const ROOT_PORTS: usize = 8;

/// DIMM slots for memory hot-plug when `max_memory` exceeds `memory`.
pub const MEMORY_SLOTS: u32 = 8;

/// A QEMU invocation: binary and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuCommand {
    pub binary: String,
    pub args: Vec<String>,
}

/// Escapes a value for QEMU's `key=value,…` option syntax.
pub fn escape(value: &str) -> String {
    value.replace(',', ",,")
}

/// Builds the command line of an instance. The VM starts paused (`-S`);
/// the daemon continues it after QMP is negotiated. `-no-shutdown` keeps QEMU
/// alive when the guest powers off and `-action panic=pause` when it panics,
/// so the daemon applies the instance's on_poweroff / on_crash policy (also
/// after a daemon restart). Guest reboots reset in place and are reported by
/// the RESET event, which drives on_reboot.
pub fn build(
    binary: &str,
    spec: &ValidSpec,
    accel: &AccelDecision,
    paths: &InstancePaths,
) -> QemuCommand {
    build_with(
        binary,
        spec,
        accel,
        paths,
        &StartMode::Boot,
        &BackingChains::new(),
    )
}

/// How the guest's state begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartMode {
    /// A fresh boot.
    Boot,
    /// Wait for a migration stream (`-incoming defer`), e.g. a saved state.
    Incoming,
}

/// [`build`] with an explicit [`StartMode`] and the backing chains the
/// daemon made for the disks' images (an image not in `chains` has none).
pub fn build_with(
    binary: &str,
    spec: &ValidSpec,
    accel: &AccelDecision,
    paths: &InstancePaths,
    mode: &StartMode,
    chains: &BackingChains,
) -> QemuCommand {
    let mut a = Args::default();
    a.opt("-name", format!("guest={},debug-threads=on", spec.name));
    if let Some(uuid) = spec.uuid {
        a.opt("-uuid", uuid.to_string());
    }
    a.flag("-nodefaults");
    a.flag("-no-user-config");
    a.flag("-S");
    a.flag("-no-shutdown");
    a.opt("-action", "panic=pause");
    a.opt("-msg", "timestamp=on");
    a.opt("-machine", machine_opt(spec));
    a.opt("-accel", accel.accel.clone());
    a.opt("-cpu", cpu_opt(&spec.cpu_model, &accel.accel));
    let max_cpus = spec.max_cpus.unwrap_or(spec.cpus).max(spec.cpus);
    if max_cpus > spec.cpus {
        a.opt("-smp", format!("{},maxcpus={max_cpus}", spec.cpus));
    } else {
        a.opt("-smp", spec.cpus.to_string());
    }
    let max_memory = spec.max_memory.unwrap_or(spec.memory).max(spec.memory);
    if max_memory > spec.memory {
        a.opt(
            "-m",
            format!("{}M,slots={MEMORY_SLOTS},maxmem={max_memory}M", spec.memory),
        );
    } else {
        a.opt("-m", format!("{}M", spec.memory));
    }
    a.opt(
        "-chardev",
        format!(
            "socket,id=qmp,path={},server=on,wait=off",
            escape(&paths.qmp_socket().display().to_string())
        ),
    );
    a.opt("-mon", "chardev=qmp,mode=control");
    if spec.serial {
        // No `logfile=`: the daemon's console hub writes the console log,
        // so it can cap and rotate it.
        a.opt(
            "-chardev",
            format!(
                "socket,id=serial0,path={},server=on,wait=off",
                escape(&paths.console_socket().display().to_string()),
            ),
        );
        a.opt("-serial", "chardev:serial0");
    }
    if spec.machine != MachineKind::Microvm {
        a.device(json!({"driver": "pvpanic", "id": "pvpanic0"}));
        a.device(json!({"driver": "virtio-balloon-pci", "id": "balloon0"}));
    } else {
        a.device(json!({"driver": "virtio-balloon-device", "id": "balloon0"}));
    }
    if spec.machine == MachineKind::Q35 {
        for i in 0..ROOT_PORTS {
            a.device(json!({"driver": "pcie-root-port", "id": format!("rp{i}"),
                            "chassis": i + 1, "bus": "pcie.0"}));
        }
    }
    boot(&mut a, spec);
    disks(&mut a, spec, chains);
    graphics(&mut a, spec, paths);
    match mode {
        StartMode::Boot => {}
        StartMode::Incoming => a.opt("-incoming", "defer"),
    }
    a.opt("-D", paths.qemu_log().display().to_string());
    a.opt("-pidfile", paths.pidfile().display().to_string());
    a.flag("-daemonize");
    QemuCommand {
        binary: binary.to_owned(),
        args: a.0,
    }
}

#[derive(Default)]
struct Args(Vec<String>);

impl Args {
    fn flag(&mut self, f: &str) {
        self.0.push(f.to_owned());
    }
    fn opt(&mut self, k: &str, v: impl Into<String>) {
        self.0.push(k.to_owned());
        self.0.push(v.into());
    }
    fn device(&mut self, v: Value) {
        self.opt("-device", v.to_string());
    }
    fn blockdev(&mut self, v: Value) {
        self.opt("-blockdev", v.to_string());
    }
}

fn machine_opt(spec: &InstanceSpec) -> String {
    match spec.machine {
        // The serial port and RTC are ISA devices; the PIT and PIC stay at
        // their defaults (under TCG the kernel needs the PIT to calibrate).
        MachineKind::Microvm => "microvm,isa-serial=on,rtc=on".to_owned(),
        m => m.qemu_name().to_owned(),
    }
}

fn cpu_opt(model: &CpuModel, accel: &str) -> String {
    match model {
        CpuModel::HostPassthrough if accel == "kvm" => "host".to_owned(),
        CpuModel::HostPassthrough => "max".to_owned(),
        CpuModel::Named(name) => escape(name),
    }
}

fn boot(a: &mut Args, spec: &InstanceSpec) {
    if let Some(kernel) = &spec.boot.kernel {
        a.opt("-kernel", kernel.clone());
        if let Some(initrd) = &spec.boot.initrd {
            a.opt("-initrd", initrd.clone());
        }
        if let Some(cmdline) = &spec.boot.cmdline {
            a.opt("-append", cmdline.clone());
        }
    }
}

/// The firmware boot priority of a disk, from the spec's boot order.
fn boot_index(spec: &InstanceSpec, index: usize) -> Option<usize> {
    if spec.boot.kernel.is_some() {
        return None;
    }
    let disk = &spec.disks[index];
    let class = match disk.media {
        DiskMedia::Disk => BootDevice::Disk,
        DiskMedia::Cdrom => BootDevice::Cdrom,
    };
    let class_rank = spec.boot.order.iter().position(|d| *d == class)?;
    let within = spec.disks[..index]
        .iter()
        .filter(|d| d.media == disk.media)
        .count();
    Some(class_rank * 100 + within + 1)
}

fn disks(a: &mut Args, spec: &InstanceSpec, chains: &BackingChains) {
    let uses = |bus| spec.disks.iter().any(|d| d.bus == bus);
    if uses(DiskBus::Scsi) {
        a.device(json!({"driver": "virtio-scsi-pci", "id": SCSI_CONTROLLER}));
    }
    if uses(DiskBus::Sata) && spec.machine == MachineKind::Pc {
        a.device(json!({"driver": "ich9-ahci", "id": "sata0"}));
    }
    let (mut ide, mut sata, mut scsi) = (0usize, 0usize, 0usize);
    for (i, disk) in spec.disks.iter().enumerate() {
        let node = node_name(disk, i);
        let chain = chains
            .get(&disk.path)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for b in blockdev_nodes(disk, &node, chain) {
            a.blockdev(b);
        }
        let mut dev = disk_device(spec.machine, disk, &node);
        match disk.bus {
            DiskBus::Virtio => {}
            DiskBus::Scsi => {
                scsi += 1;
                dev["scsi-id"] = json!(scsi - 1);
            }
            DiskBus::Sata => {
                sata += 1;
                dev["bus"] = json!(match spec.machine {
                    MachineKind::Pc => format!("sata0.{}", sata - 1),
                    _ => format!("ide.{}", sata - 1),
                });
            }
            DiskBus::Ide => {
                ide += 1;
                dev["bus"] = json!(format!("ide.{}", (ide - 1) / 2));
                dev["unit"] = json!((ide - 1) % 2);
            }
        }
        if let Some(index) = boot_index(spec, i) {
            dev["bootindex"] = json!(index);
        }
        a.device(dev);
    }
}

/// The id of the virtio-scsi controller SCSI disks sit on.
pub const SCSI_CONTROLLER: &str = "scsi0";

/// The `-device` of a disk named `node` (its QEMU id is `<node>-dev`),
/// without the bus position, which depends on the other disks.
pub fn disk_device(machine: MachineKind, disk: &Disk, node: &str) -> Value {
    let mut dev = match (disk.bus, disk.media) {
        (DiskBus::Virtio, _) if machine == MachineKind::Microvm => {
            json!({"driver": "virtio-blk-device"})
        }
        (DiskBus::Virtio, _) => json!({"driver": "virtio-blk-pci"}),
        (DiskBus::Scsi, media) => {
            json!({"driver": if media == DiskMedia::Cdrom {"scsi-cd"} else {"scsi-hd"},
                   "bus": format!("{SCSI_CONTROLLER}.0"), "lun": 0})
        }
        (DiskBus::Sata | DiskBus::Ide, media) => json!({"driver": ide_driver(media)}),
    };
    dev["id"] = json!(device_id(node));
    if has_medium(disk) {
        dev["drive"] = json!(node);
        let (_, _, write_cache) = disk.cache.qemu_flags();
        dev["write-cache"] = json!(if write_cache { "on" } else { "off" });
    }
    dev
}

/// The QEMU device id of the disk whose node is `node`.
pub fn device_id(node: &str) -> String {
    format!("{node}-dev")
}

/// A cdrom drive without a path has no medium (and no block nodes).
pub fn has_medium(disk: &Disk) -> bool {
    !disk.path.is_empty()
}

fn ide_driver(media: DiskMedia) -> &'static str {
    match media {
        DiskMedia::Disk => "ide-hd",
        DiskMedia::Cdrom => "ide-cd",
    }
}

/// The `-blockdev`s of a disk, bottom first: the protocol node
/// (`<node>-file`: a file, a host block device or an iSCSI LUN) and the
/// format node `<node>` the device uses. A qcow2 node's `backing` is
/// always given: `chain` (top's backing first), or null, so QEMU never
/// opens a file an image's header names (raw nodes have no backing). None
/// for an empty cdrom.
pub fn blockdev_nodes(disk: &Disk, node: &str, chain: &[BackingFile]) -> Vec<Value> {
    if !has_medium(disk) {
        return Vec::new();
    }
    let (direct, no_flush, _) = disk.cache.qemu_flags();
    let cache = json!({"direct": direct, "no-flush": no_flush});
    let file_node = format!("{node}-file");
    let source = DiskSource::recorded(&disk.path, disk.format);
    let mut file = protocol(&source);
    if !matches!(source, DiskSource::Iscsi(_)) {
        file["aio"] = json!(disk.aio.as_str());
        file["discard"] = json!("unmap");
    }
    file["node-name"] = json!(file_node);
    file["read-only"] = json!(disk.readonly);
    file["cache"] = cache.clone();
    let mut format = json!({
        "driver": disk.format.as_str(),
        "file": file_node,
        "node-name": node,
        "read-only": disk.readonly,
        "cache": cache,
    });
    if disk.format == DiskFormat::Qcow2 {
        format["backing"] = backing(chain);
    }
    vec![file, format]
}

/// The protocol node of a source: a file, a host block device or an
/// iSCSI LUN.
fn protocol(source: &DiskSource) -> Value {
    match source {
        DiskSource::Iscsi(url) => json!({
            "driver": "iscsi",
            "transport": "tcp",
            "portal": url.portal,
            "target": url.target,
            "lun": url.lun,
            "initiator-name": ISCSI_INITIATOR,
        }),
        DiskSource::BlockDevice { path } => {
            json!({"driver": "host_device", "filename": path.display().to_string()})
        }
        DiskSource::File { path, .. } => {
            json!({"driver": "file", "filename": path.display().to_string()})
        }
    }
}

/// The `backing` of a qcow2 node: the chain as nested definitions (each
/// qcow2 one with its own explicit `backing`; raw has no backing in QEMU's
/// schema), or null at its end. The nodes inherit read-only and cache
/// options as backing files do.
fn backing(chain: &[BackingFile]) -> Value {
    match chain.split_first() {
        None => Value::Null,
        Some((b, rest)) => {
            let source = DiskSource::recorded(&b.path, b.format);
            let mut node = json!({"driver": b.format.as_str(), "file": protocol(&source)});
            if b.format == DiskFormat::Qcow2 {
                node["backing"] = backing(rest);
            }
            node
        }
    }
}

pub use ferrovirt_core::disk_source::{ISCSI_INITIATOR, IscsiUrl};

fn graphics(a: &mut Args, spec: &InstanceSpec, paths: &InstancePaths) {
    match spec.graphics.kind {
        GraphicsType::None => {
            a.opt("-display", "none");
            return;
        }
        GraphicsType::Vnc => {
            a.opt("-display", "none");
            a.opt(
                "-vnc",
                format!("unix:{}", escape(&paths.vnc_socket().display().to_string())),
            );
        }
        GraphicsType::Spice => {
            a.opt("-display", "none");
            a.opt(
                "-spice",
                format!(
                    "unix=on,addr={},disable-ticketing=on",
                    escape(&paths.spice_socket().display().to_string())
                ),
            );
        }
    }
    let driver = match spec.graphics.adapter {
        GraphicsAdapter::Std => "VGA",
        GraphicsAdapter::Cirrus => "cirrus-vga",
        GraphicsAdapter::Vmware => "vmware-svga",
        GraphicsAdapter::Qxl => "qxl-vga",
        GraphicsAdapter::Virtio => "virtio-vga",
    };
    a.device(json!({"driver": driver, "id": "video0"}));
    a.device(json!({"driver": "qemu-xhci", "id": "usb0"}));
    a.device(json!({"driver": "usb-tablet", "id": "tablet0", "bus": "usb0.0"}));
}

/// The `device_add` of a hot-plugged NIC `id` on back end `netdev`, on PCIe
/// root port `bus` when given (q35).
pub fn nic_device(
    model: ferrovirt_api::NicModel,
    machine: MachineKind,
    id: &str,
    netdev: &str,
    mac: &str,
    bus: Option<&str>,
) -> Value {
    let mut dev = json!({
        "driver": model.qemu_driver(machine == MachineKind::Microvm),
        "id": id,
        "netdev": netdev,
        "mac": mac,
    });
    if let Some(bus) = bus {
        dev["bus"] = json!(bus);
    }
    dev
}

/// A hot-plugged disk device: [`disk_device`] placed on PCIe root port
/// `bus` or at SCSI id `scsi_id`.
pub fn placed_disk_device(
    machine: MachineKind,
    disk: &Disk,
    node: &str,
    bus: Option<&str>,
    scsi_id: Option<u32>,
) -> Value {
    let mut dev = disk_device(machine, disk, node);
    if let Some(id) = scsi_id {
        dev["scsi-id"] = json!(id);
    }
    if let Some(bus) = bus {
        dev["bus"] = json!(bus);
    }
    dev
}

/// The device an I/O throttle applies to: the disk device itself, or for a
/// virtio-blk-pci proxy its virtio back end, which holds the block backend.
pub fn throttle_target(machine: MachineKind, disk: &Disk, node: &str) -> String {
    if disk.bus == DiskBus::Virtio && machine != MachineKind::Microvm {
        format!("/machine/peripheral/{}/virtio-backend", device_id(node))
    } else {
        device_id(node)
    }
}

/// The virtio-scsi controller SCSI disks sit on, hot-plugged on PCIe root
/// port `bus` when given.
pub fn scsi_controller(bus: Option<&str>) -> Value {
    let mut dev = json!({"driver": "virtio-scsi-pci", "id": SCSI_CONTROLLER});
    if let Some(bus) = bus {
        dev["bus"] = json!(bus);
    }
    dev
}
