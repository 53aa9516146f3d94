//! QEMU's job model for the snapshot jobs (snapshot-save, snapshot-load,
//! snapshot-delete): created → running → waiting → pending → concluded,
//! announced by JOB_STATUS_CHANGE, listed by query-jobs, ended by
//! job-dismiss; job-cancel aborts a running job. A mirror
//! (blockdev-mirror) becomes `ready` instead and stays in sync until
//! job-complete or job-cancel, which both end it without error (a cancel
//! before `ready` aborts it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::qmp::QmpError;
use super::vm::{RunState, State, Vm};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Save,
    Load,
    Delete,
    Mirror,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Save => "snapshot-save",
            Self::Load => "snapshot-load",
            Self::Delete => "snapshot-delete",
            Self::Mirror => "mirror",
        }
    }
}

#[derive(Debug)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub tag: String,
    pub status: &'static str,
    pub error: Option<String>,
    cancel: bool,
    /// job-complete was asked (of a ready mirror).
    complete: bool,
    /// The runstate to go back to after a save/load paused the guest.
    resume_to: Option<RunState>,
}

impl Job {
    /// The entry of query-jobs, in QEMU 10's shape.
    pub fn describe(&self) -> Value {
        let done = u64::from(matches!(self.status, "ready" | "concluded"));
        let mut v = json!({
            "current-progress": done, "status": self.status,
            "total-progress": 1, "type": self.kind.as_str(), "id": self.id,
        });
        if let Some(e) = &self.error {
            v["error"] = json!(e);
        }
        v
    }
}

fn set_status(vm: &Vm, job: &mut Job, status: &'static str) {
    job.status = status;
    vm.emit(
        "JOB_STATUS_CHANGE",
        Some(json!({"status": status, "id": job.id})),
    );
}

/// Starts a snapshot job for a `snapshot-*` command.
pub fn start(vm: &Arc<Vm>, kind: JobKind, args: &Value) -> Result<Value, QmpError> {
    let id = args["job-id"]
        .as_str()
        .ok_or_else(|| QmpError::generic("Parameter 'job-id' is missing"))?
        .to_owned();
    let tag = args["tag"]
        .as_str()
        .ok_or_else(|| QmpError::generic("Parameter 'tag' is missing"))?
        .to_owned();
    spawn(vm, id, kind, tag)
}

/// `blockdev-mirror`: copies `device` into `target` (both node names).
pub fn start_mirror(vm: &Arc<Vm>, args: &Value) -> Result<Value, QmpError> {
    let arg = |k: &str| {
        args[k]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| QmpError::generic(format!("Parameter '{k}' is missing")))
    };
    let (id, device, _target) = (arg("job-id")?, arg("device")?, arg("target")?);
    spawn(vm, id, JobKind::Mirror, device)
}

fn spawn(vm: &Arc<Vm>, id: String, kind: JobKind, tag: String) -> Result<Value, QmpError> {
    let mut st = vm.state();
    if st.jobs.iter().any(|j| j.id == id) {
        return Err(QmpError::generic(format!("Job ID '{id}' already in use")));
    }
    let mut job = Job {
        id: id.clone(),
        kind,
        tag,
        status: "created",
        error: None,
        cancel: false,
        complete: false,
        resume_to: None,
    };
    vm.emit(
        "JOB_STATUS_CHANGE",
        Some(json!({"status": "created", "id": id})),
    );
    set_status(vm, &mut job, "running");
    if matches!(kind, JobKind::Save | JobKind::Load) && st.runstate == RunState::Running {
        job.resume_to = Some(RunState::Running);
        let during = match kind {
            JobKind::Save => RunState::SaveVm,
            _ => RunState::RestoreVm,
        };
        vm.set_runstate(&mut st, during);
    }
    st.jobs.push(job);
    drop(st);
    let vm = vm.clone();
    std::thread::spawn(move || run(&vm, &id));
    Ok(json!({}))
}

/// Drives job `id` until it concludes.
fn run(vm: &Vm, id: &str) {
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let mut st = vm.state();
        let knobs = st.knobs.clone();
        let Some(pos) = st.jobs.iter().position(|j| j.id == id) else {
            return;
        };
        let job = &st.jobs[pos];
        if job.status == "ready" && (job.cancel || job.complete) {
            // A mirror in sync ends without error either way.
            let mut job = st.jobs.remove(pos);
            set_status(vm, &mut job, "waiting");
            set_status(vm, &mut job, "pending");
            finish(vm, &mut st, job);
            return;
        }
        if job.cancel {
            let mut job = st.jobs.remove(pos);
            set_status(vm, &mut job, "aborting");
            job.error = Some("Operation canceled".into());
            finish(vm, &mut st, job);
            return;
        }
        if knobs.jobs_stuck || started.elapsed() < knobs.job_time {
            continue;
        }
        if job.kind == JobKind::Mirror {
            if job.status == "running" {
                set_status(vm, &mut st.jobs[pos], "ready");
            }
            continue;
        }
        let mut job = st.jobs.remove(pos);
        job.error = apply(&mut st, &job);
        if job.error.is_none() {
            set_status(vm, &mut job, "waiting");
            set_status(vm, &mut job, "pending");
        } else {
            set_status(vm, &mut job, "aborting");
        }
        finish(vm, &mut st, job);
        return;
    }
}

