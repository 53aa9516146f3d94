//! A small asynchronous QMP client.
//!
//! QMP is line-delimited JSON over a unix socket. After the greeting and
//! `qmp_capabilities`, the client may have several commands in flight; each
//! carries an `id` and its reply is routed back to the caller. Asynchronous
//! events are fanned out on a broadcast channel. When QEMU exits the socket
//! closes: pending commands fail with [`Error::Closed`] and [`Qmp::closed`]
//! resolves, which is how the daemon learns that a VM has gone.

mod framing;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use framing::{LineFramer, Message};
use tokio::sync::{Mutex, broadcast, oneshot, watch};

/// Default time a command may take before [`Error::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the QMP socket {path}")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("QMP handshake failed: {0}")]
    Handshake(String),
    #[error("QMP connection I/O failed")]
    Io(#[from] std::io::Error),
    #[error("QMP connection closed (QEMU exited)")]
    Closed,
    #[error("QMP command {command} timed out")]
    Timeout { command: String },
    #[error("QEMU refused {command}: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
}

/// An asynchronous event from QEMU, e.g. `SHUTDOWN` or `STOP`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct QmpEvent {
    pub event: String,
    #[serde(default)]
    pub data: Value,
}

type Pending = Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Result<Value, Error>>>>>;

/// A negotiated QMP connection. Cheap to clone.
#[derive(Clone)]
pub struct Qmp {
    writer: Arc<Mutex<OwnedWriteHalf>>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    events: broadcast::Sender<QmpEvent>,
    closed: watch::Receiver<bool>,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp").finish_non_exhaustive()
    }
}

