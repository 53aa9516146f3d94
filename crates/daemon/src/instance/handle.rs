//! The handle through which everything above the actor reaches one
//! instance: messages to its actor, its job slot, and its live QEMU.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrovirt_api::{EventKind, InstanceStatus};
use ferrovirt_core::Error;
use ferrovirt_qemu::{Event, Events};
use tokio::sync::{mpsc, oneshot};

use super::job::{Job, JobKind, JobSlot};
use super::live::Live;
use crate::operations::OpCtx;

/// A quick action the actor runs on the live QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    /// ACPI power button; the guest's poweroff becomes a reset.
    Reboot,
    Reset,
}

/// What the actor is asked to do.
#[derive(Debug)]
pub enum Msg {
    /// A QEMU was started (or found again): watch it from now on.
    Adopt {
        live: Arc<Live>,
        events: Events,
        status: InstanceStatus,
        reason: String,
        event: Option<EventKind>,
        done: oneshot::Sender<()>,
    },
    /// ACPI shutdown forced off after `timeout`, or kill at once.
    Stop {
        force: bool,
        timeout: Duration,
        done: oneshot::Sender<Result<(), Error>>,
    },
    /// End QEMU (quit, or kill with `force`) with a known outcome.
    Quit {
        status: InstanceStatus,
        reason: String,
        force: bool,
        done: oneshot::Sender<()>,
    },
    Run {
        action: Action,
        done: oneshot::Sender<Result<(), Error>>,
    },
    /// Run or pause the vCPUs and record that state with `reason`.
    SetRunning {
        running: bool,
        reason: String,
        event: Option<EventKind>,
        done: oneshot::Sender<Result<(), Error>>,
    },
    /// Record a state (the instance has no QEMU, or its state changed
    /// through a job).
    SetStatus {
        status: InstanceStatus,
        reason: String,
        event: Option<EventKind>,
        done: oneshot::Sender<()>,
    },
    /// Handle an event that happened while the daemon was down.
    Replay(Event),
    /// The instance is gone: end the actor.
    Close,
}

/// State shared between the actor and the handles.
#[derive(Debug, Default)]
pub struct Shared {
    pub live: Mutex<Option<Arc<Live>>>,
    pub jobs: Arc<JobSlot>,
    /// A job paused the vCPUs for its own sake (e.g. a consistent
    /// snapshot): STOP/RESUME are not the user's pause/resume.
    pub hold: AtomicBool,
    /// Whether a QEMU is live; the actor flips it (watchable).
    pub alive: tokio::sync::watch::Sender<bool>,
}

/// Cheap handle on one instance's actor.
#[derive(Debug, Clone)]
pub struct InstanceHandle {
    name: String,
    tx: mpsc::UnboundedSender<Msg>,
    shared: Arc<Shared>,
}

fn gone(name: &str) -> Error {
    Error::not_found(format!("instance {name} does not exist"))
}

