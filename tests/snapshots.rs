//! Snapshots (internal and external, with and without memory), clones,
//! save/restore — each proved from inside a real guest.

use std::time::Duration;

use ferrovirt_api::{
    ClonePost, InstanceStatus, RestorePost, SavePost, SnapshotKind, SnapshotsPost, StateAction,
    StatePut,
};
use ferrovirt_client::Client;
use ferrovirt_e2e::*;
use serde_json::json;

fn spec_with_disk(name: &str, disk: &str, format: &str) -> serde_json::Value {
    let mut spec = guest_spec(name);
    spec["disks"] = json!([{"path": disk, "format": format}]);
    spec
}

async fn mount(ch: &mut Ch) {
    sh(ch, "mkdir -p /mnt && mount /dev/vda /mnt").await;
}

async fn snap(c: &Client, name: &str, snap: &str, kind: SnapshotKind, memory: Option<bool>) {
    let req = SnapshotsPost {
        name: snap.into(),
        kind,
        memory,
        description: format!("test snapshot {snap}"),
    };
    let op = c
        .create_snapshot(name, &req)
        .await
        .expect("snapshot request");
    c.finish(&op).await.expect("snapshot");
}

async fn revert(c: &Client, name: &str, snap: &str) {
    let op = c.revert_snapshot(name, snap).await.expect("revert request");
    c.finish(&op).await.expect("revert");
}

