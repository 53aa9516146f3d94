//! The serial console hub of a running instance.
//!
//! QEMU serves the guest's serial port on a unix socket. A QEMU socket
//! chardev takes one client at a time: the hub is that client; it writes
//! every byte to the console log (size-capped, rotated: `console_log.rs`)
//! and fans the output out to every attached API client, merging their
//! input. What the guest prints while no daemon runs is not logged.

use std::path::Path;

use crate::console_log::RotatingLog;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc};

#[derive(Debug)]
pub struct ConsoleHub {
    output: broadcast::Sender<Bytes>,
    input: mpsc::Sender<Bytes>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ConsoleHub {
    /// Connects to QEMU's console socket; the output goes to `log` too.
    pub async fn connect(path: &Path, log: RotatingLog) -> std::io::Result<Self> {
        let stream = UnixStream::connect(path).await?;
        let (mut read, mut write) = stream.into_split();
        let (output, _) = broadcast::channel::<Bytes>(1024);
        let (input, mut input_rx) = mpsc::channel::<Bytes>(64);
        let out = output.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut log = Some(log);
            while let Ok(n) = read.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let bytes = Bytes::copy_from_slice(&buf[..n]);
                let _ = out.send(bytes.clone());
                log = match log.take() {
                    Some(l) => write_log(l, bytes).await,
                    None => None,
                };
            }
        });
        let writer = tokio::spawn(async move {
            while let Some(bytes) = input_rx.recv().await {
                if write.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            output,
            input,
            tasks: vec![reader, writer],
        })
    }

    /// Output from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        self.output.subscribe()
    }

    /// Sends keystrokes to the guest.
    pub async fn send(&self, bytes: Bytes) {
        let _ = self.input.send(bytes).await;
    }
}

/// Appends to the log off the runtime; a log that fails is dropped (and
/// said once) rather than stopping the console.
async fn write_log(mut log: RotatingLog, bytes: Bytes) -> Option<RotatingLog> {
    let written = tokio::task::spawn_blocking(move || log.append(&bytes).map(|()| log)).await;
    match written {
        Ok(Ok(log)) => Some(log),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot write the console log; console output is no longer logged");
            None
        }
        Err(_) => None,
    }
}

impl Drop for ConsoleHub {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
