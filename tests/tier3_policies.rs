//! Tier 3: the guest's poweroff, reboot and panic, and QEMU's death, with
//! every on_poweroff / on_reboot / on_crash policy — the real daemon over
//! the fake QEMU, without root and in seconds.

#[allow(dead_code)]
#[path = "tier3_harness.rs"]
mod harness;

use ferrovirt_api::{EventKind, InstanceStatus, StateAction};
use ferrovirt_e2e::wait_event;
use harness::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn guest_poweroff_follows_on_poweroff() {
    let h = FakeHost::start().await;
    let c = &h.client;
    let mut events = Box::pin(c.events().await.unwrap());

    // destroy (the default): QEMU is told to quit, the instance is shutoff.
    let pid = h.running("off-destroy", json!({})).await.state.pid.unwrap();
    h.fake("off-destroy").send("poweroff").await.unwrap();
    wait_event(&mut events, "off-destroy", EventKind::Shutdown, STEP).await;
    let inst = wait_for(c, "off-destroy", "shutoff", |i| {
        i.state.status == InstanceStatus::Shutoff
    })
    .await;
    assert_eq!(inst.state.reason, "the guest powered off");
    wait_gone(pid).await;

    // restart: the guest is reset and continued, QEMU stays.
    let pid = h
        .running("off-restart", json!({"on_poweroff": "restart"}))
        .await
        .state
        .pid
        .unwrap();
    let fake = h.fake("off-restart");
    fake.send("poweroff").await.unwrap();
    wait_event(&mut events, "off-restart", EventKind::Shutdown, STEP).await;
    let ev = wait_event(&mut events, "off-restart", EventKind::Rebooted, STEP).await;
    assert!(
        ev.details
            .unwrap_or_default()
            .contains("on_poweroff=restart"),
        "reboot event names the policy"
    );
    wait_actions_end(&fake, &["system_reset", "cont"]).await;
    assert_eq!(fake.runstate().await.unwrap(), "running");
    let inst = c.instance("off-restart").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    assert_eq!(inst.state.pid, Some(pid));

    // preserve: kept, paused, in QEMU's shutdown state; resume boots it again.
    h.running("off-keep", json!({"on_poweroff": "preserve"}))
        .await;
    let fake = h.fake("off-keep");
    fake.send("poweroff").await.unwrap();
    let inst = wait_for(c, "off-keep", "paused", |i| {
        i.state.status == InstanceStatus::Paused
    })
    .await;
    assert!(
        inst.state.reason.contains("on_poweroff=preserve"),
        "{}",
        inst.state.reason
    );
    assert_eq!(fake.runstate().await.unwrap(), "shutdown");
    c.action("off-keep", StateAction::Resume).await.unwrap();
    assert_eq!(fake.runstate().await.unwrap(), "running");
    assert_eq!(
        c.instance("off-keep").await.unwrap().state.status,
        InstanceStatus::Running
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_reboot_follows_on_reboot() {
    let h = FakeHost::start().await;
    let c = &h.client;
    let mut events = Box::pin(c.events().await.unwrap());

    // restart (the default): a reboot event, nothing else changes.
    h.running("rb-restart", json!({})).await;
    h.fake("rb-restart").send("reboot").await.unwrap();
    let ev = wait_event(&mut events, "rb-restart", EventKind::Rebooted, STEP).await;
    assert_eq!(ev.details.as_deref(), Some("the guest rebooted"));
    assert_eq!(
        c.instance("rb-restart").await.unwrap().state.status,
        InstanceStatus::Running
    );
    assert_eq!(h.fake("rb-restart").runstate().await.unwrap(), "running");

    // destroy: the reboot stops the instance.
    let pid = h
        .running("rb-destroy", json!({"on_reboot": "destroy"}))
        .await
        .state
        .pid
        .unwrap();
    h.fake("rb-destroy").send("reboot").await.unwrap();
    let inst = wait_for(c, "rb-destroy", "shutoff", |i| {
        i.state.status == InstanceStatus::Shutoff
    })
    .await;
    assert!(
        inst.state.reason.contains("on_reboot=destroy"),
        "{}",
        inst.state.reason
    );
    wait_gone(pid).await;

    // preserve: the guest is paused right after the reset.
    h.running("rb-keep", json!({"on_reboot": "preserve"})).await;
    let fake = h.fake("rb-keep");
    fake.send("reboot").await.unwrap();
    wait_event(&mut events, "rb-keep", EventKind::Paused, STEP).await;
    wait_for(c, "rb-keep", "paused", |i| {
        i.state.status == InstanceStatus::Paused
    })
    .await;
    assert_eq!(fake.runstate().await.unwrap(), "paused");
    wait_actions_end(&fake, &["cont", "stop"]).await;
}

/// Today the STOP event of the daemon's own `stop` makes the monitor
/// record the pause again, as "paused", over the policy's reason.
#[tokio::test(flavor = "multi_thread")]
async fn on_reboot_preserve_keeps_its_reason() {
    let h = FakeHost::start().await;
    h.running("rb-keep", json!({"on_reboot": "preserve"})).await;
    h.fake("rb-keep").send("reboot").await.unwrap();
    wait_actions_end(&h.fake("rb-keep"), &["cont", "stop"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let inst = h.client.instance("rb-keep").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Paused);
    assert!(
        inst.state.reason.contains("on_reboot=preserve"),
        "{}",
        inst.state.reason
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_panic_follows_on_crash() {
    let h = FakeHost::start().await;
    let c = &h.client;
    let mut events = Box::pin(c.events().await.unwrap());

    // destroy (the default): crashed, QEMU gone.
    let pid = h.running("pn-destroy", json!({})).await.state.pid.unwrap();
    h.fake("pn-destroy").send("panic").await.unwrap();
    let inst = wait_for(c, "pn-destroy", "crashed and stopped", |i| {
        i.state.status == InstanceStatus::Crashed && i.state.pid.is_none()
    })
    .await;
    assert_eq!(inst.state.reason, "the guest panicked");
    wait_gone(pid).await;

    // restart: a crash event, then reset and continued in the same QEMU.
    let pid = h
        .running("pn-restart", json!({"on_crash": "restart"}))
        .await
        .state
        .pid
        .unwrap();
    let fake = h.fake("pn-restart");
    fake.send("panic").await.unwrap();
    let ev = wait_event(&mut events, "pn-restart", EventKind::Crashed, STEP).await;
    assert!(ev.details.unwrap_or_default().contains("restarting"));
    wait_actions_end(&fake, &["system_reset", "cont"]).await;
    assert_eq!(fake.runstate().await.unwrap(), "running");
    let inst = c.instance("pn-restart").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    assert_eq!(inst.state.pid, Some(pid));

    // preserve: crashed, but QEMU is kept (for a dump) in guest-panicked.
    let pid = h
        .running("pn-keep", json!({"on_crash": "preserve"}))
        .await
        .state
        .pid
        .unwrap();
    h.fake("pn-keep").send("panic").await.unwrap();
    let inst = wait_for(c, "pn-keep", "crashed", |i| {
        i.state.status == InstanceStatus::Crashed
    })
    .await;
    assert!(
        inst.state.reason.contains("on_crash=preserve"),
        "{}",
        inst.state.reason
    );
    assert!(alive(pid));
    assert_eq!(
        h.fake("pn-keep").runstate().await.unwrap(),
        "guest-panicked"
    );
    // stop ends a preserved crash without waiting for the guest.
    c.action("pn-keep", StateAction::Stop).await.unwrap();
    wait_gone(pid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_qemu_is_crashed_and_on_crash_restart_starts_it_again() {
    let h = FakeHost::start().await;
    let c = &h.client;
    let mut events = Box::pin(c.events().await.unwrap());
    let mortal = h.running("mortal", json!({})).await.state.pid.unwrap();
    let phoenix = h
        .running("phoenix", json!({"on_crash": "restart"}))
        .await
        .state
        .pid
        .unwrap();

    kill9(mortal);
    let inst = wait_for(c, "mortal", "crashed", |i| {
        i.state.status == InstanceStatus::Crashed
    })
    .await;
    assert!(
        inst.state.reason.contains("exited unexpectedly"),
        "{}",
        inst.state.reason
    );
    assert_eq!(inst.state.pid, None);

    kill9(phoenix);
    wait_event(&mut events, "phoenix", EventKind::Crashed, STEP).await;
    wait_event(&mut events, "phoenix", EventKind::Started, STEP).await;
    let inst = c.instance("phoenix").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    let new_pid = inst.state.pid.expect("a new QEMU");
    assert_ne!(new_pid, phoenix);
    assert!(alive(new_pid));
    assert_eq!(h.fake("phoenix").runstate().await.unwrap(), "running");
}
