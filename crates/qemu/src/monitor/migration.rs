//! Migration verbs: outgoing (to a file or a peer), incoming, and the wait
//! for their end, driven by `MIGRATION` events (the `events` capability is
//! always on).

use std::future::Future;
use std::time::Duration;

use serde_json::{Value, json};

use super::events::{Event, MigrationStatus};
use super::{Monitor, MonitorError, Result, RunState};

/// `max-bandwidth` meaning "no limit" (what libvirt sets too).
pub const UNLIMITED_BANDWIDTH: u64 = i64::MAX as u64;

/// Migration capabilities both ends must agree on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrationCaps {
    pub postcopy: bool,
    /// Multiple streams (used for compression).
    pub multifd: bool,
    pub auto_converge: bool,
}

/// Migration parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationParams {
    /// Bytes per second; `None` lifts QEMU's default cap of 128 MiB/s.
    pub max_bandwidth: Option<u64>,
    pub downtime_limit_ms: Option<u64>,
    /// zstd compression of multifd streams.
    pub zstd: bool,
}

/// What `query-migrate` says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MigrationInfo {
    pub status: Option<MigrationStatus>,
    pub transferred: u64,
    pub total: u64,
    pub remaining: u64,
    pub dirty_pages_rate: u64,
    pub dirty_sync_count: u64,
    pub expected_downtime_ms: u64,
    pub downtime_ms: u64,
    pub error: Option<String>,
}

impl MigrationInfo {
    fn parse(m: &Value) -> Self {
        let ram = &m["ram"];
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        Self {
            status: m["status"].as_str().map(MigrationStatus::parse),
            transferred: n(&ram["transferred"]),
            total: n(&ram["total"]),
            remaining: n(&ram["remaining"]),
            dirty_pages_rate: n(&ram["dirty-pages-rate"]),
            dirty_sync_count: n(&ram["dirty-sync-count"]),
            expected_downtime_ms: n(&m["expected-downtime"]),
            downtime_ms: n(&m["downtime"]),
            error: m["error-desc"].as_str().map(str::to_owned),
        }
    }
}

impl Monitor {
    /// Sets the capabilities (and always `events`, which the waits need).
    pub async fn migrate_set_capabilities(&self, caps: MigrationCaps) -> Result<()> {
        let caps = json!([
            {"capability": "events", "state": true},
            {"capability": "postcopy-ram", "state": caps.postcopy},
            {"capability": "multifd", "state": caps.multifd},
            {"capability": "auto-converge", "state": caps.auto_converge},
        ]);
        self.run(
            "migrate-set-capabilities",
            Some(json!({"capabilities": caps})),
        )
        .await
    }

    pub async fn migrate_set_parameters(&self, p: MigrationParams) -> Result<()> {
        let mut args = json!({"max-bandwidth": p.max_bandwidth.unwrap_or(UNLIMITED_BANDWIDTH)});
        if let Some(ms) = p.downtime_limit_ms {
            args["downtime-limit"] = json!(ms);
        }
        if p.zstd {
            args["multifd-compression"] = json!("zstd");
        }
        self.run("migrate-set-parameters", Some(args)).await
    }

    /// Starts an outgoing migration to `uri` (`file:PATH,offset=N`, `tcp:H:P`).
    pub async fn migrate(&self, uri: &str) -> Result<()> {
        self.run("migrate", Some(json!({"uri": uri}))).await
    }

    /// Starts listening for an incoming migration (QEMU started with
    /// `-incoming defer`).
    pub async fn migrate_incoming(&self, uri: &str) -> Result<()> {
        self.run("migrate-incoming", Some(json!({"uri": uri})))
            .await
    }

    pub async fn migrate_cancel(&self) -> Result<()> {
        self.run("migrate_cancel", None).await
    }

    pub async fn migrate_start_postcopy(&self) -> Result<()> {
        self.run("migrate-start-postcopy", None).await
    }

    pub async fn query_migrate(&self) -> Result<MigrationInfo> {
        Ok(MigrationInfo::parse(
            &self.call("query-migrate", None).await?,
        ))
    }

