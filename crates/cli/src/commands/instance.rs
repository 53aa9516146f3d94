//! The instance verbs: `create`, `list`, `show`, `edit`, `set`, `delete`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ferrovirt_api::{
    Accelerator, CpuModel, Disk, DiskBus, DiskMedia, Graphics, GraphicsType, Instance, MachineKind,
    Nic,
};
use ferrovirt_client::Client;
use serde_json::Value;

use super::spec::{assignments_to_patch, list, mapping, set, spec_file, value};
use super::values::{api_enum, disk_flag, nic_flag};
use crate::cli::Format;
use crate::editor::edit_loop;
use crate::output::{structured, table};

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Define an instance from a YAML spec and/or flags.
    Create(Box<CreateArgs>),
    /// List instances.
    List,
    /// Show an instance with every default spelled out.
    Show { name: String },
    /// Edit an instance's spec in $EDITOR.
    Edit { name: String },
    /// Change spec fields: `set NAME memory=1024 on_crash=restart boot.cmdline="console=ttyS0"`.
    Set {
        name: String,
        /// key=value pairs; dotted keys reach nested fields, values are YAML.
        #[arg(required = true)]
        assignments: Vec<String>,
    },
    /// Delete an instance.
    Delete {
        name: String,
        /// Stop it first if it is running.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub name: String,
    /// YAML spec file; flags override its fields.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Memory in MiB.
    #[arg(long)]
    pub memory: Option<u64>,
    #[arg(long)]
    pub kernel: Option<String>,
    #[arg(long)]
    pub initrd: Option<String>,
    #[arg(long)]
    pub cmdline: Option<String>,
    /// PATH[,format=raw|qcow2][,bus=virtio|scsi|sata|ide][,readonly]; repeatable.
    #[arg(long = "disk", value_parser = parse_disk)]
    pub disks: Vec<Disk>,
    /// An ISO image attached as a cdrom.
    #[arg(long)]
    pub cdrom: Option<String>,
    /// NETWORK[,model=virtio|e1000|rtl8139][,mac=MAC][,vlan=N]; repeatable.
    #[arg(long = "nic", value_parser = parse_nic)]
    pub nics: Vec<Nic>,
    /// pc, q35 or microvm.
    #[arg(long, value_parser = api_enum::<MachineKind>)]
    pub machine: Option<MachineKind>,
    /// auto, kvm or tcg.
    #[arg(long, value_parser = api_enum::<Accelerator>)]
    pub accel: Option<Accelerator>,
    /// A QEMU CPU model name (default: host under KVM, max under TCG).
    #[arg(long)]
    pub cpu_model: Option<String>,
    /// none, vnc or spice.
    #[arg(long, value_parser = api_enum::<GraphicsType>)]
    pub graphics: Option<GraphicsType>,
    #[arg(long)]
    pub autostart: bool,
    /// Start the instance once created.
    #[arg(long)]
    pub start: bool,
}

fn parse_disk(arg: &str) -> Result<Disk, String> {
    disk_flag(arg).map_err(|e| format!("{e:#}"))
}

fn parse_nic(arg: &str) -> Result<Nic, String> {
    nic_flag(arg).map_err(|e| format!("{e:#}"))
}

impl InstanceCommand {
    pub fn instance_arg(&mut self) -> Option<&mut String> {
        match self {
            Self::Create(a) => Some(&mut a.name),
            Self::List => None,
            Self::Show { name }
            | Self::Edit { name }
            | Self::Set { name, .. }
            | Self::Delete { name, .. } => Some(name),
        }
    }

    pub async fn run(self, c: &Client, f: Format) -> anyhow::Result<()> {
        match self {
            Self::Create(a) => create(c, f, *a).await,
            Self::List => list_instances(c, f).await,
            Self::Show { name } => show(c, f, &name).await,
            Self::Edit { name } => edit(c, &name).await,
            Self::Set { name, assignments } => set_fields(c, f, &name, &assignments).await,
            Self::Delete { name, force } => delete(c, &name, force).await,
        }
    }
}

