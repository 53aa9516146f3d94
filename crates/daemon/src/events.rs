//! The lifecycle event bus behind `/1.0/events`.

use chrono::Utc;
use ferrovirt_api::{Event, EventKind};
use tokio::sync::broadcast;

/// Fans events out to every `/1.0/events` listener. Slow listeners lose the
/// oldest events rather than slowing the daemon down.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl EventBus {
    pub fn emit(&self, kind: EventKind, instance: &str, details: Option<String>) {
        let event = Event {
            timestamp: Utc::now(),
            kind,
            instance: instance.to_owned(),
            details,
        };
        tracing::info!(instance, ?kind, details = event.details.as_deref(), "event");
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
