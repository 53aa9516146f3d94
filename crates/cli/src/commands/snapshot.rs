//! `snapshot`: snapshots of an instance.

use clap::Subcommand;
use ferrovirt_api::{Snapshot, SnapshotKind, SnapshotsPost};
use ferrovirt_client::Client;

use crate::cli::Format;
use crate::output::{structured, table};
use crate::progress::follow;

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot (with memory by default when the instance runs).
    Create {
        name: String,
        snapshot: String,
        /// Freeze the disk files and write to new overlays (default: inside qcow2).
        #[arg(long)]
        external: bool,
        /// Save the memory (the default for a running instance).
        #[arg(long, conflicts_with = "no_memory")]
        memory: bool,
        /// Disks only, even for a running instance.
        #[arg(long)]
        no_memory: bool,
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "async")]
        detach: bool,
    },
    /// The snapshot tree; `*` marks the current snapshot.
    List {
        name: String,
    },
    Show {
        name: String,
        snapshot: String,
    },
    /// Bring the instance back to a snapshot (its running state too, with memory).
    Revert {
        name: String,
        snapshot: String,
        #[arg(long = "async")]
        detach: bool,
    },
    /// Delete a snapshot; the others keep their content.
    Delete {
        name: String,
        snapshot: String,
        #[arg(long = "async")]
        detach: bool,
    },
}

impl SnapshotCommand {
    pub fn instance_arg(&mut self) -> &mut String {
        match self {
            Self::Create { name, .. }
            | Self::List { name }
            | Self::Show { name, .. }
            | Self::Revert { name, .. }
            | Self::Delete { name, .. } => name,
        }
    }

    pub async fn run(self, c: &Client, f: Format) -> anyhow::Result<()> {
        run(c, f, self).await
    }
}

async fn run(c: &Client, f: Format, cmd: SnapshotCommand) -> anyhow::Result<()> {
    match cmd {
        SnapshotCommand::Create {
            name,
            snapshot,
            external,
            memory,
            no_memory,
            description,
            detach,
        } => {
            let req = SnapshotsPost {
                name: snapshot.clone(),
                kind: if external {
                    SnapshotKind::External
                } else {
                    SnapshotKind::Internal
                },
                memory: if memory {
                    Some(true)
                } else if no_memory {
                    Some(false)
                } else {
                    None
                },
                description: description.unwrap_or_default(),
            };
            let op = c.create_snapshot(&name, &req).await?;
            if !detach {
                follow(c, op, false).await?;
                println!("Snapshot {snapshot} of {name} created.");
            } else {
                follow(c, op, true).await?;
            }
        }
        SnapshotCommand::List { name } => {
            let snaps = c.snapshots(&name).await?;
            if !structured(f, &snaps)? {
                print_tree(&snaps);
            }
        }
        SnapshotCommand::Show { name, snapshot } => {
            let s = c.snapshot(&name, &snapshot).await?;
            if !structured(f, &s)? {
                print!("{}", serde_norway::to_string(&s)?);
            }
        }
        SnapshotCommand::Revert {
            name,
            snapshot,
            detach,
        } => {
            let op = c.revert_snapshot(&name, &snapshot).await?;
            follow(c, op, detach).await?;
            if !detach {
                let inst = c.instance(&name).await?;
                println!(
                    "Instance {name} reverted to {snapshot} (now {}).",
                    inst.state.status.as_str()
                );
            }
        }
        SnapshotCommand::Delete {
            name,
            snapshot,
            detach,
        } => {
            let op = c.delete_snapshot(&name, &snapshot).await?;
            follow(c, op, detach).await?;
            if !detach {
                println!("Snapshot {snapshot} of {name} deleted.");
            }
        }
    }
    Ok(())
}

/// Prints the snapshot tree, roots first, children indented; `*` marks the
/// current snapshot.
fn print_tree(snaps: &[Snapshot]) {
    if snaps.is_empty() {
        println!("No snapshots.");
        return;
    }
    let mut rows = Vec::new();
    fn walk(snaps: &[Snapshot], s: &Snapshot, depth: usize, rows: &mut Vec<Vec<String>>) {
        rows.push(vec![
            format!(
                "{}{}{}",
                "  ".repeat(depth),
                s.name,
                if s.current { " *" } else { "" }
            ),
            format!("{:?}", s.kind).to_lowercase(),
            if s.memory { "yes" } else { "no" }.to_owned(),
            s.taken_while.as_str().to_owned(),
            s.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            s.description.clone(),
        ]);
        for child in snaps
            .iter()
            .filter(|c| c.parent.as_deref() == Some(&s.name))
        {
            walk(snaps, child, depth + 1, rows);
        }
    }
    for root in snaps.iter().filter(|s| s.parent.is_none()) {
        walk(snaps, root, 0, &mut rows);
    }
    table(
        &[
            "NAME",
            "KIND",
            "MEMORY",
            "TAKEN WHILE",
            "CREATED",
            "DESCRIPTION",
        ],
        rows,
    );
}
