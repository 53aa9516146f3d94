//! Tier 3: crash windows. The daemon SIGKILLs itself at each step of a
//! managed save (`FERROVIRT_FAULT`), and the restarted daemon must never
//! keep a save older than what the guest did since: a save whose file was
//! not complete, not recorded, or whose QEMU still runs is dropped, and
//! files no record names are removed. A complete, recorded save survives.

#[allow(dead_code)]
#[path = "tier3_harness.rs"]
mod harness;

use std::path::PathBuf;

use ferrovirt_api::{InstanceStatus, SavePost};
use harness::*;
use serde_json::json;

fn save_dir(h: &FakeHost) -> PathBuf {
    h.dir.path().join("state/save")
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Starts `name`, asks for a managed save with the daemon set to die at
/// `point`, waits for it to die, and returns the save dir's files then.
async fn killed_during_save(point: &str, name: &str) -> (FakeHost, u32, Vec<String>) {
    let mut h = FakeHost::start_with(vec![("FERROVIRT_FAULT".into(), point.into())]).await;
    let pid = h.running(name, json!({})).await.state.pid.unwrap();
    h.client
        .save_instance(name, &SavePost { file: None })
        .await
        .expect("save accepted");
    h.wait_exited().await;
    let left = files_in(&save_dir(&h));
    h.env.clear();
    h.restart().await;
    (h, pid, left)
}

/// After the restart: no managed save, nothing in the save dir, and the
/// guest still in the QEMU that never stopped.
async fn no_save_and_the_guest_lives_on(h: &FakeHost, name: &str, pid: u32) {
    let inst = h.client.instance(name).await.unwrap();
    assert!(!inst.state.saved, "a stale save was kept: {:?}", inst.state);
    assert_eq!(files_in(&save_dir(h)), Vec::<String>::new());
    assert_eq!(inst.state.pid, Some(pid), "the same QEMU");
    assert!(inst.state.status.is_active(), "{:?}", inst.state.status);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_before_the_rename_leaves_no_save() {
    let (h, pid, left) = killed_during_save("save-before-rename", "a").await;
    assert_eq!(
        left,
        vec!["a.sav.part".to_owned()],
        "written to .part first"
    );
    no_save_and_the_guest_lives_on(&h, "a", pid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_before_the_record_removes_the_unrecorded_file() {
    let (h, pid, left) = killed_during_save("save-before-record", "b").await;
    assert_eq!(left, vec!["b.sav".to_owned()]);
    no_save_and_the_guest_lives_on(&h, "b", pid).await;
    assert!(h.log().contains("no instance records"), "says why");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_before_qemu_quits_drops_the_save_of_a_guest_that_goes_on() {
    let (h, pid, left) = killed_during_save("save-before-quit", "c").await;
    assert_eq!(left, vec!["c.sav".to_owned()]);
    no_save_and_the_guest_lives_on(&h, "c", pid).await;
    assert!(h.log().contains("still running"), "says why");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_complete_save_survives_a_restart_and_a_missing_file_is_dropped() {
    let mut h = FakeHost::start().await;
    for name in ["kept", "lost"] {
        let pid = h.running(name, json!({})).await.state.pid.unwrap();
        h.managed_save(name).await;
        wait_gone(pid).await;
    }
    std::fs::remove_file(save_dir(&h).join("lost.sav")).unwrap();
    h.restart().await;
    let kept = h.client.instance("kept").await.unwrap();
    assert!(kept.state.saved);
    assert_eq!(kept.state.status, InstanceStatus::Shutoff);
    let lost = h.client.instance("lost").await.unwrap();
    assert!(!lost.state.saved, "a save without its file is dropped");
    assert!(h.log().contains("dropping the managed save"), "says why");
    assert_eq!(files_in(&save_dir(&h)), vec!["kept.sav".to_owned()]);
    // And the kept one resumes.
    let inst = h
        .client
        .action("kept", ferrovirt_api::StateAction::Start)
        .await
        .unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    assert!(!inst.state.saved);
    assert_eq!(files_in(&save_dir(&h)), Vec::<String>::new());
}
