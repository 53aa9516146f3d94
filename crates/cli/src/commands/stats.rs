//! `stats`: usage of running instances.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Args;
use ferrovirt_api::InstanceStats;
use ferrovirt_client::Client;

use crate::cli::Format;
use crate::output::{structured, table};

#[derive(Debug, Args)]
pub struct StatsArgs {
    pub name: Option<String>,
    /// Refresh every second (CPU as a percentage of one core).
    #[arg(long)]
    pub watch: bool,
}

impl StatsArgs {
    pub async fn run(self, c: &Client, f: Format) -> anyhow::Result<()> {
        run(c, f, self.name, self.watch).await
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

async fn run(c: &Client, f: Format, name: Option<String>, watch: bool) -> anyhow::Result<()> {
    let mut last: HashMap<String, (Instant, u64)> = HashMap::new();
    loop {
        let stats: Vec<InstanceStats> = match &name {
            Some(n) => vec![c.instance_stats(n).await?],
            None => c.stats().await?,
        };
        if structured(f, &stats)? {
            if !watch {
                return Ok(());
            }
        } else {
            if watch {
                print!("\x1b[2J\x1b[H");
            }
            let now = Instant::now();
            table(
                &[
                    "NAME",
                    "CPU",
                    "VCPUS",
                    "RSS",
                    "BALLOON",
                    "DISK READ",
                    "DISK WRITTEN",
                    "NET RX",
                    "NET TX",
                ],
                stats
                    .iter()
                    .map(|s| {
                        let cpu = match last.get(&s.instance) {
                            Some((t, ns)) => format!(
                                "{:.0}%",
                                (s.cpu_time_ns.saturating_sub(*ns)) as f64
                                    / now.duration_since(*t).as_nanos() as f64
                                    * 100.0
                            ),
                            None => format!("{:.1}s", s.cpu_time_ns as f64 / 1e9),
                        };
                        last.insert(s.instance.clone(), (now, s.cpu_time_ns));
                        vec![
                            s.instance.clone(),
                            cpu,
                            s.vcpus.to_string(),
                            mib(s.rss_bytes),
                            s.balloon_bytes.map(mib).unwrap_or_default(),
                            mib(s.disks.iter().map(|d| d.read_bytes).sum()),
                            mib(s.disks.iter().map(|d| d.write_bytes).sum()),
                            mib(s.nics.iter().map(|n| n.rx_bytes).sum()),
                            mib(s.nics.iter().map(|n| n.tx_bytes).sum()),
                        ]
                    })
                    .collect(),
            );
        }
        if !watch {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
