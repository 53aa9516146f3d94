//! The job model (as libvirt's): at most one job per instance. A request
//! that conflicts with the running job gets 409 naming it instead of
//! waiting; async jobs (migration, save, clone, snapshots) report progress
//! through their operation and can be cancelled; `stop --force` preempts
//! any job (its cancel fires and QEMU is killed under it).

use std::sync::{Arc, Mutex};

use ferrovirt_core::Error;
use tokio::sync::watch;
use uuid::Uuid;

use crate::operations::OpCtx;

/// What an instance is busy with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Start,
    Stop,
    Pause,
    Resume,
    Reboot,
    Reset,
    Update,
    Delete,
    Save,
    Restore,
    Snapshot,
    Revert,
    SnapshotDelete,
    Clone,
    Migration,
    IncomingMigration,
    DiskChange,
    NicChange,
}

impl JobKind {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Start => "a start",
            Self::Stop => "a shutdown",
            Self::Pause => "a pause",
            Self::Resume => "a resume",
            Self::Reboot => "a reboot",
            Self::Reset => "a reset",
            Self::Update => "a configuration change",
            Self::Delete => "a delete",
            Self::Save => "a save",
            Self::Restore => "a restore",
            Self::Snapshot => "a snapshot",
            Self::Revert => "a snapshot revert",
            Self::SnapshotDelete => "a snapshot delete",
            Self::Clone => "a clone",
            Self::Migration => "a migration",
            Self::IncomingMigration => "an incoming migration",
            Self::DiskChange => "a disk change",
            Self::NicChange => "a NIC change",
        }
    }
}

/// The running job of an instance, as its slot holds it.
#[derive(Debug)]
struct Running {
    kind: JobKind,
    operation: Option<Uuid>,
    preempt: watch::Sender<bool>,
}

/// An instance's job slot.
#[derive(Debug, Default)]
pub struct JobSlot {
    running: Mutex<Option<Running>>,
    /// Bumped whenever a job ends.
    ended: watch::Sender<u64>,
}

impl JobSlot {
    /// Takes the slot for `kind`, or says which job holds it.
    pub fn begin(
        self: &Arc<Self>,
        instance: &str,
        kind: JobKind,
        op: Option<&OpCtx>,
    ) -> Result<Job, Error> {
        let mut running = self.running.lock().expect("job slot");
        if let Some(r) = running.as_ref() {
            let op = r
                .operation
                .map(|id| format!(" (operation {id})"))
                .unwrap_or_default();
            return Err(Error::conflict(format!(
                "instance {instance} is busy: {} is running{op}; wait for it to end or cancel it",
                r.kind.describe()
            )));
        }
        let (preempt, cancel) = watch::channel(false);
        *running = Some(Running {
            kind,
            operation: op.map(OpCtx::id),
            preempt,
        });
        Ok(Job {
            slot: self.clone(),
            cancel,
            op: op.cloned(),
            shielded: Default::default(),
        })
    }

    /// The running job's kind, if any.
    pub fn current(&self) -> Option<JobKind> {
        self.running
            .lock()
            .expect("job slot")
            .as_ref()
            .map(|r| r.kind)
    }

    /// Cancels the running job (`stop --force`); `true` if there was one.
    pub fn preempt(&self) -> bool {
        match self.running.lock().expect("job slot").as_ref() {
            Some(r) => {
                r.preempt.send_replace(true);
                true
            }
            None => false,
        }
    }

    /// Waits until no job runs (bounded by the caller).
    pub async fn idle(&self) {
        let mut rx = self.ended.subscribe();
        loop {
            if self.current().is_none() {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A held job: the slot is released when it is dropped.
#[derive(Debug)]
pub struct Job {
    slot: Arc<JobSlot>,
    cancel: watch::Receiver<bool>,
    op: Option<OpCtx>,
    /// Set while the job cleans up after a cancel: cleanup is not cancelled.
    shielded: std::sync::atomic::AtomicBool,
}

impl Job {
    /// From now on the job cannot be cancelled (it is cleaning up).
    pub fn shield(&self) {
        self.shielded
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_shielded(&self) -> bool {
        self.shielded.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The operation the job runs in, if any (progress goes there).
    pub fn op(&self) -> Option<&OpCtx> {
        self.op.as_ref()
    }

    /// Whether `stop --force` preempted the job (QEMU is being killed).
    pub fn is_preempted(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Resolves when the job is preempted or its operation cancelled.
    pub async fn cancelled(&self) {
        if self.is_shielded() {
            return std::future::pending().await;
        }
        let mut rx = self.cancel.clone();
        let preempted = async move {
            let _ = rx.wait_for(|c| *c).await;
        };
        match &self.op {
            Some(op) => tokio::select! {
                () = preempted => {},
                () = op.cancelled() => {},
            },
            None => preempted.await,
        }
    }

    /// A progress callback for QEMU jobs: (done, total) under `stage`.
    pub fn reporter<'a>(&'a self, stage: &'a str) -> impl Fn(u64, u64) + Send + Sync + 'a {
        move |done, total| {
            self.progress(
                stage,
                done as f64 * 100.0 / total.max(1) as f64,
                Some((done, total)),
            )
        }
    }

    /// Progress for display, when the job runs in an operation.
    pub fn progress(&self, stage: &str, percent: f64, bytes: Option<(u64, u64)>) {
        if let Some(op) = &self.op {
            op.progress(stage, percent, bytes);
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.is_preempted()
            && let Some(op) = &self.op
        {
            op.mark_cancelled();
        }
        *self.slot.running.lock().expect("job slot") = None;
        self.slot.ended.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_job_at_a_time_and_preempt_cancels() {
        let slot = Arc::new(JobSlot::default());
        let job = slot.begin("vm", JobKind::Migration, None).unwrap();
        let err = slot.begin("vm", JobKind::Pause, None).unwrap_err();
        assert_eq!(err.kind, ferrovirt_core::ErrorKind::Conflict);
        assert!(
            err.message.contains("a migration is running"),
            "{}",
            err.message
        );
        assert!(!job.is_preempted());
        assert!(slot.preempt());
        job.cancelled().await;
        assert!(job.is_preempted());
        let idle = {
            let slot = slot.clone();
            tokio::spawn(async move { slot.idle().await })
        };
        drop(job);
        idle.await.unwrap();
        assert!(slot.current().is_none());
        assert!(!slot.preempt());
        slot.begin("vm", JobKind::Pause, None).unwrap();
    }
}
