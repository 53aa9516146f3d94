//! One task per instance: the only writer of its status. API commands (as
//! messages from handles) and its QEMU's events are handled in one loop;
//! QEMU's exit (the monitor closing) is recorded here, and the on_poweroff
//! / on_reboot / on_crash policies are applied here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrovirt_api::{EventKind, InstanceStatus};
use ferrovirt_core::Error;
use ferrovirt_qemu::{Event, Events, Monitor, RunState};
use tokio::sync::{mpsc, oneshot};

use super::handle::{Action, Msg, Shared};
use super::live::Live;
use super::policy::{self, Expectation, Reaction};
use super::qmp_err;
use crate::daemon::Daemon;

/// SeaBIOS resets the machine once more right after a reset; resets closer
/// than this to the previous one are its echo, not a new guest reboot.
const RESET_ECHO: Duration = Duration::from_secs(2);

pub struct Actor {
    d: Daemon,
    name: String,
    shared: Arc<Shared>,
    live: Option<Arc<Live>>,
    events: Option<Events>,
    expect: Expectation,
    /// The state to record when QEMU exits; `None` means it crashed.
    exit: Option<(InstanceStatus, String)>,
    last_reset: Option<Instant>,
    /// When a graceful stop turns into a kill.
    deadline: Option<(Instant, u64)>,
    /// Callers waiting for QEMU's exit to be recorded.
    waiters: Vec<oneshot::Sender<()>>,
}

enum Wake {
    Msg(Option<Msg>),
    Event(Option<Event>),
    Exit,
    Deadline,
}

async fn next_event(events: &mut Option<Events>) -> Option<Event> {
    match events {
        Some(e) => e.next().await,
        None => std::future::pending().await,
    }
}

async fn exited(monitor: Option<Monitor>) {
    match monitor {
        Some(m) => m.closed().await,
        None => std::future::pending().await,
    }
}

