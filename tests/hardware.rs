//! The virtual hardware of a spec reaches the guest: disks on every bus with
//! their sizes, read-only flags and a cdrom; machine types; VNC graphics.

use std::path::Path;

use ferrovirt_api::{InstanceStatus, StateAction};
use ferrovirt_e2e::*;
use serde_json::json;

fn image(dir: &Path, name: &str, mib: u64) -> String {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(mib << 20).unwrap();
    path.display().to_string()
}

/// Size in MiB of a guest block device, from /sys/block/DEV/size (512-byte sectors).
async fn guest_disk_mib(
    ch: &mut ferrovirt_testkit::CommandChannel<tokio::io::DuplexStream>,
    dev: &str,
) -> u64 {
    let out = ch
        .run(&format!("cat /sys/block/{dev}/size"), CMD)
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "no /sys/block/{dev}: {}", out.output);
    (out.output.trim().parse::<u64>().unwrap() * 512) >> 20
}

#[tokio::test(flavor = "multi_thread")]
async fn q35_disks_on_every_bus_cdrom_and_vnc() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = guest_spec("hw");
    spec["disks"] = json!([
        {"path": image(dir.path(), "v.raw", 64)},
        {"path": image(dir.path(), "s.raw", 32), "bus": "scsi", "readonly": true},
        {"path": image(dir.path(), "a.raw", 48), "bus": "sata"},
        {"path": image(dir.path(), "cd.iso", 4), "bus": "sata", "media": "cdrom"},
    ]);
    spec["graphics"] = json!({"type": "vnc", "adapter": "virtio"});
    create(&d.client, spec).await;
    d.client
        .action("hw", StateAction::Start)
        .await
        .expect("start");
    assert!(
        d.runtime_dir().join("instances/hw/vnc.sock").exists(),
        "VNC socket"
    );
    let mut ch = channel(&d.client, "hw").await;
    ch.wait_ready(BOOT).await.unwrap();
    assert_eq!(guest_disk_mib(&mut ch, "vda").await, 64, "virtio-blk disk");
    let listing = ch.run("ls /sys/block", CMD).await.unwrap().output;
    // scsi-hd and the SATA disk are sda/sdb (order depends on probing); the cdrom is sr0.
    let mut sizes = vec![
        guest_disk_mib(&mut ch, "sda").await,
        guest_disk_mib(&mut ch, "sdb").await,
    ];
    sizes.sort();
    assert_eq!(sizes, vec![32, 48], "scsi and sata disks: {listing}");
    assert_eq!(guest_disk_mib(&mut ch, "sr0").await, 4, "cdrom: {listing}");
    let ro = ch
        .run(
            "for d in sda sdb sr0; do echo $(cat /sys/block/$d/size) $(cat /sys/block/$d/ro); done",
            CMD,
        )
        .await
        .unwrap()
        .output;
    assert!(
        ro.contains(&format!("{} 1", 32 * 2048)),
        "the scsi disk is read-only: {ro}"
    );
    assert!(
        ro.contains(&format!("{} 1", 4 * 2048)),
        "the cdrom is read-only: {ro}"
    );
    assert!(
        ro.contains(&format!("{} 0", 48 * 2048)),
        "the sata disk is writable: {ro}"
    );
    // The guest writes to the virtio disk and the data reaches the image.
    let out = ch
        .run(
            "echo ferrovirt-was-here | dd of=/dev/vda bs=512 count=1 conv=sync 2>/dev/null && sync",
            CMD,
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    let head = std::fs::read(dir.path().join("v.raw")).unwrap();
    assert!(head.starts_with(b"ferrovirt-was-here"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pc_with_ide_and_microvm_boot() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut pc = guest_spec("oldpc");
    pc["machine"] = json!("pc");
    pc["cpus"] = json!(2);
    pc["disks"] = json!([{"path": image(dir.path(), "ide.raw", 16), "bus": "ide"}]);
    pc["graphics"] = json!({"type": "spice", "adapter": "qxl"});
    create(&d.client, pc).await;
    let mut micro = guest_spec("micro");
    micro["machine"] = json!("microvm");
    // microvm has no HPET or PM timer: under TCG the kernel's TSC
    // calibration against the PIT fails now and then and boot stalls.
    // Telling it the TSC rate skips that calibration.
    let cmdline = micro["boot"]["cmdline"].as_str().unwrap().to_owned();
    micro["boot"]["cmdline"] = json!(format!("{cmdline} tsc_early_khz=1000000"));
    micro["disks"] = json!([{"path": image(dir.path(), "m.raw", 8)}]);
    create(&d.client, micro).await;

    d.client
        .action("oldpc", StateAction::Start)
        .await
        .expect("start pc");
    assert!(
        d.runtime_dir().join("instances/oldpc/spice.sock").exists(),
        "SPICE socket"
    );
    let mut ch = channel(&d.client, "oldpc").await;
    ch.wait_ready(BOOT).await.unwrap();
    assert_eq!(guest_disk_mib(&mut ch, "sda").await, 16, "IDE disk");
    let cpus = ch
        .run("grep -c ^processor /proc/cpuinfo", CMD)
        .await
        .unwrap();
    assert_eq!(cpus.output.trim(), "2");

    d.client
        .action("micro", StateAction::Start)
        .await
        .expect("start microvm");
    let mut ch = channel(&d.client, "micro").await;
    if let Err(e) = ch.wait_ready(BOOT).await {
        let log = d
            .client
            .log("micro", "console", None)
            .await
            .unwrap_or_default();
        let qlog = d
            .client
            .log("micro", "qemu", None)
            .await
            .unwrap_or_default();
        panic!(
            "{e:?}\nconsole log: {}\nqemu log: {}",
            String::from_utf8_lossy(&log),
            String::from_utf8_lossy(&qlog)
        );
    }
    assert_eq!(guest_disk_mib(&mut ch, "vda").await, 8, "virtio-mmio disk");
    for name in ["oldpc", "micro"] {
        assert_eq!(
            d.client.instance(name).await.unwrap().state.status,
            InstanceStatus::Running
        );
    }
}
