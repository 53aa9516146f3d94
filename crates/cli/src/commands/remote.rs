//! `remote`: other Ferrovirt hosts this CLI reaches over TLS.

use std::path::Path;

use clap::Subcommand;

use crate::cli::Format;
use crate::output::{structured, table};
use crate::remotes;

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

pub async fn run(dir: &Path, f: Format, cmd: RemoteCommand) -> anyhow::Result<()> {
    match cmd {
        RemoteCommand::Add {
            name,
            address,
            token,
        } => {
            let r = remotes::add(dir, &name, address, &token).await?;
            println!(
                "Remote {name} added ({}, certificate {}).",
                r.address, r.fingerprint
            );
        }
        RemoteCommand::List => {
            let list = remotes::load(dir)?;
            if !structured(f, &list)? {
                table(
                    &["NAME", "ADDRESS", "FINGERPRINT"],
                    list.iter()
                        .map(|(n, r)| vec![n.clone(), r.address.clone(), r.fingerprint.clone()])
                        .collect(),
                );
            }
        }
        RemoteCommand::Remove { name } => {
            let mut list = remotes::load(dir)?;
            if list.remove(&name).is_none() {
                anyhow::bail!("no remote {name}");
            }
            remotes::save(dir, &list)?;
            println!("Remote {name} removed.");
        }
    }
    Ok(())
}
