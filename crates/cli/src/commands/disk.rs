//! `disk`: an instance's disks.

use ferrovirt_api::{Disk, IoLimits, MediaPut};
use ferrovirt_client::Client;

use super::storage::{absolute, parse_enum, parse_size};
use crate::args::{DiskCommand, Format, LimitArgs};
use crate::output::{structured, table};

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
                    ferrovirt_core::disk::node_name(d, i),
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

pub async fn run(c: &Client, f: Format, cmd: DiskCommand) -> anyhow::Result<()> {
    match cmd {
        DiskCommand::Attach(a) => {
            let disk = Disk {
                name: a.disk_name.clone(),
                path: a.path.as_deref().map(absolute).unwrap_or_default(),
                volume: a.volume.clone(),
                format: a
                    .image_format
                    .as_deref()
                    .map(|s| parse_enum("image-format", s))
                    .transpose()?
                    .unwrap_or_default(),
                bus: a
                    .bus
                    .as_deref()
                    .map(|s| parse_enum("bus", s))
                    .transpose()?
                    .unwrap_or_default(),
                media: a
                    .media
                    .as_deref()
                    .map(|s| parse_enum("media", s))
                    .transpose()?
                    .unwrap_or_default(),
                readonly: a.readonly,
                cache: a
                    .cache
                    .as_deref()
                    .map(|s| parse_enum("cache", s))
                    .transpose()?
                    .unwrap_or_default(),
                aio: a
                    .aio
                    .as_deref()
                    .map(|s| parse_enum("aio", s))
                    .transpose()?
                    .unwrap_or_default(),
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
