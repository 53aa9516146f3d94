//! `host`: validation, capabilities and join tokens of the daemon's host.

use clap::Subcommand;
use ferrovirt_api::CheckStatus;
use ferrovirt_client::Client;

use crate::cli::Format;
use crate::output::{structured, table};

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Validate the host for virtualization (like virt-host-validate).
    Check,
    /// CPUs, memory, accelerator, machine types and CPU models.
    Info,
    /// Make a one-time join token for a client or host called NAME.
    Token { name: String },
}

impl HostCommand {
    pub async fn run(self, c: &Client, f: Format) -> anyhow::Result<()> {
        match self {
            Self::Check => check(c, f).await,
            Self::Info => info(c, f).await,
            Self::Token { name } => {
                println!("{}", c.new_token(&name).await?);
                Ok(())
            }
        }
    }
}

async fn check(c: &Client, f: Format) -> anyhow::Result<()> {
    let check = c.host_check().await?;
    if !structured(f, &check)? {
        for item in &check.items {
            let status = serde_json::to_value(item.status)?;
            println!(
                "{:<26}: {:<4}  {}",
                item.name,
                status.as_str().unwrap_or(""),
                item.message
            );
            if let Some(fix) = &item.fix {
                println!("{:<26}        fix: {fix}", "");
            }
        }
        println!(
            "\nAccelerator: {} — {}",
            check.accel.accel, check.accel.reason
        );
    }
    if check.items.iter().any(|i| i.status == CheckStatus::Fail) {
        anyhow::bail!("the host failed at least one check");
    }
    Ok(())
}

async fn info(c: &Client, f: Format) -> anyhow::Result<()> {
    let info = c.host_info().await?;
    if structured(f, &info)? {
        return Ok(());
    }
    println!("Host:          {}", info.hostname);
    println!("CPUs:          {} ({})", info.cpus, info.cpu_model);
    println!("Memory:        {} MiB", info.memory_mib);
    println!(
        "Accelerator:   {} — {}",
        info.accel.accel, info.accel.reason
    );
    println!(
        "QEMU:          {} ({})",
        info.qemu.version, info.qemu.binary
    );
    println!(
        "qemu-img:      {}",
        info.qemu_img_version.as_deref().unwrap_or("missing")
    );
    println!("Accelerators:  {}", info.qemu.accelerators.join(", "));
    println!("CPU models:    {}", info.qemu.cpu_models.join(" "));
    println!();
    table(
        &["MACHINE", "DESCRIPTION"],
        info.qemu
            .machines
            .iter()
            .map(|m| vec![m.name.clone(), m.description.clone()])
            .collect(),
    );
    Ok(())
}
