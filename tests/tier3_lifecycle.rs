//! Tier 3: state changes on request (stop, stop --force, pause, resume,
//! reboot, reset) and the reconciliation after a daemon restart — the real
//! daemon over the fake QEMU, without root and in seconds.

#[allow(dead_code)]
#[path = "tier3_harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use ferrovirt_api::{EventKind, InstanceStatus, StateAction, StatePut};
use ferrovirt_e2e::wait_event;
use ferrovirt_testkit::fake_qemu::HOLD_CONT_ENV;
use harness::*;
use serde_json::json;

fn stop(force: bool, timeout: Option<u64>) -> StatePut {
    StatePut {
        action: StateAction::Stop,
        force,
        timeout,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_asks_the_guest_then_forces_it_off() {
    let h = FakeHost::start().await;
    let c = &h.client;

    // A cooperative guest powers off on the ACPI button.
    let pid = h.running("polite", json!({})).await.state.pid.unwrap();
    let inst = c
        .change_state("polite", &stop(false, Some(5)))
        .await
        .unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Shutoff);
    assert_eq!(inst.state.reason, "shut down on request");
    assert!(!alive(pid));

    // A guest that ignores the button is forced off after the timeout.
    let pid = h.running("deaf", json!({})).await.state.pid.unwrap();
    h.fake("deaf").send("powerdown ignore").await.unwrap();
    let t = Instant::now();
    let inst = c.change_state("deaf", &stop(false, Some(1))).await.unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(inst.state.status, InstanceStatus::Shutoff);
    assert_eq!(
        inst.state.reason,
        "forced off: the guest did not shut down within 1s"
    );
    assert!(!alive(pid));

    // --force kills at once.
    let pid = h.running("rude", json!({})).await.state.pid.unwrap();
    h.fake("rude").send("powerdown ignore").await.unwrap();
    let t = Instant::now();
    let inst = c.change_state("rude", &stop(true, None)).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(inst.state.reason, "stopped by force");
    assert!(!alive(pid));
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_resume_reboot_and_reset() {
    let h = FakeHost::start().await;
    let c = &h.client;
    let mut events = Box::pin(c.events().await.unwrap());
    h.running("vm", json!({})).await;
    let fake = h.fake("vm");

    let inst = c.action("vm", StateAction::Pause).await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Paused);
    assert_eq!(fake.runstate().await.unwrap(), "paused");
    wait_event(&mut events, "vm", EventKind::Paused, STEP).await;
    let inst = c.action("vm", StateAction::Resume).await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    assert_eq!(fake.runstate().await.unwrap(), "running");
    wait_event(&mut events, "vm", EventKind::Resumed, STEP).await;

    // reboot: the power button, the guest powers off, the daemon resets it.
    c.action("vm", StateAction::Reboot).await.unwrap();
    let ev = wait_event(&mut events, "vm", EventKind::Rebooted, STEP).await;
    assert_eq!(ev.details.as_deref(), Some("rebooted on request"));
    wait_actions_end(&fake, &["system_powerdown", "system_reset", "cont"]).await;
    assert_eq!(fake.runstate().await.unwrap(), "running");
    assert_eq!(
        c.instance("vm").await.unwrap().state.status,
        InstanceStatus::Running
    );

    // reset: a hard reset, the guest keeps running.
    c.action("vm", StateAction::Reset).await.unwrap();
    let ev = wait_event(&mut events, "vm", EventKind::Rebooted, STEP).await;
    assert_eq!(ev.details.as_deref(), Some("reset on request"));
    let cmds = fake.commands().await.unwrap();
    assert_eq!(actions(&cmds).last(), Some(&"system_reset"), "{cmds:?}");
    assert_eq!(fake.runstate().await.unwrap(), "running");
}

#[tokio::test(flavor = "multi_thread")]
async fn restarted_daemon_reattaches_to_live_qemu() {
    let mut h = FakeHost::start().await;
    let pid = h.running("alive", json!({})).await.state.pid.unwrap();
    h.running("napping", json!({})).await;
    h.client
        .action("napping", StateAction::Pause)
        .await
        .unwrap();
    h.restart().await;
    let c = &h.client;
    let inst = c.instance("alive").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    assert_eq!(inst.state.pid, Some(pid));
    assert!(alive(pid));
    let inst = c.instance("napping").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Paused);
    // The new daemon drives the same QEMU.
    let fake = h.fake("alive");
    let before = fake.commands().await.unwrap().len();
    let inst = c.action("alive", StateAction::Pause).await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Paused);
    let cmds = fake.commands().await.unwrap();
    assert!(cmds[before..].iter().any(|c| c == "stop"), "{cmds:?}");
    assert_eq!(fake.runstate().await.unwrap(), "paused");
}

#[tokio::test(flavor = "multi_thread")]
async fn qemu_that_died_while_the_daemon_was_down_is_crashed() {
    let mut h = FakeHost::start().await;
    let dead = h.running("dead", json!({})).await.state.pid.unwrap();
    let phoenix = h
        .running("phoenix", json!({"on_crash": "restart"}))
        .await
        .state
        .pid
        .unwrap();
    h.kill().await;
    kill9(dead);
    kill9(phoenix);
    wait_gone(dead).await;
    wait_gone(phoenix).await;
    h.restart().await;
    let c = &h.client;
    let inst = c.instance("dead").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Crashed);
    assert_eq!(inst.state.reason, "QEMU exited while the daemon was down");
    // on_crash=restart starts it again.
    let inst = wait_for(c, "phoenix", "restarted", |i| {
        i.state.status == InstanceStatus::Running
    })
    .await;
    assert_ne!(inst.state.pid, Some(phoenix));
    assert!(alive(inst.state.pid.unwrap()));
}

#[tokio::test(flavor = "multi_thread")]
async fn half_started_instance_is_stopped_after_a_daemon_restart() {
    let mut h = FakeHost::start().await;
    h.client
        .create_instance(&json!({"name": "half", "memory": 64}))
        .await
        .unwrap();
    h.env.push((HOLD_CONT_ENV.into(), "1".into()));
    h.restart().await;
    let client = h.client.clone();
    let start = tokio::spawn(async move { client.action("half", StateAction::Start).await });
    let fake = h.fake("half");
    wait_command(&fake, "cont").await;
    assert_eq!(fake.runstate().await.unwrap(), "prelaunch");
    let pids = h.qemu_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    h.env.clear();
    h.restart().await;
    assert!(start.await.unwrap().is_err(), "the start cannot succeed");
    let inst = wait_for(&h.client, "half", "stopped", |i| {
        i.state.status == InstanceStatus::Shutoff && i.state.pid.is_none()
    })
    .await;
    assert_eq!(
        inst.state.reason,
        "start was interrupted by a daemon restart"
    );
    wait_gone(pids[0]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_poweroff_while_the_daemon_was_down_applies_on_poweroff() {
    let mut h = FakeHost::start().await;
    let pid = h.running("lonely", json!({})).await.state.pid.unwrap();
    h.kill().await;
    h.fake("lonely").send("poweroff").await.unwrap();
    h.restart().await;
    let inst = wait_for(&h.client, "lonely", "shutoff", |i| {
        i.state.status == InstanceStatus::Shutoff
    })
    .await;
    assert_eq!(inst.state.reason, "the guest powered off");
    wait_gone(pid).await;
}
