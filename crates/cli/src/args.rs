//! Command-line syntax (clap derive structs only).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// ferrovirt — manage virtual machines through ferrovirtd.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The daemon's API socket.
    #[arg(long, global = true, env = "FERROVIRT_SOCKET", default_value = ferrovirt_client::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Act on this remote host (see `ferrovirt remote add`) instead of the local daemon.
    #[arg(long, global = true, env = "FERROVIRT_REMOTE")]
    pub remote: Option<String>,
    /// Where the CLI keeps its TLS identity and remotes (default ~/.config/ferrovirt).
    #[arg(long, global = true, env = "FERROVIRT_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// Output format of lists and details.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Define an instance from a YAML spec and/or flags.
    Create(Box<CreateArgs>),
    /// List instances.
    List,
    /// Show an instance with every default spelled out.
    Show { name: String },
    /// Edit an instance's spec in $EDITOR.
    Edit { name: String },
    /// Change spec fields: `set NAME memory=1024 on_crash=restart boot.cmdline="console=ttyS0"`.
    Set {
        name: String,
        /// key=value pairs; dotted keys reach nested fields, values are YAML.
        #[arg(required = true)]
        assignments: Vec<String>,
    },
    /// Delete an instance.
    Delete {
        name: String,
        /// Stop it first if it is running.
        #[arg(long)]
        force: bool,
    },
    /// Start an instance.
    Start { name: String },
    /// Stop an instance: ACPI shutdown, then force off after the timeout.
    Stop {
        name: String,
        /// Kill QEMU at once instead of asking the guest.
        #[arg(long)]
        force: bool,
        /// Seconds to wait for the guest before forcing it off.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Pause an instance's vCPUs.
    Pause { name: String },
    /// Resume a paused instance.
    Resume { name: String },
    /// Reboot an instance with the guest's cooperation (ACPI).
    Reboot { name: String },
    /// Hard-reset an instance.
    Reset { name: String },
    /// Attach to the serial console (Ctrl-] detaches), or print its history.
    Console {
        name: String,
        /// Print the console history instead of attaching.
        #[arg(long)]
        log: bool,
    },
    /// Print QEMU's own log of an instance.
    Logs { name: String },
    /// The host: validation and capabilities.
    #[command(subcommand)]
    Host(HostCommand),
    /// Follow lifecycle events as they happen.
    Monitor,
    /// Snapshots of an instance: internal or external, with or without memory.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Clone an instance: full copies of its disks, or linked qcow2 overlays.
    Clone {
        source: String,
        name: String,
        /// qcow2 overlays on the source's frozen disks instead of full copies.
        #[arg(long)]
        linked: bool,
        /// Clone the state of this snapshot.
        #[arg(long)]
        from_snapshot: Option<String>,
        /// Return at once with the operation id.
        #[arg(long = "async")]
        detach: bool,
    },
    /// Save a running instance's memory and stop it; `start` resumes it.
    Save {
        name: String,
        /// Write the state to this file instead (restore it with `restore`).
        #[arg(long)]
        file: Option<String>,
        #[arg(long = "async")]
        detach: bool,
    },
    /// Resume an instance from a file written by `save --file`.
    Restore {
        file: String,
        #[arg(long = "async")]
        detach: bool,
    },
    /// Long-running operations.
    #[command(subcommand)]
    Operation(OperationCommand),
    /// Virtual networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Other Ferrovirt hosts reached over TLS.
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Move an instance to another host: live (running) or --offline.
    Migrate(Box<MigrateArgs>),
    /// Usage of running instances: CPU, memory, disks, NICs.
    Stats {
        name: Option<String>,
        /// Refresh every second (CPU as a percentage of one core).
        #[arg(long)]
        watch: bool,
    },
    /// Network interfaces of an instance (hot-plugged when it runs).
    #[command(subcommand)]
    Nic(NicCommand),
    /// Storage pools.
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Volumes of storage pools (named POOL/VOLUME).
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Disks of an instance: attach, detach, cdrom media, I/O limits.
    #[command(subcommand)]
    Disk(DiskCommand),
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Define a pool and start it.
    Create(Box<PoolCreateArgs>),
    List,
    Show {
        name: String,
    },
    /// Delete a pool's definition (refused while it holds volumes, unless --volumes).
    Delete {
        name: String,
        /// Delete its volumes too.
        #[arg(long)]
        volumes: bool,
    },
    Start {
        name: String,
    },
    Stop {
        name: String,
    },
    /// Re-check the pool's storage and re-read its volumes.
    Refresh {
        name: String,
    },
    /// Start the pool with the daemon (or not, with --disable).
    Autostart {
        name: String,
        #[arg(long)]
        disable: bool,
    },
}

