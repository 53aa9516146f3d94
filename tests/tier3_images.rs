//! Tier 3: image files as the daemon records them — a volume's format is
//! the one it was made with, whatever its content says; a qcow2 image
//! naming a backing file the daemon did not make is refused; deleting an
//! instance removes only the files the daemon made for it. The real
//! daemon, real qemu-img, no guest, no root.

#[allow(dead_code)]
#[path = "tier3_harness.rs"]
mod harness;

use std::path::Path;

use ferrovirt_api::{SnapshotKind, SnapshotsPost, VolumeCreate, VolumeFormat};
use harness::*;
use serde_json::json;

fn qemu_img(args: &[&str]) {
    let ok = std::process::Command::new("qemu-img")
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "qemu-img {}", args.join(" "));
}

/// The bytes of a qcow2 image whose header names `backing` (raw).
fn header_naming(dir: &Path, backing: &Path) -> Vec<u8> {
    let img = dir.join("header.qcow2");
    let (b, i) = (backing.display().to_string(), img.display().to_string());
    qemu_img(&[
        "create", "-q", "-f", "qcow2", "-F", "raw", "-b", &b, &i, "1M",
    ]);
    let bytes = std::fs::read(&img).unwrap();
    std::fs::remove_file(&img).unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn a_raw_volume_stays_raw_whatever_its_content_says() {
    let h = FakeHost::start().await;
    let c = &h.client;
    let secret = h.dir.path().join("secret");
    std::fs::write(&secret, "host secret").unwrap();
    let req = VolumeCreate {
        name: "data.raw".into(),
        size: 1 << 20,
        format: VolumeFormat::Raw,
        preallocation: Default::default(),
    };
    let vol = c.create_volume("default", &req).await.unwrap();
    // What a guest writes onto its disk.
    std::fs::write(&vol.path, header_naming(h.dir.path(), &secret)).unwrap();

    let vol = c.volume("default", "data.raw").await.unwrap();
    assert_eq!(vol.format, VolumeFormat::Raw, "{vol:?}");
    assert!(vol.backing_chain.is_empty(), "{vol:?}");
    let listed = c.volumes("default").await.unwrap();
    assert_eq!(listed[0].format, VolumeFormat::Raw);
    let spec = json!({"name": "r", "memory": 64, "disks": [{"volume": "default/data.raw"}]});
    let inst = c.create_instance(&spec).await.unwrap();
    assert_eq!(inst.spec.disks[0].format.as_str(), "raw");

    // The same bytes in a file named by path and declared qcow2: refused.
    let named = h.dir.path().join("named.qcow2");
    std::fs::copy(&vol.path, &named).unwrap();
    let spec = json!({"name": "q", "memory": 64,
                      "disks": [{"path": named.display().to_string(), "format": "qcow2"}]});
    let err = c.create_instance(&spec).await.unwrap_err().to_string();
    assert!(
        err.contains("disks[0].path") && err.contains("backing file") && err.contains("secret"),
        "{err}"
    );
    // A user's file with the header cannot be imported either.
    let import = ferrovirt_api::VolumeImport {
        name: "imported".into(),
        source: named.display().to_string(),
        source_format: None,
        format: None,
    };
    let err = c
        .import_volume("default", &import)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("source") && err.contains("backing file"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_instance_removes_only_the_files_it_recorded() {
    let h = FakeHost::start().await;
    let c = &h.client;
    let dir = h.dir.path().join("images");
    std::fs::create_dir(&dir).unwrap();
    // The user's own files, named as the daemon names the files it makes.
    let raw = dir.join("own-disk0.raw");
    std::fs::write(&raw, vec![0u8; 1 << 20]).unwrap();
    let q = dir.join("own-disk9.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        &q.display().to_string(),
        "1M",
    ]);
    let spec = json!({"name": "own", "memory": 64, "disks": [
        {"path": raw.display().to_string()},
        {"path": q.display().to_string(), "format": "qcow2"}
    ]});
    c.create_instance(&spec).await.unwrap();
    let snap = SnapshotsPost {
        name: "s1".into(),
        kind: SnapshotKind::External,
        memory: Some(false),
        description: String::new(),
    };
    let op = c.create_snapshot("own", &snap).await.unwrap();
    c.finish(&op).await.expect("snapshot taken");
    let overlays: Vec<_> = c.snapshot("own", "s1").await.unwrap().disks;
    assert_eq!(overlays.len(), 2);
    let inst = c.instance("own").await.unwrap();
    let made: Vec<String> = inst.spec.disks.iter().map(|d| d.path.clone()).collect();
    for f in &made {
        assert!(Path::new(f).exists(), "{f}");
        assert!(f.starts_with(&dir.display().to_string()), "{f}");
    }

    c.delete_instance("own", false).await.unwrap();
    for f in &made {
        assert!(!Path::new(f).exists(), "{f} (made by the daemon) was left");
    }
    assert!(raw.exists(), "the user's raw disk was deleted");
    assert!(q.exists(), "the user's own-disk9.qcow2 was deleted");
    let records: Vec<_> = std::fs::read_dir(dir.join(".ferrovirt"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(records.is_empty(), "records left: {records:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn merging_snapshots_away_keeps_the_recorded_chain() {
    let h = FakeHost::start().await;
    let c = &h.client;
    let dir = h.dir.path().join("images");
    std::fs::create_dir(&dir).unwrap();
    let raw = dir.join("base.raw");
    std::fs::write(&raw, b"base data").unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&raw)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let spec = json!({"name": "m", "memory": 64, "disks": [{"path": raw.display().to_string()}]});
    c.create_instance(&spec).await.unwrap();
    for s in ["e1", "e2"] {
        let snap = SnapshotsPost {
            name: s.into(),
            kind: SnapshotKind::External,
            memory: Some(false),
            description: String::new(),
        };
        let op = c.create_snapshot("m", &snap).await.unwrap();
        c.finish(&op).await.expect("snapshot taken");
    }
    let o1 = dir.join("m-disk0.e1.qcow2");
    let o2 = dir.join("m-disk0.e2.qcow2");
    let backing = |p: &Path| ferrovirt_storage::record::read(p).and_then(|r| r.backing);
    assert_eq!(backing(&o2).unwrap().path, o1.display().to_string());
    // The middle one: e1's frozen file (the user's) is streamed into O1.
    let op = c.delete_snapshot("m", "e1").await.unwrap();
    c.finish(&op).await.expect("e1 deleted");
    assert_eq!(backing(&o1), None, "O1 stands alone now");
    assert!(raw.exists(), "the user's file stays");
    // The newest: the live overlay is committed into O1.
    let op = c.delete_snapshot("m", "e2").await.unwrap();
    c.finish(&op).await.expect("e2 deleted");
    assert!(!o2.exists());
    assert_eq!(ferrovirt_storage::record::read(&o2), None);
    let inst = c.instance("m").await.unwrap();
    assert_eq!(inst.spec.disks[0].path, o1.display().to_string());
    let data = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(&o1)
        .arg(dir.join("out.raw"))
        .status()
        .unwrap();
    assert!(data.success());
    assert!(
        std::fs::read(dir.join("out.raw"))
            .unwrap()
            .starts_with(b"base data")
    );
    c.delete_instance("m", false).await.unwrap();
    assert!(!o1.exists(), "the daemon's overlay goes with the instance");
    assert!(raw.exists());
}
