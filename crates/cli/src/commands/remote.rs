use std::path::Path;

use ferrovirt_api::{MigratePost, MigrationTarget};
use ferrovirt_client::Client;

use crate::args::{Format, MigrateArgs, RemoteCommand};
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

/// Migrates through the local daemon; the CLI (trusted by the remote) gets a
/// join token there so the local daemon can authenticate itself.
pub async fn migrate(c: &Client, dir: &Path, a: MigrateArgs) -> anyhow::Result<()> {
    let list = remotes::load(dir)?;
    let Some(r) = list.get(&a.to) else {
        anyhow::bail!("no remote {}; add it with `ferrovirt remote add`", a.to);
    };
    let remote = remotes::client(dir, &a.to)?;
    let me = c.host_info().await?.hostname;
    let me: String = me
        .to_lowercase()
        .chars()
        .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
        .collect();
    let token = remote
        .new_token(&format!("host-{}", me.trim_matches('-')))
        .await?;
    let req = MigratePost {
        target: MigrationTarget {
            address: r.address.clone(),
            fingerprint: r.fingerprint.clone(),
            token: Some(token),
        },
        offline: a.offline,
        copy_storage: a.copy_storage,
        postcopy: a.postcopy,
        auto_converge: a.auto_converge,
        bandwidth: a.bandwidth,
        max_downtime: a.max_downtime,
        compress: a.compress,
    };
    let op = c.migrate(&a.name, &req).await?;
    let op = crate::progress::follow(c, op, a.detach).await?;
    if !a.detach {
        let downtime = op
            .result
            .as_ref()
            .and_then(|r| r["downtime_ms"].as_u64())
            .map(|d| format!(", downtime {d} ms"))
            .unwrap_or_default();
        println!("Instance {} migrated to {}{downtime}.", a.name, a.to);
    }
    Ok(())
}
