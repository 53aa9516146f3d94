//! Long actions as operations: id, progress, cancel, result.
//!
//! An operation is an async task the daemon runs in the background; the API
//! answers 202 with the operation, and clients poll or `wait` on it. The
//! registry is in memory, as in Incus: what a killed daemon leaves half done
//! is cleaned up by start-up reconciliation, not by replaying operations.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use ferrovirt_api::{Operation, OperationStatus, Progress};
use ferrovirt_core::Error;
use tokio::sync::watch;
use uuid::Uuid;

/// How long finished operations stay visible.
const KEEP_FINISHED: Duration = Duration::from_secs(600);

struct Entry {
    state: watch::Sender<Operation>,
    cancel: watch::Sender<bool>,
    finished_at: Mutex<Option<Instant>>,
    last_sample: Mutex<Option<(Instant, u64)>>,
}

/// All operations of the daemon.
#[derive(Default, Clone)]
pub struct Operations {
    map: Arc<Mutex<HashMap<Uuid, Arc<Entry>>>>,
}

impl std::fmt::Debug for Operations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operations").finish_non_exhaustive()
    }
}

/// The running task's handle on its operation.
#[derive(Clone)]
pub struct OpCtx {
    entry: Arc<Entry>,
}

impl std::fmt::Debug for OpCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpCtx").field("id", &self.id()).finish()
    }
}

impl OpCtx {
    /// The operation's id.
    pub fn id(&self) -> Uuid {
        self.entry.state.borrow().id
    }

    /// Reports progress; `done`/`total` in bytes when known.
    pub fn progress(&self, stage: &str, percent: f64, bytes: Option<(u64, u64)>) {
        let now = Instant::now();
        let (rate, eta) = match bytes {
            Some((done, total)) => {
                let mut last = self.entry.last_sample.lock().expect("sample");
                let rate = last.and_then(|(t, b)| {
                    let dt = now.duration_since(t).as_secs_f64();
                    (dt > 0.0 && done >= b).then(|| (done - b) as f64 / dt)
                });
                *last = Some((now, done));
                let eta = rate
                    .filter(|r| *r > 0.0)
                    .map(|r| total.saturating_sub(done) as f64 / r);
                (rate, eta)
            }
            None => (None, None),
        };
        self.entry.state.send_modify(|op| {
            op.progress = Some(Progress {
                stage: stage.to_owned(),
                percent: percent.clamp(0.0, 100.0),
                processed_bytes: bytes.map(|b| b.0),
                total_bytes: bytes.map(|b| b.1),
                rate,
                eta_seconds: eta,
            });
            op.updated_at = Utc::now();
        });
    }

    /// Records what the operation produced.
    pub fn set_result(&self, value: serde_json::Value) {
        self.entry.state.send_modify(|op| op.result = Some(value));
    }

    /// Marks the operation cancelled (its job was preempted by `stop --force`).
    pub fn mark_cancelled(&self) {
        self.entry.cancel.send_replace(true);
    }

