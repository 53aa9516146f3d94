//! `host`: validation, capabilities and join tokens of the daemon's host.

use clap::Subcommand;
use ferrovirt_api::{CheckStatus, TokenPost, TrustRole};
use ferrovirt_client::Client;

use crate::cli::Format;
use crate::output::{structured, table};

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Validate the host for virtualization (like virt-host-validate).
    Check,
    /// CPUs, memory, accelerator, machine types and CPU models.
    Info,
    /// Make a one-time join token for a client or host called NAME (an
    /// admin unless --restricted).
    Token {
        name: String,
        /// Only the instances named with --instance (and those it creates),
        /// no host paths outside the pools, no host-wide changes.
        #[arg(long)]
        restricted: bool,
        /// An instance the restricted client may manage (repeatable).
        #[arg(long = "instance", value_name = "INSTANCE", requires = "restricted")]
        instances: Vec<String>,
        /// The trust ends this many days from now.
        #[arg(long, value_name = "DAYS")]
        expires_in: Option<u32>,
    },
    /// The client certificates this host trusts.
    #[command(subcommand)]
    Trust(TrustCommand),
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// List trusted certificates: name, role, instances, expiry.
    List,
    /// Stop trusting a certificate (refused from its next request on).
    Remove { fingerprint: String },
}

impl HostCommand {
    pub async fn run(self, c: &Client, f: Format) -> anyhow::Result<()> {
        match self {
            Self::Check => check(c, f).await,
            Self::Info => info(c, f).await,
            Self::Token {
                name,
                restricted,
                instances,
                expires_in,
            } => {
                let req = TokenPost {
                    name,
                    role: if restricted {
                        TrustRole::Restricted
                    } else {
                        TrustRole::Admin
                    },
                    instances,
                    expires_in_days: expires_in,
                };
                println!("{}", c.token(&req).await?);
                Ok(())
            }
            Self::Trust(TrustCommand::List) => trust_list(c, f).await,
            Self::Trust(TrustCommand::Remove { fingerprint }) => {
                c.untrust(&fingerprint).await?;
                println!("Certificate {fingerprint} is no longer trusted.");
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

async fn trust_list(c: &Client, f: Format) -> anyhow::Result<()> {
    let list = c.trusted_clients().await?;
    if structured(f, &list)? {
        return Ok(());
    }
    table(
        &["NAME", "ROLE", "INSTANCES", "EXPIRES", "FINGERPRINT"],
        list.into_iter()
            .map(|t| {
                vec![
                    t.name,
                    serde_json::to_value(t.role)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    t.instances.join(", "),
                    t.expires
                        .map(|e| e.to_rfc3339())
                        .unwrap_or_else(|| "never".into()),
                    t.fingerprint,
                ]
            })
            .collect(),
    );
    Ok(())
}
