use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What happened to an instance.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Updated,
    Started,
    Paused,
    Resumed,
    /// The guest shut itself down or acknowledged an ACPI shutdown.
    Shutdown,
    /// The guest rebooted.
    Rebooted,
    /// QEMU exited and the instance is now shut off.
    Stopped,
    /// QEMU died unexpectedly or the guest panicked.
    Crashed,
    Deleted,
}

/// One entry of the `/1.0/events` stream (newline-delimited JSON).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub timestamp: DateTime<Utc>,
    pub kind: EventKind,
    /// Name of the instance the event is about.
    pub instance: String,
    /// Extra context, e.g. the reason of a shutdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}
