//! `pool`: storage pools.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ferrovirt_api::size;
use ferrovirt_api::{PoolAction, PoolCreate, PoolSpec, PoolType};
use ferrovirt_client::Client;

use super::spec::{mapping, set, spec_file, value};
use super::values::api_enum;
use crate::cli::Format;
use crate::output::{structured, table};

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
    #[arg(long = "type", value_parser = api_enum::<PoolType>)]
    pub kind: Option<PoolType>,
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

impl PoolCommand {
    pub async fn run(self, c: &Client, f: Format) -> anyhow::Result<()> {
        run(c, f, self).await
    }
}

/// The pool's spec from `-f` and the flags (flags win).
fn pool_spec(a: &PoolCreateArgs) -> anyhow::Result<PoolSpec> {
    let mut spec = spec_file(a.file.as_deref())?;
    let m = spec.as_object_mut().expect("mapping");
    m.insert("name".into(), value(&a.name)?);
    set(m, "type", a.kind)?;
    set(m, "path", a.path.as_ref())?;
    if !a.no_autostart && !m.contains_key("autostart") {
        set(m, "autostart", Some(true))?;
    } else if a.no_autostart {
        set(m, "autostart", Some(false))?;
    }
    let src = mapping(m, "source")?;
    for (k, v) in [
        ("device", &a.device),
        ("filesystem", &a.filesystem),
        ("host", &a.host),
        ("export", &a.export),
        ("options", &a.options),
        ("target", &a.target),
        ("vg", &a.vg),
    ] {
        set(src, k, v.as_ref())?;
    }
    serde_json::from_value(spec).context("invalid pool spec")
}

async fn run(c: &Client, f: Format, cmd: PoolCommand) -> anyhow::Result<()> {
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
        PoolCommand::Start { name } => {
            report(f, c.pool_action(&name, PoolAction::Start).await?, "started")?
        }
        PoolCommand::Stop { name } => {
            report(f, c.pool_action(&name, PoolAction::Stop).await?, "stopped")?
        }
        PoolCommand::Refresh { name } => report(
            f,
            c.pool_action(&name, PoolAction::Refresh).await?,
            "refreshed",
        )?,
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
