//! Tier 3: the long operations over QEMU jobs — internal snapshots with
//! memory (snapshot-save/load/delete jobs), save and restore (migration to
//! a file), their cancellation, and the conflicts of the job model — the
//! real daemon over the fake QEMU, without root and in seconds.

#[allow(dead_code)]
#[path = "tier3_harness.rs"]
mod harness;

use std::path::Path;
use std::time::{Duration, Instant};

use ferrovirt_api::{
    InstanceStatus, Operation, OperationStatus, RestorePost, SavePost, SnapshotKind, SnapshotsPost,
    StateAction, StatePut,
};
use harness::*;
use serde_json::json;

/// Offset of QEMU's stream in a save file (the daemon's header comes first).
const SAVE_HEADER: usize = 64 * 1024;

fn memory_snapshot(name: &str) -> SnapshotsPost {
    SnapshotsPost {
        name: name.into(),
        kind: SnapshotKind::Internal,
        memory: Some(true),
        description: String::new(),
    }
}

fn has_fake_state(path: &Path) -> bool {
    std::fs::read(path)
        .map(|b| {
            b.get(SAVE_HEADER..)
                .is_some_and(|s| s.starts_with(b"FAKE-QEMU-VMSTATE"))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_snapshot_with_memory_is_taken_reverted_and_deleted() {
    let h = FakeHost::start().await;
    let c = &h.client;
    h.running_with_disk("snappy").await;
    let fake = h.fake("snappy");

    let op = c
        .create_snapshot("snappy", &memory_snapshot("s1"))
        .await
        .unwrap();
    c.finish(&op).await.expect("snapshot taken");
    let snap = c.snapshot("snappy", "s1").await.unwrap();
    assert!(snap.memory);
    assert_eq!(snap.taken_while, InstanceStatus::Running);
    let cmds = fake.commands().await.unwrap();
    let save = cmds
        .iter()
        .position(|c| c == "snapshot-save")
        .expect("snapshot-save sent");
    assert!(cmds[save..].iter().any(|c| c == "job-dismiss"), "{cmds:?}");
    assert_eq!(fake.runstate().await.unwrap(), "running");

    let op = c.revert_snapshot("snappy", "s1").await.unwrap();
    c.finish(&op).await.expect("snapshot reverted");
    wait_command(&fake, "snapshot-load").await;
    let inst = c.instance("snappy").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    assert_eq!(inst.state.reason, "reverted to snapshot s1");
    assert_eq!(fake.runstate().await.unwrap(), "running");

    let op = c.delete_snapshot("snappy", "s1").await.unwrap();
    c.finish(&op).await.expect("snapshot deleted");
    wait_command(&fake, "snapshot-delete").await;
    assert!(c.snapshots("snappy").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn managed_save_then_start_resumes_the_saved_guest() {
    let h = FakeHost::start().await;
    let c = &h.client;
    let old = h.running("sleeper", json!({})).await.state.pid.unwrap();
    let op = c
        .save_instance("sleeper", &SavePost { file: None })
        .await
        .unwrap();
    c.finish(&op).await.expect("saved");
    let inst = c.instance("sleeper").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Shutoff);
    assert_eq!(inst.state.reason, "saved; the next start resumes it");
    assert!(inst.state.saved);
    wait_gone(old).await;
    let file = h.dir.path().join("state/save/sleeper.sav");
    assert!(has_fake_state(&file), "{} holds the state", file.display());

    let inst = c.action("sleeper", StateAction::Start).await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    let cmds = h.fake("sleeper").commands().await.unwrap();
    let load = cmds
        .iter()
        .position(|c| c == "migrate-incoming")
        .expect("state loaded");
    assert!(cmds[load..].iter().any(|c| c == "cont"), "{cmds:?}");
    assert_eq!(h.fake("sleeper").runstate().await.unwrap(), "running");
    assert!(!c.instance("sleeper").await.unwrap().state.saved);
    assert!(!file.exists(), "the managed save is used up");
}

#[tokio::test(flavor = "multi_thread")]
async fn save_to_a_file_and_restore_it() {
    let h = FakeHost::start().await;
    let c = &h.client;
    h.running("nomad", json!({})).await;
    let file = h.dir.path().join("nomad.sav");
    let req = SavePost {
        file: Some(file.display().to_string()),
    };
    let op = c.save_instance("nomad", &req).await.unwrap();
    c.finish(&op).await.expect("saved");
    assert!(has_fake_state(&file));
    let inst = c.instance("nomad").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Shutoff);
    assert!(
        inst.state.reason.starts_with("saved to "),
        "{}",
        inst.state.reason
    );

    let op = c
        .restore(&RestorePost {
            file: file.display().to_string(),
        })
        .await
        .unwrap();
    c.finish(&op).await.expect("restored");
    let inst = c.instance("nomad").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    wait_command(&h.fake("nomad"), "migrate-incoming").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_save_leaves_the_guest_running() {
    let h = FakeHost::start().await;
    let c = &h.client;
    h.running("keeper", json!({})).await;
    let fake = h.fake("keeper");
    fake.send("migration stuck").await.unwrap();
    let op = c
        .save_instance("keeper", &SavePost { file: None })
        .await
        .unwrap();
    wait_command(&fake, "migrate").await;
    c.cancel_operation(&op.id.to_string()).await.unwrap();
    let op = wait_op(c, &op).await;
    assert_ne!(op.status, OperationStatus::Success);
    wait_actions_end(&fake, &["migrate_cancel", "cont"]).await;
    let inst = c.instance("keeper").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    assert!(!inst.state.saved);
    assert_eq!(fake.runstate().await.unwrap(), "running");
    assert!(!h.dir.path().join("state/save/keeper.sav").exists());
}

/// While a long job runs, another state change gets 409 naming the job,
/// and `stop --force` preempts it within a second: the job ends cancelled
/// and the instance is shutoff.
async fn conflicts_with(h: &FakeHost, name: &str, job_word: &str, op: Operation, sent: &str) {
    let c = &h.client;
    wait_command(&h.fake(name), sent).await;
    let err = tokio::time::timeout(STEP, c.action(name, StateAction::Pause))
        .await
        .expect("a conflicting request is answered at once, not queued")
        .unwrap_err();
    assert_eq!(http_code(&err), 409, "{err}");
    assert!(err.to_string().contains(job_word), "{err}");
    let t = Instant::now();
    let force = StatePut {
        action: StateAction::Stop,
        force: true,
        timeout: None,
    };
    let inst = c.change_state(name, &force).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(inst.state.status, InstanceStatus::Shutoff);
    assert_eq!(wait_op(c, &op).await.status, OperationStatus::Cancelled);
    assert!(h.qemu_pids().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_snapshot_job_conflicts_and_stop_force_preempts_it() {
    let h = FakeHost::start().await;
    h.running_with_disk("busy").await;
    h.fake("busy").send("jobs stuck").await.unwrap();
    let op = h
        .client
        .create_snapshot("busy", &memory_snapshot("s1"))
        .await
        .unwrap();
    conflicts_with(&h, "busy", "snapshot", op, "snapshot-save").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_save_conflicts_and_stop_force_preempts_it() {
    let h = FakeHost::start().await;
    h.running("busy", json!({})).await;
    h.fake("busy").send("migration stuck").await.unwrap();
    let op = h
        .client
        .save_instance("busy", &SavePost { file: None })
        .await
        .unwrap();
    conflicts_with(&h, "busy", "save", op, "migrate").await;
    assert!(!h.client.instance("busy").await.unwrap().state.saved);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_migration_to_a_file_conflicts_and_stop_force_preempts_it() {
    let h = FakeHost::start().await;
    h.running("busy", json!({})).await;
    h.fake("busy").send("migration stuck").await.unwrap();
    let file = h.dir.path().join("busy.sav");
    let req = SavePost {
        file: Some(file.display().to_string()),
    };
    let op = h.client.save_instance("busy", &req).await.unwrap();
    conflicts_with(&h, "busy", "save", op, "migrate").await;
    assert!(!file.exists(), "nothing half-made is left");
}
