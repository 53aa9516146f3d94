//! The top of the command line: global flags and the list of commands. Each
//! command's own flags live next to its handler in `commands/`.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use ferrovirt_client::Client;

use crate::commands::clone::CloneArgs;
use crate::commands::console::ConsoleCommand;
use crate::commands::disk::DiskCommand;
use crate::commands::host::HostCommand;
use crate::commands::instance::InstanceCommand;
use crate::commands::migrate::MigrateArgs;
use crate::commands::network::NetworkCommand;
use crate::commands::nic::NicCommand;
use crate::commands::operation::OperationCommand;
use crate::commands::pool::PoolCommand;
use crate::commands::remote::RemoteCommand;
use crate::commands::save::SaveCommand;
use crate::commands::snapshot::SnapshotCommand;
use crate::commands::state::StateCommand;
use crate::commands::stats::StatsArgs;
use crate::commands::volume::VolumeCommand;
use crate::commands::{monitor, remote};

/// ferrovirt — manage virtual machines through ferrovirtd.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The daemon's API socket.
    #[arg(long, global = true, env = "FERROVIRT_SOCKET", default_value = ferrovirt_client::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Act on this remote host (see `ferrovirt remote add`) instead of the local daemon.
    #[arg(long, global = true, env = "FERROVIRT_REMOTE")]
    pub remote: Option<String>,
    /// Where the CLI keeps its TLS identity and remotes (default ~/.config/ferrovirt).
    #[arg(long, global = true, env = "FERROVIRT_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// Output format of lists and details.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Instance(InstanceCommand),
    #[command(flatten)]
    State(StateCommand),
    #[command(flatten)]
    Console(ConsoleCommand),
    /// The host: validation and capabilities.
    #[command(subcommand)]
    Host(HostCommand),
    /// Follow lifecycle events as they happen.
    Monitor,
    /// Snapshots of an instance: internal or external, with or without memory.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Clone an instance: full copies of its disks, or linked qcow2 overlays.
    Clone(CloneArgs),
    #[command(flatten)]
    Save(SaveCommand),
    /// Long-running operations.
    #[command(subcommand)]
    Operation(OperationCommand),
    /// Virtual networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Other Ferrovirt hosts reached over TLS.
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Move an instance to another host: live (running) or --offline.
    Migrate(Box<MigrateArgs>),
    /// Usage of running instances: CPU, memory, disks, NICs.
    Stats(StatsArgs),
    /// Network interfaces of an instance (hot-plugged when it runs).
    #[command(subcommand)]
    Nic(NicCommand),
    /// Storage pools.
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Volumes of storage pools (named POOL/VOLUME).
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Disks of an instance: attach, detach, cdrom media, I/O limits.
    #[command(subcommand)]
    Disk(DiskCommand),
}

impl Command {
    /// The instance argument of the command, where `REMOTE:NAME` may pick a
    /// remote.
    pub fn instance_arg(&mut self) -> Option<&mut String> {
        match self {
            Self::Instance(cmd) => cmd.instance_arg(),
            Self::State(cmd) => Some(cmd.instance_arg()),
            Self::Console(cmd) => Some(cmd.instance_arg()),
            Self::Snapshot(cmd) => Some(cmd.instance_arg()),
            Self::Clone(a) => Some(&mut a.source),
            Self::Save(cmd) => cmd.instance_arg(),
            Self::Migrate(a) => Some(&mut a.name),
            Self::Stats(a) => a.name.as_mut(),
            Self::Nic(cmd) => Some(cmd.instance_arg()),
            Self::Disk(cmd) => Some(cmd.instance_arg()),
            Self::Host(_)
            | Self::Monitor
            | Self::Operation(_)
            | Self::Network(_)
            | Self::Remote(_)
            | Self::Pool(_)
            | Self::Volume(_) => None,
        }
    }

    pub async fn run(self, c: &Client, f: Format, config_dir: &Path) -> anyhow::Result<()> {
        match self {
            Self::Instance(cmd) => cmd.run(c, f).await,
            Self::State(cmd) => cmd.run(c).await,
            Self::Console(cmd) => cmd.run(c).await,
            Self::Host(cmd) => cmd.run(c, f).await,
            Self::Monitor => monitor::follow(c, f).await,
            Self::Snapshot(cmd) => cmd.run(c, f).await,
            Self::Clone(a) => a.run(c).await,
            Self::Save(cmd) => cmd.run(c).await,
            Self::Operation(cmd) => cmd.run(c, f).await,
            Self::Network(cmd) => cmd.run(c, f).await,
            Self::Remote(cmd) => remote::run(config_dir, f, cmd).await,
            Self::Migrate(a) => a.run(c, config_dir).await,
            Self::Stats(a) => a.run(c, f).await,
            Self::Nic(cmd) => cmd.run(c, f).await,
            Self::Pool(cmd) => cmd.run(c, f).await,
            Self::Volume(cmd) => cmd.run(c, f).await,
            Self::Disk(cmd) => cmd.run(c, f).await,
        }
    }
}
