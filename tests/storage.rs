//! Volumes in real guests: hot-attached volumes keep their data across
//! detach and re-attach, live resize, I/O limits that cap dd in the guest,
//! linked clones that never touch their base, cdrom media changes, imports
//! (vmdk, vdi, vhdx, vpc) that boot through the firmware, copies with
//! cancel, a daemon killed mid-copy, and the refusals that keep data safe.
//! Pool types are in pools.rs.

use std::path::Path;
use std::time::{Duration, Instant};

use ferrovirt_api::{OperationStatus, VolumeImport};
use ferrovirt_e2e::*;
use serde_json::json;

/// Seconds the guest takes to read `mib` MiB from a device (uncached).
async fn read_seconds(ch: &mut Ch, dev: &str, mib: u64) -> f64 {
    let t0 = Instant::now();
    sh(
        ch,
        &format!(
            "echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/{dev} of=/dev/null bs=64k count={} 2>/dev/null",
            mib * 16
        ),
    )
    .await;
    t0.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
async fn volume_attach_detach_resize_and_io_limits() {
    let d = TestDaemon::start().await;
    cli_ok(&d, &["volume", "create", "default/data.qcow2", "64M"]);
    create(&d.client, guest_spec("st")).await;
    let mut ch = boot(&d.client, "st").await;

    // Attach → the guest sees a 64 MiB disk and writes to it.
    let out = cli_ok(
        &d,
        &[
            "disk",
            "attach",
            "st",
            "--volume",
            "default/data.qcow2",
            "--as",
            "data",
        ],
    );
    assert!(out.contains("Disk data attached"), "{out}");
    wait_block(&mut ch, "vda", true).await;
    assert_eq!(guest_bytes(&mut ch, "vda").await, 64 << 20);
    write_marker(&mut ch, "vda", "ferrovirt-volume-data-7").await;

    // In use: delete is refused, and the volume says who uses it.
    let err = cli_err(&d, &["volume", "delete", "default/data.qcow2"]);
    assert!(err.contains("use it") && err.contains("st"), "{err}");
    let vol = d.client.volume("default", "data.qcow2").await.unwrap();
    assert_eq!(vol.used_by, vec!["st".to_string()]);

    // Detach and re-attach: the data is intact.
    cli_ok(&d, &["disk", "detach", "st", "data"]);
    wait_block(&mut ch, "vda", false).await;
    // Re-attached with the host cache off and Linux AIO.
    cli_ok(
        &d,
        &[
            "disk",
            "attach",
            "st",
            "--volume",
            "default/data.qcow2",
            "--as",
            "data",
            "--cache",
            "none",
            "--aio",
            "native",
        ],
    );
    wait_block(&mut ch, "vda", true).await;
    assert_eq!(
        read_marker(&mut ch, "vda", 23).await,
        "ferrovirt-volume-data-7"
    );

    // Live resize grows the disk as the guest sees it; shrinking needs --force.
    let out = cli_ok(&d, &["volume", "resize", "default/data.qcow2", "128M"]);
    assert!(out.contains("128.0 MiB"), "{out}");
    let end = Instant::now() + Duration::from_secs(20);
    while guest_bytes(&mut ch, "vda").await != 128 << 20 {
        assert!(Instant::now() < end, "the guest never saw the new size");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let err = cli_err(&d, &["volume", "resize", "default/data.qcow2", "32M"]);
    assert!(err.contains("--force"), "{err}");

    // I/O limits cap the guest's read throughput, live, and lift again.
    let free = read_seconds(&mut ch, "vda", 4).await;
    cli_ok(&d, &["disk", "limit", "st", "data", "--read-bytes", "1M"]);
    let capped = read_seconds(&mut ch, "vda", 4).await;
    cli_ok(&d, &["disk", "limit", "st", "data"]);
    let lifted = read_seconds(&mut ch, "vda", 4).await;
    assert!(
        capped >= 2.5,
        "4 MiB at 1 MiB/s took only {capped:.2} s (unlimited {free:.2} s)"
    );
    assert!(
        free < capped / 2.0 && lifted < capped / 2.0,
        "unlimited reads ({free:.2} s, {lifted:.2} s after lifting) should be far faster than capped ({capped:.2} s)"
    );
    let disks = cli_ok(&d, &["disk", "list", "st"]);
    assert!(disks.contains("default/data.qcow2"), "{disks}");
}

#[tokio::test(flavor = "multi_thread")]
async fn linked_clone_boots_and_diverges_without_touching_its_base() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("base.raw");
    marked_file(&src, 16, "ferrovirt-base-data");
    cli_ok(
        &d,
        &[
            "volume",
            "import",
            "default/base",
            &src.display().to_string(),
            "--image-format",
            "raw",
        ],
    );
    let out = cli_ok(
        &d,
        &["volume", "clone", "default/base", "clone", "--linked"],
    );
    assert!(out.contains("(linked)"), "{out}");
    let base_path = d.state_dir().join("pools/default/base");
    let before = sh_host(&format!("sha256sum {}", base_path.display()));

    let clone = d.client.volume("default", "clone").await.unwrap();
    assert_eq!(clone.backing_chain.len(), 1, "{clone:?}");
    assert_eq!(Path::new(&clone.backing_chain[0].path), base_path);

    let mut spec = guest_spec("lc");
    spec["disks"] = json!([{"volume": "default/clone"}]);
    create(&d.client, spec).await;
    let mut ch = boot(&d.client, "lc").await;
    assert_eq!(read_marker(&mut ch, "vda", 19).await, "ferrovirt-base-data");
    write_marker(&mut ch, "vda", "ferrovirt-clone-data").await;
    assert_eq!(
        read_marker(&mut ch, "vda", 20).await,
        "ferrovirt-clone-data"
    );
    force_stop(&d.client, "lc").await;

    assert_eq!(
        before,
        sh_host(&format!("sha256sum {}", base_path.display())),
        "the base changed"
    );
    let err = cli_err(&d, &["volume", "delete", "default/base"]);
    assert!(err.contains("linked clone"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cdrom_insert_and_eject_reach_the_guest() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("disc.iso");
    marked_file(&iso, 2, "ferrovirt-iso-9660");
    let mut spec = guest_spec("cd");
    spec["disks"] = json!([{"name": "cd", "media": "cdrom", "bus": "sata"}]);
    create(&d.client, spec).await;
    let mut ch = boot(&d.client, "cd").await;
    wait_block(&mut ch, "sr0", true).await;
    let empty = ch
        .run("dd if=/dev/sr0 bs=2048 count=1 2>&1 >/dev/null", CMD)
        .await
        .unwrap();
    assert_ne!(empty.exit_code, 0, "an empty drive reads: {}", empty.output);

    cli_ok(
        &d,
        &[
            "disk",
            "insert",
            "cd",
            "cd",
            "--path",
            &iso.display().to_string(),
        ],
    );
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ch
            .run(
                "dd if=/dev/sr0 bs=2048 count=1 2>/dev/null | head -c 18",
                CMD,
            )
            .await
            .unwrap();
        if out.output == "ferrovirt-iso-9660" {
            break;
        }
        assert!(
            Instant::now() < end,
            "the guest never read the medium: {}",
            out.output
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(guest_bytes(&mut ch, "sr0").await, 2 << 20);

    cli_ok(&d, &["disk", "eject", "cd", "cd"]);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ch
            .run(
                "dd if=/dev/sr0 bs=2048 count=1 2>/dev/null | head -c 18",
                CMD,
            )
            .await
            .unwrap();
        if out.exit_code != 0 || out.output.is_empty() {
            break;
        }
        assert!(
            Instant::now() < end,
            "the medium is still readable after eject"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let inst = d.client.instance("cd").await.unwrap();
    assert!(
        inst.spec.disks[0].path.is_empty(),
        "eject is kept in the spec"
    );
}

/// A tgtd serving one target with two file-backed LUNs on 127.0.0.1:3260
/// inside the daemon's network namespace; stopped on drop.

#[tokio::test(flavor = "multi_thread")]
async fn volume_copies_convert_export_cancel_and_bad_input() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("src.raw");
    marked_file(&raw, 32, "ferrovirt-v2v");
    // vmdk and vdi made by qemu-img are imported; the content survives.
    for fmt in ["vmdk", "vdi", "vhdx", "vpc"] {
        let img = dir.path().join(format!("src.{fmt}"));
        sh_host(&format!(
            "qemu-img convert -f raw -O {fmt} {} {}",
            raw.display(),
            img.display()
        ));
        cli_ok(
            &d,
            &[
                "volume",
                "import",
                &format!("default/from-{fmt}"),
                &img.display().to_string(),
            ],
        );
        let v = d
            .client
            .volume("default", &format!("from-{fmt}"))
            .await
            .unwrap();
        assert_eq!(v.format, ferrovirt_api::VolumeFormat::Qcow2);
        assert!(v.virtual_size >= 32 << 20, "{fmt}: {}", v.virtual_size);
    }
    // Convert in place to raw, then export as vmdk and read it back.
    cli_ok(
        &d,
        &[
            "volume",
            "convert",
            "default/from-vdi",
            "--image-format",
            "raw",
        ],
    );
    let v = d.client.volume("default", "from-vdi").await.unwrap();
    assert_eq!(v.format, ferrovirt_api::VolumeFormat::Raw);
    let head = std::fs::read(&v.path).unwrap();
    assert_eq!(&head[..13], b"ferrovirt-v2v");
    let out = dir.path().join("out.vmdk");
    cli_ok(
        &d,
        &[
            "volume",
            "export",
            "default/from-vdi",
            &out.display().to_string(),
            "--image-format",
            "vmdk",
        ],
    );
    let back = dir.path().join("back.raw");
    sh_host(&format!(
        "qemu-img convert -O raw {} {}",
        out.display(),
        back.display()
    ));
    assert_eq!(&std::fs::read(&back).unwrap()[..13], b"ferrovirt-v2v");
    // Full clone: a sparse copy.
    let out2 = cli_ok(&d, &["volume", "clone", "default/from-vdi", "copy"]);
    assert!(
        out2.contains("(copy)") || out2.contains("(reflink)"),
        "{out2}"
    );
    let copy = d.client.volume("default", "copy").await.unwrap();
    assert!(
        copy.actual_size < 8 << 20,
        "the copy is sparse: {}",
        copy.actual_size
    );

    // Cancel a long import: no volume, no part file.
    let big = dir.path().join("big.raw");
    sh_host(&format!(
        "dd if=/dev/urandom of={} bs=4M count=128 2>/dev/null",
        big.display()
    ));
    let op = d
        .client
        .import_volume(
            "default",
            &VolumeImport {
                name: "big".into(),
                source: big.display().to_string(),
                source_format: None,
                format: None,
            },
        )
        .await
        .unwrap();
    d.client.cancel_operation(&op.id.to_string()).await.unwrap();
    let done = d
        .client
        .wait_operation(&op.id.to_string(), 30.0)
        .await
        .unwrap();
    assert_eq!(done.status, OperationStatus::Cancelled, "{done:?}");
    let pool_dir = d.state_dir().join("pools/default");
    let leftovers: Vec<String> = std::fs::read_dir(&pool_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("big"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Bad input names the field and the reason.
    let err = d
        .client
        .create_volume(
            "default",
            &ferrovirt_api::VolumeCreate {
                name: "../escape".into(),
                size: 1 << 20,
                format: Default::default(),
                preallocation: Default::default(),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("must not start with '.'"), "{err}");
    let err = cli_err(&d, &["volume", "create", "nope/v", "1G"]);
    assert!(err.contains("pool nope does not exist"), "{err}");
    let err = cli_err(&d, &["volume", "create", "default/x", "10X"]);
    assert!(err.contains("unknown unit"), "{err}");
    let err = cli_err(&d, &["volume", "create", "default/copy", "1G"]);
    assert!(err.contains("already has a volume copy"), "{err}");
    let err = cli_err(&d, &["volume", "import", "default/m", "/no/such.vmdk"]);
    assert!(err.contains("does not exist"), "{err}");
    let err = cli_err(
        &d,
        &[
            "volume",
            "export",
            "default/copy",
            &out.display().to_string(),
        ],
    );
    assert!(err.contains("already exists"), "{err}");
    let err = cli_err(
        &d,
        &[
            "pool",
            "create",
            "p",
            "--type",
            "iscsi",
            "--host",
            "127.0.0.1",
        ],
    );
    assert!(err.contains("source.target"), "{err}");
    let mut spec = guest_spec("bad");
    spec["disks"] = json!([{"volume": "default/missing"}]);
    let err = d.client.create_instance(&spec).await.unwrap_err();
    assert!(err.to_string().contains("no volume missing"), "{err}");
    assert!(d.client.instance("bad").await.is_err(), "nothing half-made");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_daemon_mid_import_leaves_no_volume() {
    let mut d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.raw");
    sh_host(&format!(
        "dd if=/dev/urandom of={} bs=4M count=96 2>/dev/null",
        big.display()
    ));
    cli_ok(&d, &["volume", "create", "default/keep.qcow2", "1G"]);
    let op = d
        .client
        .import_volume(
            "default",
            &VolumeImport {
                name: "big".into(),
                source: big.display().to_string(),
                source_format: None,
                format: None,
            },
        )
        .await
        .unwrap();
    assert!(!op.status.is_final());
    let pool_dir = d.state_dir().join("pools/default");
    let part = pool_dir.join(".part-big");
    let end = Instant::now() + Duration::from_secs(10);
    while !part.exists() {
        assert!(Instant::now() < end, "the copy never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    d.kill();
    assert!(part.exists(), "killed mid-copy, with the part file written");
    d.restart().await;
    let names: Vec<String> = std::fs::read_dir(&pool_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ferrovirt_storage::record::RECORD_DIR)
        .collect();
    assert_eq!(
        names,
        vec!["keep.qcow2".to_string()],
        "the half-made copy is gone"
    );
    let vols = d.client.volumes("default").await.unwrap();
    assert_eq!(vols.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn imported_vmdk_and_vdi_boot_through_the_firmware() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let raw = ferrovirt_testkit::bootable_disk().expect("bootable test disk");
    for fmt in ["vmdk", "vdi"] {
        let img = dir.path().join(format!("guest.{fmt}"));
        sh_host(&format!(
            "qemu-img convert -f raw -O {fmt} {} {}",
            raw.display(),
            img.display()
        ));
        let vol = format!("default/guest-{fmt}");
        let out = cli_ok(&d, &["volume", "import", &vol, &img.display().to_string()]);
        assert!(out.contains("Imported"), "{out}");
        let name = format!("boot-{fmt}");
        create(
            &d.client,
            json!({"name": name, "memory": 256, "disks": [{"volume": vol}],
                   "boot": {"order": ["disk"]}}),
        )
        .await;
        let mut ch = boot(&d.client, &name).await;
        let cmdline = sh(&mut ch, "cat /proc/cmdline").await;
        assert!(
            cmdline.contains(ferrovirt_testkit::DISK_BOOT_MARKER),
            "{fmt}: not booted from the disk: {cmdline}"
        );
        force_stop(&d.client, &name).await;
    }
}
