//! The QMP monitor: greeting, capabilities negotiation, and the commands
//! the daemon sends, answered in QEMU 10's shapes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;

use serde_json::{Value, json};

use super::fixtures;
use super::jobs::{self, JobKind};
use super::migration;
use super::nbd;
use super::vm::{RunState, Vm};

/// A QMP error reply: `{"error": {"class", "desc"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QmpError {
    pub class: &'static str,
    pub desc: String,
}

impl QmpError {
    pub fn generic(desc: impl Into<String>) -> Self {
        Self {
            class: "GenericError",
            desc: desc.into(),
        }
    }
}

/// Serves QMP clients until the process ends.
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
    out.write_all(fixtures::GREETING.as_bytes())?;
    let mut negotiated = false;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let was_negotiated = negotiated;
        let (reply, exit) = match serde_json::from_str::<Value>(&line) {
            Ok(req) => answer(vm, &req, &mut negotiated),
            Err(e) => (
                error_line(
                    &Value::Null,
                    &QmpError::generic(format!("JSON parse error, {e}")),
                ),
                false,
            ),
        };
        out.write_all(reply.as_bytes())?;
        if negotiated && !was_negotiated {
            vm.add_client(out.try_clone()?);
        }
        if exit {
            vm.exit("host-qmp-quit");
        }
    }
    Ok(())
}

fn answer(vm: &Arc<Vm>, req: &Value, negotiated: &mut bool) -> (String, bool) {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let name = req["execute"].as_str().unwrap_or_default();
    let args = req.get("arguments").cloned().unwrap_or_else(|| json!({}));
    if !*negotiated {
        if name == "qmp_capabilities" {
            *negotiated = true;
            return (return_line(&id, &json!({})), false);
        }
        let e = QmpError {
            class: "CommandNotFound",
            desc: "Expecting capabilities negotiation with 'qmp_capabilities'".into(),
        };
        return (error_line(&id, &e), false);
    }
    vm.state()
        .commands
        .push(json!({"execute": name, "arguments": args}));
    if name == "quit" {
        return (return_line(&id, &json!({})), true);
    }
    match execute(vm, name, &args) {
        Ok(v) => (return_line(&id, &v), false),
        Err(e) => (error_line(&id, &e), false),
    }
}

fn return_line(id: &Value, v: &Value) -> String {
    if id.is_null() {
        format!("{{\"return\": {v}}}\n")
    } else {
        format!("{{\"return\": {v}, \"id\": {id}}}\n")
    }
}

fn error_line(id: &Value, e: &QmpError) -> String {
    let body = json!({"class": e.class, "desc": e.desc});
    if id.is_null() {
        format!("{{\"error\": {body}}}\n")
    } else {
        format!("{{\"error\": {body}, \"id\": {id}}}\n")
    }
}

/// One command, after negotiation.
pub fn execute(vm: &Arc<Vm>, name: &str, args: &Value) -> Result<Value, QmpError> {
    match name {
        "qmp_capabilities" => Err(QmpError {
            class: "CommandNotFound",
            desc: "Capabilities negotiation is already complete, command ignored".into(),
        }),
        "query-status" => {
            let rs = vm.state().runstate;
            Ok(json!({"status": rs.as_str(), "running": rs == RunState::Running}))
        }
        "cont" => cont(vm),
        "stop" => {
            let mut st = vm.state();
            if st.runstate == RunState::Running {
                vm.set_runstate(&mut st, RunState::Paused);
            }
            Ok(json!({}))
        }
        "system_powerdown" => {
            vm.power_button();
            Ok(json!({}))
        }
        "system_reset" => {
            vm.host_reset();
            Ok(json!({}))
        }
        "snapshot-save" => jobs::start(vm, JobKind::Save, args),
        "snapshot-load" => jobs::start(vm, JobKind::Load, args),
        "snapshot-delete" => jobs::start(vm, JobKind::Delete, args),
        "query-jobs" => Ok(jobs::query(vm)),
        "job-dismiss" => jobs::dismiss(vm, args),
        "job-cancel" => jobs::cancel(vm, args),
        "job-complete" => jobs::complete(vm, args),
        "blockdev-mirror" => jobs::start_mirror(vm, args),
        "nbd-server-start" => nbd::start(vm, args),
        "block-export-add" => nbd::export(vm, args),
        "nbd-server-stop" => nbd::stop(vm),
        "blockdev-add" if args["driver"] == "nbd" => nbd::add_client(vm, args),
        "blockdev-del" => nbd::del(vm, args),
        "migrate" => migration::start_outgoing(vm, args),
        "migrate-incoming" => migration::start_incoming(vm, args),
        "migrate_cancel" => migration::cancel(vm),
        "query-migrate" => Ok(migration::query(vm)),
        "migrate-set-capabilities" => migration::set_capabilities(vm, args),
        "query-balloon" => Ok(json!({"actual": vm.launch.memory_mib << 20})),
        "query-block" | "query-named-block-nodes" | "query-blockstats" => Ok(json!([])),
        "query-cpus-fast" => Ok(fixtures::reply("query-cpus-fast")),
        "device_del" => {
            let dev = args["id"].as_str().unwrap_or_default().to_owned();
            vm.emit(
                "DEVICE_DELETED",
                Some(json!({"device": dev, "path": format!("/machine/peripheral/{dev}")})),
            );
            Ok(json!({}))
        }
        "migrate-set-parameters"
        | "getfd"
        | "device_add"
        | "netdev_add"
        | "netdev_del"
        | "blockdev-add"
        | "object-del"
        | "balloon"
        | "transaction" => Ok(json!({})),
        other => Err(QmpError {
            class: "CommandNotFound",
            desc: format!("The command {other} has not been found"),
        }),
    }
}

fn cont(vm: &Arc<Vm>) -> Result<Value, QmpError> {
    if std::env::var_os(super::HOLD_CONT_ENV).is_some() {
        // A start that never completes, to leave QEMU half-started.
        loop {
            std::thread::park();
        }
    }
    let mut st = vm.state();
    match st.runstate {
        rs if rs.needs_reset() => Err(QmpError::generic(
            "Resetting the Virtual Machine is required",
        )),
        RunState::InMigrate | RunState::Running => Ok(json!({})),
        _ => {
            vm.set_runstate(&mut st, RunState::Running);
            Ok(json!({}))
        }
    }
}
