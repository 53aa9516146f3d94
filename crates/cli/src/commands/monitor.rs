//! `monitor`: lifecycle events as they happen.

use ferrovirt_client::Client;
use futures::StreamExt;

use crate::cli::Format;

/// Prints events until interrupted.
pub async fn follow(c: &Client, f: Format) -> anyhow::Result<()> {
    let events = c.events().await?;
    futures::pin_mut!(events);
    while let Some(ev) = events.next().await {
        match f {
            Format::Json => println!("{}", serde_json::to_string(&ev)?),
            Format::Yaml => print!("---\n{}", serde_norway::to_string(&ev)?),
            Format::Table => {
                let kind = serde_json::to_value(ev.kind)?;
                println!(
                    "{}  {:<10} {:<9} {}",
                    ev.timestamp.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                    ev.instance,
                    kind.as_str().unwrap_or(""),
                    ev.details.unwrap_or_default()
                );
            }
        }
    }
    anyhow::bail!("the daemon closed the event stream")
}
