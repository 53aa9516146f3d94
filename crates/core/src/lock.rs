//! Per-instance job locks: one lifecycle action at a time per instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// A map of instance name → async mutex. Actions on different instances run
/// in parallel; actions on the same instance are serialized.
#[derive(Debug, Default, Clone)]
pub struct InstanceLocks {
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl InstanceLocks {
    /// Waits for and takes the lock of `name`.
    pub async fn lock(&self, name: &str) -> OwnedMutexGuard<()> {
        let lock = self
            .locks
            .lock()
            .expect("instance lock map")
            .entry(name.to_owned())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Forgets the lock of a deleted instance.
    pub fn forget(&self, name: &str) {
        self.locks.lock().expect("instance lock map").remove(name);
    }
}
