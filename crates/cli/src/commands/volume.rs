//! `volume`: volumes of storage pools, named POOL/VOLUME.

use clap::Subcommand;
use ferrovirt_api::size;
use ferrovirt_api::{
    Preallocation, VolumeClone, VolumeConvert, VolumeCreate, VolumeExport, VolumeFormat,
    VolumeImport, VolumeResize,
};
use ferrovirt_client::Client;

use super::values::{absolute, api_enum, parse_size, split};
use crate::cli::Format;
use crate::output::{structured, table};
use crate::progress::follow;

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume, sparse unless --prealloc.
    Create {
        /// POOL/NAME
        volume: String,
        /// Virtual size, e.g. 10G.
        size: String,
        /// raw or qcow2.
        #[arg(long = "image-format", default_value = "qcow2", value_parser = api_enum::<VolumeFormat>)]
        image_format: VolumeFormat,
        /// off, metadata, falloc or full.
        #[arg(long, default_value = "off", value_parser = api_enum::<Preallocation>)]
        prealloc: Preallocation,
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
        #[arg(long, value_parser = api_enum::<VolumeFormat>)]
        source_format: Option<VolumeFormat>,
        /// Format of the volume (default qcow2).
        #[arg(long = "image-format", value_parser = api_enum::<VolumeFormat>)]
        image_format: Option<VolumeFormat>,
        #[arg(long = "async")]
        detach: bool,
    },
    /// Write a volume to a host file.
    Export {
        volume: String,
        file: String,
        #[arg(long = "image-format", value_parser = api_enum::<VolumeFormat>)]
        image_format: Option<VolumeFormat>,
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
        #[arg(long = "image-format", value_parser = api_enum::<VolumeFormat>)]
        image_format: Option<VolumeFormat>,
        #[arg(long = "async")]
        detach: bool,
    },
    /// Rewrite a volume in another format, in place or --to a new volume.
    Convert {
        volume: String,
        /// raw or qcow2.
        #[arg(long = "image-format", value_parser = api_enum::<VolumeFormat>)]
        image_format: VolumeFormat,
        #[arg(long)]
        to: Option<String>,
        #[arg(long = "async")]
        detach: bool,
    },
}

impl VolumeCommand {
    pub async fn run(self, c: &Client, f: Format) -> anyhow::Result<()> {
        run(c, f, self).await
    }
}

fn print_volume(f: Format, v: &ferrovirt_api::Volume) -> anyhow::Result<()> {
    if !structured(f, v)? {
        println!("name:         {}/{}", v.pool, v.name);
        println!("path:         {}", v.path);
        println!("format:       {}", v.format.as_str());
        println!(
            "virtual size: {} ({} bytes)",
            size::human(v.virtual_size),
            v.virtual_size
        );
        println!(
            "actual size:  {} ({} bytes)",
            size::human(v.actual_size),
            v.actual_size
        );
        for (i, b) in v.backing_chain.iter().enumerate() {
            println!(
                "backing {i}:    {} ({}, {})",
                b.path,
                b.format,
                size::human(b.virtual_size)
            );
        }
        if !v.used_by.is_empty() {
            println!("used by:      {}", v.used_by.join(", "));
        }
    }
    Ok(())
}

