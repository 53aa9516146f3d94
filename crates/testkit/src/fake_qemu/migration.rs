//! Migration: outgoing to a `file:` (really written) or a `tcp:` peer,
//! incoming (`-incoming defer` + migrate-incoming) from either; statuses
//! announced by MIGRATION events and shown by query-migrate.

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::fixtures;
use super::qmp::QmpError;
use super::vm::{RunState, Vm};

/// What the fake writes as the guest's state.
const MAGIC: &[u8] = b"FAKE-QEMU-VMSTATE 1\n";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    File { path: String, offset: u64 },
    Tcp(String),
}

impl Target {
    pub fn parse(uri: &str) -> Result<Self, QmpError> {
        if let Some(rest) = uri.strip_prefix("file:") {
            let (path, offset) = match rest.rsplit_once(",offset=") {
                Some((p, o)) => (p, o.parse().map_err(|_| bad_uri(uri))?),
                None => (rest, 0),
            };
            return Ok(Self::File {
                path: path.to_owned(),
                offset,
            });
        }
        if let Some(addr) = uri.strip_prefix("tcp:") {
            return Ok(Self::Tcp(addr.to_owned()));
        }
        Err(bad_uri(uri))
    }
}

fn bad_uri(uri: &str) -> QmpError {
    QmpError::generic(format!("Invalid migration URI '{uri}' for the fake QEMU"))
}

#[derive(Debug)]
pub struct Migration {
    pub status: &'static str,
    pub outgoing: bool,
    pub error: Option<String>,
    cancel: bool,
    started: Instant,
}

fn set_status(vm: &Vm, events: bool, m: &mut Migration, status: &'static str) {
    m.status = status;
    if events {
        vm.emit("MIGRATION", Some(json!({"status": status})));
    }
}

fn in_progress(status: &str) -> bool {
    matches!(status, "setup" | "active" | "device" | "cancelling")
}

/// query-migrate: nothing before the first migration, then the recorded
/// shape of QEMU 10 with the fake's status.
pub fn query(vm: &Vm) -> Value {
    let st = vm.state();
    let Some(m) = &st.migration else {
        return json!({});
    };
    if !m.outgoing {
        // The destination reports nothing but its status.
        let mut v = json!({"status": m.status});
        if let Some(e) = &m.error {
            v["error-desc"] = json!(e);
        }
        return v;
    }
    let mut v = fixtures::reply("query-migrate-completed");
    v["status"] = json!(m.status);
    let ms = m.started.elapsed().as_millis() as u64;
    if m.status == "completed" {
        v["total-time"] = json!(ms);
    } else if let Some(obj) = v.as_object_mut() {
        obj.remove("total-time");
        obj.remove("downtime");
        obj.insert("expected-downtime".into(), json!(300));
    }
    if let Some(e) = &m.error {
        v["error-desc"] = json!(e);
    }
    v
}

/// `migrate`: sends the state to the target in the background.
pub fn start_outgoing(vm: &Arc<Vm>, args: &Value) -> Result<Value, QmpError> {
    let target = Target::parse(args["uri"].as_str().unwrap_or_default())?;
    let mut st = vm.state();
    if st.migration.as_ref().is_some_and(|m| in_progress(m.status)) {
        return Err(QmpError::generic("There's a migration process in progress"));
    }
    let mut m = Migration {
        status: "setup",
        outgoing: true,
        error: None,
        cancel: false,
        started: Instant::now(),
    };
    set_status(vm, st.migration_events, &mut m, "setup");
    set_status(vm, st.migration_events, &mut m, "active");
    st.migration = Some(m);
    drop(st);
    let vm = vm.clone();
    std::thread::spawn(move || outgoing(&vm, &target));
    Ok(json!({}))
}

fn outgoing(vm: &Vm, target: &Target) {
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let mut st = vm.state();
        let knobs = st.knobs.clone();
        let Some(mut m) = st.migration.take() else {
            return;
        };
        if m.cancel {
            set_status(vm, st.migration_events, &mut m, "cancelling");
            set_status(vm, st.migration_events, &mut m, "cancelled");
            st.migration = Some(m);
            return;
        }
        if knobs.migration_stuck || m.started.elapsed() < knobs.migration_time {
            st.migration = Some(m);
            continue;
        }
        let blob = state_blob(vm, &st.snapshots);
        match send(target, &blob) {
            Ok(()) => {
                vm.set_runstate(&mut st, RunState::FinishMigrate);
                st.runstate = RunState::PostMigrate;
                set_status(vm, st.migration_events, &mut m, "completed");
            }
            Err(e) => {
                m.error = Some(e);
                set_status(vm, st.migration_events, &mut m, "failed");
            }
        }
        st.migration = Some(m);
        return;
    }
}

fn state_blob(vm: &Vm, snapshots: &std::collections::BTreeSet<String>) -> Vec<u8> {
    let mut blob = MAGIC.to_vec();
    let body = json!({"name": vm.launch.name, "snapshots": snapshots});
    blob.extend_from_slice(body.to_string().as_bytes());
    blob.push(b'\n');
    blob
}

