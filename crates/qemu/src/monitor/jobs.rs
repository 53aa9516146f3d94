//! QEMU jobs (snapshot-save/load/delete, block-stream, block-commit,
//! blockdev-mirror): started with a typed verb, followed through
//! `JOB_STATUS_CHANGE` events. Progress is sampled only for display while a
//! job runs; completion always comes from the event.

use std::future::Future;
use std::time::Duration;

use serde_json::{Value, json};

use super::events::{Event, Events, JobStatus};
use super::{Monitor, MonitorError, Result};

/// How often a running job's progress is sampled for display.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Receives (done, total) of a running job.
pub type Progress<'a> = Option<&'a (dyn Fn(u64, u64) + Send + Sync)>;

/// A job QEMU can run.
#[derive(Debug, Clone)]
pub enum BlockJob {
    /// Internal snapshot with memory (`vmstate` is the node holding it).
    SnapshotSave {
        tag: String,
        vmstate: String,
        devices: Vec<String>,
    },
    SnapshotLoad {
        tag: String,
        vmstate: String,
        devices: Vec<String>,
    },
    SnapshotDelete {
        tag: String,
        devices: Vec<String>,
    },
    /// Pulls the backing chain above `base_node` into `device`.
    Stream {
        device: String,
        base_node: Option<String>,
    },
    /// Commits `device` (the active layer) down into `base_node`.
    Commit {
        device: String,
        base_node: String,
    },
    /// Copies `device` into the node `target` and keeps them in sync.
    Mirror {
        device: String,
        target: String,
    },
}

impl BlockJob {
    fn command(&self, id: &str) -> (&'static str, Value) {
        match self {
            Self::SnapshotSave {
                tag,
                vmstate,
                devices,
            } => (
                "snapshot-save",
                json!({"job-id": id, "tag": tag, "vmstate": vmstate, "devices": devices}),
            ),
            Self::SnapshotLoad {
                tag,
                vmstate,
                devices,
            } => (
                "snapshot-load",
                json!({"job-id": id, "tag": tag, "vmstate": vmstate, "devices": devices}),
            ),
            Self::SnapshotDelete { tag, devices } => (
                "snapshot-delete",
                json!({"job-id": id, "tag": tag, "devices": devices}),
            ),
            Self::Stream { device, base_node } => {
                let mut a = json!({"job-id": id, "device": device, "auto-dismiss": false});
                if let Some(b) = base_node {
                    a["base-node"] = json!(b);
                }
                ("block-stream", a)
            }
            Self::Commit { device, base_node } => (
                "block-commit",
                json!({"job-id": id, "device": device, "base-node": base_node,
                       "auto-dismiss": false}),
            ),
            Self::Mirror { device, target } => (
                "blockdev-mirror",
                json!({"job-id": id, "device": device, "target": target, "sync": "full",
                       "auto-dismiss": false}),
            ),
        }
    }
}

/// A started job, with the event subscription that follows it (taken
/// before the job started, so no transition is missed).
#[derive(Debug)]
pub struct JobWatch {
    monitor: Monitor,
    id: String,
    events: Events,
    last: Option<JobStatus>,
}

impl Monitor {
    /// Starts `job` under `id`.
    pub async fn start_job(&self, id: &str, job: &BlockJob) -> Result<JobWatch> {
        let events = self.events();
        let (command, args) = job.command(id);
        self.run(command, Some(args)).await?;
        Ok(JobWatch {
            monitor: self.clone(),
            id: id.to_owned(),
            events,
            last: None,
        })
    }

    /// Starts `job` and waits for it to finish (completing it when it
    /// becomes ready), reporting progress; `cancel` aborts it.
    pub async fn run_job(
        &self,
        id: &str,
        job: &BlockJob,
        progress: Progress<'_>,
        cancel: impl Future<Output = ()>,
    ) -> Result<()> {
        let mut watch = self.start_job(id, job).await?;
        watch.concluded(true, progress, cancel).await
    }

    /// Follows job `id` that was started earlier (e.g. before a daemon
    /// restart) until it concludes; `Ok` if there is no such job.
    pub async fn follow_job(&self, id: &str) -> Result<()> {
        let mut watch = JobWatch {
            monitor: self.clone(),
            id: id.to_owned(),
            events: self.events(),
            last: None,
        };
        let jobs = self.call("query-jobs", None).await?;
        match find(&jobs, id).and_then(|j| j["status"].as_str()) {
            None => Ok(()),
            Some("concluded") => self.job_outcome(id).await,
            Some(_) => watch.concluded(true, None, std::future::pending()).await,
        }
    }

    /// Asks job `id` to finish: a ready mirror stops in sync, others abort.
    pub async fn job_cancel(&self, id: &str) -> Result<()> {
        self.run("job-cancel", Some(json!({"id": id}))).await
    }

