//! ferrovirt: the command-line client. It speaks only the REST API.

mod cli;
mod commands;
mod editor;
mod output;
mod progress;
mod remotes;

use clap::Parser;
use ferrovirt_client::{Client, ClientError};

use crate::cli::Cli;

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

async fn run(mut cli: Cli) -> anyhow::Result<()> {
    let config_dir = cli.config_dir.clone().unwrap_or_else(remotes::default_dir);
    if let Some(arg) = cli.command.instance_arg()
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
    cli.command.run(&c, cli.format, &config_dir).await
}
