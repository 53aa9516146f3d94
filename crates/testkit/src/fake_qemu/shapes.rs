//! The fake's replies and events have the shapes the real QEMU 10 gave
//! `record-qemu-replies` (same keys, same event names and data keys).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::argv::Launch;
use super::qmp::execute;
use super::vm::Vm;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/qemu10")
}

/// The `return` of the recorded reply `name`.
fn recorded(name: &str) -> Value {
    let path = fixtures().join("replies").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): run record-qemu-replies",
            path.display()
        )
    });
    let mut v: Value = serde_json::from_str(&text).expect("recorded JSON");
    v["return"].take()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn fake(freeze: bool) -> (Arc<Vm>, BufReader<UnixStream>) {
    let vm = Vm::new(Launch {
        name: "shape".into(),
        qmp_socket: PathBuf::from("/nonexistent/qmp.sock"),
        freeze,
        memory_mib: 64,
        ..Launch::default()
    });
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    theirs
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    vm.add_client(ours);
    (vm, BufReader::new(theirs))
}

fn run(vm: &Arc<Vm>, cmd: &str, args: Value) -> Value {
    execute(vm, cmd, &args).unwrap_or_else(|e| panic!("{cmd}: {e:?}"))
}

/// Polls query-jobs until job `id` concludes; returns its entry.
fn concluded(vm: &Arc<Vm>, id: &str) -> Value {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let jobs = run(vm, "query-jobs", json!({}));
        if let Some(j) = jobs
            .as_array()
            .and_then(|a| a.iter().find(|j| j["id"] == id))
            && j["status"] == "concluded"
        {
            return j.clone();
        }
        assert!(Instant::now() < end, "job {id} did not conclude");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn query_status_has_qemus_shape() {
    let (vm, _events) = fake(true);
    let fake = run(&vm, "query-status", json!({}));
    assert_eq!(fake, recorded("query-status-prelaunch"));
    run(&vm, "cont", json!({}));
    assert_eq!(
        run(&vm, "query-status", json!({})),
        recorded("query-status-running")
    );
    run(&vm, "stop", json!({}));
    assert_eq!(
        run(&vm, "query-status", json!({})),
        recorded("query-status-paused")
    );
}

#[test]
fn jobs_have_qemus_shape() {
    let (vm, _events) = fake(true);
    let devices = json!({"vmstate": "disk0", "devices": ["disk0"]});
    let mut save = json!({"job-id": "snap-a", "tag": "a"});
    save.as_object_mut()
        .unwrap()
        .extend(devices.as_object().unwrap().clone());
    run(&vm, "snapshot-save", save);
    let job = concluded(&vm, "snap-a");
    let real = &recorded("snapshot-save-query-jobs-concluded")[0];
    assert_eq!(keys(&job), keys(real), "{job} vs {real}");
    assert_eq!(job, *real);
    run(&vm, "job-dismiss", json!({"id": "snap-a"}));
    assert_eq!(run(&vm, "query-jobs", json!({})), json!([]));

    let mut load = json!({"job-id": "load-x", "tag": "x"});
    load.as_object_mut()
        .unwrap()
        .extend(devices.as_object().unwrap().clone());
    run(&vm, "snapshot-load", load);
    let job = concluded(&vm, "load-x");
    let real = &recorded("snapshot-load-missing-query-jobs-concluded")[0];
    assert_eq!(keys(&job), keys(real), "{job} vs {real}");
}

/// Every event the fake sent, while it is driven through the recorder's
/// script, has an event of the same name and data keys in the recording.
#[test]
fn events_have_qemus_shapes() {
    let text = std::fs::read_to_string(fixtures().join("events.jsonl")).expect("events.jsonl");
    let real: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("event line")["line"].take())
        .collect();
    let (vm, mut events) = fake(true);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state");
    run(&vm, "cont", json!({}));
    vm.state().knobs.ignore_powerdown = true;
    run(&vm, "system_powerdown", json!({}));
    run(&vm, "stop", json!({}));
    run(&vm, "cont", json!({}));
    run(
        &vm,
        "snapshot-save",
        json!({"job-id": "snap-a", "tag": "a", "vmstate": "d", "devices": ["d"]}),
    );
    concluded(&vm, "snap-a");
    run(&vm, "job-dismiss", json!({"id": "snap-a"}));
    let uri = format!("file:{},offset=65536", file.display());
    run(&vm, "migrate", json!({"uri": uri}));
    let end = Instant::now() + Duration::from_secs(5);
    while run(&vm, "query-migrate", json!({}))["status"] != "completed" {
        assert!(Instant::now() < end, "the migration did not complete");
        std::thread::sleep(Duration::from_millis(5));
    }
    let done = run(&vm, "query-migrate", json!({}));
    assert_eq!(keys(&done), keys(&recorded("query-migrate-completed")));
    assert_eq!(
        run(&vm, "query-status", json!({})),
        recorded("query-status-postmigrate")
    );
    run(&vm, "system_reset", json!({}));
    let mut seen = BTreeSet::new();
    let mut line = String::new();
    while events.read_line(&mut line).is_ok_and(|n| n > 0) {
        let ev: Value = serde_json::from_str(&line).expect("event JSON");
        line.clear();
        let name = ev["event"].as_str().unwrap().to_owned();
        assert_eq!(keys(&ev["timestamp"]), keys(&real[0]["timestamp"]));
        let same = real.iter().any(|r| {
            r["event"] == ev["event"]
                && keys(r) == keys(&ev)
                && keys(&r["data"]) == keys(&ev["data"])
        });
        assert!(same, "no event like {ev} in the recording");
        seen.insert(name.clone());
        if name == "RESET" {
            break;
        }
    }
    // No MIGRATION events: QEMU sends them only with the `events` capability.
    for name in ["RESUME", "STOP", "POWERDOWN", "JOB_STATUS_CHANGE", "RESET"] {
        assert!(seen.contains(name), "the fake never sent {name}: {seen:?}");
    }
    let migrated = std::fs::read(&file).unwrap();
    assert!(migrated[65536..].starts_with(b"FAKE-QEMU-VMSTATE"));
}
