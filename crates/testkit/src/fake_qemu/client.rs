//! The test's handle on a running fake QEMU, through its control socket.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// A fake QEMU seen from a test.
#[derive(Debug, Clone)]
pub struct FakeQemu {
    control: PathBuf,
}

/// Why a control command failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot talk to the fake QEMU at {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the fake QEMU at {path} refused `{command}`: {reply}")]
    Refused {
        path: String,
        command: String,
        reply: String,
    },
}

impl FakeQemu {
    /// The fake of the instance whose runtime dir (where `qmp.sock` is) is
    /// `runtime_dir`.
    pub fn in_runtime_dir(runtime_dir: &Path) -> Self {
        Self {
            control: super::control_socket(&runtime_dir.join("qmp.sock")),
        }
    }

    /// Sends one control command (see the `control` module) and returns
    /// its JSON answer.
    pub async fn send(&self, command: &str) -> Result<Value, ControlError> {
        let path = self.control.display().to_string();
        let io = |source| ControlError::Io {
            path: path.clone(),
            source,
        };
        let mut stream = UnixStream::connect(&self.control).await.map_err(io)?;
        stream
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(io)?;
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .await
            .map_err(io)?;
        let reply: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if reply["ok"] != true {
            return Err(ControlError::Refused {
                path,
                command: command.to_owned(),
                reply: line.trim().to_owned(),
            });
        }
        Ok(reply)
    }

    /// The names of the QMP commands the fake received, in order.
    pub async fn commands(&self) -> Result<Vec<String>, ControlError> {
        let reply = self.send("commands").await?;
        Ok(reply["commands"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["execute"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The fake's runstate.
    pub async fn runstate(&self) -> Result<String, ControlError> {
        let reply = self.send("status").await?;
        Ok(reply["status"].as_str().unwrap_or_default().to_owned())
    }
}
