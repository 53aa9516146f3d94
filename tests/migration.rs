//! Live migration between two daemons, each in its own network namespace
//! ("hosts") joined by a veth pair, talking over mutual TLS.

use std::time::Duration;

use ferrovirt_api::{InstanceStatus, MigrationTarget, OperationStatus, StateAction};
use ferrovirt_client::{Client, ClientError};
use ferrovirt_e2e::*;
use serde_json::json;

/// Two hosts: A at 10.98.0.1, B at 10.98.0.2, each serving TLS on :8443.
async fn two_hosts() -> (TestDaemon, TestDaemon) {
    let mut a = TestDaemon::start().await;
    let mut b = TestDaemon::start().await;
    ip(&[
        "-n", &a.netns, "link", "add", "fvmig-a", "type", "veth", "peer", "name", "fvmig-b",
        "netns", &b.netns,
    ]);
    ip(&[
        "-n",
        &a.netns,
        "addr",
        "add",
        "10.98.0.1/24",
        "dev",
        "fvmig-a",
    ]);
    ip(&[
        "-n",
        &b.netns,
        "addr",
        "add",
        "10.98.0.2/24",
        "dev",
        "fvmig-b",
    ]);
    ip(&["-n", &a.netns, "link", "set", "fvmig-a", "up"]);
    ip(&["-n", &b.netns, "link", "set", "fvmig-b", "up"]);
    a.args = vec!["--listen".into(), "10.98.0.1:8443".into()];
    b.args = vec!["--listen".into(), "10.98.0.2:8443".into()];
    a.restart().await;
    b.restart().await;
    (a, b)
}

/// Where and who `to` is, with a fresh join token from it.
async fn target(to: &TestDaemon) -> MigrationTarget {
    let token = to.client.new_token("peer").await.expect("token");
    let t = ferrovirt_client::decode_token(&token).expect("decodes");
    MigrationTarget {
        address: t.addresses[0].clone(),
        fingerprint: t.fingerprint,
        token: Some(token),
    }
}

