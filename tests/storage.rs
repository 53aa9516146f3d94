//! Storage pools and volumes, each proved from inside a real guest where a
//! guest is involved: hot-attached volumes keep their data across detach
//! and re-attach, live resize, I/O limits that cap dd in the guest, linked
//! clones that never touch their base, cdrom media changes, an iSCSI pool
//! against a real userspace target (tgt), fs and logical pools on loop
//! devices, and the refusals that keep data safe.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrovirt_api::{OperationStatus, VolumeImport};
use ferrovirt_e2e::*;
use serde_json::json;

/// Waits until /sys/block/DEV exists (or is gone) in the guest.
async fn wait_block(ch: &mut Ch, dev: &str, present: bool) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let out = ch
            .run(&format!("test -e /sys/block/{dev}"), CMD)
            .await
            .unwrap();
        if (out.exit_code == 0) == present {
            return;
        }
        assert!(
            Instant::now() < end,
            "/sys/block/{dev} present={} never became {present}",
            !present
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Size of a guest block device in bytes.
async fn guest_bytes(ch: &mut Ch, dev: &str) -> u64 {
    let out = sh(ch, &format!("cat /sys/block/{dev}/size")).await;
    out.trim().parse::<u64>().unwrap() * 512
}

/// Writes `text` into the first sector of a guest device, flushed.
async fn write_marker(ch: &mut Ch, dev: &str, text: &str) {
    sh(
        ch,
        &format!("printf '{text}' | dd of=/dev/{dev} bs=512 conv=sync,fsync 2>/dev/null"),
    )
    .await;
}

async fn read_marker(ch: &mut Ch, dev: &str, len: usize) -> String {
    sh(
        ch,
        &format!("dd if=/dev/{dev} bs=512 count=1 2>/dev/null | head -c {len}"),
    )
    .await
}

fn cli_ok(d: &TestDaemon, args: &[&str]) -> String {
    let (ok, out, err) = d.cli(args);
    assert!(ok, "ferrovirt {} failed: {err}{out}", args.join(" "));
    out
}

fn cli_err(d: &TestDaemon, args: &[&str]) -> String {
    let (ok, out, err) = d.cli(args);
    assert!(!ok, "ferrovirt {} should fail: {out}", args.join(" "));
    err
}

fn sh_host(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

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
    let f = std::fs::File::create(&src).unwrap();
    f.set_len(16 << 20).unwrap();
    drop(f);
    sh_host(&format!(
        "printf 'ferrovirt-base-data' | dd of={} conv=notrunc 2>/dev/null",
        src.display()
    ));
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
    let f = std::fs::File::create(&iso).unwrap();
    f.set_len(2 << 20).unwrap();
    drop(f);
    sh_host(&format!(
        "printf 'ferrovirt-iso-9660' | dd of={} conv=notrunc 2>/dev/null",
        iso.display()
    ));
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
struct Tgt {
    child: std::process::Child,
    control: String,
}

const IQN: &str = "iqn.2026-11.org.ferrovirt.test:t1";

impl Tgt {
    fn start(netns: &str, dir: &Path) -> Self {
        let control = (20000 + std::process::id() % 20000).to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "tgtd", "-f", "-C", &control])
            .args(["--iscsi", "portal=127.0.0.1:3260"])
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(dir.join("tgtd.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("tgtd.err")).unwrap())
            .spawn()
            .expect("tgtd (install tgt)");
        let t = Self { child, control };
        let sock = format!("/var/run/tgtd/socket.{}", t.control);
        let end = Instant::now() + Duration::from_secs(10);
        while !Path::new(&sock).exists() {
            assert!(
                Instant::now() < end,
                "tgtd did not start: {}",
                std::fs::read_to_string(dir.join("tgtd.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        t.adm(&[
            "--mode",
            "target",
            "--op",
            "new",
            "--tid",
            "1",
            "--targetname",
            IQN,
        ]);
        for (lun, mib) in [(1, 64u64), (2, 32)] {
            let file = dir.join(format!("lun{lun}.img"));
            std::fs::File::create(&file)
                .unwrap()
                .set_len(mib << 20)
                .unwrap();
            t.adm(&[
                "--mode",
                "logicalunit",
                "--op",
                "new",
                "--tid",
                "1",
                "--lun",
                &lun.to_string(),
                "--backing-store",
                &file.display().to_string(),
            ]);
        }
        t.adm(&[
            "--mode",
            "target",
            "--op",
            "bind",
            "--tid",
            "1",
            "--initiator-address",
            "ALL",
        ]);
        t
    }

    fn adm(&self, args: &[&str]) {
        let out = Command::new("tgtadm")
            .args(["-C", &self.control, "--lld", "iscsi"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tgtadm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tgt {
    fn drop(&mut self) {
        let _ = Command::new("tgtadm")
            .args([
                "-C",
                &self.control,
                "--lld",
                "iscsi",
                "--mode",
                "target",
                "--op",
                "delete",
            ])
            .args(["--force", "--tid", "1"])
            .output();
        let _ = Command::new("tgtadm")
            .args(["-C", &self.control, "--mode", "system", "--op", "delete"])
            .output();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(format!("/var/run/tgtd/socket.{}", self.control));
        let _ = std::fs::remove_file(format!("/var/run/tgtd/socket.{}.lock", self.control));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn iscsi_pool_luns_are_guest_disks() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _tgt = Tgt::start(&d.netns, dir.path());
    cli_ok(
        &d,
        &[
            "pool",
            "create",
            "san",
            "--type",
            "iscsi",
            "--host",
            "127.0.0.1",
            "--target",
            IQN,
        ],
    );
    let vols = d.client.volumes("san").await.unwrap();
    let sizes: Vec<(String, u64)> = vols
        .iter()
        .map(|v| (v.name.clone(), v.virtual_size))
        .collect();
    assert_eq!(
        sizes,
        vec![
            ("lun-1".to_string(), 64 << 20),
            ("lun-2".to_string(), 32 << 20)
        ]
    );
    let pool = d.client.pool("san").await.unwrap();
    assert_eq!(pool.capacity, 96 << 20);
    let err = cli_err(&d, &["volume", "create", "san/new", "1G"]);
    assert!(err.contains("LUNs"), "{err}");

    let mut spec = guest_spec("isc");
    spec["disks"] = json!([{"volume": "san/lun-1"}]);
    create(&d.client, spec).await;
    let mut ch = boot(&d.client, "isc").await;
    assert_eq!(guest_bytes(&mut ch, "vda").await, 64 << 20);
    write_marker(&mut ch, "vda", "ferrovirt-over-iscsi").await;
    let head = std::fs::read(dir.path().join("lun1.img")).unwrap();
    assert_eq!(
        &head[..20],
        b"ferrovirt-over-iscsi",
        "the LUN's file holds the guest's write"
    );
    force_stop(&d.client, "isc").await;
}

/// A loop device over a new sparse file of `mib` MiB; detached on drop.
struct Loop(String);

impl Loop {
    fn new(file: &Path, mib: u64) -> Self {
        std::fs::File::create(file)
            .unwrap()
            .set_len(mib << 20)
            .unwrap();
        Self(
            sh_host(&format!("losetup -f --show {}", file.display()))
                .trim()
                .to_owned(),
        )
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logical_pool_on_a_loop_device() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dev = Loop::new(&dir.path().join("pv.img"), 256);
    let vg = format!("fvtest{}", std::process::id());
    cli_ok(
        &d,
        &[
            "pool", "create", "lvm", "--type", "logical", "--device", &dev.0, "--vg", &vg,
            "--build",
        ],
    );
    let cleanup = |vg: &str, dev: &str| {
        let cfg = "global{activation=0} backup{backup=0 archive=0}";
        let _ = Command::new("lvm")
            .args(["vgremove", "--config", cfg, "-y", vg])
            .output();
        let _ = Command::new("lvm")
            .args(["pvremove", "--config", cfg, "-y", dev])
            .output();
    };
    let pool = d.client.pool("lvm").await.unwrap();
    assert!(
        pool.capacity > 240 << 20 && pool.capacity <= 256 << 20,
        "VG capacity {}",
        pool.capacity
    );
    cli_ok(
        &d,
        &[
            "volume",
            "create",
            "lvm/lv1",
            "32M",
            "--image-format",
            "raw",
        ],
    );
    let err = cli_err(
        &d,
        &[
            "volume",
            "create",
            "lvm/lv2",
            "32M",
            "--image-format",
            "qcow2",
        ],
    );
    assert!(err.contains("raw"), "{err}");
    cli_ok(&d, &["volume", "resize", "lvm/lv1", "48M"]);
    let vols = d.client.volumes("lvm").await.unwrap();
    assert_eq!(vols.len(), 1);
    assert_eq!(
        (vols[0].name.as_str(), vols[0].virtual_size),
        ("lv1", 48 << 20)
    );
    let pool = d.client.pool("lvm").await.unwrap();
    assert_eq!(pool.allocation, 48 << 20);

    let mut spec = guest_spec("lvg");
    spec["disks"] = json!([{"volume": "lvm/lv1"}]);
    let res = d.client.create_instance(&spec).await;
    if ferrovirt_storage_has_dm() {
        res.expect("with device-mapper the LV is a disk");
    } else {
        let err = res.expect_err("no device-mapper: the LV cannot be opened");
        assert!(err.to_string().contains("device-mapper"), "{err}");
    }
    let err = cli_err(&d, &["pool", "delete", "lvm"]);
    assert!(err.contains("holds 1 volume"), "{err}");
    cli_ok(&d, &["volume", "delete", "lvm/lv1"]);
    cli_ok(&d, &["pool", "delete", "lvm"]);
    cleanup(&vg, &dev.0);
}

fn ferrovirt_storage_has_dm() -> bool {
    std::fs::read_to_string("/proc/misc").is_ok_and(|m| m.contains("device-mapper"))
}

/// Whether the daemon (in the mount namespace `ip netns exec` gave it) has
/// something mounted at `dir`.
fn mounted(d: &TestDaemon, dir: &Path) -> bool {
    let want = dir.canonicalize().unwrap().display().to_string();
    std::fs::read_to_string(format!("/proc/{}/mountinfo", d.pid()))
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

#[tokio::test(flavor = "multi_thread")]
async fn fs_pool_mounts_and_a_full_disk_leaves_nothing_behind() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("fs.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    let mnt = dir.path().join("mnt");
    let img_s = img.display().to_string();
    let mnt_s = mnt.display().to_string();
    cli_ok(
        &d,
        &[
            "pool", "create", "small", "--type", "fs", "--device", &img_s, "--path", &mnt_s,
            "--build",
        ],
    );
    assert!(mounted(&d, &mnt), "the pool is mounted at its path");
    cli_ok(&d, &["volume", "create", "small/keep.qcow2", "1G"]);

    // A copy that does not fit: the import fails and leaves no file.
    let big = dir.path().join("big.raw");
    sh_host(&format!(
        "dd if=/dev/urandom of={} bs=1M count=48 2>/dev/null",
        big.display()
    ));
    let (ok, _, err) = d.cli(&[
        "volume",
        "import",
        "small/big",
        &big.display().to_string(),
        "--image-format",
        "raw",
    ]);
    assert!(!ok, "48 MiB cannot fit in a 32 MiB filesystem");
    assert!(err.contains("No space") || err.contains("space"), "{err}");
    // Seen from the daemon's mount namespace, where the pool is mounted.
    let in_daemon =
        Path::new(&format!("/proc/{}/root", d.pid())).join(mnt.strip_prefix("/").unwrap());
    let names: Vec<String> = std::fs::read_dir(&in_daemon)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lost+found")
        .collect();
    assert_eq!(
        names,
        vec!["keep.qcow2".to_string()],
        "nothing half-made is left"
    );

    cli_ok(&d, &["pool", "stop", "small"]);
    assert!(!mounted(&d, &mnt));
    cli_ok(&d, &["pool", "start", "small"]);
    assert!(mounted(&d, &mnt));
    let vols = d.client.volumes("small").await.unwrap();
    assert_eq!(vols.len(), 1, "the volume survived stop/start");
    let err = cli_err(&d, &["pool", "delete", "small"]);
    assert!(err.contains("holds 1 volume"), "{err}");
    cli_ok(&d, &["pool", "delete", "small", "--volumes"]);
    assert!(!mounted(&d, &mnt), "deleting the pool unmounts it");
}

#[tokio::test(flavor = "multi_thread")]
async fn netfs_pool_needs_a_kernel_nfs_client() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let has_nfs = std::fs::read_to_string("/proc/filesystems")
        .unwrap()
        .lines()
        .any(|l| l.trim_end().ends_with("\tnfs"));
    if has_nfs {
        eprintln!("this kernel mounts NFS; the refusal below does not apply");
        return;
    }
    let err = cli_err(
        &d,
        &[
            "pool",
            "create",
            "nas",
            "--type",
            "netfs",
            "--host",
            "127.0.0.1",
            "--export",
            "/srv",
            "--path",
            &dir.path().join("m").display().to_string(),
            "--options",
            "vers=4.2",
        ],
    );
    assert!(err.contains("cannot mount NFS"), "{err}");
    let pools = d.client.pools().await.unwrap();
    assert!(
        pools.iter().all(|p| p.spec.name != "nas"),
        "a pool that could not start is not left defined"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn volume_copies_convert_export_cancel_and_bad_input() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("src.raw");
    std::fs::File::create(&raw)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    sh_host(&format!(
        "printf 'ferrovirt-v2v' | dd of={} conv=notrunc 2>/dev/null",
        raw.display()
    ));
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

#[tokio::test(flavor = "multi_thread")]
async fn full_clone_shares_extents_on_xfs() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("xfs.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(320 << 20)
        .unwrap();
    let mnt = dir.path().join("mnt");
    cli_ok(
        &d,
        &[
            "pool",
            "create",
            "x",
            "--type",
            "fs",
            "--filesystem",
            "xfs",
            "--device",
            &img.display().to_string(),
            "--path",
            &mnt.display().to_string(),
            "--build",
        ],
    );
    let src = dir.path().join("data.raw");
    sh_host(&format!(
        "dd if=/dev/urandom of={} bs=1M count=64 2>/dev/null",
        src.display()
    ));
    cli_ok(
        &d,
        &[
            "volume",
            "import",
            "x/base",
            &src.display().to_string(),
            "--image-format",
            "raw",
        ],
    );
    let out = cli_ok(&d, &["volume", "clone", "x/base", "copy"]);
    assert!(out.contains("(reflink)"), "{out}");
    let pool = d.client.pool("x").await.unwrap();
    assert!(
        pool.allocation < (64 + 48) << 20,
        "two 64 MiB volumes share their extents: {} bytes allocated",
        pool.allocation
    );
    let in_daemon =
        Path::new(&format!("/proc/{}/root", d.pid())).join(mnt.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(in_daemon.join("base")).unwrap(),
        std::fs::read(in_daemon.join("copy")).unwrap()
    );
    cli_ok(&d, &["pool", "delete", "x", "--volumes"]);
}