#[derive(Debug, Args)]
pub struct PoolCreateArgs {
    pub name: String,
    /// YAML spec file; flags override its fields.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// dir, fs, netfs, logical or iscsi.
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// dir/fs/netfs: the directory (mount point) of the volumes.
    #[arg(long)]
    pub path: Option<String>,
    /// fs: block device or image file; logical: the device for the volume group.
    #[arg(long)]
    pub device: Option<String>,
    /// fs: ext4, xfs or btrfs.
    #[arg(long)]
    pub filesystem: Option<String>,
    /// netfs and iscsi: the server.
    #[arg(long)]
    pub host: Option<String>,
    /// netfs: the exported directory.
    #[arg(long)]
    pub export: Option<String>,
    /// fs and netfs: mount options.
    #[arg(long)]
    pub options: Option<String>,
    /// iscsi: the target IQN.
    #[arg(long)]
    pub target: Option<String>,
    /// logical: the volume group (default the pool's name).
    #[arg(long)]
    pub vg: Option<String>,
    /// Prepare the storage first (mkdir, mkfs, vgcreate): destroys what the device holds.
    #[arg(long)]
    pub build: bool,
    /// Define only.
    #[arg(long)]
    pub no_start: bool,
    #[arg(long)]
    pub no_autostart: bool,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume, sparse unless --prealloc.
    Create {
        /// POOL/NAME
        volume: String,
        /// Virtual size, e.g. 10G.
        size: String,
        /// raw or qcow2.
        #[arg(long = "image-format", default_value = "qcow2")]
        image_format: String,
        /// off, metadata, falloc or full.
        #[arg(long, default_value = "off")]
        prealloc: String,
    },
    List {
        pool: String,
    },
    /// Sizes, format and backing chain.
    Show {
        volume: String,
    },
    /// Delete a volume (refused while an instance uses it).
    Delete {
        volume: String,
    },
    /// Grow (live when a running guest uses it) or, with --force, shrink.
    Resize {
        volume: String,
        size: String,
        #[arg(long)]
        force: bool,
    },
    /// Zero a volume's content.
    Wipe {
        volume: String,
    },
    /// Copy a host image (raw, qcow2, vmdk, vdi, vhdx, vpc) into a new volume.
    Import {
        /// POOL/NAME of the new volume.
        volume: String,
        file: String,
        #[arg(long)]
        source_format: Option<String>,
        /// Format of the volume (default qcow2).
        #[arg(long = "image-format")]
        image_format: Option<String>,
        #[arg(long = "async")]
        detach: bool,
    },
    /// Write a volume to a host file.
    Export {
        volume: String,
        file: String,
        #[arg(long = "image-format")]
        image_format: Option<String>,
        #[arg(long = "async")]
        detach: bool,
    },
    /// Copy a volume: full (reflink where possible, sparse) or --linked.
    Clone {
        volume: String,
        /// Name of the copy.
        name: String,
        /// Pool of the copy (default the source's).
        #[arg(long)]
        pool: Option<String>,
        #[arg(long)]
        linked: bool,
        #[arg(long = "image-format")]
        image_format: Option<String>,
        #[arg(long = "async")]
        detach: bool,
    },
    /// Rewrite a volume in another format, in place or --to a new volume.
    Convert {
        volume: String,
        /// raw or qcow2.
        #[arg(long = "image-format")]
        image_format: String,
        #[arg(long)]
        to: Option<String>,
        #[arg(long = "async")]
        detach: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DiskCommand {
    /// Attach a disk (hot-plugged when the instance runs).
    Attach(Box<DiskAttachArgs>),
    /// Detach a disk (hot-unplugged when the instance runs).
    Detach {
        name: String,
        disk: String,
    },
    List {
        name: String,
    },
    /// Insert a medium into a cdrom drive.
    Insert {
        name: String,
        disk: String,
        #[arg(long, conflicts_with = "path")]
        volume: Option<String>,
        #[arg(long)]
        path: Option<String>,
    },
    /// Eject a cdrom drive's medium.
    Eject {
        name: String,
        disk: String,
    },
    /// Set a disk's I/O limits (none given: lift them).
    Limit {
        name: String,
        disk: String,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

#[derive(Debug, Args)]
pub struct DiskAttachArgs {
    pub name: String,
    /// POOL/VOLUME
    #[arg(long, conflicts_with = "path")]
    pub volume: Option<String>,
    #[arg(long)]
    pub path: Option<String>,
    /// The disk's name in the instance (default diskN).
    #[arg(long = "as")]
    pub disk_name: Option<String>,
    /// virtio, scsi, sata or ide.
    #[arg(long)]
    pub bus: Option<String>,
    /// disk or cdrom.
    #[arg(long)]
    pub media: Option<String>,
    /// raw or qcow2 (for --path).
    #[arg(long = "image-format")]
    pub image_format: Option<String>,
    /// none, writeback, writethrough, directsync or unsafe.
    #[arg(long)]
    pub cache: Option<String>,
    /// threads, native or io_uring.
    #[arg(long)]
    pub aio: Option<String>,
    #[arg(long)]
    pub readonly: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args, Default)]
pub struct LimitArgs {
    #[arg(long)]
    pub read_iops: Option<u64>,
    #[arg(long)]
    pub write_iops: Option<u64>,
    /// Bytes per second, e.g. 10M.
    #[arg(long)]
    pub read_bytes: Option<String>,
    #[arg(long)]
    pub write_bytes: Option<String>,
    #[arg(long)]
    pub read_iops_burst: Option<u64>,
    #[arg(long)]
    pub write_iops_burst: Option<u64>,
    #[arg(long)]
    pub read_bytes_burst: Option<String>,
    #[arg(long)]
    pub write_bytes_burst: Option<String>,
    /// How long a burst may last.
    #[arg(long)]
    pub burst_seconds: Option<u64>,
    /// Share the budget with the other disks of this throttle group.
    #[arg(long)]
    pub group: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Define a network and start it.
    Create(Box<NetworkCreateArgs>),
    List,
    Show {
        name: String,
    },
    /// Edit a network's spec in $EDITOR.
    Edit {
        name: String,
    },
    /// Delete a network (refused while instances use it).
    Delete {
        name: String,
    },
    Start {
        name: String,
    },
    Stop {
        name: String,
    },
    /// DHCP leases, with the instance owning each MAC.
    Leases {
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    pub name: String,
    /// YAML spec file; flags override its fields.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// nat, routed, isolated, open, bridge, macvtap or ovs.
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// The host's address and prefix on the network, e.g. 192.168.150.1/24
    /// (a free subnet is chosen when absent).
    #[arg(long)]
    pub ipv4: Option<String>,
    #[arg(long)]
    pub dhcp_start: Option<String>,
    #[arg(long)]
    pub dhcp_end: Option<String>,
    /// Static DHCP host MAC,IP[,NAME]; repeatable.
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    #[arg(long)]
    pub domain: Option<String>,
    /// bridge: the host bridge; macvtap: the host interface; ovs: the OVS bridge.
    #[arg(long)]
    pub parent: Option<String>,
    /// macvtap: vepa, bridge, private or passthrough.
    #[arg(long)]
    pub mode: Option<String>,
    #[arg(long)]
    pub no_autostart: bool,
}

#[derive(Debug, Subcommand)]
pub enum NicCommand {
    /// Add a NIC.
    Add {
        name: String,
        #[arg(long)]
        network: String,
        /// virtio, e1000 or rtl8139.
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        mac: Option<String>,
        /// ovs networks: access VLAN.
        #[arg(long)]
        vlan: Option<u16>,
    },
    /// Remove the NIC with this MAC.
    Remove { name: String, mac: String },
    /// List an instance's NICs and their addresses.
    List { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot (with memory by default when the instance runs).
    Create {
        name: String,
        snapshot: String,
        /// Freeze the disk files and write to new overlays (default: inside qcow2).
        #[arg(long)]
        external: bool,
        /// Save the memory (the default for a running instance).
        #[arg(long, conflicts_with = "no_memory")]
        memory: bool,
        /// Disks only, even for a running instance.
        #[arg(long)]
        no_memory: bool,
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "async")]
        detach: bool,
    },
    /// The snapshot tree; `*` marks the current snapshot.
    List {
        name: String,
    },
    Show {
        name: String,
        snapshot: String,
    },
    /// Bring the instance back to a snapshot (its running state too, with memory).
    Revert {
        name: String,
        snapshot: String,
        #[arg(long = "async")]
        detach: bool,
    },
    /// Delete a snapshot; the others keep their content.
    Delete {
        name: String,
        snapshot: String,
        #[arg(long = "async")]
        detach: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperationCommand {
    List,
    Show {
        id: String,
    },
    /// Wait for an operation with a progress bar.
    Wait {
        id: String,
    },
    Cancel {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Validate the host for virtualization (like virt-host-validate).
    Check,
    /// CPUs, memory, accelerator, machine types and CPU models.
    Info,
    /// Make a one-time join token for a client or host called NAME.
    Token { name: String },
}

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Register a remote host with a join token from `ferrovirt host token`.
    Add {
        name: String,
        /// HOST:PORT of its TLS listener (default: the token's first address).
        address: Option<String>,
        #[arg(long)]
        token: String,
    },
    List,
    Remove {
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub name: String,
    /// YAML spec file; flags override its fields.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Memory in MiB.
    #[arg(long)]
    pub memory: Option<u64>,
    #[arg(long)]
    pub kernel: Option<String>,
    #[arg(long)]
    pub initrd: Option<String>,
    #[arg(long)]
    pub cmdline: Option<String>,
    /// PATH[,format=raw|qcow2][,bus=virtio|scsi|sata|ide][,readonly]; repeatable.
    #[arg(long = "disk")]
    pub disks: Vec<String>,
    /// An ISO image attached as a cdrom.
    #[arg(long)]
    pub cdrom: Option<String>,
    /// NETWORK[,model=virtio|e1000|rtl8139][,mac=MAC][,vlan=N]; repeatable.
    #[arg(long = "nic")]
    pub nics: Vec<String>,
    /// pc, q35 or microvm.
    #[arg(long)]
    pub machine: Option<String>,
    /// auto, kvm or tcg.
    #[arg(long)]
    pub accel: Option<String>,
    /// A QEMU CPU model name (default: host under KVM, max under TCG).
    #[arg(long)]
    pub cpu_model: Option<String>,
    /// none, vnc or spice.
    #[arg(long)]
    pub graphics: Option<String>,
    #[arg(long)]
    pub autostart: bool,
    /// Start the instance once created.
    #[arg(long)]
    pub start: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    pub name: String,
    /// The remote to move it to (see `ferrovirt remote add`).
    #[arg(long)]
    pub to: String,
    /// Move the definition of a stopped instance (shared storage).
    #[arg(long)]
    pub offline: bool,
    /// Copy the disks to the destination while the guest runs.
    #[arg(long)]
    pub copy_storage: bool,
    /// Switch to post-copy after the first pass over memory.
    #[arg(long)]
    pub postcopy: bool,
    #[arg(long)]
    pub auto_converge: bool,
    /// Bandwidth limit in MiB/s.
    #[arg(long)]
    pub bandwidth: Option<u64>,
    /// Longest acceptable pause at the switch-over, in ms.
    #[arg(long)]
    pub max_downtime: Option<u64>,
    /// Compress the memory stream (multifd + zstd).
    #[arg(long)]
    pub compress: bool,
    #[arg(long = "async")]
    pub detach: bool,
}
