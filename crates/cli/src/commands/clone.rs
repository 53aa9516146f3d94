//! `clone`: a new instance from an existing one.

use clap::Args;
use ferrovirt_api::ClonePost;
use ferrovirt_client::Client;

use crate::progress::follow;

#[derive(Debug, Args)]
pub struct CloneArgs {
    pub source: String,
    pub name: String,
    /// qcow2 overlays on the source's frozen disks instead of full copies.
    #[arg(long)]
    pub linked: bool,
    /// Clone the state of this snapshot.
    #[arg(long)]
    pub from_snapshot: Option<String>,
    /// Return at once with the operation id.
    #[arg(long = "async")]
    pub detach: bool,
}

impl CloneArgs {
    pub async fn run(self, c: &Client) -> anyhow::Result<()> {
        let req = ClonePost {
            name: self.name,
            linked: self.linked,
            from_snapshot: self.from_snapshot,
        };
        let op = c.clone_instance(&self.source, &req).await?;
        follow(c, op, self.detach).await?;
        if !self.detach {
            println!("Instance {} cloned from {}.", req.name, self.source);
        }
        Ok(())
    }
}
