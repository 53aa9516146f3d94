//! `network`: virtual networks.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ferrovirt_api::{DhcpHost, MacvtapMode, NetworkAction, NetworkType};
use ferrovirt_client::Client;
use serde_json::Value;

use super::spec::{mapping, set, spec_file, value};
use super::values::{api_enum, dhcp_host_flag};
use crate::cli::Format;
use crate::editor::edit_loop;
use crate::output::{structured, table};

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Define a network and start it.
    Create(Box<NetworkCreateArgs>),
    List,
    Show {
        name: String,
    },
    /// Edit a network's spec in $EDITOR.
    Edit {
        name: String,
    },
    /// Delete a network (refused while instances use it).
    Delete {
        name: String,
    },
    Start {
        name: String,
    },
    Stop {
        name: String,
    },
    /// DHCP leases, with the instance owning each MAC.
    Leases {
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    pub name: String,
    /// YAML spec file; flags override its fields.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// nat, routed, isolated, open, bridge, macvtap or ovs.
    #[arg(long = "type", value_parser = api_enum::<NetworkType>)]
    pub kind: Option<NetworkType>,
    /// The host's address and prefix on the network, e.g. 192.168.150.1/24
    /// (a free subnet is chosen when absent).
    #[arg(long)]
    pub ipv4: Option<String>,
    #[arg(long)]
    pub dhcp_start: Option<String>,
    #[arg(long)]
    pub dhcp_end: Option<String>,
    /// Static DHCP host MAC,IP[,NAME]; repeatable.
    #[arg(long = "host", value_parser = parse_host)]
    pub hosts: Vec<DhcpHost>,
    #[arg(long)]
    pub domain: Option<String>,
    /// bridge: the host bridge; macvtap: the host interface; ovs: the OVS bridge.
    #[arg(long)]
    pub parent: Option<String>,
    /// macvtap: vepa, bridge, private or passthrough.
    #[arg(long, value_parser = api_enum::<MacvtapMode>)]
    pub mode: Option<MacvtapMode>,
    #[arg(long)]
    pub no_autostart: bool,
}

fn parse_host(arg: &str) -> Result<DhcpHost, String> {
    dhcp_host_flag(arg).map_err(|e| format!("{e:#}"))
}

impl NetworkCommand {
    pub async fn run(self, c: &Client, f: Format) -> anyhow::Result<()> {
        run(c, f, self).await
    }
}

/// Builds the spec document from `-f` and the flags (flags win).
fn spec_from_args(a: &NetworkCreateArgs) -> anyhow::Result<Value> {
    let mut spec = spec_file(a.file.as_deref())?;
    let m = spec.as_object_mut().expect("mapping");
    m.insert("name".into(), value(&a.name)?);
    set(m, "type", a.kind)?;
    set(m, "domain", a.domain.as_ref())?;
    set(m, "parent", a.parent.as_ref())?;
    set(m, "macvtap_mode", a.mode)?;
    if a.no_autostart {
        set(m, "autostart", Some(false))?;
    }
    if a.ipv4.is_some() || a.dhcp_start.is_some() || a.dhcp_end.is_some() || !a.hosts.is_empty() {
        let v = mapping(m, "ipv4")?;
        set(v, "address", a.ipv4.as_ref())?;
        set(v, "dhcp_start", a.dhcp_start.as_ref())?;
        set(v, "dhcp_end", a.dhcp_end.as_ref())?;
        if !a.hosts.is_empty() {
            set(v, "hosts", Some(&a.hosts))?;
        }
    }
    Ok(spec)
}

async fn run(c: &Client, f: Format, cmd: NetworkCommand) -> anyhow::Result<()> {
    match cmd {
        NetworkCommand::Create(a) => {
            let net = c.create_network(&spec_from_args(&a)?).await?;
            if !structured(f, &net)? {
                let addr = net
                    .spec
                    .ipv4
                    .as_ref()
                    .map(|v| v.address.clone())
                    .unwrap_or_default();
                println!("Network {} created and started {addr}", a.name);
            }
        }
        NetworkCommand::List => {
            let nets = c.networks().await?;
            if !structured(f, &nets)? {
                table(
                    &["NAME", "TYPE", "ACTIVE", "BRIDGE", "IPV4", "USED BY"],
                    nets.iter()
                        .map(|n| {
                            vec![
                                n.spec.name.clone(),
                                format!("{:?}", n.spec.kind).to_lowercase(),
                                if n.active { "yes" } else { "no" }.into(),
                                n.bridge.clone().unwrap_or_default(),
                                n.spec
                                    .ipv4
                                    .as_ref()
                                    .map(|v| v.address.clone())
                                    .unwrap_or_default(),
                                n.used_by.join(","),
                            ]
                        })
                        .collect(),
                );
            }
        }
        NetworkCommand::Show { name } => {
            let n = c.network(&name).await?;
            if !structured(f, &n)? {
                print!("{}", serde_norway::to_string(&n)?);
            }
        }
        NetworkCommand::Edit { name } => {
            let n = c.network(&name).await?;
            let text = serde_norway::to_string(&n.spec)?;
            let n = name.as_str();
            if edit_loop(n, text, |spec| async move {
                c.replace_network(n, &spec).await.map(drop)
            })
            .await?
            {
                println!("Network {name} updated.");
            }
        }
        NetworkCommand::Delete { name } => {
            c.delete_network(&name).await?;
            println!("Network {name} deleted.");
        }
        NetworkCommand::Start { name } => {
            c.network_action(&name, NetworkAction::Start).await?;
            println!("Network {name} started.");
        }
        NetworkCommand::Stop { name } => {
            c.network_action(&name, NetworkAction::Stop).await?;
            println!("Network {name} stopped.");
        }
        NetworkCommand::Leases { name } => {
            let leases = c.leases(&name).await?;
            if !structured(f, &leases)? {
                table(
                    &["MAC", "IP", "HOSTNAME", "INSTANCE", "EXPIRES"],
                    leases
                        .iter()
                        .map(|l| {
                            vec![
                                l.mac.clone(),
                                l.ip.clone(),
                                l.hostname.clone().unwrap_or_default(),
                                l.instance.clone().unwrap_or_default(),
                                l.expires.to_string(),
                            ]
                        })
                        .collect(),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(subcommand)]
        cmd: NetworkCommand,
    }

    #[test]
    fn network_flags_become_typed_spec_fields() {
        let argv = [
            "probe",
            "create",
            "lan",
            "--type",
            "routed",
            "--ipv4",
            "10.9.0.1/24",
            "--host",
            "52:54:00:00:00:09,10.9.0.9,db",
            "--mode",
            "vepa",
            "--no-autostart",
        ];
        let NetworkCommand::Create(a) = Probe::try_parse_from(argv).unwrap().cmd else {
            panic!("not create");
        };
        let spec: ferrovirt_api::NetworkSpec =
            serde_json::from_value(spec_from_args(&a).unwrap()).unwrap();
        assert_eq!(spec.kind, NetworkType::Routed);
        assert_eq!(spec.macvtap_mode, MacvtapMode::Vepa);
        assert!(!spec.autostart);
        let ipv4 = spec.ipv4.unwrap();
        assert_eq!(ipv4.address, "10.9.0.1/24");
        assert_eq!(ipv4.hosts[0].name.as_deref(), Some("db"));
        let bad = ["probe", "create", "lan", "--type", "token-ring"];
        assert!(Probe::try_parse_from(bad).is_err());
    }
}
