//! Storage pool types against real storage: an iSCSI pool on a real
//! userspace target (tgt) whose LUNs are guest disks, logical and fs pools
//! on loop devices, reflink clones on XFS, and the netfs refusal on a
//! kernel without an NFS client.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrovirt_e2e::*;
use serde_json::json;

/// `path` as the daemon sees it: in the mount namespace `ip netns exec`
/// gave it, where its pools are mounted.
fn daemon_view(d: &TestDaemon, path: &Path) -> std::path::PathBuf {
    Path::new(&format!("/proc/{}/root", d.pid())).join(path.strip_prefix("/").unwrap())
}

struct Tgt {
    child: std::process::Child,
    control: String,
}

const IQN: &str = "iqn.2026-11.org.ferrovirt.test:t1";

impl Tgt {
    fn start(netns: &str, dir: &Path) -> Self {
        // tgtd takes control ports up to 32767.
        let control = (1000 + std::process::id() % 30000).to_string();
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
            sparse_file(&file, mib);
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
        sparse_file(file, mib);
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
    if ferrovirt_storage::has_device_mapper() {
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

/// Whether the daemon (in the mount namespace `ip netns exec` gave it) has
/// something mounted at `dir`.
fn mounted(d: &TestDaemon, dir: &Path) -> bool {
    let want = dir.canonicalize().unwrap().display().to_string();
    std::fs::read_to_string(format!("/proc/{}/mountinfo", d.pid()))
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// The per-mount options of what the daemon has mounted at `dir`.
fn mount_options(d: &TestDaemon, dir: &Path) -> Vec<String> {
    let want = dir.canonicalize().unwrap().display().to_string();
    std::fs::read_to_string(format!("/proc/{}/mountinfo", d.pid()))
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .and_then(|l| l.split(' ').nth(5))
        .unwrap_or_default()
        .split(',')
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fs_pool_mounts_and_a_full_disk_leaves_nothing_behind() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("fs.img");
    sparse_file(&img, 32);
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
    let options = mount_options(&d, &mnt);
    assert!(
        options.iter().any(|o| o == "nosuid") && options.iter().any(|o| o == "nodev"),
        "pools are mounted nosuid,nodev: {options:?}"
    );
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
    let in_daemon = daemon_view(&d, &mnt);
    let names: Vec<String> = std::fs::read_dir(&in_daemon)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lost+found")
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        names,
        vec![".ferrovirt".to_string(), "keep.qcow2".to_string()],
        "nothing half-made is left"
    );
    let records: Vec<String> = std::fs::read_dir(in_daemon.join(".ferrovirt"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        records,
        vec!["keep.qcow2.json".to_string()],
        "only the volume's record"
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
async fn full_clone_shares_extents_on_xfs() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("xfs.img");
    sparse_file(&img, 320);
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
    let in_daemon = daemon_view(&d, &mnt);
    assert_eq!(
        std::fs::read(in_daemon.join("base")).unwrap(),
        std::fs::read(in_daemon.join("copy")).unwrap()
    );
    cli_ok(&d, &["pool", "delete", "x", "--volumes"]);
}