impl Qmp {
    /// Connects, reads the greeting and negotiates capabilities. The returned
    /// receiver sees every event from the moment the connection exists.
    pub async fn connect(path: &Path) -> Result<(Self, broadcast::Receiver<QmpEvent>), Error> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| Error::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let (read, write) = stream.into_split();
        let mut lines = Lines::new(read);
        let greeting = tokio::time::timeout(DEFAULT_TIMEOUT, lines.next_line())
            .await
            .map_err(|_| Error::Handshake("no greeting from QEMU".into()))??
            .ok_or(Error::Closed)?;
        let greeting: Value = serde_json::from_slice(&greeting)
            .map_err(|e| Error::Handshake(format!("greeting is not JSON: {e}")))?;
        if greeting.get("QMP").is_none() {
            return Err(Error::Handshake(format!("unexpected greeting {greeting}")));
        }
        let (events, first_rx) = broadcast::channel(256);
        let (closed_tx, closed) = watch::channel(false);
        let qmp = Self {
            writer: Arc::new(Mutex::new(write)),
            pending: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
            events: events.clone(),
            closed,
        };
        tokio::spawn(read_loop(lines, qmp.pending.clone(), events, closed_tx));
        qmp.execute("qmp_capabilities", None).await?;
        Ok((qmp, first_rx))
    }

    /// Runs a command and returns its `return` value.
    pub async fn execute(&self, command: &str, arguments: Option<Value>) -> Result<Value, Error> {
        self.execute_timeout(command, arguments, DEFAULT_TIMEOUT)
            .await
    }

    /// Runs a command with an explicit timeout.
    pub async fn execute_timeout(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, Error> {
        if *self.closed.borrow() {
            return Err(Error::Closed);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({ "execute": command, "id": id });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending map").insert(id, tx);
        let mut line = msg.to_string();
        line.push('\n');
        let sent = self.writer.lock().await.write_all(line.as_bytes()).await;
        if let Err(e) = sent {
            self.pending.lock().expect("pending map").remove(&id);
            return Err(if e.kind() == std::io::ErrorKind::BrokenPipe {
                Error::Closed
            } else {
                Error::Io(e)
            });
        }
        let reply = tokio::time::timeout(timeout, rx).await;
        self.pending.lock().expect("pending map").remove(&id);
        match reply {
            Err(_) => Err(Error::Timeout {
                command: command.to_owned(),
            }),
            Ok(Err(_)) => Err(Error::Closed),
            Ok(Ok(result)) => result.map_err(|e| match e {
                Error::Command { class, desc, .. } => Error::Command {
                    command: command.to_owned(),
                    class,
                    desc,
                },
                other => other,
            }),
        }
    }

    /// Runs `getfd`, handing QEMU the file descriptor `fd` under `name`
    /// (SCM_RIGHTS on the QMP socket), e.g. a TAP device for `netdev_add`.
    pub async fn send_fd(&self, name: &str, fd: std::os::fd::BorrowedFd<'_>) -> Result<(), Error> {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        use std::os::fd::{AsRawFd, RawFd};
        if *self.closed.borrow() {
            return Err(Error::Closed);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let line = format!(
            "{}\n",
            json!({"execute": "getfd", "arguments": {"fdname": name}, "id": id})
        );
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending map").insert(id, tx);
        let fds: [RawFd; 1] = [fd.as_raw_fd()];
        {
            let writer = self.writer.lock().await;
            let sock: &tokio::net::UnixStream = writer.as_ref();
            loop {
                sock.writable().await?;
                let sent = sock.try_io(tokio::io::Interest::WRITABLE, || {
                    sendmsg::<()>(
                        sock.as_raw_fd(),
                        &[std::io::IoSlice::new(line.as_bytes())],
                        &[ControlMessage::ScmRights(&fds)],
                        MsgFlags::empty(),
                        None,
                    )
                    .map_err(std::io::Error::from)
                });
                match sent {
                    Ok(n) if n == line.len() => break,
                    Ok(_) => {
                        return Err(Error::Io(std::io::Error::other("short write of getfd")));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(Error::Io(e)),
                }
            }
        }
        match tokio::time::timeout(DEFAULT_TIMEOUT, rx).await {
            Err(_) => Err(Error::Timeout {
                command: "getfd".into(),
            }),
            Ok(Err(_)) => Err(Error::Closed),
            Ok(Ok(r)) => r.map(drop).map_err(|e| match e {
                Error::Command { class, desc, .. } => Error::Command {
                    command: "getfd".into(),
                    class,
                    desc,
                },
                other => other,
            }),
        }
    }

    /// A new receiver of events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<QmpEvent> {
        self.events.subscribe()
    }

    /// Resolves when the connection closes, i.e. when QEMU exits.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

/// The lines QEMU sends, read in whatever pieces the socket gives.
struct Lines {
    read: OwnedReadHalf,
    framer: LineFramer,
    ready: VecDeque<Vec<u8>>,
}

impl Lines {
    fn new(read: OwnedReadHalf) -> Self {
        Self {
            read,
            framer: LineFramer::default(),
            ready: VecDeque::new(),
        }
    }

    /// The next line, or `None` once the socket is closed.
    async fn next_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            let n = self.read.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            self.ready.extend(self.framer.push(&buf[..n]));
        }
    }
}

async fn read_loop(
    mut lines: Lines,
    pending: Pending,
    events: broadcast::Sender<QmpEvent>,
    closed: watch::Sender<bool>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        match framing::parse(&line) {
            Message::Event(event) => {
                let _ = events.send(event);
            }
            Message::Reply { id, result } => {
                if let Some(tx) = pending.lock().expect("pending map").remove(&id) {
                    let _ = tx.send(result);
                }
            }
            Message::Ignored => {}
        }
    }
    let _ = closed.send(true);
    pending.lock().expect("pending map").clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::UnixListener;

    /// A fake QEMU that greets, answers commands and emits one event.
    async fn fake_qemu(listener: UnixListener) {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        write
            .write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
            .await
            .unwrap();
        let mut lines = BufReader::new(read).lines();
        while let Some(line) = lines.next_line().await.unwrap() {
            let msg: Value = serde_json::from_str(&line).unwrap();
            let id = msg["id"].clone();
            let reply = match msg["execute"].as_str().unwrap() {
                "qmp_capabilities" => json!({"return": {}, "id": id}),
                "query-status" => {
                    write
                        .write_all(b"{\"event\": \"STOP\", \"data\": {}}\n")
                        .await
                        .unwrap();
                    json!({"return": {"status": "paused"}, "id": id})
                }
                "quit" => return,
                _ => json!({"error": {"class": "CommandNotFound", "desc": "nope"}, "id": id}),
            };
            write
                .write_all(format!("{reply}\n").as_bytes())
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn replies_events_errors_and_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(fake_qemu(listener));
        let (qmp, mut events) = Qmp::connect(&path).await.unwrap();
        let status = qmp.execute("query-status", None).await.unwrap();
        assert_eq!(status["status"], "paused");
        assert_eq!(events.recv().await.unwrap().event, "STOP");
        let err = qmp.execute("bogus", None).await.unwrap_err();
        assert!(
            matches!(&err, Error::Command { command, class, .. } if command == "bogus" && class == "CommandNotFound"),
            "{err:?}"
        );
        let quit = qmp.execute("quit", None).await.unwrap_err();
        assert!(matches!(quit, Error::Closed), "{quit:?}");
        qmp.closed().await;
        assert!(qmp.is_closed());
        assert!(matches!(
            qmp.execute("query-status", None).await,
            Err(Error::Closed)
        ));
    }
}
