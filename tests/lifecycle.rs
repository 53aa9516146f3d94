//! The whole life of one VM, driven through the API, checked from inside
//! the guest: create → start → ready → command → pause/resume → graceful
//! stop (ACPI) → start → force stop → delete, with the event stream.

use std::time::Duration;

use ferrovirt_api::{EventKind, InstanceStatus, StateAction, StatePut};
use ferrovirt_e2e::*;
use ferrovirt_testkit::{POWER_BUTTON_MARKER, READY_MARKER};

#[tokio::test(flavor = "multi_thread")]
async fn full_lifecycle_seen_from_the_guest() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    let mut events = Box::pin(c.events().await.expect("events"));

    let created = create(c, guest_spec("life")).await;
    assert_eq!(created.state.status, InstanceStatus::Shutoff);
    assert!(created.spec.uuid.is_some(), "uuid is generated");
    wait_event(&mut events, "life", EventKind::Created, CMD).await;

    let started = c.action("life", StateAction::Start).await.expect("start");
    assert_eq!(started.state.status, InstanceStatus::Running);
    let accel = started.state.accel.expect("accel shown while running");
    assert!(!accel.reason.is_empty());
    let pid = started.state.pid.expect("pid");
    assert!(alive(pid));
    let ev = wait_event(&mut events, "life", EventKind::Started, CMD).await;
    assert!(ev.timestamp <= chrono_now());

    let mut ch = channel(c, "life").await;
    ch.wait_ready(BOOT).await.expect("guest ready");
    let out = ch.run("echo hello; exit 3", CMD).await.expect("command");
    assert_eq!(out.output, "hello\n");
    assert_eq!(out.exit_code, 3);

    // The console history holds the boot, written by QEMU itself.
    let history = String::from_utf8(c.log("life", "console", None).await.unwrap()).unwrap();
    assert!(history.contains(READY_MARKER), "console log: {history}");

    // Pause: the guest's counter stops advancing.
    let before = counter(&mut ch).await;
    let paused = c.action("life", StateAction::Pause).await.expect("pause");
    assert_eq!(paused.state.status, InstanceStatus::Paused);
    wait_event(&mut events, "life", EventKind::Paused, CMD).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // the time the guest must not see
    c.action("life", StateAction::Resume).await.expect("resume");
    wait_event(&mut events, "life", EventKind::Resumed, CMD).await;
    let after = counter(&mut ch).await;
    assert!(
        after - before < 10,
        "counter advanced by {} across a 2 s pause (20 if not paused)",
        after - before
    );
    let mut later = counter(&mut ch).await;
    let deadline = std::time::Instant::now() + CMD;
    while later <= after {
        assert!(
            std::time::Instant::now() < deadline,
            "counter stuck after resume"
        );
        later = counter(&mut ch).await;
    }

    // Graceful stop: the guest sees the ACPI power button and powers off.
    let stopped = c
        .change_state(
            "life",
            &StatePut {
                action: StateAction::Stop,
                force: false,
                timeout: Some(60),
            },
        )
        .await
        .expect("stop");
    assert_eq!(stopped.state.status, InstanceStatus::Shutoff);
    assert_eq!(stopped.state.reason, "shut down on request");
    let _ = ch.wait_for_text(POWER_BUTTON_MARKER, CMD).await;
    assert!(
        ch.transcript().contains(POWER_BUTTON_MARKER),
        "guest did not see the power button: {}",
        ch.transcript()
    );
    wait_event(&mut events, "life", EventKind::Shutdown, CMD).await;
    wait_event(&mut events, "life", EventKind::Stopped, CMD).await;
    assert!(!alive(pid), "QEMU {pid} still alive after stop");

    // Start again, then force stop.
    let again = c.action("life", StateAction::Start).await.expect("restart");
    let pid2 = again.state.pid.unwrap();
    let mut ch = channel(c, "life").await;
    ch.wait_ready(BOOT).await.expect("ready after restart");
    let forced = c
        .change_state(
            "life",
            &StatePut {
                action: StateAction::Stop,
                force: true,
                timeout: None,
            },
        )
        .await
        .expect("force stop");
    assert_eq!(forced.state.status, InstanceStatus::Shutoff);
    assert_eq!(forced.state.reason, "stopped by force");
    assert!(!alive(pid2));

    c.delete_instance("life", false).await.expect("delete");
    wait_event(&mut events, "life", EventKind::Deleted, CMD).await;
    assert!(c.list_instances().await.unwrap().is_empty());
    assert!(!d.runtime_dir().join("instances/life").exists());
    assert!(d.qemu_pids().is_empty(), "QEMU left behind");
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// The CLI drives the same life, and `show` spells out every default.
#[tokio::test(flavor = "multi_thread")]
async fn cli_create_show_start_console_stop() {
    let d = TestDaemon::start().await;
    let g = ferrovirt_testkit::test_guest().unwrap();
    let (ok, out, err) = d.cli(&[
        "create",
        "cli1",
        "--kernel",
        &g.kernel.display().to_string(),
        "--initrd",
        &g.initrd.display().to_string(),
        "--cmdline",
        &g.cmdline,
        "--memory",
        "200",
        "--cpus",
        "2",
    ]);
    assert!(ok, "create failed: {out}{err}");
    let (ok, show, _) = d.cli(&["show", "cli1", "--format", "yaml"]);
    assert!(ok);
    for field in [
        "memory: 200",
        "cpus: 2",
        "machine: q35",
        "accel: auto",
        "on_poweroff: destroy",
        "on_reboot: restart",
        "on_crash: destroy",
        "autostart: false",
        "serial: true",
        "cpu_model: host_passthrough",
        "status: shutoff",
    ] {
        assert!(show.contains(field), "show lacks {field:?}:\n{show}");
    }
    let (ok, json, _) = d.cli(&["list", "--format", "json"]);
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list[0]["spec"]["name"], "cli1");

    let (ok, out, err) = d.cli(&["start", "cli1"]);
    assert!(ok, "{out}{err}");
    // Live-changeable fields change while running; the machine type does not,
    // and memory only grows up to max_memory (which defaults to memory).
    let (ok, _, err) = d.cli(&["set", "cli1", "autostart=true", "description=web server"]);
    assert!(ok, "{err}");
    let (ok, _, err) = d.cli(&["set", "cli1", "machine=pc"]);
    assert!(!ok);
    assert!(
        err.contains("machine cannot change while instance cli1 is running"),
        "{err}"
    );
    let (ok, _, err) = d.cli(&["set", "cli1", "memory=300"]);
    assert!(!ok);
    assert!(err.contains("max_memory"), "{err}");

    let mut ch = channel(&d.client, "cli1").await;
    ch.wait_ready(BOOT).await.unwrap();
    let (ok, log, _) = d.cli(&["console", "cli1", "--log"]);
    assert!(ok);
    assert!(log.contains(ferrovirt_testkit::READY_MARKER));
    let (ok, qlog, _) = d.cli(&["logs", "cli1"]);
    assert!(ok && qlog.contains("ferrovirtd started QEMU"), "{qlog}");
    let (ok, out, err) = d.cli(&["stop", "cli1", "--timeout", "60"]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = d.cli(&["set", "cli1", "memory=300"]);
    assert!(ok, "memory changes once stopped: {err}");
    let (_, show, _) = d.cli(&["show", "cli1", "--format", "yaml"]);
    assert!(
        show.contains("max_memory: 300"),
        "the default maximum follows: {show}"
    );
    let (ok, _, _) = d.cli(&["delete", "cli1"]);
    assert!(ok);
}
