//! `console` and `logs`: an instance's serial console and QEMU's log.

use std::io::{IsTerminal, Write};

use clap::Subcommand;
use ferrovirt_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Attach to the serial console (Ctrl-] detaches), or print its history.
    Console {
        name: String,
        /// Print the console history instead of attaching.
        #[arg(long)]
        log: bool,
        /// With --log: only the last N bytes (the daemon reads only those,
        /// reaching into the rotated console.log.1 … when needed).
        #[arg(long, value_name = "N", requires = "log")]
        tail: Option<u64>,
    },
    /// Print QEMU's own log of an instance.
    Logs {
        name: String,
        /// Only the last N bytes.
        #[arg(long, value_name = "N")]
        tail: Option<u64>,
    },
}

impl ConsoleCommand {
    pub fn instance_arg(&mut self) -> &mut String {
        match self {
            Self::Console { name, .. } | Self::Logs { name, .. } => name,
        }
    }

    pub async fn run(self, c: &Client) -> anyhow::Result<()> {
        match self {
            Self::Console {
                name,
                log: true,
                tail,
            } => history(c, &name, "console", tail).await,
            Self::Console {
                name, log: false, ..
            } => attach(c, &name).await,
            Self::Logs { name, tail } => history(c, &name, "qemu", tail).await,
        }
    }
}

/// The detach key, Ctrl-].
const DETACH: u8 = 0x1d;

async fn history(c: &Client, name: &str, log: &str, tail: Option<u64>) -> anyhow::Result<()> {
    let bytes = c.log(name, log, tail).await?;
    std::io::stdout().write_all(&bytes)?;
    Ok(())
}

/// Restores the terminal when the console ends, however it ends.
struct RawMode;

impl RawMode {
    fn enable() -> anyhow::Result<Self> {
        crossterm::terminal::enable_raw_mode()?;
        Ok(Self)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

async fn attach(c: &Client, name: &str) -> anyhow::Result<()> {
    let console = c.console(name).await?;
    let (mut from_guest, mut to_guest) = tokio::io::split(console);
    let interactive = std::io::stdin().is_terminal();
    let _raw = if interactive {
        eprintln!("Connected to the console of {name}. Press Ctrl-] to detach.\r");
        Some(RawMode::enable()?)
    } else {
        None
    };
    let (keys_tx, mut keys_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    // Blocking stdin reads live on their own thread.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 1024];
        loop {
            match std::io::Read::read(&mut stdin, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if keys_tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut stdout = tokio::io::stdout();
    let mut buf = vec![0u8; 8192];
    let mut stdin_open = true;
    loop {
        tokio::select! {
            n = from_guest.read(&mut buf) => match n {
                Ok(0) | Err(_) => {
                    drop(_raw);
                    eprintln!("\r\nThe console of {name} closed (the instance stopped).");
                    return Ok(());
                }
                Ok(n) => {
                    stdout.write_all(&buf[..n]).await?;
                    stdout.flush().await?;
                }
            },
            keys = keys_rx.recv(), if stdin_open => match keys {
                Some(keys) => {
                    if interactive && let Some(pos) = keys.iter().position(|b| *b == DETACH) {
                        to_guest.write_all(&keys[..pos]).await?;
                        drop(_raw);
                        eprintln!("\r\nDetached from the console of {name}.");
                        return Ok(());
                    }
                    to_guest.write_all(&keys).await?;
                }
                None => stdin_open = false,
            },
        }
    }
}
