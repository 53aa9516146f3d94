//! Editing a spec in the user's $EDITOR until the daemon accepts it.

use std::io::Write;

use anyhow::{Context, bail};
use ferrovirt_client::ClientError;
use serde_json::Value;

use crate::commands::spec::yaml_to_json;

/// Edits `text` in $EDITOR and hands the result to `save` until it is
/// accepted or the user gives up. Returns `false` when nothing changed.
pub async fn edit_loop<F, Fut>(name: &str, mut text: String, save: F) -> anyhow::Result<bool>
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = Result<(), ClientError>>,
{
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    loop {
        let mut file = tempfile::Builder::new()
            .prefix(&format!("ferrovirt-{name}-"))
            .suffix(".yaml")
            .tempfile()?;
        file.write_all(text.as_bytes())?;
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(file.path())
            .status()
            .await
            .with_context(|| format!("cannot run the editor {editor}"))?;
        if !status.success() {
            bail!("the editor exited with {status}; nothing changed");
        }
        let edited = std::fs::read_to_string(file.path())?;
        if edited == text {
            println!("No changes.");
            return Ok(false);
        }
        let result = match yaml_to_json(&edited, "the edited spec") {
            Ok(spec) => save(spec).await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return Ok(true),
            Err(e) => {
                let msg = match e.downcast_ref::<ClientError>() {
                    Some(ClientError::Api(b)) => b.error.clone(),
                    _ => format!("{e:#}"),
                };
                eprintln!("Error: {msg}");
                if !confirm("Edit again?")? {
                    bail!("nothing changed");
                }
                text = edited;
            }
        }
    }
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question} [Y/n] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(!answer.trim().eq_ignore_ascii_case("n"))
}
