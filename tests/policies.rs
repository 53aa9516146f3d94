//! Guest-initiated poweroff, reboot and crashes honour on_poweroff,
//! on_reboot and on_crash.

use ferrovirt_api::{EventKind, InstanceStatus, StateAction};
use ferrovirt_e2e::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn guest_poweroff_and_reboot_follow_the_policies() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    let mut events = Box::pin(c.events().await.unwrap());
    create(c, guest_spec("pol")).await;
    c.action("pol", StateAction::Start).await.unwrap();
    let mut ch = channel(c, "pol").await;
    ch.wait_ready(BOOT).await.unwrap();

    // on_reboot=restart (default): the guest reboots in place and comes back.
    ch.send("reboot -f").await.unwrap();
    wait_event(&mut events, "pol", EventKind::Rebooted, CMD).await;
    ch.wait_ready(BOOT).await.expect("guest back after reboot");
    assert_eq!(
        c.instance("pol").await.unwrap().state.status,
        InstanceStatus::Running
    );

    // on_poweroff=restart: a guest poweroff boots it again.
    c.patch_instance(
        "pol",
        &json!({"on_poweroff": "restart", "on_reboot": "destroy"}),
    )
    .await
    .expect("policies change live");
    ch.send("poweroff -f").await.unwrap();
    wait_event(&mut events, "pol", EventKind::Shutdown, CMD).await;
    wait_event(&mut events, "pol", EventKind::Rebooted, CMD).await;
    ch.wait_ready(BOOT)
        .await
        .expect("guest back after poweroff+restart");
    assert_eq!(
        c.instance("pol").await.unwrap().state.status,
        InstanceStatus::Running
    );

    // on_reboot=destroy: a guest reboot stops the instance.
    ch.send("reboot -f").await.unwrap();
    let inst = wait_status(c, "pol", InstanceStatus::Shutoff, BOOT).await;
    assert!(
        inst.state.reason.contains("on_reboot=destroy"),
        "{}",
        inst.state.reason
    );
    assert!(d.qemu_pids().is_empty());

    // on_poweroff=destroy: a guest poweroff ends in shutoff.
    c.patch_instance("pol", &json!({"on_poweroff": "destroy"}))
        .await
        .unwrap();
    c.action("pol", StateAction::Start).await.unwrap();
    let mut ch = channel(c, "pol").await;
    ch.wait_ready(BOOT).await.unwrap();
    ch.send("poweroff -f").await.unwrap();
    let inst = wait_status(c, "pol", InstanceStatus::Shutoff, BOOT).await;
    assert_eq!(inst.state.reason, "the guest powered off");
    wait_event(&mut events, "pol", EventKind::Stopped, CMD).await;
    assert!(d.qemu_pids().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_qemu_is_crashed_and_on_crash_restart_brings_it_back() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    let mut events = Box::pin(c.events().await.unwrap());
    let mut spec = guest_spec("phoenix");
    spec["on_crash"] = json!("restart");
    create(c, spec).await;
    create(c, guest_spec("mortal")).await;
    let pid = c
        .action("phoenix", StateAction::Start)
        .await
        .unwrap()
        .state
        .pid
        .unwrap();
    let pid2 = c
        .action("mortal", StateAction::Start)
        .await
        .unwrap()
        .state
        .pid
        .unwrap();

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid2 as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let ev = wait_event(&mut events, "mortal", EventKind::Crashed, CMD).await;
    assert!(ev.details.unwrap().contains("unexpectedly"));
    let inst = wait_status(c, "mortal", InstanceStatus::Crashed, CMD).await;
    assert!(inst.state.pid.is_none());

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_event(&mut events, "phoenix", EventKind::Crashed, CMD).await;
    wait_event(&mut events, "phoenix", EventKind::Started, CMD).await;
    let inst = wait_status(c, "phoenix", InstanceStatus::Running, CMD).await;
    let new_pid = inst.state.pid.unwrap();
    assert_ne!(new_pid, pid);
    let mut ch = channel(c, "phoenix").await;
    ch.wait_ready(BOOT).await.expect("restarted guest boots");
    // A crashed instance starts again on request.
    c.action("mortal", StateAction::Start)
        .await
        .expect("start after crash");
}