async fn run(c: &Client, f: Format, cmd: VolumeCommand) -> anyhow::Result<()> {
    match cmd {
        VolumeCommand::Create {
            volume,
            size: sz,
            image_format: format,
            prealloc,
        } => {
            let (pool, name) = split(&volume)?;
            let req = VolumeCreate {
                name: name.into(),
                size: parse_size("size", &sz)?,
                format,
                preallocation: prealloc,
            };
            let v = c.create_volume(pool, &req).await?;
            if !structured(f, &v)? {
                println!(
                    "Volume {volume} created ({}, {})",
                    v.format.as_str(),
                    size::human(v.virtual_size)
                );
            }
        }
        VolumeCommand::List { pool } => {
            let vols = c.volumes(&pool).await?;
            if !structured(f, &vols)? {
                table(
                    &[
                        "NAME",
                        "FORMAT",
                        "VIRTUAL SIZE",
                        "ACTUAL SIZE",
                        "USED BY",
                        "PATH",
                    ],
                    vols.iter()
                        .map(|v| {
                            vec![
                                v.name.clone(),
                                v.format.as_str().into(),
                                size::human(v.virtual_size),
                                size::human(v.actual_size),
                                v.used_by.join(","),
                                v.path.clone(),
                            ]
                        })
                        .collect(),
                );
            }
        }
        VolumeCommand::Show { volume } => {
            let (pool, name) = split(&volume)?;
            print_volume(f, &c.volume(pool, name).await?)?;
        }
        VolumeCommand::Delete { volume } => {
            let (pool, name) = split(&volume)?;
            c.delete_volume(pool, name).await?;
            println!("Volume {volume} deleted");
        }
        VolumeCommand::Resize {
            volume,
            size: sz,
            force,
        } => {
            let (pool, name) = split(&volume)?;
            let new = parse_size("size", &sz)?;
            let old = c.volume(pool, name).await?.virtual_size;
            if new < old {
                if !force {
                    anyhow::bail!(
                        "{volume}: {} is smaller than its {}; shrinking loses the data past the new end — add --force to do it",
                        size::human(new),
                        size::human(old)
                    );
                }
                eprintln!(
                    "warning: shrinking {volume} from {} to {}: the data past the new end is lost",
                    size::human(old),
                    size::human(new)
                );
            }
            let v = c
                .resize_volume(pool, name, &VolumeResize { size: new, force })
                .await?;
            if !structured(f, &v)? {
                println!("Volume {volume} is now {}", size::human(v.virtual_size));
            }
        }
        VolumeCommand::Wipe { volume } => {
            let (pool, name) = split(&volume)?;
            c.wipe_volume(pool, name).await?;
            println!("Volume {volume} wiped");
        }
        VolumeCommand::Import {
            volume,
            file,
            source_format,
            image_format: format,
            detach,
        } => {
            let (pool, name) = split(&volume)?;
            let req = VolumeImport {
                name: name.into(),
                source: absolute(&file),
                source_format,
                format,
            };
            let op = c.import_volume(pool, &req).await?;
            follow(c, op, detach).await?;
            if !detach {
                println!("Imported {file} as {volume}");
            }
        }
        VolumeCommand::Export {
            volume,
            file,
            image_format: format,
            detach,
        } => {
            let (pool, name) = split(&volume)?;
            let req = VolumeExport {
                path: absolute(&file),
                format,
            };
            let op = c.export_volume(pool, name, &req).await?;
            follow(c, op, detach).await?;
            if !detach {
                println!("Exported {volume} to {file}");
            }
        }
        VolumeCommand::Clone {
            volume,
            name: new,
            pool: to,
            linked,
            image_format: format,
            detach,
        } => {
            let (pool, name) = split(&volume)?;
            let req = VolumeClone {
                name: new.clone(),
                pool: to.clone(),
                linked,
                format,
            };
            let op = c.clone_volume(pool, name, &req).await?;
            let op = follow(c, op, detach).await?;
            if !detach {
                let how = op
                    .result
                    .as_ref()
                    .and_then(|r| r["method"].as_str())
                    .unwrap_or(if linked { "linked" } else { "copy" });
                println!(
                    "Cloned {volume} as {}/{new} ({how})",
                    to.as_deref().unwrap_or(pool)
                );
            }
        }
        VolumeCommand::Convert {
            volume,
            image_format: format,
            to,
            detach,
        } => {
            let (pool, name) = split(&volume)?;
            let req = VolumeConvert {
                format,
                name: to.clone(),
            };
            let op = c.convert_volume(pool, name, &req).await?;
            follow(c, op, detach).await?;
            if !detach {
                println!(
                    "Converted {volume} to {}{}",
                    format.as_str(),
                    to.map(|t| format!(" as {pool}/{t}")).unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
