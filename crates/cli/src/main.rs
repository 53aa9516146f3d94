//! ferrovirt: the command-line client. It speaks only the REST API.

mod args;
mod commands;
mod output;
mod progress;
mod remotes;

use clap::Parser;
use ferrovirt_client::{Client, ClientError};

use crate::args::{Cli, Command, HostCommand};
use crate::commands::{
    console, disk, host, instance, monitor, network, operation, snapshot, state, storage,
};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        match e.downcast_ref::<ClientError>() {
            Some(ClientError::Api(body)) => eprintln!("Error: {}", body.error),
            _ => eprintln!("Error: {e:#}"),
        }
        std::process::exit(1);
    }
}

/// The instance argument of a command, where `REMOTE:NAME` may pick a remote.
fn instance_arg(cmd: &mut Command) -> Option<&mut String> {
    use crate::args::{DiskCommand, NicCommand, SnapshotCommand};
    match cmd {
        Command::Show { name }
        | Command::Edit { name }
        | Command::Set { name, .. }
        | Command::Delete { name, .. }
        | Command::Start { name }
        | Command::Stop { name, .. }
        | Command::Pause { name }
        | Command::Resume { name }
        | Command::Reboot { name }
        | Command::Reset { name }
        | Command::Console { name, .. }
        | Command::Logs { name }
        | Command::Save { name, .. } => Some(name),
        Command::Stats {
            name: Some(name), ..
        } => Some(name),
        Command::Create(a) => Some(&mut a.name),
        Command::Migrate(a) => Some(&mut a.name),
        Command::Clone { source, .. } => Some(source),
        Command::Snapshot(
            SnapshotCommand::Create { name, .. }
            | SnapshotCommand::List { name }
            | SnapshotCommand::Show { name, .. }
            | SnapshotCommand::Revert { name, .. }
            | SnapshotCommand::Delete { name, .. },
        ) => Some(name),
        Command::Nic(
            NicCommand::Add { name, .. }
            | NicCommand::Remove { name, .. }
            | NicCommand::List { name },
        ) => Some(name),
        Command::Disk(
            DiskCommand::Detach { name, .. }
            | DiskCommand::List { name }
            | DiskCommand::Insert { name, .. }
            | DiskCommand::Eject { name, .. }
            | DiskCommand::Limit { name, .. },
        ) => Some(name),
        Command::Disk(DiskCommand::Attach(a)) => Some(&mut a.name),
        _ => None,
    }
}

async fn run(mut cli: Cli) -> anyhow::Result<()> {
    let config_dir = cli.config_dir.clone().unwrap_or_else(remotes::default_dir);
    if let Some(arg) = instance_arg(&mut cli.command)
        && let Some((remote, name)) = arg.clone().split_once(':')
    {
        if cli.remote.as_deref().is_some_and(|r| r != remote) {
            anyhow::bail!("{remote}:{name} names a different remote than --remote");
        }
        cli.remote = Some(remote.to_owned());
        *arg = name.to_owned();
    }
    let c = match &cli.remote {
        Some(name) => remotes::client(&config_dir, name)?,
        None => Client::new(&cli.socket)?,
    };
    let f = cli.format;
    match cli.command {
        Command::Create(args) => instance::create(&c, f, *args).await,
        Command::List => instance::list(&c, f).await,
        Command::Show { name } => instance::show(&c, f, &name).await,
        Command::Edit { name } => instance::edit(&c, &name).await,
        Command::Set { name, assignments } => instance::set(&c, f, &name, &assignments).await,
        Command::Delete { name, force } => instance::delete(&c, &name, force).await,
        Command::Start { name } => {
            state::simple(&c, &name, ferrovirt_api::StateAction::Start).await
        }
        Command::Stop {
            name,
            force,
            timeout,
        } => state::stop(&c, &name, force, timeout).await,
        Command::Pause { name } => {
            state::simple(&c, &name, ferrovirt_api::StateAction::Pause).await
        }
        Command::Resume { name } => {
            state::simple(&c, &name, ferrovirt_api::StateAction::Resume).await
        }
        Command::Reboot { name } => {
            state::simple(&c, &name, ferrovirt_api::StateAction::Reboot).await
        }
        Command::Reset { name } => {
            state::simple(&c, &name, ferrovirt_api::StateAction::Reset).await
        }
        Command::Console { name, log: true } => console::history(&c, &name, "console").await,
        Command::Console { name, log: false } => console::attach(&c, &name).await,
        Command::Logs { name } => console::history(&c, &name, "qemu").await,
        Command::Host(HostCommand::Check) => host::check(&c, f).await,
        Command::Host(HostCommand::Info) => host::info(&c, f).await,
        Command::Host(HostCommand::Token { name }) => {
            println!("{}", c.new_token(&name).await?);
            Ok(())
        }
        Command::Remote(cmd) => commands::remote::run(&config_dir, f, cmd).await,
        Command::Migrate(args) => commands::remote::migrate(&c, &config_dir, *args).await,
        Command::Stats { name, watch } => commands::stats::run(&c, f, name, watch).await,
        Command::Monitor => monitor::follow(&c, f).await,
        Command::Snapshot(cmd) => snapshot::run(&c, f, cmd).await,
        Command::Clone {
            source,
            name,
            linked,
            from_snapshot,
            detach,
        } => {
            let req = ferrovirt_api::ClonePost {
                name,
                linked,
                from_snapshot,
            };
            snapshot::clone(&c, &source, req, detach).await
        }
        Command::Save { name, file, detach } => snapshot::save(&c, &name, file, detach).await,
        Command::Restore { file, detach } => snapshot::restore(&c, &file, detach).await,
        Command::Operation(cmd) => operation::run(&c, f, cmd).await,
        Command::Network(cmd) => network::run(&c, f, cmd).await,
        Command::Nic(cmd) => network::nic(&c, f, cmd).await,
        Command::Pool(cmd) => storage::pool(&c, f, cmd).await,
        Command::Volume(cmd) => storage::volume(&c, f, cmd).await,
        Command::Disk(cmd) => disk::run(&c, f, cmd).await,
    }
}
