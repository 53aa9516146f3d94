//! SIGKILL of the daemon while VMs run: they keep running and are fully
//! controllable after the restart; a VM whose QEMU died meanwhile is marked
//! crashed; autostart VMs start with the daemon; no orphaned QEMU.

use ferrovirt_api::{InstanceStatus, StateAction, StatePut};
use ferrovirt_e2e::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn vms_survive_a_killed_daemon() {
    let mut d = TestDaemon::start().await;
    let c = d.client.clone();
    for name in ["one", "two", "gone"] {
        create(&c, guest_spec(name)).await;
    }
    let mut auto = guest_spec("auto");
    auto["autostart"] = json!(true);
    create(&c, auto).await;
    let mut pids = Vec::new();
    for name in ["one", "two", "gone"] {
        pids.push(
            c.action(name, StateAction::Start)
                .await
                .unwrap()
                .state
                .pid
                .unwrap(),
        );
    }
    let mut ch = channel(&c, "one").await;
    ch.wait_ready(BOOT).await.unwrap();
    ch.run("echo before > /tmp/mark", CMD).await.unwrap();
    c.action("two", StateAction::Pause).await.unwrap();

    d.kill();
    // While the daemon is down: "gone" dies.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[2] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.restart().await;

    let one = c.instance("one").await.unwrap();
    assert_eq!(one.state.status, InstanceStatus::Running);
    assert_eq!(one.state.pid, Some(pids[0]), "same QEMU, re-attached");
    let two = c.instance("two").await.unwrap();
    assert_eq!(two.state.status, InstanceStatus::Paused);
    assert_eq!(two.state.pid, Some(pids[1]));
    let gone = c.instance("gone").await.unwrap();
    assert_eq!(gone.state.status, InstanceStatus::Crashed);
    assert_eq!(gone.state.reason, "QEMU exited while the daemon was down");
    let auto = wait_status(&c, "auto", InstanceStatus::Running, CMD).await;
    assert!(auto.state.pid.is_some(), "autostart");

    // Fully controllable: console, pause/resume, stop.
    drop(ch);
    let mut ch = channel(&c, "one").await;
    ch.wait_ready(BOOT)
        .await
        .expect("console works after re-attach");
    let out = ch.run("cat /tmp/mark", CMD).await.unwrap();
    assert_eq!(out.output, "before\n", "same guest, not a reboot");
    c.action("two", StateAction::Resume).await.unwrap();
    c.action("one", StateAction::Pause).await.unwrap();
    c.action("one", StateAction::Resume).await.unwrap();
    let stopped = c
        .change_state(
            "one",
            &StatePut {
                action: StateAction::Stop,
                force: false,
                timeout: Some(60),
            },
        )
        .await
        .unwrap();
    assert_eq!(stopped.state.status, InstanceStatus::Shutoff);
    assert!(!alive(pids[0]));

    // Kill the daemon again and restart twice: nothing changes, nothing orphaned.
    d.restart().await;
    let mut live = d.qemu_pids();
    live.sort();
    let mut expected = vec![
        pids[1],
        c.instance("auto").await.unwrap().state.pid.unwrap(),
    ];
    expected.sort();
    assert_eq!(live, expected, "exactly the running instances' QEMUs exist");
}
