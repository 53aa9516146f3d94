//! The pool drivers against the fake command runner: the commands each
//! operation runs, and how failures and timeouts become errors.

use std::sync::Arc;

use ferrovirt_api::{PoolSpec, VolumeCreate, VolumeFormat};
use ferrovirt_core::fake_runner::{FakeRunner, Reply};
use ferrovirt_core::{DiskSource, ErrorKind};

use super::*;

fn spec(json: serde_json::Value) -> PoolSpec {
    serde_json::from_value(json).unwrap()
}

fn with_fake(spec: &PoolSpec, dir: &Path) -> (Arc<FakeRunner>, Box<dyn StorageDriver>) {
    let fake = Arc::new(FakeRunner::new());
    let d = driver(spec, dir.to_owned(), fake.clone());
    (fake, d)
}

#[test]
fn volume_names_stay_in_their_pool() {
    for ok in ["disk.qcow2", "a", "root_1+x-2"] {
        check_volume_name("name", ok).unwrap();
    }
    for bad in ["", "../etc/passwd", "a/b", ".hidden", "-rf", "a b", "x\0"] {
        let err = check_volume_name("name", bad).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("name"), "{bad}");
    }
}

#[test]
fn specs_need_their_type_fields() {
    let field = |json| {
        let s = spec(json);
        let (_, d) = with_fake(&s, Path::new("/x"));
        check_spec(&s, &*d).unwrap_err().field
    };
    let iscsi = serde_json::json!({"name": "p", "type": "iscsi", "source": {"host": "127.0.0.1"}});
    assert_eq!(field(iscsi).as_deref(), Some("source.target"));
    let fs = serde_json::json!({"name": "p", "type": "fs",
        "source": {"device": "/dev/x", "filesystem": "ntfs"}});
    assert_eq!(field(fs).as_deref(), Some("source.filesystem"));
    let rel = serde_json::json!({"name": "p", "path": "rel"});
    assert_eq!(field(rel).as_deref(), Some("path"));
    let lv = serde_json::json!({"name": "p", "type": "logical", "path": "/srv"});
    assert_eq!(field(lv).as_deref(), Some("path"));
}

#[test]
fn mount_options_come_from_an_allow_list() {
    let field = |kind: &str, options: &str| {
        let s = spec(serde_json::json!({"name": "p", "type": kind,
            "source": {"device": "/dev/x", "host": "nas", "export": "/e", "options": options}}));
        let (_, d) = with_fake(&s, Path::new("/x"));
        check_spec(&s, &*d).err().and_then(|e| e.field)
    };
    for bad in [
        "exec",
        "suid",
        "dev",
        "defaults",
        "user",
        "noatime,suid",
        "uid=0",
        "vers=4,,x",
        "context=x",
    ] {
        assert_eq!(field("fs", bad).as_deref(), Some("source.options"), "{bad}");
        assert_eq!(
            field("netfs", bad).as_deref(),
            Some("source.options"),
            "{bad}"
        );
    }
    for ok in ["noatime", "vers=4.2,soft,timeo=50", "ro,nosuid"] {
        assert_eq!(field("netfs", ok), None, "{ok}");
    }
    assert_eq!(field("fs", "discard,commit=30"), None);
}

#[test]
fn capabilities_say_what_each_type_does() {
    let caps = |kind: &str| {
        let s = spec(serde_json::json!({"name": "p", "type": kind}));
        with_fake(&s, Path::new("/x")).1.capabilities()
    };
    let dir = caps("dir");
    assert!(dir.files && dir.qcow2 && dir.linked_clones && dir.owns_directory);
    assert!(!dir.needs_mount && !dir.block_devices);
    let netfs = caps("netfs");
    assert!(netfs.files && netfs.needs_mount && netfs.remote && !netfs.owns_directory);
    let lv = caps("logical");
    assert!(lv.manages_volumes && lv.block_devices && !lv.files && !lv.qcow2);
    let iscsi = caps("iscsi");
    assert!(!iscsi.manages_volumes && iscsi.remote && !iscsi.buildable);
}

#[tokio::test]
async fn logical_volumes_are_made_and_sized_with_lvm() {
    let s = spec(serde_json::json!({"name": "p", "type": "logical", "source": {"vg": "vg0"}}));
    let (fake, d) = with_fake(&s, Path::new("/x"));
    fake.on("lvm", &["lvs"], Reply::stdout("  data|33554432"));
    let req = VolumeCreate {
        name: "new".into(),
        size: 1 << 20,
        format: VolumeFormat::Raw,
        preallocation: Default::default(),
    };
    // The fake lists only `data`, so the new LV is not found after lvcreate.
    let err = d.create(&req).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    let lines = fake.lines();
    assert!(lines[0].starts_with("lvm lvs --config "), "{lines:?}");
    assert!(lines[0].ends_with("-o lv_name,lv_size vg0"), "{lines:?}");
    assert!(lines[1].starts_with("lvm lvcreate --config "), "{lines:?}");
    assert!(lines[1].contains(" -y -L 1048576b -n new"), "{lines:?}");
    d.resize("data", 64 << 20).await.unwrap();
    let last = fake.lines().pop().unwrap();
    assert!(last.starts_with("lvm lvresize --config "), "{last}");
    assert!(last.ends_with(" -f -L 67108864b vg0/data"), "{last}");
    let qcow = VolumeCreate {
        format: VolumeFormat::Qcow2,
        ..req
    };
    assert_eq!(
        d.create(&qcow).await.unwrap_err().field.as_deref(),
        Some("format")
    );
}