    /// (done, total) of job `id`, if it exists.
    async fn job_progress(&self, id: &str) -> Result<Option<(u64, u64)>> {
        let jobs = self.call("query-jobs", None).await?;
        Ok(find(&jobs, id).map(|j| {
            (
                j["current-progress"].as_u64().unwrap_or(0),
                j["total-progress"].as_u64().unwrap_or(0),
            )
        }))
    }

    /// The error of a concluded job, then dismisses it (both requests sent
    /// at once: QEMU answers them in order, the query first).
    async fn job_outcome(&self, id: &str) -> Result<()> {
        let (jobs, _) = tokio::join!(
            self.call("query-jobs", None),
            self.run("job-dismiss", Some(json!({"id": id})))
        );
        let jobs = jobs?;
        let error = find(&jobs, id).and_then(|j| j["error"].as_str().map(str::to_owned));
        match error {
            Some(reason) => Err(MonitorError::Job {
                id: id.to_owned(),
                reason,
            }),
            None => Ok(()),
        }
    }
}

fn find<'a>(jobs: &'a Value, id: &str) -> Option<&'a Value> {
    jobs.as_array()?.iter().find(|j| j["id"] == id)
}

impl JobWatch {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Cancels the job and dismisses it once it has concluded, so its id
    /// can be used again (bounded: QEMU may already be gone).
    pub async fn abort(&mut self) {
        if self.monitor.job_cancel(&self.id).await.is_err() {
            return;
        }
        let gone = async {
            while let Some(ev) = self.events.next().await {
                if let Event::JobStatusChange { id, status } = ev
                    && id == self.id
                    && matches!(status, JobStatus::Concluded | JobStatus::Null)
                {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), gone).await;
        let _ = self
            .monitor
            .run("job-dismiss", Some(json!({"id": self.id})))
            .await;
    }

    /// Waits until the job is ready (a mirror in sync).
    pub async fn ready(
        &mut self,
        progress: Progress<'_>,
        cancel: impl Future<Output = ()>,
    ) -> Result<()> {
        let status = self.until(progress, cancel, true).await?;
        match status {
            JobStatus::Ready => Ok(()),
            _ => {
                self.monitor.job_outcome(&self.id).await?;
                Err(MonitorError::Job {
                    id: self.id.clone(),
                    reason: "the job ended before it was ready".into(),
                })
            }
        }
    }

    /// Waits until the job has concluded and returns its outcome; with
    /// `complete`, a job that becomes ready is told to complete.
    pub async fn concluded(
        &mut self,
        complete: bool,
        progress: Progress<'_>,
        cancel: impl Future<Output = ()>,
    ) -> Result<()> {
        let mut cancel = std::pin::pin!(cancel);
        loop {
            let status = self.until(progress, cancel.as_mut(), false).await?;
            match status {
                JobStatus::Ready if complete => {
                    self.monitor
                        .run("job-complete", Some(json!({"id": self.id})))
                        .await?;
                }
                JobStatus::Ready => {}
                _ => return self.monitor.job_outcome(&self.id).await,
            }
        }
    }

    /// Follows events until the job is ready (when `stop_at_ready` or the
    /// status is Ready) or concluded/gone; returns that status.
    async fn until(
        &mut self,
        progress: Progress<'_>,
        cancel: impl Future<Output = ()>,
        stop_at_ready: bool,
    ) -> Result<JobStatus> {
        let mut cancel = std::pin::pin!(cancel);
        // The first sample one period in: a short job needs none, and a
        // query at once would delay the events that end it.
        let first = tokio::time::Instant::now() + PROGRESS_EVERY;
        let mut tick = tokio::time::interval_at(first, PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Some(s @ JobStatus::Ready) = &self.last
            && stop_at_ready
        {
            return Ok(s.clone());
        }
        loop {
            tokio::select! {
                ev = self.events.next() => match ev {
                    Some(Event::JobStatusChange { id, status }) if id == self.id => {
                        self.last = Some(status.clone());
                        match status {
                            JobStatus::Ready | JobStatus::Concluded | JobStatus::Null => {
                                return Ok(status)
                            }
                            _ => {}
                        }
                    }
                    Some(_) => {}
                    None => return Err(ferrovirt_qmp::Error::Closed.into()),
                },
                // Also without a progress report: a QEMU that stopped
                // answering fails the query at the QMP reply deadline, so
                // a wait for a job never outlives its QEMU's liveness.
                _ = tick.tick() => {
                    let now = self.monitor.job_progress(&self.id).await?;
                    if let (Some(report), Some((done, total))) = (progress, now)
                        && total > 0
                    {
                        report(done, total);
                    }
                }
                () = &mut cancel => {
                    self.abort().await;
                    return Err(MonitorError::Cancelled);
                }
            }
        }
    }
}
