//! The serial console hub of a running instance.
//!
//! QEMU serves the guest's serial port on a unix socket (and writes every
//! byte to the console log itself, so history survives the daemon). A QEMU
//! socket chardev takes one client at a time: the hub is that client and fans
//! the output out to every attached API client, merging their input.

use std::path::Path;

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
    /// Connects to QEMU's console socket.
    pub async fn connect(path: &Path) -> std::io::Result<Self> {
        let stream = UnixStream::connect(path).await?;
        let (mut read, mut write) = stream.into_split();
        let (output, _) = broadcast::channel::<Bytes>(1024);
        let (input, mut input_rx) = mpsc::channel::<Bytes>(64);
        let out = output.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = read.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let _ = out.send(Bytes::copy_from_slice(&buf[..n]));
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

impl Drop for ConsoleHub {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
