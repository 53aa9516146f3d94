//! Every instance's handle, by name.

use std::collections::HashMap;
use std::sync::Mutex;

use super::handle::InstanceHandle;

#[derive(Debug, Default)]
pub struct Instances {
    map: Mutex<HashMap<String, InstanceHandle>>,
}

impl Instances {
    pub fn get(&self, name: &str) -> Option<InstanceHandle> {
        self.map.lock().expect("instances").get(name).cloned()
    }

    /// Returns the existing handle of `name`, or inserts the one `make`
    /// gives.
    pub fn get_or_insert(
        &self,
        name: &str,
        make: impl FnOnce() -> InstanceHandle,
    ) -> InstanceHandle {
        self.map
            .lock()
            .expect("instances")
            .entry(name.to_owned())
            .or_insert_with(make)
            .clone()
    }

    /// Forgets `name` and ends its actor.
    pub fn remove(&self, name: &str) {
        if let Some(h) = self.map.lock().expect("instances").remove(name) {
            h.close();
        }
    }

    /// Whether `name` has a live QEMU.
    pub fn is_active(&self, name: &str) -> bool {
        self.get(name).is_some_and(|h| h.live().is_some())
    }
}