#[tokio::test]
async fn lvm_failures_and_timeouts_name_the_volume_group() {
    let s = spec(serde_json::json!({"name": "p", "type": "logical"}));
    let (fake, d) = with_fake(&s, Path::new("/x"));
    fake.on(
        "lvm",
        &["vgs"],
        Reply::fail(
            5,
            "  WARNING: Activation disabled.\n  Volume group \"p\" not found",
        ),
    );
    let err = d.start().await.unwrap_err();
    assert_eq!(
        err.message,
        "volume group p is not usable: Volume group \"p\" not found"
    );
    fake.on("lvm", &["vgs"], Reply::TimedOut);
    let err = d.space().await.unwrap_err();
    assert_eq!(
        err.message,
        "cannot read volume group p: lvm did not finish within 120s and was killed"
    );
}

#[tokio::test]
async fn fs_pools_mount_on_start_and_unmount_on_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mnt");
    let s = spec(serde_json::json!({"name": "n", "type": "netfs",
        "source": {"host": "nas", "export": "/srv"}}));
    let (fake, d) = with_fake(&s, &dir);
    if std::fs::read_to_string("/proc/filesystems").is_ok_and(|f| f.contains("\tnfs")) {
        d.start().await.unwrap();
        assert_eq!(
            fake.lines(),
            [format!("mount -t nfs nas:/srv {}", dir.display())]
        );
    }
    let s = spec(serde_json::json!({"name": "f", "type": "fs",
        "source": {"device": "/srv/fs.img"}}));
    let (fake, d) = with_fake(&s, &dir);
    fake.on("mount", &[], Reply::fail(32, "wrong fs type"));
    let err = d.start().await.unwrap_err();
    assert_eq!(err.message, "cannot mount pool f: wrong fs type");
    d.build().await.unwrap();
    assert_eq!(fake.lines()[1], "mkfs.ext4 -q -F /srv/fs.img");
    // Nothing is mounted at the directory, so stop has nothing to do.
    d.stop().await.unwrap();
    assert_eq!(fake.lines().len(), 2);
}

#[tokio::test]
async fn file_volumes_go_through_qemu_img_and_become_file_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spec(serde_json::json!({"name": "d"}));
    let (fake, d) = with_fake(&s, tmp.path());
    fake.on("qemu-img", &["create"], Reply::fail(1, "disk full"));
    let req = VolumeCreate {
        name: "a.qcow2".into(),
        size: 1 << 20,
        format: VolumeFormat::Qcow2,
        preallocation: Default::default(),
    };
    let err = d.create(&req).await.unwrap_err();
    assert_eq!(err.message, "cannot create volume a.qcow2: disk full");
    let part = tmp.path().join(".part-a.qcow2");
    assert_eq!(
        fake.lines(),
        [format!(
            "qemu-img create -q -f qcow2 {} 1048576",
            part.display()
        )]
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    std::fs::write(tmp.path().join("b.img"), b"x").unwrap();
    let vol = d.volume("b.img").await.unwrap();
    assert_eq!(
        d.disk_source(&vol).unwrap(),
        DiskSource::File {
            path: tmp.path().join("b.img"),
            format: ferrovirt_api::DiskFormat::Raw
        }
    );
    assert_eq!(
        d.volume("c").await.unwrap_err().message,
        "pool d has no volume c"
    );
}

#[tokio::test]
async fn iscsi_volumes_are_fixed_and_open_as_iscsi_sources() {
    let s = spec(serde_json::json!({"name": "t", "type": "iscsi",
        "source": {"host": "127.0.0.1", "target": "iqn.x:t"}}));
    let (_, d) = with_fake(&s, Path::new("/x"));
    let err = d.delete("lun-1").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    let lun = ferrovirt_core::VolumeInfo {
        name: "lun-1".into(),
        path: lun_url(&s.source, 1),
        format: VolumeFormat::Raw,
        virtual_size: 1,
        actual_size: 1,
        has_backing: false,
    };
    let src = d.disk_source(&lun).unwrap();
    assert_eq!(src.location(), "iscsi://127.0.0.1:3260/iqn.x:t/1");
}
