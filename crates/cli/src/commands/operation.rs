//! `operation`: long-running work on the daemon.

use clap::Subcommand;
use ferrovirt_client::Client;

use crate::cli::Format;
use crate::output::{structured, table};
use crate::progress::follow;

#[derive(Debug, Subcommand)]
pub enum OperationCommand {
    List,
    Show {
        id: String,
    },
    /// Wait for an operation with a progress bar.
    Wait {
        id: String,
    },
    Cancel {
        id: String,
    },
}

impl OperationCommand {
    pub async fn run(self, c: &Client, f: Format) -> anyhow::Result<()> {
        run(c, f, self).await
    }
}

async fn run(c: &Client, f: Format, cmd: OperationCommand) -> anyhow::Result<()> {
    match cmd {
        OperationCommand::List => {
            let ops = c.operations().await?;
            if !structured(f, &ops)? {
                table(
                    &["ID", "STATUS", "PROGRESS", "DESCRIPTION", "ERROR"],
                    ops.iter()
                        .map(|o| {
                            vec![
                                o.id.to_string(),
                                format!("{:?}", o.status).to_lowercase(),
                                o.progress
                                    .as_ref()
                                    .map(|p| format!("{:.0}% {}", p.percent, p.stage))
                                    .unwrap_or_default(),
                                o.description.clone(),
                                o.error.clone().unwrap_or_default(),
                            ]
                        })
                        .collect(),
                );
            }
        }
        OperationCommand::Show { id } => {
            let op = c.operation(&id).await?;
            if !structured(f, &op)? {
                print!("{}", serde_norway::to_string(&op)?);
            }
        }
        OperationCommand::Wait { id } => {
            let op = c.operation(&id).await?;
            follow(c, op, false).await?;
            println!("Operation {id} succeeded.");
        }
        OperationCommand::Cancel { id } => {
            c.cancel_operation(&id).await?;
            println!("Operation {id} asked to cancel.");
        }
    }
    Ok(())
}
