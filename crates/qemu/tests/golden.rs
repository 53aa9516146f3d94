//! Golden tests of the QEMU command-line builder. Each case's expected argv
//! (one argument per line) lives in tests/golden/<case>.argv; run with
//! `UPDATE_GOLDEN=1` to regenerate after an intended change, then review the
//! diff.

use std::path::{Path, PathBuf};

use ferrovirt_api::DiskFormat;
use ferrovirt_api::{AccelDecision, InstanceSpec};
use ferrovirt_core::{BackingChains, BackingFile, HostLimits, ValidSpec};
use ferrovirt_qemu::{InstancePaths, StartMode, build_with};

fn check(case: &str, spec: serde_json::Value, accel: &str) {
    check_with(case, spec, accel, &BackingChains::new());
}

fn check_with(case: &str, spec: serde_json::Value, accel: &str, chains: &BackingChains) {
    let spec: InstanceSpec = serde_json::from_value(spec).expect("spec");
    let spec = ValidSpec::new(spec, &HostLimits::default(), &|_| true).expect("a valid spec");
    let paths = InstancePaths::new(Path::new("/run/fv"), Path::new("/var/lib/fv"), &spec.name);
    let accel = AccelDecision {
        accel: accel.into(),
        reason: "test".into(),
    };
    let cmd = build_with(
        "qemu-system-x86_64",
        &spec,
        &accel,
        &paths,
        &StartMode::Boot,
        chains,
    );
    let actual = format!("{}\n{}\n", cmd.binary, cmd.args.join("\n"));
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{case}.argv"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&file, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&file)
        .unwrap_or_else(|_| panic!("{} missing; run with UPDATE_GOLDEN=1", file.display()));
    assert_eq!(actual, expected, "argv of {case} changed");
}

const UUID: &str = "6f1c2a52-3c4e-4b8e-9a51-1d2f3e4a5b6c";

#[test]
fn direct_kernel_boot_tcg() {
    check(
        "direct_kernel_boot_tcg",
        serde_json::json!({
            "name": "vm1", "uuid": UUID, "cpus": 2, "memory": 256,
            "boot": {"kernel": "/img/vmlinux", "initrd": "/img/initrd.img",
                     "cmdline": "console=ttyS0 quiet"}
        }),
        "tcg",
    );
}

#[test]
fn q35_every_bus_with_vnc_kvm() {
    check(
        "q35_every_bus_with_vnc_kvm",
        serde_json::json!({
            "name": "big", "uuid": UUID, "machine": "q35",
            "cpu_model": {"named": "Skylake-Client"},
            "boot": {"order": ["cdrom", "disk"]},
            "disks": [
                {"path": "/img/root,with,commas.qcow2", "format": "qcow2"},
                {"path": "/img/data.raw", "bus": "scsi", "readonly": true},
                {"path": "/img/sata.raw", "bus": "sata"},
                {"path": "/iso/install.iso", "bus": "sata", "media": "cdrom", "readonly": true}
            ],
            "graphics": {"type": "vnc", "adapter": "virtio"}
        }),
        "kvm",
    );
}

#[test]
fn pc_ide_sata_spice_qxl() {
    check(
        "pc_ide_sata_spice_qxl",
        serde_json::json!({
            "name": "old", "uuid": UUID, "machine": "pc",
            "disks": [
                {"path": "/img/a.raw", "bus": "ide"},
                {"path": "/img/b.raw", "bus": "ide"},
                {"path": "/iso/c.iso", "bus": "ide", "media": "cdrom", "readonly": true},
                {"path": "/img/d.raw", "bus": "sata"}
            ],
            "graphics": {"type": "spice", "adapter": "qxl"},
            "serial": false
        }),
        "tcg",
    );
}

#[test]
fn microvm_virtio_mmio() {
    check(
        "microvm_virtio_mmio",
        serde_json::json!({
            "name": "tiny", "uuid": UUID, "machine": "microvm", "memory": 128,
            "boot": {"kernel": "/img/vmlinux", "cmdline": "console=ttyS0"},
            "disks": [{"path": "/img/root.raw"}]
        }),
        "tcg",
    );
}

#[test]
fn hotplug_limits() {
    check(
        "hotplug_limits",
        serde_json::json!({
            "name": "elastic", "uuid": UUID, "cpus": 1, "max_cpus": 4,
            "memory": 256, "max_memory": 1024, "balloon": 200,
            "boot": {"kernel": "/img/vmlinux"}
        }),
        "tcg",
    );
}

#[test]
fn q35_disk_backends_cache_and_empty_cdrom() {
    check(
        "q35_disk_backends_cache_and_empty_cdrom",
        serde_json::json!({
            "name": "stor", "uuid": UUID, "machine": "q35",
            "boot": {"kernel": "/img/vmlinux"},
            "disks": [
                {"name": "root", "path": "/pools/default/root.qcow2", "format": "qcow2",
                 "cache": "none", "aio": "native"},
                {"name": "lv", "path": "/dev/vg0/data", "cache": "directsync", "bus": "scsi"},
                {"name": "lun", "path": "iscsi://127.0.0.1:3261/iqn.2026-11.test:t1/1",
                 "cache": "unsafe"},
                {"name": "cd", "bus": "sata", "media": "cdrom"}
            ]
        }),
        "tcg",
    );
}

#[test]
fn qcow2_overlays_on_a_chain_the_daemon_made() {
    let file = |path: &str, format| BackingFile {
        path: path.into(),
        format,
    };
    let chains = BackingChains::from([(
        "/pool/vm-disk0.s2.qcow2".to_owned(),
        vec![
            file("/pool/vm-disk0.s1.qcow2", DiskFormat::Qcow2),
            file("/pool/base.raw", DiskFormat::Raw),
        ],
    )]);
    check_with(
        "qcow2_overlays_on_a_chain_the_daemon_made",
        serde_json::json!({
            "name": "vm", "uuid": UUID,
            "disks": [
                {"path": "/pool/vm-disk0.s2.qcow2", "format": "qcow2"},
                {"path": "/img/guest-wrote-a-header.raw"}
            ]
        }),
        "tcg",
        &chains,
    );
}

/// No qcow2 `-blockdev` leaves its backing to the image's header: QEMU
/// would open whatever file a header names. (Raw nodes have no backing in
/// QEMU's schema, which refuses the key.)
#[test]
fn every_qcow2_node_names_its_backing() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut format_nodes = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2).filter(|w| w[0] == "-blockdev") {
            let node: serde_json::Value = serde_json::from_str(pair[1]).unwrap();
            if node["driver"] == "qcow2" {
                format_nodes += 1;
                assert!(node.get("backing").is_some(), "no backing in {node}");
            } else {
                assert!(node.get("backing").is_none(), "backing in {node}");
            }
        }
    }
    assert!(format_nodes >= 2, "the golden cases have qcow2 disks");
}
