use std::io::Write;

use anyhow::{Context, bail};
use ferrovirt_api::Instance;
use ferrovirt_client::{Client, ClientError};
use serde_json::{Map, Value, json};

use crate::args::{CreateArgs, Format};
use crate::output::{structured, table};

/// Parses a YAML document into JSON for the API. Syntax errors are reported
/// here; field validation (including unknown fields) happens in the daemon.
pub fn yaml_to_json(text: &str, origin: &str) -> anyhow::Result<Value> {
    let v: Value =
        serde_norway::from_str(text).with_context(|| format!("{origin} is not valid YAML"))?;
    if !v.is_object() {
        bail!("{origin} must be a YAML mapping of spec fields");
    }
    Ok(v)
}

/// Reads a YAML spec file, or starts from an empty mapping.
pub fn spec_file(path: Option<&std::path::Path>) -> anyhow::Result<Value> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            yaml_to_json(&text, &path.display().to_string())
        }
        None => Ok(json!({})),
    }
}

/// `PATH[,format=raw|qcow2][,bus=virtio|scsi|sata|ide][,readonly]`
pub fn parse_disk(arg: &str) -> anyhow::Result<Value> {
    let mut parts = arg.split(',');
    let path = parts.next().unwrap_or_default();
    let mut disk = Map::new();
    disk.insert("path".into(), json!(path));
    for opt in parts {
        match opt.split_once('=') {
            Some(("format", v)) => disk.insert("format".into(), json!(v)),
            Some(("bus", v)) => disk.insert("bus".into(), json!(v)),
            None if opt == "readonly" => disk.insert("readonly".into(), json!(true)),
            _ => bail!("--disk {arg}: unknown option {opt:?}; use format=, bus= or readonly"),
        };
    }
    Ok(Value::Object(disk))
}

fn set_if<T: serde::Serialize>(map: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        map.insert(key.into(), json!(v));
    }
}

/// `NETWORK[,model=M][,mac=MAC][,vlan=N]`
pub fn parse_nic(arg: &str) -> anyhow::Result<Value> {
    let mut parts = arg.split(',');
    let mut nic = Map::new();
    nic.insert("network".into(), json!(parts.next().unwrap_or_default()));
    for opt in parts {
        match opt.split_once('=') {
            Some(("model", v)) => nic.insert("model".into(), json!(v)),
            Some(("mac", v)) => nic.insert("mac".into(), json!(v)),
            Some(("vlan", v)) => nic.insert(
                "vlan".into(),
                json!(
                    v.parse::<u16>()
                        .with_context(|| format!("--nic {arg}: bad vlan {v:?}"))?
                ),
            ),
            _ => bail!("--nic {arg}: unknown option {opt:?}; use model=, mac= or vlan="),
        };
    }
    Ok(Value::Object(nic))
}

/// Builds the spec from `-f` and the flags (flags win).
pub fn spec_from_args(a: &CreateArgs) -> anyhow::Result<Value> {
    let mut spec = spec_file(a.file.as_deref())?;
    let m = spec.as_object_mut().expect("mapping");
    m.insert("name".into(), json!(a.name));
    set_if(m, "cpus", a.cpus);
    set_if(m, "memory", a.memory);
    set_if(m, "machine", a.machine.clone());
    set_if(m, "accel", a.accel.clone());
    set_if(
        m,
        "cpu_model",
        a.cpu_model.clone().map(|c| json!({ "named": c })),
    );
    if a.autostart {
        m.insert("autostart".into(), json!(true));
    }
    if let Some(g) = &a.graphics {
        m.insert("graphics".into(), json!({ "type": g }));
    }
    if a.kernel.is_some() || a.initrd.is_some() || a.cmdline.is_some() {
        let boot = m.entry("boot").or_insert(json!({}));
        let boot = boot.as_object_mut().context("boot must be a mapping")?;
        set_if(boot, "kernel", a.kernel.clone());
        set_if(boot, "initrd", a.initrd.clone());
        set_if(boot, "cmdline", a.cmdline.clone());
    }
    if !a.nics.is_empty() {
        let nics = m.entry("nics").or_insert(json!([]));
        let nics = nics.as_array_mut().context("nics must be a list")?;
        for n in &a.nics {
            nics.push(parse_nic(n)?);
        }
    }
    if !a.disks.is_empty() || a.cdrom.is_some() {
        let disks = m.entry("disks").or_insert(json!([]));
        let disks = disks.as_array_mut().context("disks must be a list")?;
        for d in &a.disks {
            disks.push(parse_disk(d)?);
        }
        if let Some(iso) = &a.cdrom {
            let bus = if a.machine.as_deref() == Some("pc") {
                "ide"
            } else {
                "sata"
            };
            disks.push(json!({"path": iso, "media": "cdrom", "bus": bus, "readonly": true}));
        }
    }
    Ok(spec)
}

pub async fn create(c: &Client, f: Format, a: CreateArgs) -> anyhow::Result<()> {
    let spec = spec_from_args(&a)?;
    let inst = c.create_instance(&spec).await?;
    if !structured(f, &inst)? {
        println!("Instance {} created.", a.name);
    }
    if a.start {
        c.action(&a.name, ferrovirt_api::StateAction::Start).await?;
        println!("Instance {} started.", a.name);
    }
    Ok(())
}

