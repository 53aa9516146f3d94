//! Tier 3: live migration between two daemons — success, cancel, the job
//! model's conflicts and `stop --force` during a migration, a destination
//! whose QEMU fails to load the stream — the real daemons over the fake
//! QEMU, on loopback (each with a TLS listener on 127.0.0.1 and an
//! ephemeral port), trusting each other through a join token as in
//! `tests/migration.rs`. No root, no guest, seconds.

#[allow(dead_code)]
#[path = "tier3_harness.rs"]
mod harness;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrovirt_api::{
    InstanceStatus, MigratePost, MigrationTarget, Operation, OperationStatus, StateAction, StatePut,
};
use harness::*;
use serde_json::json;

/// A free TCP port on loopback (the daemon is told to listen on it).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("local address").port()
}

/// A daemon serving its API over TLS on 127.0.0.1.
async fn host() -> FakeHost {
    let listen = format!("127.0.0.1:{}", free_port());
    FakeHost::start_with(vec![("FERROVIRT_LISTEN".into(), listen)]).await
}

/// Where and who `to` is, with a fresh join token from it.
async fn target(to: &FakeHost) -> MigrationTarget {
    let token = to.client.new_token("peer").await.expect("token");
    let t = ferrovirt_client::decode_token(&token).expect("decodes");
    assert!(
        t.addresses[0].starts_with("127.0.0.1:"),
        "{:?}",
        t.addresses
    );
    MigrationTarget {
        address: t.addresses[0].clone(),
        fingerprint: t.fingerprint,
        token: Some(token),
    }
}

async fn request(to: &FakeHost) -> MigratePost {
    ferrovirt_e2e::migrate_request(target(to).await)
}

