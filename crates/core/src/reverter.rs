//! Undo steps for multi-step actions, as Incus's `revert` package does it.

/// Collects undo steps while an action progresses. Dropped without
/// [`Reverter::success`], it runs them in reverse order, so a failed action
/// leaves nothing half-made behind.
#[derive(Default)]
pub struct Reverter {
    steps: Vec<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for Reverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reverter")
            .field("steps", &self.steps.len())
            .finish()
    }
}

impl Reverter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an undo step.
    pub fn add(&mut self, step: impl FnOnce() + Send + 'static) {
        self.steps.push(Box::new(step));
    }

    /// The action succeeded: keep everything.
    pub fn success(mut self) {
        self.steps.clear();
    }
}

impl Drop for Reverter {
    fn drop(&mut self) {
        while let Some(step) = self.steps.pop() {
            step();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn undoes_in_reverse_unless_successful() {
        let log = Arc::new(Mutex::new(Vec::new()));
        {
            let mut r = Reverter::new();
            for i in 0..3 {
                let log = log.clone();
                r.add(move || log.lock().unwrap().push(i));
            }
        }
        assert_eq!(*log.lock().unwrap(), vec![2, 1, 0]);
        let mut r = Reverter::new();
        let l = log.clone();
        r.add(move || l.lock().unwrap().push(9));
        r.success();
        assert_eq!(log.lock().unwrap().len(), 3);
    }
}
