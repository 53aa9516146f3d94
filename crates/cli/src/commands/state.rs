//! `start`, `stop`, `pause`, `resume`, `reboot`, `reset`: an instance's run state.

use clap::Subcommand;
use ferrovirt_api::{StateAction, StatePut};
use ferrovirt_client::Client;

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Start an instance.
    Start { name: String },
    /// Stop an instance: ACPI shutdown, then force off after the timeout.
    Stop {
        name: String,
        /// Kill QEMU at once instead of asking the guest.
        #[arg(long)]
        force: bool,
        /// Seconds to wait for the guest before forcing it off.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Pause an instance's vCPUs.
    Pause { name: String },
    /// Resume a paused instance.
    Resume { name: String },
    /// Reboot an instance with the guest's cooperation (ACPI).
    Reboot { name: String },
    /// Hard-reset an instance.
    Reset { name: String },
}

impl StateCommand {
    pub fn instance_arg(&mut self) -> &mut String {
        match self {
            Self::Start { name }
            | Self::Stop { name, .. }
            | Self::Pause { name }
            | Self::Resume { name }
            | Self::Reboot { name }
            | Self::Reset { name } => name,
        }
    }

    pub async fn run(self, c: &Client) -> anyhow::Result<()> {
        match self {
            Self::Start { name } => simple(c, &name, StateAction::Start).await,
            Self::Stop {
                name,
                force,
                timeout,
            } => stop(c, &name, force, timeout).await,
            Self::Pause { name } => simple(c, &name, StateAction::Pause).await,
            Self::Resume { name } => simple(c, &name, StateAction::Resume).await,
            Self::Reboot { name } => simple(c, &name, StateAction::Reboot).await,
            Self::Reset { name } => simple(c, &name, StateAction::Reset).await,
        }
    }
}

fn done(name: &str, action: StateAction, status: &str) {
    let verb = match action {
        StateAction::Start => "started",
        StateAction::Stop => "stopped",
        StateAction::Pause => "paused",
        StateAction::Resume => "resumed",
        StateAction::Reboot => "asked to reboot",
        StateAction::Reset => "reset",
    };
    println!("Instance {name} {verb} (now {status}).");
}

async fn simple(c: &Client, name: &str, action: StateAction) -> anyhow::Result<()> {
    let inst = c.action(name, action).await?;
    done(name, action, inst.state.status.as_str());
    Ok(())
}

async fn stop(c: &Client, name: &str, force: bool, timeout: u64) -> anyhow::Result<()> {
    let req = StatePut {
        action: StateAction::Stop,
        force,
        timeout: Some(timeout),
    };
    let inst = c.change_state(name, &req).await?;
    println!(
        "Instance {name} stopped (now {}: {}).",
        inst.state.status.as_str(),
        inst.state.reason
    );
    Ok(())
}