    /// Migrates to `uri` with no bandwidth cap and waits for the end,
    /// reporting RAM progress. The caller decides whether the VM is paused.
    pub async fn migrate_and_wait(
        &self,
        uri: &str,
        progress: &(dyn Fn(&MigrationInfo) + Send + Sync),
        cancel: impl Future<Output = ()>,
    ) -> Result<MigrationInfo> {
        self.migrate_set_capabilities(MigrationCaps::default())
            .await?;
        self.migrate_set_parameters(MigrationParams {
            max_bandwidth: None,
            downtime_limit_ms: None,
            zstd: false,
        })
        .await?;
        let mut events = self.events();
        self.migrate(uri).await?;
        let mut tick = |m: &MigrationInfo| {
            progress(m);
            std::future::ready(Ok(()))
        };
        self.follow_migration(&mut events, Duration::from_millis(250), &mut tick, cancel)
            .await
    }

    /// Follows an outgoing migration until it ends: `MIGRATION` events say
    /// when; every `every` the caller's `tick` sees the progress (and may
    /// fail the migration, e.g. when the peer stopped answering). On
    /// cancel or failure the migration is cancelled.
    pub async fn follow_migration<F, Fut>(
        &self,
        events: &mut super::Events,
        every: Duration,
        tick: &mut F,
        cancel: impl Future<Output = ()>,
    ) -> Result<MigrationInfo>
    where
        F: FnMut(&MigrationInfo) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let mut cancel = std::pin::pin!(cancel);
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            tokio::select! {
                ev = events.next() => match ev {
                    Some(Event::Migration { status }) if status.is_final() => break Ok(status),
                    Some(_) => {}
                    None => break Err(ferrovirt_qmp::Error::Closed.into()),
                },
                _ = ticker.tick() => {
                    let info = self.query_migrate().await?;
                    if let Some(s) = info.status.as_ref().filter(|s| s.is_final()) {
                        break Ok(s.clone());
                    }
                    if let Err(e) = tick(&info).await {
                        break Err(e);
                    }
                }
                () = &mut cancel => break Err(MonitorError::Cancelled),
            }
        };
        match outcome {
            Ok(MigrationStatus::Completed) => self.query_migrate().await,
            Ok(_) => {
                let info = self.query_migrate().await.unwrap_or_default();
                Err(MonitorError::Migration {
                    reason: info.error.unwrap_or_else(|| "no reason given".into()),
                })
            }
            Err(e) => {
                let _ = self.migrate_cancel().await;
                Err(e)
            }
        }
    }

    /// Loads an incoming migration from `uri` (a saved state file) and
    /// waits until it has been received.
    pub async fn load_incoming(&self, uri: &str) -> Result<()> {
        self.migrate_set_capabilities(MigrationCaps::default())
            .await?;
        let mut events = self.events();
        self.migrate_incoming(uri).await?;
        self.wait_incoming_with(&mut events).await
    }

    /// Waits until an incoming migration has been received (the events
    /// capability was set before it started).
    pub async fn wait_incoming(&self) -> Result<()> {
        let mut events = self.events();
        self.wait_incoming_with(&mut events).await
    }

    async fn wait_incoming_with(&self, events: &mut super::Events) -> Result<()> {
        if self.query_status().await? != RunState::InMigrate {
            return self.incoming_outcome().await;
        }
        loop {
            match events.next().await {
                Some(Event::Migration { status }) if status.is_final() => {
                    return self.incoming_outcome().await;
                }
                Some(_) => {}
                None => return Err(ferrovirt_qmp::Error::Closed.into()),
            }
        }
    }

    async fn incoming_outcome(&self) -> Result<()> {
        let info = self.query_migrate().await?;
        match info.status {
            Some(MigrationStatus::Failed | MigrationStatus::Cancelled) => {
                Err(MonitorError::Migration {
                    reason: info.error.unwrap_or_else(|| "no reason given".into()),
                })
            }
            _ => Ok(()),
        }
    }
}