/// Builds the spec document from `-f` and the flags (flags win).
fn spec_from_args(a: &CreateArgs) -> anyhow::Result<Value> {
    let mut spec = spec_file(a.file.as_deref())?;
    let m = spec.as_object_mut().expect("mapping");
    m.insert("name".into(), value(&a.name)?);
    set(m, "cpus", a.cpus)?;
    set(m, "memory", a.memory)?;
    set(m, "machine", a.machine)?;
    set(m, "accel", a.accel)?;
    set(m, "cpu_model", a.cpu_model.clone().map(CpuModel::Named))?;
    if a.autostart {
        set(m, "autostart", Some(true))?;
    }
    if let Some(kind) = a.graphics {
        let g = Graphics {
            kind,
            ..Default::default()
        };
        set(m, "graphics", Some(g))?;
    }
    if a.kernel.is_some() || a.initrd.is_some() || a.cmdline.is_some() {
        let boot = mapping(m, "boot")?;
        set(boot, "kernel", a.kernel.as_ref())?;
        set(boot, "initrd", a.initrd.as_ref())?;
        set(boot, "cmdline", a.cmdline.as_ref())?;
    }
    if !a.nics.is_empty() {
        let nics = list(m, "nics")?;
        for n in &a.nics {
            nics.push(value(n)?);
        }
    }
    if !a.disks.is_empty() || a.cdrom.is_some() {
        let disks = list(m, "disks")?;
        for d in &a.disks {
            disks.push(value(d)?);
        }
        if let Some(iso) = &a.cdrom {
            let bus = if a.machine == Some(MachineKind::Pc) {
                DiskBus::Ide
            } else {
                DiskBus::Sata
            };
            let cdrom = Disk {
                media: DiskMedia::Cdrom,
                bus,
                readonly: true,
                ..Disk::at(iso)
            };
            disks.push(value(cdrom)?);
        }
    }
    Ok(spec)
}

async fn create(c: &Client, f: Format, a: CreateArgs) -> anyhow::Result<()> {
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

async fn list_instances(c: &Client, f: Format) -> anyhow::Result<()> {
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

async fn show(c: &Client, f: Format, name: &str) -> anyhow::Result<()> {
    let inst = c.instance(name).await?;
    if !structured(f, &inst)? {
        print!("{}", serde_norway::to_string(&inst)?);
    }
    Ok(())
}

/// Opens the spec in $EDITOR, re-opening it while the daemon refuses it.
async fn edit(c: &Client, name: &str) -> anyhow::Result<()> {
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

async fn set_fields(
    c: &Client,
    f: Format,
    name: &str,
    assignments: &[String],
) -> anyhow::Result<()> {
    let patch = assignments_to_patch(assignments)?;
    let inst = c.patch_instance(name, &patch).await?;
    if !structured(f, &inst)? {
        println!("Instance {name} updated.");
    }
    Ok(())
}

async fn delete(c: &Client, name: &str, force: bool) -> anyhow::Result<()> {
    c.delete_instance(name, force).await?;
    println!("Instance {name} deleted.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(subcommand)]
        cmd: InstanceCommand,
    }

    fn create_args(args: &[&str]) -> CreateArgs {
        let mut argv = vec!["probe", "create"];
        argv.extend_from_slice(args);
        match Probe::try_parse_from(argv).unwrap().cmd {
            InstanceCommand::Create(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_become_typed_spec_fields() {
        let a = create_args(&[
            "web",
            "--memory",
            "256",
            "--machine",
            "pc",
            "--cdrom",
            "/iso",
            "--disk",
            "/a.raw,format=raw",
            "--nic",
            "lan,model=e1000",
            "--cpu-model",
            "qemu64",
            "--graphics",
            "vnc",
            "--kernel",
            "/k",
        ]);
        let spec = spec_from_args(&a).unwrap();
        let spec: ferrovirt_api::InstanceSpec = serde_json::from_value(spec).unwrap();
        assert_eq!(spec.name, "web");
        assert_eq!(spec.memory, 256);
        assert_eq!(spec.machine, MachineKind::Pc);
        assert_eq!(spec.cpu_model, CpuModel::Named("qemu64".into()));
        assert_eq!(spec.graphics.kind, GraphicsType::Vnc);
        assert_eq!(spec.boot.kernel.as_deref(), Some("/k"));
        assert_eq!(spec.nics[0].model, ferrovirt_api::NicModel::E1000);
        assert_eq!(spec.disks.len(), 2);
        assert_eq!(spec.disks[1].media, DiskMedia::Cdrom);
        assert_eq!(spec.disks[1].bus, DiskBus::Ide, "pc has no SATA by default");
        assert!(spec.disks[1].readonly);
    }

    #[test]
    fn bad_flag_values_are_refused_by_the_parser() {
        let argv = ["probe", "create", "x", "--machine", "vax"];
        let err = Probe::try_parse_from(argv).unwrap_err().to_string();
        assert!(err.contains("not one of the choices"), "{err}");
        let argv = ["probe", "create", "x", "--nic", "lan,speed=1"];
        let err = Probe::try_parse_from(argv).unwrap_err().to_string();
        assert!(err.contains("unknown option"), "{err}");
    }

    #[test]
    fn spec_file_fields_stay_for_the_daemon_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(
            &file,
            "cpus: 2\nboot:\n  kernal: /k\nnics: [{network: a}]\n",
        )
        .unwrap();
        let a = create_args(&["x", "-f", file.to_str().unwrap(), "--nic", "b"]);
        let spec = spec_from_args(&a).unwrap();
        assert_eq!(
            spec["boot"]["kernal"], "/k",
            "unknown fields reach the daemon"
        );
        assert_eq!(spec["cpus"], 2);
        assert_eq!(spec["nics"].as_array().unwrap().len(), 2);
    }
}
