use ferrovirt_api::{StateAction, StatePut};
use ferrovirt_client::Client;

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

pub async fn simple(c: &Client, name: &str, action: StateAction) -> anyhow::Result<()> {
    let inst = c.action(name, action).await?;
    done(name, action, inst.state.status.as_str());
    Ok(())
}

pub async fn stop(c: &Client, name: &str, force: bool, timeout: u64) -> anyhow::Result<()> {
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
