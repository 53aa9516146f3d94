//! The test's side door: a unix socket next to the QMP socket where a test
//! makes the guest act (poweroff, reboot, panic), crashes QEMU, slows or
//! sticks jobs and migrations, makes an incoming migration fail to load,
//! makes the guest print on its serial console (`print BYTES`),
//! and reads back the QMP commands received.
//!
//! One command a line; one JSON object a line back: `{"ok": true}` (with
//! `commands` or `status` when asked) or `{"error": "…"}`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::vm::Vm;

pub fn serve(vm: Arc<Vm>, listener: UnixListener) {
    for stream in listener.incoming().flatten() {
        let vm = vm.clone();
        std::thread::spawn(move || {
            let _ = session(&vm, stream);
        });
    }
}

fn session(vm: &Arc<Vm>, stream: UnixStream) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        let reply = match handle(vm, line.trim()) {
            Ok(v) => v,
            Err(e) => json!({ "error": e }),
        };
        out.write_all(format!("{reply}\n").as_bytes())?;
    }
    Ok(())
}

fn millis(arg: Option<&str>) -> Result<Duration, String> {
    arg.and_then(|a| a.parse().ok())
        .map(Duration::from_millis)
        .ok_or_else(|| "a duration in milliseconds is needed".to_owned())
}

fn handle(vm: &Arc<Vm>, line: &str) -> Result<Value, String> {
    let mut words = line.split_whitespace();
    let verb = words.next().unwrap_or_default();
    let arg = words.next();
    let ok = json!({"ok": true});
    match (verb, arg) {
        ("poweroff", _) => vm.guest_poweroff(),
        ("reboot", _) => vm.guest_reboot(),
        ("panic", _) => vm.guest_panic(),
        ("crash", _) => vm.crash(),
        ("powerdown", Some("ignore")) => vm.state().knobs.ignore_powerdown = true,
        ("powerdown", Some("obey")) => vm.state().knobs.ignore_powerdown = false,
        ("powerdown-delay", ms) => vm.state().knobs.powerdown_delay = millis(ms)?,
        ("jobs", Some("stuck")) => vm.state().knobs.jobs_stuck = true,
        ("jobs", Some("free")) => vm.state().knobs.jobs_stuck = false,
        ("job-time", ms) => vm.state().knobs.job_time = millis(ms)?,
        ("migration", Some("stuck")) => vm.state().knobs.migration_stuck = true,
        ("migration", Some("free")) => vm.state().knobs.migration_stuck = false,
        ("migration-time", ms) => vm.state().knobs.migration_time = millis(ms)?,
        ("incoming", Some("fail")) => vm.state().knobs.incoming_fails = true,
        ("incoming", Some("load")) => vm.state().knobs.incoming_fails = false,
        ("print", n) => {
            let n = n
                .and_then(|n| n.parse().ok())
                .ok_or("a byte count is needed")?;
            super::print_on_console(n);
        }
        ("commands", _) => return Ok(json!({"ok": true, "commands": vm.state().commands})),
        ("status", _) => {
            return Ok(json!({"ok": true, "status": vm.state().runstate.as_str()}));
        }
        _ => return Err(format!("unknown control command `{line}`")),
    }
    Ok(ok)
}
