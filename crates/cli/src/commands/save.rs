//! `save` and `restore`: an instance's memory to a file and back.

use clap::Subcommand;
use ferrovirt_api::{RestorePost, SavePost};
use ferrovirt_client::Client;

use crate::progress::follow;

#[derive(Debug, Subcommand)]
pub enum SaveCommand {
    /// Save a running instance's memory and stop it; `start` resumes it.
    Save {
        name: String,
        /// Write the state to this file instead (restore it with `restore`).
        #[arg(long)]
        file: Option<String>,
        #[arg(long = "async")]
        detach: bool,
    },
    /// Resume an instance from a file written by `save --file`.
    Restore {
        file: String,
        #[arg(long = "async")]
        detach: bool,
    },
}

impl SaveCommand {
    pub fn instance_arg(&mut self) -> Option<&mut String> {
        match self {
            Self::Save { name, .. } => Some(name),
            Self::Restore { .. } => None,
        }
    }

    pub async fn run(self, c: &Client) -> anyhow::Result<()> {
        match self {
            Self::Save { name, file, detach } => save(c, &name, file, detach).await,
            Self::Restore { file, detach } => restore(c, &file, detach).await,
        }
    }
}

async fn save(c: &Client, name: &str, file: Option<String>, detach: bool) -> anyhow::Result<()> {
    let op = c
        .save_instance(name, &SavePost { file: file.clone() })
        .await?;
    follow(c, op, detach).await?;
    if !detach {
        match file {
            Some(f) => println!("Instance {name} saved to {f} and stopped."),
            None => println!("Instance {name} saved and stopped; `start` resumes it."),
        }
    }
    Ok(())
}

async fn restore(c: &Client, file: &str, detach: bool) -> anyhow::Result<()> {
    let op = c
        .restore(&RestorePost {
            file: file.to_owned(),
        })
        .await?;
    follow(c, op, detach).await?;
    if !detach {
        println!("Restored from {file}.");
    }
    Ok(())
}