async fn stop(c: &Client, name: &str) {
    c.change_state(
        name,
        &StatePut {
            action: StateAction::Stop,
            force: false,
            timeout: Some(60),
        },
    )
    .await
    .expect("stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_snapshots_revert_disk_and_memory() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    let dir = tempfile::tempdir().unwrap();
    create(
        c,
        spec_with_disk("int", &qcow2(dir.path(), "int.qcow2", 64), "qcow2"),
    )
    .await;
    let mut ch = boot(c, "int").await;
    sh(&mut ch, "mke2fs -F /dev/vda >/dev/null").await;
    mount(&mut ch).await;
    sh(&mut ch, "echo alpha > /mnt/A && sync").await;

    let at_snapshot = counter(&mut ch).await;
    snap(c, "int", "s1", SnapshotKind::Internal, None).await; // running: memory by default
    sh(&mut ch, "echo beta > /mnt/B && rm /mnt/A && sync").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_revert = counter(&mut ch).await;
    assert!(before_revert > at_snapshot + 10);

    revert(c, "int", "s1").await;
    let inst = c.instance("int").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    assert_eq!(inst.state.current_snapshot.as_deref(), Some("s1"));
    let after = counter(&mut ch).await;
    assert!(
        after >= at_snapshot && after < before_revert,
        "the counter continues from the snapshot: {at_snapshot} at snapshot, {before_revert} before revert, {after} after"
    );
    assert_eq!(
        sh(&mut ch, "ls /mnt")
            .await
            .split_whitespace()
            .filter(|f| *f != "lost+found")
            .collect::<Vec<_>>(),
        vec!["A"]
    );
    assert_eq!(sh(&mut ch, "cat /mnt/A").await, "alpha\n");

    // Disk-only internal snapshot of the stopped instance.
    sh(&mut ch, "sync").await;
    stop(c, "int").await;
    snap(c, "int", "s2", SnapshotKind::Internal, None).await;
    let mut ch = boot(c, "int").await;
    mount(&mut ch).await;
    sh(&mut ch, "echo gamma > /mnt/C && sync").await;
    stop(c, "int").await;
    revert(c, "int", "s2").await;
    assert_eq!(
        c.instance("int").await.unwrap().state.status,
        InstanceStatus::Shutoff
    );
    let mut ch = boot(c, "int").await;
    mount(&mut ch).await;
    let files = sh(&mut ch, "ls /mnt").await;
    assert!(files.contains('A') && !files.contains('C'), "{files}");

    // The tree: s2 is a child of s1 and current.
    let snaps = c.snapshots("int").await.unwrap();
    let s1 = snaps.iter().find(|s| s.name == "s1").unwrap();
    assert_eq!(s1.children, vec!["s2"]);
    assert!(s1.memory && !snaps.iter().find(|s| s.name == "s2").unwrap().memory);
    assert!(snaps.iter().find(|s| s.name == "s2").unwrap().current);

    // Delete a snapshot of a running instance; the other stays usable.
    c.finish(&c.delete_snapshot("int", "s1").await.unwrap())
        .await
        .expect("delete s1");
    let snaps = c.snapshots("int").await.unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].parent, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn external_chain_survives_deleting_the_middle_snapshot() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("ext.raw");
    std::fs::File::create(&base)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    create(c, spec_with_disk("ext", base.to_str().unwrap(), "raw")).await;
    let mut ch = boot(c, "ext").await;
    sh(&mut ch, "mke2fs -F /dev/vda >/dev/null").await;
    mount(&mut ch).await;
    for (i, s) in ["e1", "e2", "e3"].iter().enumerate() {
        sh(&mut ch, &format!("echo {} > /mnt/v && sync", i + 1)).await;
        snap(c, "ext", s, SnapshotKind::External, Some(false)).await;
    }
    sh(&mut ch, "echo 4 > /mnt/v && sync").await;
    let spec = c.instance("ext").await.unwrap().spec;
    assert!(
        spec.disks[0].path.ends_with("ext-disk0.e3.qcow2"),
        "{}",
        spec.disks[0].path
    );

    // Delete the middle one while the guest runs: its data is streamed away.
    c.finish(&c.delete_snapshot("ext", "e2").await.unwrap())
        .await
        .expect("delete e2");
    assert!(
        !dir.path().join("ext-disk0.e1.qcow2").exists(),
        "e2's frozen file is gone"
    );
    assert_eq!(
        sh(&mut ch, "cat /mnt/v").await,
        "4\n",
        "the live disk is untouched"
    );
    let snaps = c.snapshots("ext").await.unwrap();
    let names: Vec<&str> = snaps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["e1", "e3"]);
    assert_eq!(snaps[1].parent.as_deref(), Some("e1"));

    // Clones of a snapshot's state: full and linked.
    for (name, linked, from, want) in [("from-e1", false, "e1", "1"), ("from-e3", true, "e3", "3")]
    {
        let req = ClonePost {
            name: name.into(),
            linked,
            from_snapshot: Some(from.into()),
        };
        c.finish(&c.clone_instance("ext", &req).await.unwrap())
            .await
            .expect("clone from snapshot");
        let mut cch = boot(c, name).await;
        mount(&mut cch).await;
        assert_eq!(
            sh(&mut cch, "cat /mnt/v").await,
            format!("{want}\n"),
            "{name}"
        );
        c.delete_instance(name, true).await.unwrap();
    }

    for (s, want) in [("e1", "1"), ("e3", "3"), ("e1", "1")] {
        revert(c, "ext", s).await;
        assert_eq!(
            c.instance("ext").await.unwrap().state.status,
            InstanceStatus::Shutoff
        );
        let mut ch = boot(c, "ext").await;
        mount(&mut ch).await;
        assert_eq!(
            sh(&mut ch, "cat /mnt/v").await,
            format!("{want}\n"),
            "after revert to {s}"
        );
        sh(&mut ch, "echo scribble > /mnt/v && sync").await;
        c.change_state(
            "ext",
            &StatePut {
                action: StateAction::Stop,
                force: true,
                timeout: None,
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(
        std::fs::metadata(&base).unwrap().len(),
        64 << 20,
        "the base is never written"
    );

    // A memory snapshot of the running guest: revert resumes it.
    let mut ch = boot(c, "ext").await;
    mount(&mut ch).await;
    let at = counter(&mut ch).await;
    snap(c, "ext", "mem", SnapshotKind::External, Some(true)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = counter(&mut ch).await;
    revert(c, "ext", "mem").await;
    assert_eq!(
        c.instance("ext").await.unwrap().state.status,
        InstanceStatus::Running
    );
    let mut ch = channel(c, "ext").await;
    let after = counter(&mut ch).await;
    assert!(after >= at && after < later, "{at} / {later} / {after}");
    assert_eq!(sh(&mut ch, "cat /mnt/v").await, "scribble\n");

    c.delete_instance("ext", true).await.unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("ext.raw")],
        "only the user's own disk remains"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn linked_and_full_clones_boot_and_diverge() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    let dir = tempfile::tempdir().unwrap();
    let mut src = spec_with_disk("src", &qcow2(dir.path(), "src.qcow2", 64), "qcow2");
    src["nics"] = json!([{"network": "default"}]);
    create(c, src).await;
    let mut ch = boot(c, "src").await;
    sh(&mut ch, "mke2fs -F /dev/vda >/dev/null").await;
    mount(&mut ch).await;
    sh(&mut ch, "echo original > /mnt/X && sync").await;

    // Both clones of the running source.
    for (name, linked) in [("linked", true), ("full", false)] {
        let op = c
            .clone_instance(
                "src",
                &ClonePost {
                    name: name.into(),
                    linked,
                    from_snapshot: None,
                },
            )
            .await
            .unwrap();
        c.finish(&op).await.expect("clone");
    }
    sh(&mut ch, "echo source-only > /mnt/S && sync").await;
    let linked = c.instance("linked").await.unwrap();
    let full = c.instance("full").await.unwrap();
    assert_ne!(linked.spec.uuid, c.instance("src").await.unwrap().spec.uuid);
    assert_ne!(linked.spec.uuid, full.spec.uuid);
    let src_mac = c.instance("src").await.unwrap().spec.nics[0].mac.clone();
    assert!(
        linked.spec.nics[0].mac.is_some() && linked.spec.nics[0].mac != src_mac,
        "new MAC"
    );
    assert_ne!(full.spec.nics[0].mac, src_mac);
    assert_ne!(full.spec.nics[0].mac, linked.spec.nics[0].mac);
    let chain = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(&linked.spec.disks[0].path)
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&chain.stdout).unwrap();
    assert!(
        info["backing-filename"].is_string(),
        "linked clone is an overlay: {info}"
    );

    for name in ["linked", "full"] {
        let mut cch = boot(c, name).await;
        mount(&mut cch).await;
        assert_eq!(sh(&mut cch, "cat /mnt/X").await, "original\n");
        let files = sh(&mut cch, "ls /mnt").await;
        assert!(
            !files.contains('S'),
            "the clone does not see later source writes: {files}"
        );
        sh(&mut cch, &format!("echo {name} > /mnt/Y && sync")).await;
    }
    assert!(
        !sh(&mut ch, "ls /mnt").await.contains('Y'),
        "the source does not see clone writes"
    );

    // The frozen base of the linked clone is protected.
    match c.delete_snapshot("src", "clone-linked").await {
        Err(ferrovirt_client::ClientError::Api(b)) => panic!("refused too early: {}", b.error),
        Ok(op) => {
            let err = c.finish(&op).await.unwrap_err().to_string();
            assert!(err.contains("linked clone(s) linked"), "{err}");
        }
        Err(e) => panic!("{e}"),
    }
    let err = c
        .delete_instance("src", true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("backs the disks of linked clone(s) linked"),
        "{err}"
    );
    c.delete_instance("linked", true).await.unwrap();
    c.finish(&c.delete_snapshot("src", "clone-linked").await.unwrap())
        .await
        .expect("now deletable");
    assert_eq!(sh(&mut ch, "cat /mnt/S").await, "source-only\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn save_and_restore_resume_the_same_boot() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    create(c, guest_spec("sv")).await;
    let mut ch = boot(c, "sv").await;
    sh(&mut ch, "echo marker > /tmp/m").await;
    let uptime = |s: String| s.split('.').next().unwrap().parse::<u64>().unwrap();
    let up1 = uptime(sh(&mut ch, "cat /proc/uptime").await);
    let c1 = counter(&mut ch).await;

    let op = c.save_instance("sv", &SavePost::default()).await.unwrap();
    c.finish(&op).await.expect("save");
    let inst = c.instance("sv").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Shutoff);
    assert!(inst.state.saved);
    assert!(d.qemu_pids().is_empty());

    c.action("sv", StateAction::Start)
        .await
        .expect("start resumes");
    let mut ch = channel(c, "sv").await;
    assert_eq!(
        sh(&mut ch, "cat /tmp/m").await,
        "marker\n",
        "same boot: tmpfs kept"
    );
    let up2 = uptime(sh(&mut ch, "cat /proc/uptime").await);
    assert!(
        up2 >= up1 && up2 < up1 + 20,
        "uptime continues: {up1} → {up2}"
    );
    assert!(counter(&mut ch).await >= c1);
    assert!(!c.instance("sv").await.unwrap().state.saved);

    // save --file, delete the instance, restore it from the file.
    let file = d.dir.path().join("sv.state");
    let op = c
        .save_instance(
            "sv",
            &SavePost {
                file: Some(file.display().to_string()),
            },
        )
        .await
        .unwrap();
    c.finish(&op).await.expect("save to file");
    c.delete_instance("sv", false).await.unwrap();
    let op = c
        .restore(&RestorePost {
            file: file.display().to_string(),
        })
        .await
        .unwrap();
    c.finish(&op).await.expect("restore");
    assert_eq!(
        c.instance("sv").await.unwrap().state.status,
        InstanceStatus::Running
    );
    let mut ch = channel(c, "sv").await;
    assert_eq!(sh(&mut ch, "cat /tmp/m").await, "marker\n");

    // Bad input.
    let junk = d.dir.path().join("junk");
    std::fs::write(&junk, b"not a save").unwrap();
    let err = c
        .restore(&RestorePost {
            file: junk.display().to_string(),
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("too short to be a Ferrovirt save file"),
        "{err}"
    );
    let err = c
        .save_instance(
            "sv",
            &SavePost {
                file: Some(file.display().to_string()),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn daemon_killed_during_a_snapshot_leaves_things_consistent() {
    let mut d = TestDaemon::start().await;
    let c = d.client.clone();
    let dir = tempfile::tempdir().unwrap();
    create(
        &c,
        spec_with_disk("k", &qcow2(dir.path(), "k.qcow2", 64), "qcow2"),
    )
    .await;
    let mut ch = boot(&c, "k").await;
    sh(&mut ch, "mke2fs -F /dev/vda >/dev/null").await;
    mount(&mut ch).await;
    sh(&mut ch, "echo one > /mnt/f && sync").await;
    snap(&c, "k", "before", SnapshotKind::Internal, None).await;
    sh(&mut ch, "echo two > /mnt/f && sync").await;

    let req = SnapshotsPost {
        name: "during".into(),
        kind: SnapshotKind::Internal,
        memory: Some(true),
        description: String::new(),
    };
    c.create_snapshot("k", &req)
        .await
        .expect("snapshot started");
    d.kill();
    d.restart().await;

    let inst = wait_status(&c, "k", InstanceStatus::Running, CMD).await;
    let names: Vec<String> = c
        .snapshots("k")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(names.contains(&"before".to_owned()), "{names:?}");
    assert!(names.len() <= 2, "{names:?}");
    if names.contains(&"during".to_owned()) {
        assert_eq!(inst.state.current_snapshot.as_deref(), Some("during"));
    }
    let mut ch = channel(&c, "k").await;
    assert_eq!(
        sh(&mut ch, "cat /mnt/f").await,
        "two\n",
        "the guest runs on"
    );
    let qemu_img = std::process::Command::new("qemu-img")
        .args(["snapshot", "-U", "-l"])
        .arg(dir.path().join("k.qcow2"))
        .output()
        .unwrap();
    let tags = String::from_utf8_lossy(&qemu_img.stdout);
    assert_eq!(
        tags.contains("during"),
        names.contains(&"during".to_owned()),
        "image and records agree: {tags}"
    );
    revert(&c, "k", "before").await;
    let mut ch = channel(&c, "k").await;
    assert_eq!(
        sh(&mut ch, "cat /mnt/f").await,
        "one\n",
        "the earlier snapshot is intact"
    );
}
