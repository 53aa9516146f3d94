use anyhow::Context;
use ferrovirt_client::Client;
use serde_json::{Value, json};

use crate::args::{Format, NetworkCommand, NetworkCreateArgs, NicCommand};
use crate::commands::instance::{edit_loop, spec_file};
use crate::output::{structured, table};

/// `MAC,IP[,NAME]`
fn parse_host(arg: &str) -> anyhow::Result<Value> {
    let f: Vec<&str> = arg.split(',').collect();
    match f.as_slice() {
        [mac, ip] => Ok(json!({"mac": mac, "ip": ip})),
        [mac, ip, name] => Ok(json!({"mac": mac, "ip": ip, "name": name})),
        _ => anyhow::bail!("--host {arg}: expected MAC,IP[,NAME]"),
    }
}

fn spec_from_args(a: &NetworkCreateArgs) -> anyhow::Result<Value> {
    let mut spec = spec_file(a.file.as_deref())?;
    let m = spec.as_object_mut().expect("mapping");
    m.insert("name".into(), json!(a.name));
    let mut set = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    };
    set("type", &a.kind);
    set("domain", &a.domain);
    set("parent", &a.parent);
    set("macvtap_mode", &a.mode);
    if a.no_autostart {
        m.insert("autostart".into(), json!(false));
    }
    if a.ipv4.is_some() || a.dhcp_start.is_some() || a.dhcp_end.is_some() || !a.hosts.is_empty() {
        let v = m.entry("ipv4").or_insert(json!({}));
        let v = v.as_object_mut().context("ipv4 must be a mapping")?;
        if let Some(x) = &a.ipv4 {
            v.insert("address".into(), json!(x));
        }
        if let Some(x) = &a.dhcp_start {
            v.insert("dhcp_start".into(), json!(x));
        }
        if let Some(x) = &a.dhcp_end {
            v.insert("dhcp_end".into(), json!(x));
        }
        if !a.hosts.is_empty() {
            let hosts: Vec<Value> = a
                .hosts
                .iter()
                .map(|h| parse_host(h))
                .collect::<Result<_, _>>()?;
            v.insert("hosts".into(), json!(hosts));
        }
    }
    Ok(spec)
}

pub async fn run(c: &Client, f: Format, cmd: NetworkCommand) -> anyhow::Result<()> {
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
            c.network_action(&name, "start").await?;
            println!("Network {name} started.");
        }
        NetworkCommand::Stop { name } => {
            c.network_action(&name, "stop").await?;
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

pub async fn nic(c: &Client, f: Format, cmd: NicCommand) -> anyhow::Result<()> {
    match cmd {
        NicCommand::Add {
            name,
            network,
            model,
            mac,
            vlan,
        } => {
            let mut nic = json!({"network": network});
            if let Some(m) = model {
                nic["model"] = json!(m);
            }
            if let Some(m) = mac {
                nic["mac"] = json!(m);
            }
            if let Some(v) = vlan {
                nic["vlan"] = json!(v);
            }
            let nic = serde_json::from_value(nic).context("bad NIC options")?;
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
