//! Applying Ferrovirt's nftables table with `nft`, atomically as a whole.

use ferrovirt_core::Error;
use ferrovirt_core::runner::{Command, CommandRunner, RunError};

use crate::firewall::{FirewallNet, ruleset};

/// Whether the host has Ferrovirt's table.
async fn table_exists(runner: &dyn CommandRunner) -> bool {
    let cmd = Command::new("nft").args(["list", "table", "inet", "ferrovirt"]);
    runner.run(&cmd).await.is_ok()
}

/// Replaces Ferrovirt's table with the rules of `nets` (the active managed
/// networks); with none, removes it, and leaves nft alone when there is
/// nothing of ours.
pub async fn apply(runner: &dyn CommandRunner, nets: &[FirewallNet]) -> Result<(), Error> {
    if nets.is_empty() && !table_exists(runner).await {
        return Ok(());
    }
    let cmd = Command::new("nft").args(["-f", "-"]).stdin(ruleset(nets));
    runner.run(&cmd).await.map(drop).map_err(|e| match e {
        RunError::NotFound { .. } => Error::internal(
            "cannot apply Ferrovirt's firewall: nft is not installed; install nftables",
        ),
        e => Error::internal(format!("nft refused Ferrovirt's ruleset: {}", e.reason())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovirt_api::NetworkType;
    use ferrovirt_core::fake_runner::{FakeRunner, Reply};

    #[tokio::test]
    async fn the_table_is_replaced_in_one_nft_run() {
        let fake = FakeRunner::new();
        let nets = [FirewallNet {
            name: "n".into(),
            kind: NetworkType::Nat,
            subnet: "10.1.0.0/24".parse().unwrap(),
        }];
        apply(&fake, &nets).await.unwrap();
        let calls = fake.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].line(), "nft -f -");
        assert_eq!(calls[0].stdin.as_deref(), Some(ruleset(&nets).as_bytes()));
        fake.on("nft", &["-f"], Reply::fail(1, "Error: syntax error"));
        let err = apply(&fake, &nets).await.unwrap_err();
        assert_eq!(
            err.message,
            "nft refused Ferrovirt's ruleset: Error: syntax error"
        );
    }

    #[tokio::test]
    async fn nothing_of_ours_means_nft_is_left_alone() {
        let fake = FakeRunner::new();
        fake.on(
            "nft",
            &["list"],
            Reply::fail(1, "No such file or directory"),
        );
        apply(&fake, &[]).await.unwrap();
        assert_eq!(fake.lines(), ["nft list table inet ferrovirt"]);
        // Our table is there: it is removed.
        let fake = FakeRunner::new();
        apply(&fake, &[]).await.unwrap();
        assert_eq!(fake.lines(), ["nft list table inet ferrovirt", "nft -f -"]);
    }
}