async fn deadline(at: Option<(Instant, u64)>) {
    match at {
        Some((t, _)) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

impl Actor {
    pub fn new(d: Daemon, name: String, shared: Arc<Shared>) -> Self {
        Self {
            d,
            name,
            shared,
            live: None,
            events: None,
            expect: Expectation::default(),
            exit: None,
            last_reset: None,
            deadline: None,
            waiters: Vec::new(),
        }
    }

    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        loop {
            let monitor = self.live.as_ref().map(|l| l.monitor().clone());
            let wake = {
                let events = &mut self.events;
                let at = self.deadline;
                tokio::select! {
                    biased;
                    ev = next_event(events) => Wake::Event(ev),
                    () = exited(monitor) => Wake::Exit,
                    msg = rx.recv() => Wake::Msg(msg),
                    () = deadline(at) => Wake::Deadline,
                }
            };
            match wake {
                Wake::Msg(None | Some(Msg::Close)) => break,
                Wake::Msg(Some(msg)) => self.handle(msg).await,
                Wake::Event(Some(ev)) => self.on_event(ev).await,
                Wake::Event(None) => self.events = None,
                Wake::Exit => self.on_exit().await,
                Wake::Deadline => self.force_off(),
            }
        }
    }

    /// The only place the status is written.
    async fn record(&self, status: InstanceStatus, reason: &str, event: Option<EventKind>) {
        let before = self
            .d
            .store
            .get_instance(&self.name)
            .await
            .ok()
            .flatten()
            .map(|r| r.status);
        if let Err(e) = self.d.store.set_status(&self.name, status, reason).await {
            tracing::error!(instance = self.name, error = %ferrovirt_core::error::chain(&e), "cannot record state");
        }
        if let Some(kind) = event
            && before != Some(status)
        {
            self.d
                .events
                .emit(kind, &self.name, Some(reason.to_owned()));
        }
    }

    fn emit(&self, kind: EventKind, detail: &str) {
        self.d
            .events
            .emit(kind, &self.name, Some(detail.to_owned()));
    }

    fn expect_exit(&mut self, status: InstanceStatus, reason: &str) {
        if self.exit.is_none() {
            self.exit = Some((status, reason.to_owned()));
        }
    }

    async fn status(&self) -> Option<InstanceStatus> {
        self.d.record(&self.name).await.ok().map(|r| r.status)
    }

    async fn spec(&self) -> Option<ferrovirt_api::InstanceSpec> {
        self.d
            .record(&self.name)
            .await
            .ok()
            .map(|r| r.spec.into_inner())
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Adopt {
                live,
                events,
                status,
                reason,
                event,
                done,
            } => {
                *self.shared.live.lock().expect("live") = Some(live.clone());
                self.shared.alive.send_replace(true);
                self.live = Some(live);
                self.events = Some(events);
                self.expect = Expectation::default();
                self.exit = None;
                self.deadline = None;
                self.record(status, &reason, event).await;
                let _ = done.send(());
            }
            Msg::Stop {
                force,
                timeout,
                done,
            } => self.stop(force, timeout, done).await,
            Msg::Quit {
                status,
                reason,
                force,
                done,
            } => {
                let Some(live) = self.live.clone() else {
                    let _ = done.send(());
                    return;
                };
                self.expect.stopping = true;
                self.exit = Some((status, reason));
                self.waiters.push(done);
                if force || live.monitor().quit().await.is_err() {
                    live.vm.kill();
                }
            }
            Msg::Run { action, done } => {
                let _ = done.send(self.run_action(action).await);
            }
            Msg::SetRunning {
                running,
                reason,
                event,
                done,
            } => {
                let result = match self.live.clone() {
                    None => Err(Error::conflict(format!(
                        "instance {} is not running",
                        self.name
                    ))),
                    Some(live) => {
                        let m = live.monitor();
                        let r = if running {
                            m.cont().await
                        } else {
                            m.stop().await
                        };
                        r.map_err(qmp_err(
                            &self.name,
                            if running { "resume" } else { "pause" },
                        ))
                    }
                };
                if result.is_ok() {
                    let status = if running {
                        InstanceStatus::Running
                    } else {
                        InstanceStatus::Paused
                    };
                    self.record(status, &reason, event).await;
                }
                let _ = done.send(result);
            }
            Msg::SetStatus {
                status,
                reason,
                event,
                done,
            } => {
                self.record(status, &reason, event).await;
                let _ = done.send(());
            }
            Msg::Replay(ev) => self.on_event(ev).await,
            Msg::Close => {}
        }
    }

    async fn stop(
        &mut self,
        force: bool,
        timeout: Duration,
        done: oneshot::Sender<Result<(), Error>>,
    ) {
        if force {
            self.shared.jobs.preempt();
        }
        let Some(live) = self.live.clone() else {
            let result = if force && self.shared.jobs.current().is_some() {
                Ok(())
            } else {
                Err(Error::conflict(format!(
                    "instance {} is not running",
                    self.name
                )))
            };
            let _ = done.send(result);
            return;
        };
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        tokio::spawn(async move {
            let _ = rx.await;
            let _ = done.send(Ok(()));
        });
        self.expect.stopping = true;
        if force {
            self.exit = Some((InstanceStatus::Shutoff, "stopped by force".into()));
            live.vm.kill();
            return;
        }
        self.expect_exit(InstanceStatus::Shutoff, "shut down on request");
        let state = live.monitor().query_status().await.ok();
        if matches!(state, Some(RunState::Shutdown | RunState::GuestPanicked)) {
            if live.monitor().quit().await.is_err() {
                live.vm.kill();
            }
        } else if live.monitor().system_powerdown().await.is_ok() {
            self.deadline = Some((Instant::now() + timeout, timeout.as_secs()));
        } else {
            live.vm.kill();
        }
    }

    /// The graceful stop's time is up.
    fn force_off(&mut self) {
        if let (Some(live), Some((_, secs))) = (&self.live, self.deadline.take()) {
            self.exit = Some((
                InstanceStatus::Shutoff,
                format!("forced off: the guest did not shut down within {secs}s"),
            ));
            live.vm.kill();
        }
    }

    async fn run_action(&mut self, action: Action) -> Result<(), Error> {
        let live = self
            .live
            .clone()
            .ok_or_else(|| Error::conflict(format!("instance {} is not running", self.name)))?;
        let m = live.monitor();
        let name = self.name.clone();
        match action {
            Action::Pause => {
                m.stop().await.map_err(qmp_err(&name, "pause"))?;
                self.record(
                    InstanceStatus::Paused,
                    "paused on request",
                    Some(EventKind::Paused),
                )
                .await;
            }
            Action::Resume => {
                if m.query_status().await.map_err(qmp_err(&name, "query"))? == RunState::Shutdown {
                    // A guest kept after poweroff: boot it again from reset.
                    m.system_reset().await.map_err(qmp_err(&name, "reset"))?;
                }
                m.cont().await.map_err(qmp_err(&name, "resume"))?;
                self.record(
                    InstanceStatus::Running,
                    "resumed on request",
                    Some(EventKind::Resumed),
                )
                .await;
            }
            Action::Reboot => {
                self.expect.rebooting = true;
                if let Err(e) = m.system_powerdown().await {
                    self.expect.rebooting = false;
                    return Err(qmp_err(&name, "reboot")(e));
                }
            }
            Action::Reset => {
                m.system_reset().await.map_err(qmp_err(&name, "reset"))?;
                self.emit(EventKind::Rebooted, "reset on request");
            }
        }
        Ok(())
    }

    /// Records a reset; `true` if it is a new one rather than an echo.
    fn note_reset(&mut self) -> bool {
        let now = Instant::now();
        let fresh = self
            .last_reset
            .is_none_or(|t| now.duration_since(t) > RESET_ECHO);
        self.last_reset = Some(now);
        fresh
    }

    async fn on_event(&mut self, ev: Event) {
        let Some(live) = self.live.clone() else {
            return;
        };
        // The policies are read from the spec only for the events that need
        // them (job and migration events come by the hundred).
        match ev {
            Event::Shutdown { guest: true, .. } => {
                let Some(spec) = self.spec().await else {
                    return;
                };
                self.emit(EventKind::Shutdown, "the guest powered off");
                let reaction = policy::guest_poweroff(&self.expect, spec.on_poweroff);
                self.expect.rebooting = false;
                self.react(&live, reaction).await;
            }
            Event::Shutdown { reason, .. } if reason == "host-signal" => {
                self.expect_exit(InstanceStatus::Shutoff, "QEMU was terminated by a signal");
            }
            // Every reset is noted; only a fresh guest-initiated one is a reboot.
            Event::Reset { guest } if self.note_reset() && guest => {
                let Some(spec) = self.spec().await else {
                    return;
                };
                self.emit(EventKind::Rebooted, "the guest rebooted");
                self.react(&live, policy::guest_reboot(spec.on_reboot))
                    .await;
            }
            Event::GuestPanicked => {
                let Some(spec) = self.spec().await else {
                    return;
                };
                self.react(&live, policy::guest_panic(spec.on_crash)).await;
            }
            // The vCPUs stopped or run again without the daemon asking (or
            // as the echo of what it asked, whose reason stays).
            Event::Stop if !self.held() => self.vcpus_stopped(&live).await,
            Event::Resume if !self.held() => self.vcpus_resumed().await,
            _ => {}
        }
    }

    /// The vCPUs stopped without the daemon asking (or as the echo of what
    /// it asked, whose reason stays).
    async fn vcpus_stopped(&self, live: &Live) {
        if self.status().await != Some(InstanceStatus::Paused)
            && live.monitor().query_status().await.ok() == Some(RunState::Paused)
            && !self.held()
        {
            self.record(InstanceStatus::Paused, "paused", Some(EventKind::Paused))
                .await;
        }
    }

    /// The vCPUs run again without the daemon asking (or as an echo).
    async fn vcpus_resumed(&self) {
        if self.status().await != Some(InstanceStatus::Running) {
            self.record(InstanceStatus::Running, "running", Some(EventKind::Resumed))
                .await;
        }
    }

    fn held(&self) -> bool {
        self.shared.hold.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn react(&mut self, live: &Live, reaction: Reaction) {
        let m = live.monitor();
        match reaction {
            Reaction::Quit { exit } => {
                if let Some((status, reason)) = exit {
                    self.expect_exit(status, &reason);
                }
                if m.quit().await.is_err() {
                    live.vm.kill();
                }
            }
            Reaction::ResetAndContinue { event, detail } => {
                self.note_reset();
                let _ = m.system_reset().await;
                let _ = m.cont().await;
                self.emit(event, &detail);
            }
            Reaction::Record {
                pause,
                status,
                reason,
                event,
            } => {
                if pause {
                    let _ = m.stop().await;
                }
                self.record(status, &reason, Some(event)).await;
            }
            Reaction::Nothing => {}
        }
    }

    /// QEMU has exited: record the state expected (crashed if none was),
    /// clean up, answer the waiters, and apply on_crash.
    async fn on_exit(&mut self) {
        let Some(live) = self.live.take() else { return };
        let mut signalled = false;
        if let Some(events) = &mut self.events {
            while let Some(ev) = events.try_next() {
                if let Event::Shutdown { reason, .. } = ev
                    && reason == "host-signal"
                {
                    signalled = true;
                }
            }
        }
        if signalled {
            self.expect_exit(InstanceStatus::Shutoff, "QEMU was terminated by a signal");
        }
        self.events = None;
        *self.shared.live.lock().expect("live") = None;
        live.vm.wait_gone(Duration::from_secs(10)).await;
        live.vm.clean_runtime();
        if let Some(spec) = self.spec().await {
            crate::networks::nics::cleanup(&self.d, &spec).await;
        }
        let (status, reason) = self.exit.take().unwrap_or((
            InstanceStatus::Crashed,
            "QEMU exited unexpectedly (killed or crashed)".to_owned(),
        ));
        let kind = match status {
            InstanceStatus::Crashed => EventKind::Crashed,
            _ => EventKind::Stopped,
        };
        self.record(status, &reason, Some(kind)).await;
        self.expect = Expectation::default();
        self.deadline = None;
        self.shared.alive.send_replace(false);
        for w in self.waiters.drain(..) {
            let _ = w.send(());
        }
        if status == InstanceStatus::Crashed {
            self.restart_if_asked().await;
        }
    }

    /// on_crash=restart for an instance whose QEMU is gone.
    async fn restart_if_asked(&self) {
        let Some(spec) = self.spec().await else {
            return;
        };
        if !policy::restart_after_crash(spec.on_crash) {
            return;
        }
        tokio::spawn(super::lifecycle::restart_after_crash(
            self.d.clone(),
            self.name.clone(),
        ));
    }
}