impl InstanceHandle {
    pub fn new(name: &str, tx: mpsc::UnboundedSender<Msg>, shared: Arc<Shared>) -> Self {
        Self {
            name: name.to_owned(),
            tx,
            shared,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The live QEMU, if the instance runs (or is paused).
    pub fn live(&self) -> Option<Arc<Live>> {
        self.shared.live.lock().expect("live").clone()
    }

    /// The live QEMU, or 409 when the instance is not running.
    pub fn running(&self) -> Result<Arc<Live>, Error> {
        self.live()
            .ok_or_else(|| Error::conflict(format!("instance {} is not running", self.name)))
    }

    /// Takes the instance's job slot (409 naming the running job if busy).
    pub fn begin(&self, kind: JobKind, op: Option<&OpCtx>) -> Result<Job, Error> {
        self.shared.jobs.begin(&self.name, kind, op)
    }

    /// Waits (up to `timeout`) until the instance's QEMU has exited and its
    /// exit is recorded.
    pub async fn wait_stopped(&self, timeout: Duration) -> bool {
        let mut rx = self.shared.alive.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|alive| !*alive))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits (up to `timeout`) until no job runs.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.shared.jobs.idle())
            .await
            .is_ok()
    }

    pub(super) fn send(&self, msg: Msg) -> Result<(), Error> {
        self.tx.send(msg).map_err(|_| gone(&self.name))
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| gone(&self.name))
    }

    /// Hands a started QEMU to the actor.
    pub async fn adopt(
        &self,
        live: Arc<Live>,
        events: Events,
        status: InstanceStatus,
        reason: &str,
        event: Option<EventKind>,
    ) -> Result<(), Error> {
        let reason = reason.to_owned();
        self.ask(|done| Msg::Adopt {
            live,
            events,
            status,
            reason,
            event,
            done,
        })
        .await
    }

    /// Stops the instance; returns once its exit is recorded. `force`
    /// preempts any running job.
    pub async fn stop(&self, force: bool, timeout: Duration) -> Result<(), Error> {
        self.ask(|done| Msg::Stop {
            force,
            timeout,
            done,
        })
        .await?
    }

    /// Ends QEMU with a known outcome (quit, or kill with `force`);
    /// returns once the exit is recorded.
    pub async fn quit(
        &self,
        status: InstanceStatus,
        reason: &str,
        force: bool,
    ) -> Result<(), Error> {
        let reason = reason.to_owned();
        self.ask(|done| Msg::Quit {
            status,
            reason,
            force,
            done,
        })
        .await
    }

    pub async fn run(&self, action: Action) -> Result<(), Error> {
        self.ask(|done| Msg::Run { action, done }).await?
    }

    /// Runs (`true`) or pauses the vCPUs and records it with `reason`.
    pub async fn set_running(
        &self,
        running: bool,
        reason: &str,
        event: Option<EventKind>,
    ) -> Result<(), Error> {
        let reason = reason.to_owned();
        self.ask(|done| Msg::SetRunning {
            running,
            reason,
            event,
            done,
        })
        .await?
    }

    pub async fn set_status(
        &self,
        status: InstanceStatus,
        reason: &str,
        event: Option<EventKind>,
    ) -> Result<(), Error> {
        let reason = reason.to_owned();
        self.ask(|done| Msg::SetStatus {
            status,
            reason,
            event,
            done,
        })
        .await
    }

    /// Pauses the vCPUs for a job's own sake; the returned guard runs them
    /// again (if `resume`) and ends the hold. Neither surfaces as the
    /// user's pause/resume.
    pub async fn hold(&self, live: &Live) -> Result<Hold, Error> {
        self.shared.hold.store(true, Ordering::SeqCst);
        if let Err(e) = live.monitor().stop().await {
            self.shared.hold.store(false, Ordering::SeqCst);
            return Err(crate::instance::qmp_err(&self.name, "pause")(e));
        }
        Ok(Hold {
            shared: self.shared.clone(),
        })
    }

    pub fn replay(&self, ev: Event) -> Result<(), Error> {
        self.send(Msg::Replay(ev))
    }

    /// Ends the actor (the instance was deleted or migrated away).
    pub fn close(&self) {
        let _ = self.tx.send(Msg::Close);
    }
}

/// A job's internal pause; see [`InstanceHandle::hold`].
#[derive(Debug)]
pub struct Hold {
    shared: Arc<Shared>,
}

impl Hold {
    /// Runs the vCPUs again if `resume`, and ends the hold.
    pub async fn release(self, live: &Live, resume: bool) {
        if resume {
            let _ = live.monitor().cont().await;
        }
        // A STOP or RESUME the actor handles after this is still not taken
        // for the user's: it records a pause only if QEMU is paused, and a
        // resume only if the instance was not running.
        self.shared.hold.store(false, Ordering::SeqCst);
    }
}
