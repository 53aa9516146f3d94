//! NBD, enough for storage migration: the destination's server
//! (`nbd-server-start`, `block-export-add`, `nbd-server-stop`) and the
//! source's client nodes (`blockdev-add` of driver `nbd`, `blockdev-del`).
//!
//! The server really listens where it is told; a client node really
//! connects, names its export in one line and is told `ok` only if that
//! export exists — so a wrong host, port or export name fails as it would
//! with QEMU. No data flows: the mirror job only pretends to copy.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use super::qmp::QmpError;
use super::vm::Vm;

/// A running NBD server.
#[derive(Debug)]
pub struct Server {
    addr: String,
    /// Export names, by export id.
    exports: BTreeMap<String, String>,
    stopped: Arc<AtomicBool>,
}

/// The NBD side of the fake: its server and its client nodes.
#[derive(Debug, Default)]
pub struct Nbd {
    server: Option<Server>,
    /// Open client connections, by node name.
    clients: BTreeMap<String, TcpStream>,
}

fn not_running() -> QmpError {
    QmpError::generic("NBD server not running")
}

/// `nbd-server-start {"addr": {"type": "inet", "data": {host, port}}}`.
pub fn start(vm: &Arc<Vm>, args: &Value) -> Result<Value, QmpError> {
    let data = &args["addr"]["data"];
    let (Some(host), Some(port)) = (data["host"].as_str(), data["port"].as_str()) else {
        return Err(QmpError::generic("Parameter 'addr' is missing"));
    };
    let addr = format!("{host}:{port}");
    let mut st = vm.state();
    if st.nbd.server.is_some() {
        return Err(QmpError::generic("NBD server already running"));
    }
    let listener = TcpListener::bind(&addr)
        .map_err(|e| QmpError::generic(format!("Failed to bind socket: {e}")))?;
    let stopped = Arc::new(AtomicBool::new(false));
    st.nbd.server = Some(Server {
        addr,
        exports: BTreeMap::new(),
        stopped: stopped.clone(),
    });
    let vm = vm.clone();
    std::thread::spawn(move || serve(&vm, &listener, &stopped));
    Ok(json!({}))
}

fn serve(vm: &Arc<Vm>, listener: &TcpListener, stopped: &AtomicBool) {
    for stream in listener.incoming() {
        if stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let vm = vm.clone();
        std::thread::spawn(move || session(&vm, stream));
    }
}

/// One client: its export name, `ok` or why not, then it stays connected.
fn session(vm: &Vm, stream: TcpStream) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut name = String::new();
    if reader.read_line(&mut name).is_err() {
        return;
    }
    let exported = vm
        .state()
        .nbd
        .server
        .as_ref()
        .is_some_and(|s| s.exports.values().any(|e| e == name.trim()));
    let reply: &[u8] = if exported {
        b"ok\n"
    } else {
        b"Requested export not available\n"
    };
    if out.write_all(reply).is_ok() && exported {
        let _ = reader.read_to_end(&mut Vec::new());
    }
}

/// `block-export-add {"type": "nbd", "id", "node-name", "name"?}`.
pub fn export(vm: &Vm, args: &Value) -> Result<Value, QmpError> {
    let (Some(id), Some(node)) = (args["id"].as_str(), args["node-name"].as_str()) else {
        return Err(QmpError::generic("Parameter 'id' is missing"));
    };
    let mut st = vm.state();
    let server = st.nbd.server.as_mut().ok_or_else(not_running)?;
    if server.exports.contains_key(id) {
        return Err(QmpError::generic(format!(
            "Block export id '{id}' is already in use"
        )));
    }
    let name = args["name"].as_str().unwrap_or(node).to_owned();
    server.exports.insert(id.to_owned(), name);
    Ok(json!({}))
}

/// `nbd-server-stop`: no new clients, the exports go.
pub fn stop(vm: &Vm) -> Result<Value, QmpError> {
    let server = vm.state().nbd.server.take().ok_or_else(not_running)?;
    server.stopped.store(true, Ordering::SeqCst);
    // Wakes the accepting thread so that it sees the flag and closes.
    let _ = TcpStream::connect(&server.addr);
    Ok(json!({}))
}

/// `blockdev-add` of an `nbd` node: connects to the server and asks for
/// the export.
pub fn add_client(vm: &Vm, args: &Value) -> Result<Value, QmpError> {
    let node = args["node-name"].as_str().unwrap_or_default().to_owned();
    let export = args["export"].as_str().unwrap_or_default();
    let server = &args["server"];
    let addr = format!(
        "{}:{}",
        server["host"].as_str().unwrap_or_default(),
        server["port"].as_str().unwrap_or_default()
    );
    if vm.state().nbd.clients.contains_key(&node) {
        return Err(QmpError::generic(format!(
            "node-name '{node}' is already in use"
        )));
    }
    let refused =
        |e: std::io::Error| QmpError::generic(format!("Failed to connect to '{addr}': {e}"));
    let mut stream = TcpStream::connect(&addr).map_err(refused)?;
    stream
        .write_all(format!("{export}\n").as_bytes())
        .map_err(refused)?;
    let mut reply = String::new();
    BufReader::new(stream.try_clone().map_err(refused)?)
        .read_line(&mut reply)
        .map_err(refused)?;
    if reply.trim() != "ok" {
        return Err(QmpError::generic(reply.trim()));
    }
    vm.state().nbd.clients.insert(node, stream);
    Ok(json!({}))
}

/// `blockdev-del`: an NBD client node disconnects.
pub fn del(vm: &Vm, args: &Value) -> Result<Value, QmpError> {
    let node = args["node-name"].as_str().unwrap_or_default();
    if let Some(s) = vm.state().nbd.clients.remove(node) {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    Ok(json!({}))
}
