//! `disk`: an instance's disks.

use clap::{Args, Subcommand};
use ferrovirt_api::{Disk, DiskAio, DiskBus, DiskCache, DiskFormat, DiskMedia, IoLimits, MediaPut};
use ferrovirt_client::Client;

use super::values::{absolute, api_enum, parse_size};
use crate::cli::Format;
use crate::output::{structured, table};

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
    #[arg(long, value_parser = api_enum::<DiskBus>)]
    pub bus: Option<DiskBus>,
    /// disk or cdrom.
    #[arg(long, value_parser = api_enum::<DiskMedia>)]
    pub media: Option<DiskMedia>,
    /// raw or qcow2 (for --path).
    #[arg(long = "image-format", value_parser = api_enum::<DiskFormat>)]
    pub image_format: Option<DiskFormat>,
    /// none, writeback, writethrough, directsync or unsafe.
    #[arg(long, value_parser = api_enum::<DiskCache>)]
    pub cache: Option<DiskCache>,
    /// threads, native or io_uring.
    #[arg(long, value_parser = api_enum::<DiskAio>)]
    pub aio: Option<DiskAio>,
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

impl DiskCommand {
    pub fn instance_arg(&mut self) -> &mut String {
        match self {
            Self::Attach(a) => &mut a.name,
            Self::Detach { name, .. }
            | Self::List { name }
            | Self::Insert { name, .. }
            | Self::Eject { name, .. }
            | Self::Limit { name, .. } => name,
        }
    }

    pub async fn run(self, c: &Client, f: Format) -> anyhow::Result<()> {
        run(c, f, self).await
    }
}

fn limits(a: &LimitArgs) -> anyhow::Result<IoLimits> {
    let bytes =
        |flag: &str, v: &Option<String>| v.as_deref().map(|s| parse_size(flag, s)).transpose();
    Ok(IoLimits {
        read_iops: a.read_iops,
        write_iops: a.write_iops,
        read_bytes: bytes("--read-bytes", &a.read_bytes)?,
        write_bytes: bytes("--write-bytes", &a.write_bytes)?,
        read_iops_burst: a.read_iops_burst,
        write_iops_burst: a.write_iops_burst,
        read_bytes_burst: bytes("--read-bytes-burst", &a.read_bytes_burst)?,
        write_bytes_burst: bytes("--write-bytes-burst", &a.write_bytes_burst)?,
        burst_seconds: a.burst_seconds,
        group: a.group.clone(),
    })
}

fn print_disks(f: Format, inst: &ferrovirt_api::Instance) -> anyhow::Result<()> {
    if structured(f, &inst.spec.disks)? {
        return Ok(());
    }
    table(
        &[
            "NAME", "MEDIA", "BUS", "FORMAT", "SOURCE", "CACHE", "LIMITS",
        ],
        inst.spec
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let source = d.volume.clone().unwrap_or_else(|| {
                    if d.path.is_empty() {
                        "(empty)".into()
                    } else {
                        d.path.clone()
                    }
                });
                let limits = if d.limits.is_empty() {
                    String::new()
                } else {
                    serde_json::to_string(&d.limits).unwrap_or_default()
                };
                vec![
                    d.node_name(i),
                    format!("{:?}", d.media).to_lowercase(),
                    format!("{:?}", d.bus).to_lowercase(),
                    d.format.as_str().into(),
                    source,
                    format!("{:?}", d.cache).to_lowercase(),
                    limits,
                ]
            })
            .collect(),
    );
    Ok(())
}

async fn run(c: &Client, f: Format, cmd: DiskCommand) -> anyhow::Result<()> {
    match cmd {
        DiskCommand::Attach(a) => {
            let disk = Disk {
                name: a.disk_name.clone(),
                path: a.path.as_deref().map(absolute).unwrap_or_default(),
                volume: a.volume.clone(),
                format: a.image_format.unwrap_or_default(),
                bus: a.bus.unwrap_or_default(),
                media: a.media.unwrap_or_default(),
                readonly: a.readonly,
                cache: a.cache.unwrap_or_default(),
                aio: a.aio.unwrap_or_default(),
                limits: limits(&a.limits)?,
            };
            let inst = c.attach_disk(&a.name, &disk).await?;
            let new = inst
                .spec
                .disks
                .last()
                .and_then(|d| d.name.clone())
                .unwrap_or_default();
            if !structured(f, &inst)? {
                println!("Disk {new} attached to {}", a.name);
            }
        }
        DiskCommand::Detach { name, disk } => {
            c.detach_disk(&name, &disk).await?;
            println!("Disk {disk} detached from {name}");
        }
        DiskCommand::List { name } => print_disks(f, &c.instance(&name).await?)?,
        DiskCommand::Insert {
            name,
            disk,
            volume,
            path,
        } => {
            let path = path.as_deref().map(absolute);
            if volume.is_none() && path.is_none() {
                anyhow::bail!("give --volume POOL/VOLUME or --path FILE");
            }
            c.change_media(&name, &disk, &MediaPut { path, volume })
                .await?;
            println!("Medium inserted into {disk} of {name}");
        }
        DiskCommand::Eject { name, disk } => {
            c.change_media(&name, &disk, &MediaPut::default()).await?;
            println!("Medium of {disk} of {name} ejected");
        }
        DiskCommand::Limit {
            name,
            disk,
            limits: l,
        } => {
            let inst = c.set_disk_limits(&name, &disk, &limits(&l)?).await?;
            if !structured(f, &inst)? {
                println!("I/O limits of {disk} of {name} set");
            }
        }
    }
    Ok(())
}
