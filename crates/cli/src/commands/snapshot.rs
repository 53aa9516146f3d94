use ferrovirt_api::{ClonePost, RestorePost, SavePost, Snapshot, SnapshotKind, SnapshotsPost};
use ferrovirt_client::Client;

use crate::args::{Format, SnapshotCommand};
use crate::output::{structured, table};
use crate::progress::follow;

pub async fn run(c: &Client, f: Format, cmd: SnapshotCommand) -> anyhow::Result<()> {
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

pub async fn clone(c: &Client, source: &str, req: ClonePost, detach: bool) -> anyhow::Result<()> {
    let name = req.name.clone();
    let op = c.clone_instance(source, &req).await?;
    follow(c, op, detach).await?;
    if !detach {
        println!("Instance {name} cloned from {source}.");
    }
    Ok(())
}

pub async fn save(
    c: &Client,
    name: &str,
    file: Option<String>,
    detach: bool,
) -> anyhow::Result<()> {
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

pub async fn restore(c: &Client, file: &str, detach: bool) -> anyhow::Result<()> {
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
