//! QMP events as one enum, and a stream of them.

use ferrovirt_qmp::QmpEvent;
use tokio::sync::broadcast;

/// The state of a QEMU job (`JOB_STATUS_CHANGE`, `query-jobs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Created,
    Running,
    Paused,
    Ready,
    Standby,
    Waiting,
    Pending,
    Aborting,
    Concluded,
    /// The job is gone (dismissed).
    Null,
    Other(String),
}

impl JobStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "created" => Self::Created,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "ready" => Self::Ready,
            "standby" => Self::Standby,
            "waiting" => Self::Waiting,
            "pending" => Self::Pending,
            "aborting" => Self::Aborting,
            "concluded" => Self::Concluded,
            "null" => Self::Null,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// The state of a migration (`MIGRATION` event, `query-migrate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationStatus {
    None,
    Setup,
    Active,
    PostcopyActive,
    Cancelling,
    Cancelled,
    Completed,
    Failed,
    Other(String),
}

impl MigrationStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "" | "none" => Self::None,
            "setup" => Self::Setup,
            "active" => Self::Active,
            "postcopy-active" => Self::PostcopyActive,
            "cancelling" => Self::Cancelling,
            "cancelled" => Self::Cancelled,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Whether the migration has ended, one way or another.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// An asynchronous event from QEMU.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The guest or the host asked the machine to power off (QEMU stays
    /// alive under `-no-shutdown`). `reason` is QEMU's, e.g.
    /// `guest-shutdown`, `host-signal`, `host-qmp-quit`.
    Shutdown { guest: bool, reason: String },
    /// The machine was reset; `guest` when the guest asked for it.
    Reset { guest: bool },
    /// The vCPUs stopped.
    Stop,
    /// The vCPUs run again.
    Resume,
    /// The guest reported a kernel panic (pvpanic).
    GuestPanicked,
    /// A job changed state.
    JobStatusChange { id: String, status: JobStatus },
    /// A migration changed state (needs the `events` capability).
    Migration { status: MigrationStatus },
    /// A device was removed (hot-unplug finished).
    DeviceDeleted { device: Option<String> },
    /// Any other event, by name.
    Other { name: String },
}

impl Event {
    pub fn parse(ev: &QmpEvent) -> Self {
        let d = &ev.data;
        let text = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
        match ev.event.as_str() {
            "SHUTDOWN" => Self::Shutdown {
                guest: d["guest"] == true,
                reason: text("reason"),
            },
            "RESET" => Self::Reset {
                guest: d["guest"] == true,
            },
            "STOP" => Self::Stop,
            "RESUME" => Self::Resume,
            "GUEST_PANICKED" => Self::GuestPanicked,
            "JOB_STATUS_CHANGE" => Self::JobStatusChange {
                id: text("id"),
                status: JobStatus::parse(&text("status")),
            },
            "MIGRATION" => Self::Migration {
                status: MigrationStatus::parse(&text("status")),
            },
            "DEVICE_DELETED" => Self::DeviceDeleted {
                device: d["device"].as_str().map(str::to_owned),
            },
            other => Self::Other {
                name: other.to_owned(),
            },
        }
    }
}

/// The events of one QMP connection, from the moment it was subscribed.
#[derive(Debug)]
pub struct Events(broadcast::Receiver<QmpEvent>);

impl Events {
    pub(crate) fn new(rx: broadcast::Receiver<QmpEvent>) -> Self {
        Self(rx)
    }

    /// The next event; `None` once QEMU has gone.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            match self.0.recv().await {
                Ok(ev) => {
                    tracing::debug!(event = ev.event, data = %ev.data, "QMP event");
                    return Some(Event::parse(&ev));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(n, "QMP events lost (slow reader)");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// An event already received, without waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        loop {
            match self.0.try_recv() {
                Ok(ev) => return Some(Event::parse(&ev)),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(name: &str, data: serde_json::Value) -> Event {
        Event::parse(&QmpEvent {
            event: name.into(),
            data,
        })
    }

    #[test]
    fn parses_qemu_10_event_shapes() {
        assert_eq!(
            ev(
                "SHUTDOWN",
                json!({"guest": true, "reason": "guest-shutdown"})
            ),
            Event::Shutdown {
                guest: true,
                reason: "guest-shutdown".into()
            }
        );
        assert_eq!(
            ev(
                "RESET",
                json!({"guest": false, "reason": "host-qmp-system-reset"})
            ),
            Event::Reset { guest: false }
        );
        assert_eq!(
            ev(
                "JOB_STATUS_CHANGE",
                json!({"id": "snap-a", "status": "concluded"})
            ),
            Event::JobStatusChange {
                id: "snap-a".into(),
                status: JobStatus::Concluded
            }
        );
        assert_eq!(
            ev("MIGRATION", json!({"status": "postcopy-active"})),
            Event::Migration {
                status: MigrationStatus::PostcopyActive
            }
        );
        assert_eq!(
            ev(
                "DEVICE_DELETED",
                json!({"device": "nic-1", "path": "/machine/peripheral/nic-1"})
            ),
            Event::DeviceDeleted {
                device: Some("nic-1".into())
            }
        );
        assert_eq!(
            ev("BALLOON_CHANGE", json!({"actual": 1})),
            Event::Other {
                name: "BALLOON_CHANGE".into()
            }
        );
        assert!(MigrationStatus::parse("failed").is_final());
        assert!(!MigrationStatus::parse("active").is_final());
    }
}
