//! `nic`: network interfaces of an instance.

use clap::Subcommand;
use ferrovirt_api::{Nic, NicModel};
use ferrovirt_client::Client;

use super::values::api_enum;
use crate::cli::Format;
use crate::output::{structured, table};

#[derive(Debug, Subcommand)]
pub enum NicCommand {
    /// Add a NIC.
    Add {
        name: String,
        #[arg(long)]
        network: String,
        /// virtio, e1000 or rtl8139.
        #[arg(long, value_parser = api_enum::<NicModel>)]
        model: Option<NicModel>,
        #[arg(long)]
        mac: Option<String>,
        /// ovs networks: access VLAN.
        #[arg(long)]
        vlan: Option<u16>,
    },
    /// Remove the NIC with this MAC.
    Remove { name: String, mac: String },
    /// List an instance's NICs and their addresses.
    List { name: String },
}

impl NicCommand {
    pub fn instance_arg(&mut self) -> &mut String {
        match self {
            Self::Add { name, .. } | Self::Remove { name, .. } | Self::List { name } => name,
        }
    }

    pub async fn run(self, c: &Client, f: Format) -> anyhow::Result<()> {
        run(c, f, self).await
    }
}

async fn run(c: &Client, f: Format, cmd: NicCommand) -> anyhow::Result<()> {
    match cmd {
        NicCommand::Add {
            name,
            network,
            model,
            mac,
            vlan,
        } => {
            let nic = Nic {
                network,
                model: model.unwrap_or_default(),
                mac,
                vlan,
            };
            let inst = c.add_nic(&name, &nic).await?;
            let added = inst
                .spec
                .nics
                .last()
                .and_then(|n| n.mac.clone())
                .unwrap_or_default();
            println!("NIC {added} added to {name}.");
        }
        NicCommand::Remove { name, mac } => {
            c.remove_nic(&name, &mac).await?;
            println!("NIC {mac} removed from {name}.");
        }
        NicCommand::List { name } => {
            let inst = c.instance(&name).await?;
            if !structured(f, &inst.spec.nics)? {
                table(
                    &["MAC", "NETWORK", "MODEL", "VLAN", "IP"],
                    inst.spec
                        .nics
                        .iter()
                        .map(|n| {
                            let mac = n.mac.clone().unwrap_or_default();
                            let ip = inst
                                .state
                                .addresses
                                .iter()
                                .find(|a| a.mac == mac)
                                .map(|a| a.ip.clone())
                                .unwrap_or_default();
                            vec![
                                mac,
                                n.network.clone(),
                                format!("{:?}", n.model).to_lowercase(),
                                n.vlan.map(|v| v.to_string()).unwrap_or_default(),
                                ip,
                            ]
                        })
                        .collect(),
                );
            }
        }
    }
    Ok(())
}