async fn uptime(ch: &mut Ch) -> f64 {
    sh(ch, "cat /proc/uptime")
        .await
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn live_migration_there_and_back_with_copied_storage() {
    let (a, b) = two_hosts().await;
    let dir = tempfile::tempdir().unwrap();
    let disk = qcow2(dir.path(), "shared.qcow2", 64);
    let mut spec = guest_spec("mover");
    spec["disks"] = json!([{"path": disk, "format": "qcow2"}]);
    create(&a.client, spec).await;
    a.client.action("mover", StateAction::Start).await.unwrap();
    let mut ch = channel(&a.client, "mover").await;
    ch.wait_ready(BOOT).await.unwrap();
    sh(
        &mut ch,
        "mke2fs -F /dev/vda >/dev/null && mkdir -p /mnt && mount /dev/vda /mnt",
    )
    .await;
    sh(&mut ch, "echo written-on-a > /mnt/a && sync").await;
    let (c0, up0) = (counter(&mut ch).await, uptime(&mut ch).await);

    // A → B, shared storage.
    let op = a
        .client
        .migrate("mover", &migrate_request(target(&b).await))
        .await
        .expect("migrate");
    let op = a
        .client
        .finish(&op)
        .await
        .expect("live migration with shared storage");
    let downtime = op.result.unwrap()["downtime_ms"].as_u64().unwrap();
    eprintln!("downtime A→B (shared storage): {downtime} ms");
    assert!(
        a.client.instance("mover").await.is_err(),
        "the source forgot it"
    );
    assert!(a.qemu_pids().is_empty(), "the source's QEMU is gone");
    let on_b = b.client.instance("mover").await.unwrap();
    assert_eq!(on_b.state.status, InstanceStatus::Running);
    let mut ch = channel(&b.client, "mover").await;
    let (c1, up1) = (counter(&mut ch).await, uptime(&mut ch).await);
    assert!(
        c1 >= c0 && up1 >= up0,
        "the guest never restarted: counter {c0}→{c1}, uptime {up0}→{up1}"
    );
    assert_eq!(sh(&mut ch, "cat /mnt/a").await, "written-on-a\n");
    sh(&mut ch, "echo written-on-b > /mnt/b && sync").await;

    // B → A, copying the disk.
    let mut req = migrate_request(target(&a).await);
    req.copy_storage = true;
    let op = b.client.migrate("mover", &req).await.expect("migrate back");
    let op = b
        .client
        .finish(&op)
        .await
        .expect("live migration with copied storage");
    eprintln!(
        "downtime B→A (copied storage): {} ms",
        op.result.unwrap()["downtime_ms"]
    );
    let on_a = a.client.instance("mover").await.unwrap();
    assert_eq!(on_a.state.status, InstanceStatus::Running);
    assert!(
        on_a.spec.disks[0]
            .path
            .starts_with(&a.state_dir().display().to_string()),
        "the disk was copied into A's storage: {}",
        on_a.spec.disks[0].path
    );
    let mut ch = channel(&a.client, "mover").await;
    let (c2, up2) = (counter(&mut ch).await, uptime(&mut ch).await);
    assert!(
        c2 >= c1 && up2 >= up1,
        "still the same boot: {c1}→{c2}, {up1}→{up2}"
    );
    sh(&mut ch, "echo 3 > /proc/sys/vm/drop_caches").await;
    assert_eq!(
        sh(&mut ch, "cat /mnt/a /mnt/b").await,
        "written-on-a\nwritten-on-b\n"
    );
    assert!(b.client.instance("mover").await.is_err());
}

async fn slow_migration(a: &TestDaemon, b: &TestDaemon) -> String {
    let mut spec = guest_spec("slow");
    spec["memory"] = json!(256);
    create(&a.client, spec).await;
    a.client.action("slow", StateAction::Start).await.unwrap();
    let mut ch = channel(&a.client, "slow").await;
    ch.wait_ready(BOOT).await.unwrap();
    let mut req = migrate_request(target(b).await);
    req.bandwidth = Some(1);
    let op = a.client.migrate("slow", &req).await.expect("migrate");
    let id = op.id.to_string();
    // Wait until memory is moving.
    for _ in 0..100 {
        let op = a.client.operation(&id).await.unwrap();
        if op
            .progress
            .as_ref()
            .is_some_and(|p| p.stage.starts_with("migrating memory"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    id
}

async fn still_running_on(a: &TestDaemon) {
    assert_eq!(
        a.client.instance("slow").await.unwrap().state.status,
        InstanceStatus::Running
    );
    let mut ch = channel(&a.client, "slow").await;
    let x = counter(&mut ch).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(counter(&mut ch).await > x, "the guest runs on the source");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_migration_leaves_the_source_running() {
    let (a, b) = two_hosts().await;
    let id = slow_migration(&a, &b).await;
    a.client.cancel_operation(&id).await.expect("cancel");
    let op = a.client.wait_operation(&id, 30.0).await.unwrap();
    assert_eq!(op.status, OperationStatus::Cancelled, "{op:?}");
    still_running_on(&a).await;
    assert!(
        b.client.instance("slow").await.is_err(),
        "nothing left on the destination"
    );
    assert!(b.qemu_pids().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_force_preempts_a_live_migration() {
    let (a, b) = two_hosts().await;
    let id = slow_migration(&a, &b).await;
    let t = std::time::Instant::now();
    force_stop(&a.client, "slow").await;
    let took = t.elapsed();
    eprintln!("stop --force during a live migration took {took:?}");
    assert!(took < Duration::from_secs(1), "stop --force took {took:?}");
    let op = a.client.wait_operation(&id, 30.0).await.unwrap();
    assert_eq!(op.status, OperationStatus::Cancelled, "{op:?}");
    assert_eq!(
        a.client.instance("slow").await.unwrap().state.status,
        InstanceStatus::Shutoff
    );
    assert!(a.qemu_pids().is_empty(), "the source's QEMU is gone");
    assert!(
        b.client.instance("slow").await.is_err(),
        "nothing left on the destination"
    );
    assert!(b.qemu_pids().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_destination_leaves_the_source_running() {
    let (a, mut b) = two_hosts().await;
    let id = slow_migration(&a, &b).await;
    b.kill();
    let op = a.client.wait_operation(&id, 60.0).await.unwrap();
    assert_eq!(op.status, OperationStatus::Failure, "{op:?}");
    assert!(op.error.unwrap().contains("destination"), "says why");
    still_running_on(&a).await;
    b.restart().await;
    assert!(
        b.client.instance("slow").await.is_err(),
        "the restarted destination dropped it"
    );
    for _ in 0..50 {
        if b.qemu_pids().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(b.qemu_pids().is_empty(), "no QEMU left on the destination");
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_clients_are_refused() {
    let (a, b) = two_hosts().await;
    let t = target(&b).await;
    let dir = tempfile::tempdir().unwrap();
    let stranger =
        ferrovirt_tls::Identity::load_or_create(dir.path(), "client", "stranger").unwrap();
    // The test process is outside both namespaces: reach B from inside A's
    // namespace is not possible from here, so ask through a thread that
    // enters A's namespace.
    let address = t.address.clone();
    let fp = t.fingerprint.clone();
    let netns = a.netns.clone();
    let result = std::thread::spawn(move || {
        enter_netns(&netns);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = Client::remote(&address, &stranger, &fp).unwrap();
            let refused = c.list_instances().await;
            let bad_token = c.redeem_token("not-a-secret").await;
            (refused, bad_token)
        })
    })
    .join()
    .unwrap();
    match result.0 {
        Err(ClientError::Api(b)) => {
            assert_eq!(b.code, 403);
            assert!(b.error.contains("is not trusted"), "{}", b.error);
        }
        other => panic!("an untrusted client got {other:?}"),
    }
    match result.1 {
        Err(ClientError::Api(b)) => assert_eq!(b.code, 403),
        other => panic!("a bad token was accepted: {other:?}"),
    }
}

/// Moves the calling thread into a network namespace.
fn enter_netns(name: &str) {
    let f = std::fs::File::open(format!("/run/netns/{name}")).expect("netns");
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_migration_moves_definition_and_disks() {
    let (a, b) = two_hosts().await;
    let dir = tempfile::tempdir().unwrap();
    let disk = qcow2(dir.path(), "cold.qcow2", 32);
    let mut spec = guest_spec("cold");
    spec["disks"] = json!([{"path": disk, "format": "qcow2"}]);
    create(&a.client, spec).await;
    a.client.action("cold", StateAction::Start).await.unwrap();
    let mut ch = channel(&a.client, "cold").await;
    ch.wait_ready(BOOT).await.unwrap();
    sh(
        &mut ch,
        "echo cold-data | dd of=/dev/vda bs=512 count=1 conv=sync,fsync 2>/dev/null",
    )
    .await;
    a.client
        .change_state(
            "cold",
            &ferrovirt_api::StatePut {
                action: StateAction::Stop,
                force: true,
                timeout: None,
            },
        )
        .await
        .unwrap();

    let raw = dir.path().join("check.raw");
    assert!(
        std::process::Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(&disk)
            .arg(&raw)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        std::fs::read(&raw).unwrap().starts_with(b"cold-data"),
        "the source disk holds the data"
    );

    let mut req = migrate_request(target(&b).await);
    req.offline = true;
    req.copy_storage = true;
    let op = a.client.migrate("cold", &req).await.expect("migrate");
    a.client.finish(&op).await.expect("offline migration");
    assert!(a.client.instance("cold").await.is_err());
    let on_b = b.client.instance("cold").await.unwrap();
    assert_eq!(
        on_b.state.status,
        InstanceStatus::Shutoff,
        "it stays stopped"
    );
    assert!(
        on_b.spec.disks[0]
            .path
            .starts_with(&b.state_dir().display().to_string())
    );
    b.client.action("cold", StateAction::Start).await.unwrap();
    let mut ch = channel(&b.client, "cold").await;
    ch.wait_ready(BOOT).await.unwrap();
    assert_eq!(sh(&mut ch, "head -c 9 /dev/vda").await, "cold-data");
}

#[tokio::test(flavor = "multi_thread")]
async fn migration_options_and_prechecks() {
    let (a, b) = two_hosts().await;
    create(&a.client, guest_spec("opt")).await;
    a.client.action("opt", StateAction::Start).await.unwrap();
    let mut ch = channel(&a.client, "opt").await;
    ch.wait_ready(BOOT).await.unwrap();
    let c0 = counter(&mut ch).await;

    // Post-copy with auto-converge there, compression with limits back.
    let mut req = migrate_request(target(&b).await);
    req.postcopy = true;
    req.auto_converge = true;
    a.client
        .finish(&a.client.migrate("opt", &req).await.unwrap())
        .await
        .expect("post-copy");
    let mut ch = channel(&b.client, "opt").await;
    assert!(counter(&mut ch).await >= c0);
    let mut req = migrate_request(target(&a).await);
    req.compress = true;
    req.bandwidth = Some(512);
    req.max_downtime = Some(500);
    b.client
        .finish(&b.client.migrate("opt", &req).await.unwrap())
        .await
        .expect("compressed");
    let mut ch = channel(&a.client, "opt").await;
    assert!(counter(&mut ch).await >= c0);

    // A name clash on the destination.
    create(&b.client, guest_spec("opt")).await;
    let op = a
        .client
        .migrate("opt", &migrate_request(target(&b).await))
        .await
        .unwrap();
    let err = a.client.finish(&op).await.unwrap_err().to_string();
    assert!(
        err.contains("instance opt already exists on the destination"),
        "{err}"
    );
    // A network the destination lacks.
    a.client
        .create_network(
            &json!({"name": "only-a", "type": "isolated", "ipv4": {"address": "10.97.0.1/24"}}),
        )
        .await
        .unwrap();
    a.client
        .add_nic(
            "opt",
            &serde_json::from_value(json!({"network": "only-a"})).unwrap(),
        )
        .await
        .unwrap();
    b.client.delete_instance("opt", true).await.unwrap();
    let op = a
        .client
        .migrate("opt", &migrate_request(target(&b).await))
        .await
        .unwrap();
    let err = a.client.finish(&op).await.unwrap_err().to_string();
    assert!(
        err.contains("the destination has no network only-a"),
        "{err}"
    );
    // The source is untouched by refused migrations.
    let mut ch = channel(&a.client, "opt").await;
    assert!(counter(&mut ch).await >= c0);
    assert!(b.client.instance("opt").await.is_err());
}

/// Runs the CLI inside `d`'s namespace against `d`, with config dir `dir`.
fn cli_in(d: &TestDaemon, dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &d.netns])
        .arg(bin("ferrovirt"))
        .arg("--config-dir")
        .arg(dir)
        .args(args)
        .env("FERROVIRT_SOCKET", d.socket())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_remote_add_and_migrate() {
    let (a, b) = two_hosts().await;
    let dir = tempfile::tempdir().unwrap();
    let (ok, token, _) = b.cli(&["host", "token", "admin"]);
    assert!(ok, "{token}");
    let (ok, out) = cli_in(
        &a,
        dir.path(),
        &["remote", "add", "hostb", "--token", token.trim()],
    );
    assert!(ok && out.contains("Remote hostb added"), "{out}");
    let (ok, out) = cli_in(
        &a,
        dir.path(),
        &["remote", "add", "again", "--token", token.trim()],
    );
    assert!(
        !ok && out.contains("unknown, used or expired"),
        "a token works once: {out}"
    );

    create(&a.client, guest_spec("clivm")).await;
    a.client.action("clivm", StateAction::Start).await.unwrap();
    let (ok, out) = cli_in(&a, dir.path(), &["migrate", "clivm", "--to", "hostb"]);
    assert!(
        ok && out.contains("Instance clivm migrated to hostb, downtime"),
        "{out}"
    );
    let (ok, out) = cli_in(&a, dir.path(), &["show", "hostb:clivm", "--format", "json"]);
    assert!(ok, "{out}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["state"]["status"], "running");
    let (ok, out) = cli_in(&a, dir.path(), &["list", "--remote", "hostb"]);
    assert!(ok && out.contains("clivm"), "{out}");
    let (ok, out) = cli_in(&a, dir.path(), &["list"]);
    assert!(ok && !out.contains("clivm"), "gone from A: {out}");
}

/// `--copy-storage` of a running guest with no disk: nothing to copy, and
/// the migration ends like a plain live one (it used to never return).
#[tokio::test(flavor = "multi_thread")]
async fn copy_storage_without_disks_moves_the_guest() {
    let (a, b) = two_hosts().await;
    create(&a.client, guest_spec("bare")).await;
    let mut ch = boot(&a.client, "bare").await;
    let c0 = counter(&mut ch).await;
    let mut req = migrate_request(target(&b).await);
    req.copy_storage = true;
    let op = a.client.migrate("bare", &req).await.expect("migrate");
    let op = tokio::time::timeout(Duration::from_secs(60), a.client.finish(&op))
        .await
        .expect("the migration ends within a minute")
        .expect("live migration with nothing to copy");
    assert_eq!(op.status, OperationStatus::Success);
    let on_b = b.client.instance("bare").await.unwrap();
    assert_eq!(on_b.state.status, InstanceStatus::Running);
    let mut ch = channel(&b.client, "bare").await;
    assert!(counter(&mut ch).await >= c0, "the same boot");
    assert!(a.client.instance("bare").await.is_err());
}
