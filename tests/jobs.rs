//! The job model on a real guest: a request that conflicts with a running
//! job is refused (409) naming the job instead of waiting, and `stop
//! --force` preempts the job at once, which ends cancelled with nothing
//! half-made left behind.

use std::time::{Duration, Instant};

use ferrovirt_api::{ClonePost, InstanceStatus, OperationStatus, StateAction};
use ferrovirt_client::ClientError;
use ferrovirt_e2e::*;
use serde_json::json;

/// Waits until the operation reports a stage starting with `stage`.
async fn wait_stage(d: &TestDaemon, id: &str, stage: &str) {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let op = d.client.operation(id).await.unwrap();
        assert!(!op.status.is_final(), "the operation ended early: {op:?}");
        if op
            .progress
            .as_ref()
            .is_some_and(|p| p.stage.starts_with(stage))
        {
            return;
        }
        assert!(Instant::now() < end, "no `{stage}` stage: {op:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_force_preempts_a_running_clone() {
    let d = TestDaemon::start().await;
    let c = d.client.clone();
    let dir = tempfile::tempdir().unwrap();
    // Incompressible data: copying it takes a while.
    let disk = dir.path().join("big.raw");
    sh_host(&format!("head -c 1024M /dev/urandom > {}", disk.display()));
    let mut spec = guest_spec("src");
    spec["disks"] = json!([{"path": disk.display().to_string(), "format": "raw"}]);
    create(&c, spec).await;
    let mut ch = boot(&c, "src").await;
    sh(&mut ch, "echo alive").await;

    let req = ClonePost {
        name: "copy".into(),
        linked: false,
        from_snapshot: None,
    };
    let op = c.clone_instance("src", &req).await.expect("clone");
    let id = op.id.to_string();
    wait_stage(&d, &id, "copying disk").await;

    // A conflicting request is refused at once, naming the job.
    let t = Instant::now();
    match c.action("src", StateAction::Pause).await {
        Err(ClientError::Api(b)) => {
            assert_eq!(b.code, 409, "{}", b.error);
            assert!(b.error.contains("a clone is running"), "{}", b.error);
            assert!(b.error.contains(&id), "names the operation: {}", b.error);
        }
        other => panic!("pause during a clone: {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(1), "409 without waiting");

    // stop --force preempts the clone.
    let t = Instant::now();
    force_stop(&c, "src").await;
    let took = t.elapsed();
    eprintln!("stop --force during a clone took {took:?}");
    assert!(took < Duration::from_secs(1), "stop --force took {took:?}");
    assert_eq!(
        c.instance("src").await.unwrap().state.status,
        InstanceStatus::Shutoff
    );
    let op = c.wait_operation(&id, 60.0).await.unwrap();
    assert_eq!(op.status, OperationStatus::Cancelled, "{op:?}");

    // Nothing half-made: no clone, no temporary snapshot, no stray file,
    // and the source is back on its own disk.
    assert!(c.instance("copy").await.is_err(), "no clone was defined");
    assert!(c.snapshots("src").await.unwrap().is_empty());
    let src = c.instance("src").await.unwrap();
    assert_eq!(src.spec.disks[0].path, disk.display().to_string());
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec!["big.raw".to_owned()], "leftovers: {files:?}");
    assert!(d.qemu_pids().is_empty());
    // The instance works as before.
    let mut ch = boot(&c, "src").await;
    sh(&mut ch, "echo alive").await;
    force_stop(&c, "src").await;
}