fn send(target: &Target, blob: &[u8]) -> Result<(), String> {
    match target {
        Target::File { path, offset } => std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .and_then(|f| f.write_all_at(blob, *offset))
            .map_err(|e| format!("Failed to write {path}: {e}")),
        Target::Tcp(addr) => std::net::TcpStream::connect(addr)
            .and_then(|mut s| s.write_all(blob))
            .map_err(|e| format!("Failed to connect to '{addr}': {e}")),
    }
}

pub fn cancel(vm: &Vm) -> Result<Value, QmpError> {
    if let Some(m) = vm.state().migration.as_mut()
        && in_progress(m.status)
    {
        m.cancel = true;
    }
    Ok(json!({}))
}

/// `migrate-incoming`: loads the state in the background; a failure ends
/// QEMU, as it does for real.
pub fn start_incoming(vm: &Arc<Vm>, args: &Value) -> Result<Value, QmpError> {
    let target = Target::parse(args["uri"].as_str().unwrap_or_default())?;
    let mut st = vm.state();
    if !vm.launch.incoming {
        return Err(QmpError::generic(
            "'-incoming' was not specified on the command line",
        ));
    }
    if st.migration.is_some() {
        return Err(QmpError::generic(
            "The incoming migration has already been started",
        ));
    }
    let mut m = Migration {
        status: "setup",
        outgoing: false,
        error: None,
        cancel: false,
        started: Instant::now(),
    };
    set_status(vm, st.migration_events, &mut m, "setup");
    st.migration = Some(m);
    let listener = match &target {
        Target::Tcp(addr) => Some(
            std::net::TcpListener::bind(addr)
                .map_err(|e| QmpError::generic(format!("Failed to bind socket for {addr}: {e}")))?,
        ),
        Target::File { .. } => None,
    };
    drop(st);
    let vm = vm.clone();
    std::thread::spawn(move || incoming(&vm, &target, listener));
    Ok(json!({}))
}

fn incoming(vm: &Vm, target: &Target, listener: Option<std::net::TcpListener>) {
    let blob = match (target, listener) {
        (Target::File { path, offset }, _) => read_file(path, *offset),
        (Target::Tcp(_), Some(l)) => l
            .accept()
            .and_then(|(mut s, _)| {
                let mut b = Vec::new();
                s.read_to_end(&mut b).map(|_| b)
            })
            .map_err(|e| format!("accepting the migration stream failed: {e}")),
        (Target::Tcp(addr), None) => Err(format!("no listener on {addr}")),
    };
    {
        let mut st = vm.state();
        let events = st.migration_events;
        if let Some(m) = st.migration.as_mut() {
            set_status(vm, events, m, "active");
        }
    }
    std::thread::sleep(vm.state().knobs.migration_time);
    let mut st = vm.state();
    let Some(mut m) = st.migration.take() else {
        return;
    };
    let fails = st.knobs.incoming_fails;
    let loaded = blob.and_then(|b| {
        if fails {
            return Err("the test made the load fail".to_owned());
        }
        parse_blob(&b)
    });
    match loaded {
        Ok(snapshots) => {
            st.snapshots = snapshots;
            st.runstate = RunState::Paused;
            set_status(vm, st.migration_events, &mut m, "completed");
            st.migration = Some(m);
        }
        Err(e) => {
            set_status(vm, st.migration_events, &mut m, "failed");
            m.error = Some(format!("load of migration failed: {e}"));
            st.migration = Some(m);
            eprintln!("qemu-system-x86_64: load of migration failed: {e}");
            vm.remove_files();
            std::process::exit(1);
        }
    }
}

fn read_file(path: &str, offset: u64) -> Result<Vec<u8>, String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    let mut b = Vec::new();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset))
        .and_then(|_| f.read_to_end(&mut b))
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(b)
}

fn parse_blob(b: &[u8]) -> Result<std::collections::BTreeSet<String>, String> {
    let rest = b
        .strip_prefix(MAGIC)
        .ok_or("the stream is not a fake QEMU state")?;
    let end = rest.iter().position(|c| *c == b'\n').unwrap_or(rest.len());
    let v: Value =
        serde_json::from_slice(&rest[..end]).map_err(|e| format!("corrupt state: {e}"))?;
    Ok(serde_json::from_value(v["snapshots"].clone()).unwrap_or_default())
}

/// `migrate-set-capabilities`: only `events` changes what the fake does.
pub fn set_capabilities(vm: &Vm, args: &Value) -> Result<Value, QmpError> {
    let caps = args["capabilities"].as_array().cloned().unwrap_or_default();
    for cap in caps {
        if cap["capability"] == "events" {
            vm.state().migration_events = cap["state"] == true;
        }
    }
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uris() {
        assert_eq!(
            Target::parse("file:/a/b.sav,offset=65536").unwrap(),
            Target::File {
                path: "/a/b.sav".into(),
                offset: 65536
            }
        );
        assert_eq!(
            Target::parse("tcp:127.0.0.1:4444").unwrap(),
            Target::Tcp("127.0.0.1:4444".into())
        );
        assert!(Target::parse("exec:cat").is_err());
    }
}
