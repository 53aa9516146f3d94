use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// ferrovirtd — the Ferrovirt daemon.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Unix socket of the REST API.
    #[arg(
        long,
        env = "FERROVIRT_SOCKET",
        default_value = "/run/ferrovirt/ferrovirt.sock"
    )]
    pub socket: PathBuf,
    /// Persistent state: database, logs, caches.
    #[arg(
        long,
        env = "FERROVIRT_STATE_DIR",
        default_value = "/var/lib/ferrovirt"
    )]
    pub state_dir: PathBuf,
    /// Runtime files: one directory per running VM (QMP and console sockets, pidfile).
    #[arg(long, env = "FERROVIRT_RUNTIME_DIR", default_value = "/run/ferrovirt")]
    pub runtime_dir: PathBuf,
    /// QEMU system emulator binary.
    #[arg(long, env = "FERROVIRT_QEMU", default_value = ferrovirt_qemu::probe::DEFAULT_BINARY)]
    pub qemu: String,
    /// Also serve the API over TLS (mutual, trust by certificate
    /// fingerprint) on this address, e.g. `10.0.0.2:8443`. No plaintext TCP.
    #[arg(long, env = "FERROVIRT_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// TLS listener: seconds a new connection has to finish its handshake
    /// (and each request to send its headers) before it is dropped.
    #[arg(long, env = "FERROVIRT_TLS_HANDSHAKE_TIMEOUT", default_value_t = 10.0)]
    pub tls_handshake_timeout: f64,
    /// TLS listener: the most connections open at once; beyond it new ones
    /// are closed at once.
    #[arg(long, env = "FERROVIRT_TLS_MAX_CONNECTIONS", default_value_t = 512)]
    pub tls_max_connections: usize,
    /// Also audit mutating requests over the unix socket (remote ones
    /// always are), in STATE/audit.log.
    #[arg(long, env = "FERROVIRT_AUDIT_LOCAL", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub audit_local: bool,
    /// Do not create the `default` NAT network on the first start.
    #[arg(long, env = "FERROVIRT_NO_DEFAULT_NETWORK", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub no_default_network: bool,
    /// Refuse to start an instance when the memory of all running instances
    /// would exceed the host's memory times this ratio.
    #[arg(long, env = "FERROVIRT_MEMORY_OVERCOMMIT", default_value_t = 1.5)]
    pub memory_overcommit: f64,
    /// Group whose members may use the API socket (a name or a GID):
    /// the socket is 0660 and its dir 0750 for it. Default: `ferrovirt`
    /// when the host has that group; without one the socket is root's only.
    #[arg(long, env = "FERROVIRT_SOCKET_GROUP")]
    pub socket_group: Option<String>,
    /// Size cap of each instance's console log, in bytes: past it the log
    /// rotates (3 older files kept, `console.log.1` … `.3`).
    #[arg(long, env = "FERROVIRT_CONSOLE_LOG_SIZE", default_value_t = 2 * 1024 * 1024)]
    pub console_log_size: u64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}