/// Polls `cond` until it holds.
async fn wait_until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + STEP;
    while !cond().await {
        assert!(Instant::now() < end, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The files the daemon of `h` keeps for instance `name` while it runs
/// or receives it (see the state map in docs/ARCHITECTURE.md) that exist:
/// the runtime dir, the incoming migration's marker, copied disks.
fn files_of(h: &FakeHost, name: &str) -> Vec<PathBuf> {
    let state = h.dir.path().join("state");
    [
        h.runtime_dir().join("instances").join(name),
        state
            .join("migrations")
            .join(format!("incoming-{name}.json")),
        state.join("disks").join(name),
    ]
    .into_iter()
    .filter(|p| p.exists())
    .collect()
}

/// The dir of `name`'s QEMU and console logs on `h`.
fn log_dir(h: &FakeHost, name: &str) -> PathBuf {
    h.dir.path().join("state/logs").join(name)
}

/// Waits until `h` has nothing of `name`: no record, no QEMU, no files.
async fn nothing_left(h: &FakeHost, name: &str) {
    wait_until("the destination's clean-up", async || {
        h.client.instance(name).await.is_err() && h.qemu_pids().is_empty()
    })
    .await;
    let err = h.client.instance(name).await.unwrap_err();
    assert_eq!(http_code(&err), 404, "{err}");
    assert_eq!(
        files_of(h, name),
        Vec::<PathBuf>::new(),
        "files left behind"
    );
}

/// Starts a migration of `name` from `a` to `b` that does not end on its
/// own (the source's fake never sends the stream), and waits until both
/// ends are in it: the destination's QEMU listens, the source's migrates.
async fn stuck_migration(a: &FakeHost, b: &FakeHost, name: &str) -> Operation {
    let fake = a.fake(name);
    fake.send("migration stuck").await.unwrap();
    let op = a.client.migrate(name, &request(b).await).await.unwrap();
    wait_command(&fake, "migrate").await;
    let cmds = wait_command(&b.fake(name), "migrate-incoming").await;
    assert!(!cmds.iter().any(|c| c == "cont"), "{cmds:?}");
    assert_eq!(b.qemu_pids().len(), 1);
    assert_eq!(
        a.client.operation(&op.id.to_string()).await.unwrap().status,
        OperationStatus::Running
    );
    op
}

/// The guest still runs on the source, in the same QEMU.
async fn still_running_on(a: &FakeHost, name: &str, pid: u32) {
    let inst = wait_for(&a.client, name, "running again", |i| {
        i.state.status == InstanceStatus::Running
    })
    .await;
    assert_eq!(inst.state.pid, Some(pid), "the same QEMU");
    assert!(alive(pid));
    assert_eq!(a.qemu_pids(), vec![pid]);
    assert_eq!(a.fake(name).runstate().await.unwrap(), "running");
}

#[tokio::test(flavor = "multi_thread")]
async fn live_migration_moves_a_running_instance() {
    let (a, b) = (host().await, host().await);
    let pid = a.running("mover", json!({})).await.state.pid.unwrap();
    let op = a.client.migrate("mover", &request(&b).await).await.unwrap();
    let op = wait_op(&a.client, &op).await;
    assert_eq!(op.status, OperationStatus::Success, "{:?}", op.error);
    let result = op.result.expect("a result");
    assert!(result["downtime_ms"].is_u64(), "{result}");

    // The source forgot it and its QEMU is gone.
    let err = a.client.instance("mover").await.unwrap_err();
    assert_eq!(http_code(&err), 404, "{err}");
    wait_gone(pid).await;
    assert!(a.qemu_pids().is_empty());
    assert_eq!(files_of(&a, "mover"), Vec::<PathBuf>::new());
    assert!(!log_dir(&a, "mover").exists(), "its logs went with it");

    // The destination runs it, resumed after the stream was received.
    let inst = b.client.instance("mover").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    let there = inst.state.pid.expect("a QEMU there");
    assert_eq!(b.qemu_pids(), vec![there]);
    let fake = b.fake("mover");
    assert_eq!(fake.runstate().await.unwrap(), "running");
    let cmds = fake.commands().await.unwrap();
    let listen = cmds.iter().position(|c| c == "migrate-incoming");
    let cont = cmds.iter().rposition(|c| c == "cont");
    assert!(listen.is_some() && cont > listen, "{cmds:?}");
    assert!(
        !b.dir
            .path()
            .join("state/migrations/incoming-mover.json")
            .exists(),
        "the destination's marker is gone"
    );
    // And it can be stopped there like any instance.
    let inst = b.client.action("mover", StateAction::Stop).await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Shutoff);
    wait_gone(there).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_migration_leaves_the_guest_on_the_source() {
    let (a, b) = (host().await, host().await);
    let pid = a.running("stay", json!({})).await.state.pid.unwrap();
    let op = stuck_migration(&a, &b, "stay").await;
    a.client
        .cancel_operation(&op.id.to_string())
        .await
        .expect("cancel");
    let op = wait_op(&a.client, &op).await;
    assert_eq!(op.status, OperationStatus::Cancelled, "{op:?}");
    let cmds = a.fake("stay").commands().await.unwrap();
    assert!(cmds.iter().any(|c| c == "migrate_cancel"), "{cmds:?}");
    still_running_on(&a, "stay", pid).await;
    nothing_left(&b, "stay").await;

    // Everything was released: the same migration now succeeds.
    a.fake("stay").send("migration free").await.unwrap();
    let op = a.client.migrate("stay", &request(&b).await).await.unwrap();
    let op = wait_op(&a.client, &op).await;
    assert_eq!(op.status, OperationStatus::Success, "{:?}", op.error);
    let inst = b.client.instance("stay").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    wait_gone(pid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_migration_conflicts_and_stop_force_preempts_it() {
    let (a, b) = (host().await, host().await);
    let pid = a.running("busy", json!({})).await.state.pid.unwrap();
    let op = stuck_migration(&a, &b, "busy").await;
    let id = op.id.to_string();
    for action in [StateAction::Stop, StateAction::Pause] {
        let err = tokio::time::timeout(STEP, a.client.action("busy", action))
            .await
            .expect("a conflicting request is answered at once, not queued")
            .unwrap_err();
        assert_eq!(http_code(&err), 409, "{err}");
        let msg = err.to_string();
        assert!(msg.contains("a migration") && msg.contains(&id), "{msg}");
    }
    assert_eq!(
        a.client.instance("busy").await.unwrap().state.status,
        InstanceStatus::Running,
        "the refused requests changed nothing"
    );

    let t = Instant::now();
    let force = StatePut {
        action: StateAction::Stop,
        force: true,
        timeout: None,
    };
    let inst = a.client.change_state("busy", &force).await.unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "stop --force took {took:?}");
    assert_eq!(inst.state.status, InstanceStatus::Shutoff);
    assert_eq!(
        wait_op(&a.client, &op).await.status,
        OperationStatus::Cancelled
    );
    wait_gone(pid).await;
    assert!(a.qemu_pids().is_empty());
    let inst = a.client.instance("busy").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Shutoff, "kept, stopped");
    nothing_left(&b, "busy").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_that_fails_to_load_leaves_the_source_running() {
    let (a, b) = (host().await, host().await);
    let pid = a.running("fragile", json!({})).await.state.pid.unwrap();
    let op = stuck_migration(&a, &b, "fragile").await;
    let there = b.qemu_pids();
    b.fake("fragile").send("incoming fail").await.unwrap();
    a.fake("fragile").send("migration free").await.unwrap();
    let op = wait_op(&a.client, &op).await;
    assert_eq!(op.status, OperationStatus::Failure, "{op:?}");
    let error = op.error.unwrap_or_default();
    assert!(error.contains("destination"), "says where: {error}");
    for pid in there {
        wait_gone(pid).await;
    }
    still_running_on(&a, "fragile", pid).await;
    let inst = a.client.instance("fragile").await.unwrap();
    assert!(
        inst.state.reason.contains("migration failed"),
        "{}",
        inst.state.reason
    );
    nothing_left(&b, "fragile").await;
}

/// The QEMU of an incoming migration that is dropped leaves no logs
/// behind: the record is gone, so nothing could ever show or remove them.
#[tokio::test(flavor = "multi_thread")]
async fn an_aborted_incoming_migration_leaves_no_logs() {
    let (a, b) = (host().await, host().await);
    a.running("ghost", json!({})).await;
    let op = stuck_migration(&a, &b, "ghost").await;
    assert!(log_dir(&b, "ghost").exists(), "the destination's QEMU logs");
    a.client.cancel_operation(&op.id.to_string()).await.unwrap();
    assert_eq!(
        wait_op(&a.client, &op).await.status,
        OperationStatus::Cancelled
    );
    nothing_left(&b, "ghost").await;
    let dir = log_dir(&b, "ghost");
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

/// Index of the first `cmd` in `cmds` (panics if it was never sent).
fn at(cmds: &[String], cmd: &str) -> usize {
    cmds.iter()
        .position(|c| c == cmd)
        .unwrap_or_else(|| panic!("{cmd} was never sent: {cmds:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn live_migration_with_copied_storage() {
    let (a, b) = (host().await, host().await);
    let disk = a.running_with_disk("carrier").await;
    let pid = a
        .client
        .instance("carrier")
        .await
        .unwrap()
        .state
        .pid
        .unwrap();
    let fake = a.fake("carrier");
    fake.send("migration stuck").await.unwrap();
    let mut req = request(&b).await;
    req.copy_storage = true;
    let op = a.client.migrate("carrier", &req).await.unwrap();

    // The source mirrors into the destination's NBD export, and sends
    // memory only once the mirror is in sync.
    let cmds = wait_command(&fake, "migrate").await;
    assert!(
        at(&cmds, "blockdev-add") < at(&cmds, "blockdev-mirror"),
        "{cmds:?}"
    );
    assert!(
        at(&cmds, "blockdev-mirror") < at(&cmds, "migrate"),
        "{cmds:?}"
    );
    let there = b.fake("carrier").commands().await.unwrap();
    assert!(at(&there, "nbd-server-start") < at(&there, "block-export-add"));
    assert!(at(&there, "block-export-add") < at(&there, "migrate-incoming"));
    let copies = b.dir.path().join("state/disks/carrier");
    assert_eq!(std::fs::read_dir(&copies).unwrap().count(), 1, "one copy");

    fake.send("migration free").await.unwrap();
    let op = wait_op(&a.client, &op).await;
    assert_eq!(op.status, OperationStatus::Success, "{:?}", op.error);
    wait_gone(pid).await;
    let err = a.client.instance("carrier").await.unwrap_err();
    assert_eq!(http_code(&err), 404, "{err}");
    assert!(a.qemu_pids().is_empty());
    assert!(
        std::path::Path::new(&disk).exists(),
        "the source's disk is kept"
    );

    let inst = b.client.instance("carrier").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    let copy = &inst.spec.disks[0].path;
    assert!(copy.starts_with(&copies.display().to_string()), "{copy}");
    assert!(std::path::Path::new(copy).is_file(), "{copy}");
    let there = b.fake("carrier").commands().await.unwrap();
    assert!(
        at(&there, "nbd-server-stop") < at(&there, "cont"),
        "{there:?}"
    );
    assert!(
        !b.dir
            .path()
            .join("state/migrations/incoming-carrier.json")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_storage_copy_removes_the_copies_and_the_mirror() {
    let (a, b) = (host().await, host().await);
    a.running_with_disk("hauler").await;
    let pid = a
        .client
        .instance("hauler")
        .await
        .unwrap()
        .state
        .pid
        .unwrap();
    let fake = a.fake("hauler");
    fake.send("jobs stuck").await.unwrap();
    let mut req = request(&b).await;
    req.copy_storage = true;
    let op = a.client.migrate("hauler", &req).await.unwrap();
    wait_command(&fake, "blockdev-mirror").await;
    assert!(b.dir.path().join("state/disks/hauler").exists());
    a.client.cancel_operation(&op.id.to_string()).await.unwrap();
    let op = wait_op(&a.client, &op).await;
    assert_eq!(op.status, OperationStatus::Cancelled, "{op:?}");

    // The mirror was cancelled and dismissed, the NBD node dropped, and
    // memory never moved.
    let cmds = fake.commands().await.unwrap();
    let mirror = at(&cmds, "blockdev-mirror");
    let after = &cmds[mirror..];
    assert!(
        at(after, "job-cancel") < at(after, "job-dismiss"),
        "{cmds:?}"
    );
    assert!(after.iter().any(|c| c == "blockdev-del"), "{cmds:?}");
    assert!(!cmds.iter().any(|c| c == "migrate"), "{cmds:?}");
    still_running_on(&a, "hauler", pid).await;
    nothing_left(&b, "hauler").await;
}

/// `--copy-storage` of a running instance with no disk at all: nothing to
/// mirror, the memory moves as in a plain live migration, and the
/// operation ends (it used to hang).
#[tokio::test(flavor = "multi_thread")]
async fn copy_storage_of_an_instance_without_disks_ends() {
    let (a, b) = (host().await, host().await);
    let pid = a.running("diskless", json!({})).await.state.pid.unwrap();
    let mut req = request(&b).await;
    req.copy_storage = true;
    let op = tokio::time::timeout(STEP, a.client.migrate("diskless", &req))
        .await
        .expect("the migration request is answered")
        .unwrap();
    let op = wait_op(&a.client, &op).await;
    assert_eq!(op.status, OperationStatus::Success, "{:?}", op.error);
    wait_gone(pid).await;
    let inst = b.client.instance("diskless").await.unwrap();
    assert_eq!(inst.state.status, InstanceStatus::Running);
    let cmds = a.fake("diskless").commands().await.unwrap_or_default();
    assert!(!cmds.iter().any(|c| c == "blockdev-mirror"), "{cmds:?}");
}
