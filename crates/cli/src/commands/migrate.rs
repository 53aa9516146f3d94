//! `migrate`: move an instance to another host.

use std::path::Path;

use clap::Args;
use ferrovirt_api::{MigratePost, MigrationTarget};
use ferrovirt_client::Client;

use crate::remotes;

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

impl MigrateArgs {
    pub async fn run(self, c: &Client, dir: &Path) -> anyhow::Result<()> {
        migrate(c, dir, self).await
    }
}

/// Migrates through the local daemon; the CLI (trusted by the remote) gets a
/// join token there so the local daemon can authenticate itself.
async fn migrate(c: &Client, dir: &Path, a: MigrateArgs) -> anyhow::Result<()> {
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