    /// Resolves when a cancel is requested.
    pub async fn cancelled(&self) {
        let mut rx = self.entry.cancel.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

impl Operations {
    /// Starts `task` as an operation and returns its first snapshot.
    pub fn spawn<F, Fut>(
        &self,
        description: String,
        resources: Vec<String>,
        may_cancel: bool,
        task: F,
    ) -> Operation
    where
        F: FnOnce(OpCtx) -> Fut,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.prune();
        let now = Utc::now();
        let op = Operation {
            id: Uuid::new_v4(),
            description,
            status: OperationStatus::Running,
            resources,
            progress: None,
            error: None,
            result: None,
            may_cancel,
            created_at: now,
            updated_at: now,
        };
        let entry = Arc::new(Entry {
            state: watch::channel(op.clone()).0,
            cancel: watch::channel(false).0,
            finished_at: Mutex::new(None),
            last_sample: Mutex::new(None),
        });
        self.map
            .lock()
            .expect("operations")
            .insert(op.id, entry.clone());
        let fut = task(OpCtx {
            entry: entry.clone(),
        });
        tokio::spawn(async move {
            // The task runs in a task of its own so that a panic in it ends
            // the operation as a failure naming the panic, not `running`
            // forever.
            let result = tokio::spawn(fut).await.unwrap_or_else(|e| Err(panicked(e)));
            let cancelled = *entry.cancel.borrow();
            entry.state.send_modify(|op| {
                match &result {
                    Ok(()) => op.status = OperationStatus::Success,
                    Err(_) if cancelled => op.status = OperationStatus::Cancelled,
                    Err(_) => op.status = OperationStatus::Failure,
                }
                if let Err(e) = &result {
                    tracing::warn!(operation = %op.id, description = op.description, error = %e, "operation failed");
                    op.error = Some(e.message.clone());
                } else if let Some(p) = &mut op.progress {
                    p.percent = 100.0;
                }
                op.updated_at = Utc::now();
            });
            *entry.finished_at.lock().expect("finished") = Some(Instant::now());
        });
        op
    }

    fn prune(&self) {
        self.map.lock().expect("operations").retain(|_, e| {
            e.finished_at
                .lock()
                .expect("finished")
                .is_none_or(|t| t.elapsed() < KEEP_FINISHED)
        });
    }

    fn entry(&self, id: Uuid) -> Result<Arc<Entry>, Error> {
        self.map
            .lock()
            .expect("operations")
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("operation {id} does not exist")))
    }

    pub fn get(&self, id: Uuid) -> Result<Operation, Error> {
        Ok(self.entry(id)?.state.borrow().clone())
    }

    pub fn list(&self) -> Vec<Operation> {
        let mut ops: Vec<Operation> = self
            .map
            .lock()
            .expect("operations")
            .values()
            .map(|e| e.state.borrow().clone())
            .collect();
        ops.sort_by_key(|o| o.created_at);
        ops
    }

    /// Waits until the operation finishes or `timeout` passes, then returns it.
    pub async fn wait(&self, id: Uuid, timeout: Duration) -> Result<Operation, Error> {
        let entry = self.entry(id)?;
        let mut rx = entry.state.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|op| op.status.is_final())).await;
        Ok(entry.state.borrow().clone())
    }

    /// Asks the operation to stop.
    pub fn cancel(&self, id: Uuid) -> Result<Operation, Error> {
        let entry = self.entry(id)?;
        let op = entry.state.borrow().clone();
        if op.status.is_final() {
            return Err(Error::conflict(format!(
                "operation {id} has already finished"
            )));
        }
        if !op.may_cancel {
            return Err(Error::conflict(format!(
                "operation {id} ({}) cannot be cancelled",
                op.description
            )));
        }
        entry.cancel.send_replace(true);
        Ok(op)
    }
}

/// The error of an operation whose task panicked (or was aborted).
fn panicked(e: tokio::task::JoinError) -> Error {
    if !e.is_panic() {
        return Error::internal("the operation's task was aborted");
    }
    let payload = e.into_panic();
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".into());
    tracing::error!(panic = msg, "an operation's task panicked");
    Error::internal(format!(
        "the operation failed on an internal error (panic: {msg})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn success_failure_cancel_and_progress() {
        let ops = Operations::default();
        let ok = ops.spawn("ok".into(), vec![], false, |ctx| async move {
            ctx.progress("copying", 50.0, Some((50, 100)));
            Ok(())
        });
        let done = ops.wait(ok.id, Duration::from_secs(5)).await.unwrap();
        assert_eq!(done.status, OperationStatus::Success);
        assert_eq!(done.progress.unwrap().percent, 100.0);

        let bad = ops.spawn("bad".into(), vec![], false, |_| async {
            Err(Error::internal("boom"))
        });
        let done = ops.wait(bad.id, Duration::from_secs(5)).await.unwrap();
        assert_eq!(done.status, OperationStatus::Failure);
        assert_eq!(done.error.as_deref(), Some("boom"));
        assert!(
            ops.cancel(bad.id).is_err(),
            "finished operations cannot be cancelled"
        );

        let slow = ops.spawn("slow".into(), vec![], true, |ctx| async move {
            ctx.cancelled().await;
            Err(Error::internal("cancelled"))
        });
        ops.cancel(slow.id).unwrap();
        let done = ops.wait(slow.id, Duration::from_secs(5)).await.unwrap();
        assert_eq!(done.status, OperationStatus::Cancelled);
        assert_eq!(ops.list().len(), 3);
    }

    #[tokio::test]
    async fn a_panicking_task_ends_in_failure_naming_the_panic() {
        let ops = Operations::default();
        let op = ops.spawn("doomed".into(), vec![], true, |_| async {
            if std::hint::black_box(true) {
                panic!("the disk list is empty");
            }
            Ok(())
        });
        let done = ops.wait(op.id, Duration::from_secs(5)).await.unwrap();
        assert_eq!(done.status, OperationStatus::Failure);
        let error = done.error.unwrap_or_default();
        assert!(error.contains("panic: the disk list is empty"), "{error}");
    }
}
