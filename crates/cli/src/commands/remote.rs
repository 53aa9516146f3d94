use std::path::Path;

use crate::args::{Format, RemoteCommand};
use crate::output::{structured, table};
use crate::remotes;

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
