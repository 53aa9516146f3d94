//! A stand-in for `qemu-system-x86_64` in the daemon's tier-3 tests.
//!
//! The real daemon launches it as it launches QEMU: it answers the probe
//! with the recorded output of the real QEMU 10, reads the command line
//! the daemon builds, daemonizes (the launcher exits once the QMP socket
//! listens; the server lives on in its own session), writes the pidfile,
//! and serves QMP — greeting, runstates, events, snapshot jobs, migration
//! to a file or a TCP peer, NBD exports and mirrors for storage migration — in QEMU 10's shapes, plus a serial console
//! socket that accepts clients. A control socket beside the QMP socket
//! ([`control_socket`], driven by [`FakeQemu`]) lets a test make the guest
//! power off, reboot or panic, crash QEMU, slow or stick jobs, and read
//! back the QMP commands received.

mod argv;
mod client;
mod control;
mod fixtures;
mod jobs;
mod migration;
mod nbd;
mod qmp;
mod vm;

#[cfg(test)]
mod shapes;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

pub use argv::{ArgvError, Invocation, Launch};
pub use client::FakeQemu;

/// Set in the daemon's environment, makes every `cont` hang: the start
/// never completes and QEMU stays in `prelaunch` (a half-started instance).
pub const HOLD_CONT_ENV: &str = "FAKE_QEMU_HOLD_CONT";

/// Marks the server process the launcher starts when `-daemonize` is given.
const SERVER_ENV: &str = "FAKE_QEMU_SERVER";

/// The control socket of the fake whose QMP socket is `qmp`.
pub fn control_socket(qmp: &Path) -> PathBuf {
    qmp.with_file_name("fake-control.sock")
}

/// The fake's `main`.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match argv::parse(&args) {
        Err(e) => {
            eprintln!("qemu-system-x86_64: {e}");
            ExitCode::FAILURE
        }
        Ok(Invocation::Probe(kind)) => {
            print!("{}", fixtures::probe(kind));
            ExitCode::SUCCESS
        }
        Ok(Invocation::Run(launch)) => {
            if launch.daemonize && std::env::var_os(SERVER_ENV).is_none() {
                return launcher(&args);
            }
            let daemon = launch.daemonize;
            let err = run(launch, daemon);
            eprintln!("qemu-system-x86_64: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `-daemonize`: starts the server and exits once it is ready, with its
/// status if it failed first.
fn launcher(args: &[String]) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("qemu-system-x86_64: cannot find its own binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let child = Command::new(exe)
        .args(args)
        .env(SERVER_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("qemu-system-x86_64: cannot daemonize: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim() == "ready" {
        return ExitCode::SUCCESS;
    }
    let _ = child.wait();
    ExitCode::FAILURE
}

fn listen(path: &Path) -> std::io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {}: {e}", path.display()),
        )
    })
}

/// The VM process: never returns unless it fails to start.
fn run(launch: Launch, daemon: bool) -> std::io::Error {
    if daemon {
        let _ = nix::unistd::setsid();
    }
    let qmp = match listen(&launch.qmp_socket) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let control = match listen(&control_socket(&launch.qmp_socket)) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let serial = match launch.serial_socket.as_deref().map(listen).transpose() {
        Ok(l) => l,
        Err(e) => return e,
    };
    if let Some(pidfile) = &launch.pidfile
        && let Err(e) = std::fs::write(pidfile, format!("{}\n", std::process::id()))
    {
        return e;
    }
    let vm = vm::Vm::new(launch);
    if let Some(serial) = serial {
        std::thread::spawn(move || console(serial));
    }
    let ctl_vm = vm.clone();
    std::thread::spawn(move || control::serve(ctl_vm, control));
    if daemon {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ready").and_then(|()| out.flush());
    }
    qmp::serve(vm, qmp);
    std::io::Error::other("the QMP socket stopped accepting clients")
}

/// The serial console's connected clients (the guest "prints" to them on
/// the control command `print BYTES`).
static CONSOLE_CLIENTS: std::sync::Mutex<Vec<std::os::unix::net::UnixStream>> =
    std::sync::Mutex::new(Vec::new());

/// The serial console: accepts clients and swallows what they type; the
/// fake guest prints only when told to ([`print_on_console`]).
fn console(listener: UnixListener) {
    for stream in listener.incoming().flatten() {
        if let Ok(writer) = stream.try_clone() {
            CONSOLE_CLIENTS.lock().expect("console").push(writer);
        }
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut &stream, &mut std::io::sink());
        });
    }
}

/// The guest prints `bytes` bytes of numbered lines on its serial console.
fn print_on_console(bytes: usize) {
    let mut text = Vec::with_capacity(bytes + 64);
    let mut line = 0u64;
    while text.len() < bytes {
        text.extend_from_slice(format!("console line {line:08}\n").as_bytes());
        line += 1;
    }
    text.truncate(bytes);
    CONSOLE_CLIENTS
        .lock()
        .expect("console")
        .retain_mut(|c| c.write_all(&text).is_ok());
}