pub async fn list(c: &Client, f: Format) -> anyhow::Result<()> {
    let list = c.list_instances().await?;
    if structured(f, &list)? {
        return Ok(());
    }
    table(
        &["NAME", "STATUS", "CPUS", "MEMORY", "ACCEL", "PID", "REASON"],
        list.iter()
            .map(|i| {
                vec![
                    i.spec.name.clone(),
                    i.state.status.as_str().to_owned(),
                    i.spec.cpus.to_string(),
                    format!("{} MiB", i.spec.memory),
                    i.state
                        .accel
                        .as_ref()
                        .map(|a| a.accel.clone())
                        .unwrap_or_default(),
                    i.state.pid.map(|p| p.to_string()).unwrap_or_default(),
                    i.state.reason.clone(),
                ]
            })
            .collect(),
    );
    Ok(())
}

pub async fn show(c: &Client, f: Format, name: &str) -> anyhow::Result<()> {
    let inst = c.instance(name).await?;
    if !structured(f, &inst)? {
        print!("{}", serde_norway::to_string(&inst)?);
    }
    Ok(())
}

/// Opens the spec in $EDITOR, re-opening it while the daemon refuses it.
pub async fn edit(c: &Client, name: &str) -> anyhow::Result<()> {
    let inst: Instance = c.instance(name).await?;
    let text = serde_norway::to_string(&inst.spec)?;
    if edit_loop(name, text, |spec| async move {
        c.replace_instance(name, &spec).await.map(drop)
    })
    .await?
    {
        println!("Instance {name} updated.");
    }
    Ok(())
}

/// Edits `text` in $EDITOR and hands the result to `save` until it is
/// accepted or the user gives up. Returns `false` when nothing changed.
pub async fn edit_loop<F, Fut>(name: &str, mut text: String, save: F) -> anyhow::Result<bool>
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = Result<(), ClientError>>,
{
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    loop {
        let mut file = tempfile::Builder::new()
            .prefix(&format!("ferrovirt-{name}-"))
            .suffix(".yaml")
            .tempfile()?;
        file.write_all(text.as_bytes())?;
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(file.path())
            .status()
            .with_context(|| format!("cannot run the editor {editor}"))?;
        if !status.success() {
            bail!("the editor exited with {status}; nothing changed");
        }
        let edited = std::fs::read_to_string(file.path())?;
        if edited == text {
            println!("No changes.");
            return Ok(false);
        }
        let result = match yaml_to_json(&edited, "the edited spec") {
            Ok(spec) => save(spec).await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return Ok(true),
            Err(e) => {
                let msg = match e.downcast_ref::<ClientError>() {
                    Some(ClientError::Api(b)) => b.error.clone(),
                    _ => format!("{e:#}"),
                };
                eprintln!("Error: {msg}");
                if !confirm("Edit again?")? {
                    bail!("nothing changed");
                }
                text = edited;
            }
        }
    }
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question} [Y/n] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(!answer.trim().eq_ignore_ascii_case("n"))
}

/// Turns `a.b=v` assignments into one JSON merge patch.
pub fn assignments_to_patch(assignments: &[String]) -> anyhow::Result<Value> {
    let mut patch = json!({});
    for a in assignments {
        let (key, value) = a
            .split_once('=')
            .with_context(|| format!("{a:?} is not key=value"))?;
        if key.is_empty() {
            bail!("{a:?} has an empty key");
        }
        let value: Value = if value.is_empty() {
            Value::Null
        } else {
            serde_norway::from_str(value).unwrap_or_else(|_| json!(value))
        };
        let mut cur = &mut patch;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let map = cur.as_object_mut().context("nested key under a scalar")?;
            if i + 1 == parts.len() {
                map.insert((*part).to_owned(), value.clone());
                break;
            }
            cur = map.entry(*part).or_insert(json!({}));
        }
    }
    Ok(patch)
}

pub async fn set(c: &Client, f: Format, name: &str, assignments: &[String]) -> anyhow::Result<()> {
    let patch = assignments_to_patch(assignments)?;
    let inst = c.patch_instance(name, &patch).await?;
    if !structured(f, &inst)? {
        println!("Instance {name} updated.");
    }
    Ok(())
}

pub async fn delete(c: &Client, name: &str, force: bool) -> anyhow::Result<()> {
    c.delete_instance(name, force).await?;
    println!("Instance {name} deleted.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_flags_parse() {
        assert_eq!(
            parse_disk("/a.qcow2,format=qcow2,bus=scsi,readonly").unwrap(),
            json!({"path": "/a.qcow2", "format": "qcow2", "bus": "scsi", "readonly": true})
        );
        assert!(parse_disk("/a,speed=9").is_err());
    }

    #[test]
    fn assignments_become_a_merge_patch() {
        let p = assignments_to_patch(&[
            "memory=1024".into(),
            "boot.cmdline=console=ttyS0 quiet".into(),
            "autostart=true".into(),
        ])
        .unwrap();
        assert_eq!(
            p,
            json!({"memory": 1024, "boot": {"cmdline": "console=ttyS0 quiet"}, "autostart": true})
        );
    }
}
