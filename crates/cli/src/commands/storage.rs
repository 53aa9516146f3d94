//! `pool` and `volume`.

use anyhow::Context;
use ferrovirt_api::{
    PoolCreate, PoolSpec, VolumeClone, VolumeConvert, VolumeCreate, VolumeExport, VolumeImport,
    VolumeResize,
};
use ferrovirt_client::Client;
use ferrovirt_core::size;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::args::{Format, PoolCommand, PoolCreateArgs, VolumeCommand};
use crate::commands::instance::spec_file;
use crate::output::{structured, table};
use crate::progress::follow;

/// Parses a flag's value into an API enum, naming the flag on error.
pub fn parse_enum<T: DeserializeOwned>(flag: &str, value: &str) -> anyhow::Result<T> {
    serde_json::from_value(json!(value)).map_err(|e| {
        anyhow::anyhow!(
            "--{flag} {value}: {}",
            e.to_string()
                .replace("unknown variant", "not one of the choices")
        )
    })
}

/// Parses a size argument (`10G`).
pub fn parse_size(what: &str, value: &str) -> anyhow::Result<u64> {
    size::parse(what, value).map_err(|e| anyhow::anyhow!("{e}"))
}

/// A host path as the daemon needs it: absolute, resolved against the
/// CLI's working directory.
pub fn absolute(path: &str) -> String {
    std::path::absolute(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.to_owned())
}

/// `POOL/VOLUME`
pub fn split(id: &str) -> anyhow::Result<(&str, &str)> {
    id.split_once('/')
        .filter(|(p, v)| !p.is_empty() && !v.is_empty())
        .with_context(|| format!("{id:?}: expected POOL/VOLUME"))
}

fn pool_spec(a: &PoolCreateArgs) -> anyhow::Result<PoolSpec> {
    let mut spec = spec_file(a.file.as_deref())?;
    let m = spec.as_object_mut().expect("mapping");
    m.insert("name".into(), json!(a.name));
    if let Some(k) = &a.kind {
        m.insert("type".into(), json!(k));
    }
    if let Some(p) = &a.path {
        m.insert("path".into(), json!(p));
    }
    if !a.no_autostart && !m.contains_key("autostart") {
        m.insert("autostart".into(), json!(true));
    } else if a.no_autostart {
        m.insert("autostart".into(), json!(false));
    }
    let src = m.entry("source").or_insert(json!({}));
    let src = src.as_object_mut().context("source must be a mapping")?;
    for (k, v) in [
        ("device", &a.device),
        ("filesystem", &a.filesystem),
        ("host", &a.host),
        ("export", &a.export),
        ("options", &a.options),
        ("target", &a.target),
        ("vg", &a.vg),
    ] {
        if let Some(v) = v {
            src.insert(k.into(), json!(v));
        }
    }
    serde_json::from_value(spec).context("invalid pool spec")
}

pub async fn pool(c: &Client, f: Format, cmd: PoolCommand) -> anyhow::Result<()> {
    match cmd {
        PoolCommand::Create(a) => {
            let req = PoolCreate {
                spec: pool_spec(&a)?,
                build: a.build,
                start: !a.no_start,
            };
            let p = c.create_pool(&req).await?;
            if !structured(f, &p)? {
                let state = if p.active {
                    "created and started"
                } else {
                    "defined"
                };
                println!("Pool {} {state}", a.name);
            }
        }
        PoolCommand::List => {
            let pools = c.pools().await?;
            if !structured(f, &pools)? {
                table(
                    &[
                        "NAME",
                        "TYPE",
                        "ACTIVE",
                        "AUTOSTART",
                        "CAPACITY",
                        "ALLOCATION",
                        "AVAILABLE",
                        "VOLUMES",
                    ],
                    pools
                        .iter()
                        .map(|p| {
                            vec![
                                p.spec.name.clone(),
                                p.spec.kind.as_str().into(),
                                p.active.to_string(),
                                p.spec.autostart.to_string(),
                                size::human(p.capacity),
                                size::human(p.allocation),
                                size::human(p.available),
                                p.volumes.to_string(),
                            ]
                        })
                        .collect(),
                );
            }
        }
        PoolCommand::Show { name } => {
            let p = c.pool(&name).await?;
            if !structured(f, &p)? {
                print!("{}", serde_norway::to_string(&p)?);
            }
        }
        PoolCommand::Delete { name, volumes } => {
            c.delete_pool(&name, volumes).await?;
            println!("Pool {name} deleted");
        }
        PoolCommand::Start { name } => report(f, c.pool_action(&name, "start").await?, "started")?,
        PoolCommand::Stop { name } => report(f, c.pool_action(&name, "stop").await?, "stopped")?,
        PoolCommand::Refresh { name } => {
            report(f, c.pool_action(&name, "refresh").await?, "refreshed")?
        }
        PoolCommand::Autostart { name, disable } => {
            let mut spec = c.pool(&name).await?.spec;
            spec.autostart = !disable;
            let p = c.replace_pool(&spec).await?;
            let what = if disable {
                "will not start"
            } else {
                "will start"
            };
            if !structured(f, &p)? {
                println!("Pool {name} {what} with the daemon");
            }
        }
    }
    Ok(())
}

fn report(f: Format, p: ferrovirt_api::Pool, what: &str) -> anyhow::Result<()> {
    if !structured(f, &p)? {
        println!("Pool {} {what}", p.spec.name);
    }
    Ok(())
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

pub async fn volume(c: &Client, f: Format, cmd: VolumeCommand) -> anyhow::Result<()> {
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
                format: parse_enum("image-format", &format)?,
                preallocation: parse_enum("prealloc", &prealloc)?,
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
                .volume_action(pool, name, "resize", &VolumeResize { size: new, force })
                .await?;
            if !structured(f, &v)? {
                println!("Volume {volume} is now {}", size::human(v.virtual_size));
            }
        }
        VolumeCommand::Wipe { volume } => {
            let (pool, name) = split(&volume)?;
            c.volume_action(pool, name, "wipe", &json!({})).await?;
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
                source_format: source_format
                    .map(|s| parse_enum("source-format", &s))
                    .transpose()?,
                format: format.map(|s| parse_enum("image-format", &s)).transpose()?,
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
                format: format.map(|s| parse_enum("image-format", &s)).transpose()?,
            };
            let op = c.volume_operation(pool, name, "export", &req).await?;
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
                format: format.map(|s| parse_enum("image-format", &s)).transpose()?,
            };
            let op = c.volume_operation(pool, name, "clone", &req).await?;
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
                format: parse_enum("image-format", &format)?,
                name: to.clone(),
            };
            let op = c.volume_operation(pool, name, "convert", &req).await?;
            follow(c, op, detach).await?;
            if !detach {
                println!(
                    "Converted {volume} to {format}{}",
                    to.map(|t| format!(" as {pool}/{t}")).unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