/// A failed load leaves the guest stopped in `restore-vm`, as QEMU does.
fn finish(vm: &Vm, st: &mut State, mut job: Job) {
    if let Some(to) = job.resume_to.take()
        && !(job.error.is_some() && job.kind == JobKind::Load)
    {
        vm.set_runstate(st, to);
    }
    set_status(vm, &mut job, "concluded");
    st.jobs.push(job);
}

/// What the job does to the snapshot list; the error QEMU reports if any.
fn apply(st: &mut State, job: &Job) -> Option<String> {
    let missing = || {
        Some(format!(
            "Snapshot '{}' does not exist in one or more devices",
            job.tag
        ))
    };
    match job.kind {
        JobKind::Save => {
            st.snapshots.insert(job.tag.clone());
            None
        }
        JobKind::Load if !st.snapshots.contains(&job.tag) => missing(),
        JobKind::Load => None,
        JobKind::Delete if !st.snapshots.remove(&job.tag) => missing(),
        JobKind::Delete | JobKind::Mirror => None,
    }
}

fn find<'a>(st: &'a mut State, args: &Value) -> Result<&'a mut Job, QmpError> {
    let id = args["id"].as_str().unwrap_or_default();
    st.jobs
        .iter_mut()
        .find(|j| j.id == id)
        .ok_or_else(|| QmpError::generic(format!("Job not found: {id}")))
}

fn refuse(job: &Job, verb: &str) -> QmpError {
    QmpError::generic(format!(
        "Job '{}' in state '{}' cannot accept command verb '{verb}'",
        job.id, job.status
    ))
}

pub fn query(vm: &Vm) -> Value {
    Value::Array(vm.state().jobs.iter().map(Job::describe).collect())
}

pub fn dismiss(vm: &Vm, args: &Value) -> Result<Value, QmpError> {
    let mut st = vm.state();
    let job = find(&mut st, args)?;
    if job.status != "concluded" {
        return Err(refuse(job, "dismiss"));
    }
    set_status(vm, job, "null");
    let id = job.id.clone();
    st.jobs.retain(|j| j.id != id);
    Ok(json!({}))
}

pub fn cancel(vm: &Vm, args: &Value) -> Result<Value, QmpError> {
    let mut st = vm.state();
    let job = find(&mut st, args)?;
    if !matches!(job.status, "running" | "ready") {
        return Err(refuse(job, "cancel"));
    }
    job.cancel = true;
    Ok(json!({}))
}

/// Only a ready mirror can be completed.
pub fn complete(vm: &Vm, args: &Value) -> Result<Value, QmpError> {
    let mut st = vm.state();
    let job = find(&mut st, args)?;
    if job.status != "ready" {
        return Err(refuse(job, "complete"));
    }
    job.complete = true;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::argv::Launch;
    use super::super::qmp::execute;
    use super::*;

    fn vm() -> Arc<Vm> {
        Vm::new(Launch {
            name: "mirror".into(),
            qmp_socket: PathBuf::from("/nonexistent/qmp.sock"),
            memory_mib: 64,
            ..Launch::default()
        })
    }

    fn status(vm: &Arc<Vm>, id: &str) -> Option<String> {
        let jobs = execute(vm, "query-jobs", &json!({})).unwrap();
        jobs.as_array()?
            .iter()
            .find(|j| j["id"] == id)
            .and_then(|j| j["status"].as_str().map(str::to_owned))
    }

    fn wait_status(vm: &Arc<Vm>, id: &str, want: &str) -> Value {
        let end = Instant::now() + Duration::from_secs(5);
        while status(vm, id).as_deref() != Some(want) {
            assert!(Instant::now() < end, "{id} never became {want}");
            std::thread::sleep(Duration::from_millis(5));
        }
        let jobs = execute(vm, "query-jobs", &json!({})).unwrap();
        jobs.as_array().unwrap()[0].clone()
    }

    fn mirror(vm: &Arc<Vm>, id: &str) {
        let args = json!({"job-id": id, "device": "disk0", "target": "mig-nbd0",
                          "sync": "full", "auto-dismiss": false});
        execute(vm, "blockdev-mirror", &args).unwrap();
    }

    #[test]
    fn a_mirror_stays_ready_until_cancelled_or_completed_and_ends_cleanly() {
        for verb in ["job-cancel", "job-complete"] {
            let vm = vm();
            mirror(&vm, "m");
            let job = wait_status(&vm, "m", "ready");
            assert_eq!(job["type"], "mirror");
            assert_eq!(job["current-progress"], job["total-progress"]);
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(status(&vm, "m").as_deref(), Some("ready"), "stays ready");
            execute(&vm, verb, &json!({"id": "m"})).unwrap();
            let job = wait_status(&vm, "m", "concluded");
            assert!(job.get("error").is_none(), "{verb}: {job}");
            execute(&vm, "job-dismiss", &json!({"id": "m"})).unwrap();
            assert_eq!(status(&vm, "m"), None);
        }
    }

    #[test]
    fn a_mirror_cancelled_before_ready_aborts() {
        let vm = vm();
        vm.state().knobs.jobs_stuck = true;
        mirror(&vm, "m");
        assert!(execute(&vm, "job-complete", &json!({"id": "m"})).is_err());
        execute(&vm, "job-cancel", &json!({"id": "m"})).unwrap();
        let job = wait_status(&vm, "m", "concluded");
        assert_eq!(job["error"], "Operation canceled");
    }
}
