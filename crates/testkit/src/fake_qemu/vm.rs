//! The fake VM: its runstate, the QMP clients its events go to, and the
//! guest actions (poweroff, reboot, panic) QEMU would report.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::argv::Launch;
use super::jobs::Job;
use super::migration::Migration;
use super::nbd::Nbd;

/// QEMU's runstates (`query-status`), those the fake can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Prelaunch,
    Running,
    Paused,
    Shutdown,
    InMigrate,
    PostMigrate,
    FinishMigrate,
    GuestPanicked,
    SaveVm,
    RestoreVm,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prelaunch => "prelaunch",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Shutdown => "shutdown",
            Self::InMigrate => "inmigrate",
            Self::PostMigrate => "postmigrate",
            Self::FinishMigrate => "finish-migrate",
            Self::GuestPanicked => "guest-panicked",
            Self::SaveVm => "save-vm",
            Self::RestoreVm => "restore-vm",
        }
    }

    /// States QEMU leaves only through `system_reset`.
    pub fn needs_reset(self) -> bool {
        matches!(self, Self::Shutdown | Self::GuestPanicked)
    }
}

/// How the fake guest and its long operations behave; changed through the
/// control socket.
#[derive(Debug, Clone)]
pub struct Knobs {
    /// The guest ignores the ACPI power button.
    pub ignore_powerdown: bool,
    /// How long the guest takes to power off after the button.
    pub powerdown_delay: Duration,
    /// How long a snapshot job runs.
    pub job_time: Duration,
    /// Jobs never finish on their own (only a cancel ends them).
    pub jobs_stuck: bool,
    /// How long a migration runs.
    pub migration_time: Duration,
    /// Migrations never finish on their own.
    pub migration_stuck: bool,
    /// An incoming migration fails to load once its stream is received
    /// (QEMU then exits, as it does for real).
    pub incoming_fails: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            ignore_powerdown: false,
            powerdown_delay: Duration::from_millis(100),
            job_time: Duration::from_millis(50),
            jobs_stuck: false,
            migration_time: Duration::from_millis(50),
            migration_stuck: false,
            incoming_fails: false,
        }
    }
}

/// Everything that changes while the fake runs.
#[derive(Debug)]
pub struct State {
    pub runstate: RunState,
    pub knobs: Knobs,
    pub jobs: Vec<Job>,
    /// Tags of the internal snapshots (the fake keeps them in memory).
    pub snapshots: BTreeSet<String>,
    pub migration: Option<Migration>,
    /// Every QMP command received: `{"execute", "arguments"}`.
    pub commands: Vec<Value>,
    /// The `events` migration capability: MIGRATION events are sent only
    /// when it is on (QEMU's default is off).
    pub migration_events: bool,
    /// The NBD server and client nodes (storage migration).
    pub nbd: Nbd,
}

pub struct Vm {
    pub launch: Launch,
    state: Mutex<State>,
    clients: Mutex<Vec<UnixStream>>,
}

impl Vm {
    pub fn new(launch: Launch) -> Arc<Self> {
        let runstate = if launch.incoming {
            RunState::InMigrate
        } else if launch.freeze {
            RunState::Prelaunch
        } else {
            RunState::Running
        };
        Arc::new(Self {
            launch,
            state: Mutex::new(State {
                runstate,
                knobs: Knobs::default(),
                jobs: Vec::new(),
                snapshots: BTreeSet::new(),
                migration: None,
                commands: Vec::new(),
                migration_events: false,
                nbd: Nbd::default(),
            }),
            clients: Mutex::new(Vec::new()),
        })
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a negotiated QMP client: it receives the events from now on.
    pub fn add_client(&self, stream: UnixStream) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(stream);
    }

    /// Sends an event to every QMP client, in QEMU's shape.
    pub fn emit(&self, event: &str, data: Option<Value>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let stamp = format!(
            "{{\"seconds\": {}, \"microseconds\": {}}}",
            now.as_secs(),
            now.subsec_micros()
        );
        let line = match data {
            Some(data) => {
                format!("{{\"timestamp\": {stamp}, \"event\": \"{event}\", \"data\": {data}}}\n")
            }
            None => format!("{{\"timestamp\": {stamp}, \"event\": \"{event}\"}}\n"),
        };
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.retain_mut(|c| c.write_all(line.as_bytes()).is_ok());
    }

    /// Moves to `to`, with the STOP or RESUME event QEMU sends when the
    /// vCPUs stop or start.
    pub fn set_runstate(&self, st: &mut State, to: RunState) {
        let was = st.runstate == RunState::Running;
        st.runstate = to;
        match (was, to == RunState::Running) {
            (true, false) => self.emit("STOP", None),
            (false, true) => self.emit("RESUME", None),
            _ => {}
        }
    }

    /// The guest powers itself off (`-no-shutdown`: QEMU stays, stopped).
    pub fn guest_poweroff(&self) {
        let mut st = self.state();
        if st.runstate != RunState::Running {
            return;
        }
        self.emit(
            "SHUTDOWN",
            Some(json!({"guest": true, "reason": "guest-shutdown"})),
        );
        self.set_runstate(&mut st, RunState::Shutdown);
    }

    /// The guest reboots itself: a reset, the guest keeps running.
    pub fn guest_reboot(&self) {
        self.emit(
            "RESET",
            Some(json!({"guest": true, "reason": "guest-reset"})),
        );
    }

    /// The guest panics (`-action panic=pause`: QEMU pauses it).
    pub fn guest_panic(&self) {
        let mut st = self.state();
        self.emit("GUEST_PANICKED", Some(json!({"action": "pause"})));
        self.set_runstate(&mut st, RunState::GuestPanicked);
    }

    /// The ACPI power button: the guest powers off after a while, unless
    /// it ignores the button.
    pub fn power_button(self: &Arc<Self>) {
        self.emit("POWERDOWN", None);
        let knobs = self.state().knobs.clone();
        if knobs.ignore_powerdown {
            return;
        }
        let vm = self.clone();
        std::thread::spawn(move || {
            std::thread::sleep(knobs.powerdown_delay);
            vm.guest_poweroff();
        });
    }

    /// `system_reset`: a stopped machine comes back in `prelaunch`.
    pub fn host_reset(&self) {
        let mut st = self.state();
        self.emit(
            "RESET",
            Some(json!({"guest": false, "reason": "host-qmp-system-reset"})),
        );
        if !matches!(
            st.runstate,
            RunState::Running | RunState::InMigrate | RunState::FinishMigrate
        ) {
            st.runstate = RunState::Prelaunch;
        }
    }

    /// Exits like QEMU on `quit`: SHUTDOWN, then the pidfile and sockets go.
    pub fn exit(&self, reason: &str) -> ! {
        self.emit("SHUTDOWN", Some(json!({"guest": false, "reason": reason})));
        self.remove_files();
        std::process::exit(0)
    }

    /// Dies at once, leaving its files behind, like a crashed QEMU.
    pub fn crash(&self) -> ! {
        eprintln!("fake QEMU: crashing on request");
        std::process::exit(139)
    }

    pub fn remove_files(&self) {
        let l = &self.launch;
        let files = [
            Some(&l.qmp_socket),
            l.serial_socket.as_ref(),
            l.pidfile.as_ref(),
        ];
        for f in files.into_iter().flatten() {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_file(super::control_socket(&l.qmp_socket));
    }
}
