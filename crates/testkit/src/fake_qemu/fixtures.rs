//! What the real QEMU 10 of this project answered, recorded by
//! `record-qemu-replies` into `fixtures/qemu10/`.

use serde_json::Value;

/// The QMP greeting.
pub const GREETING: &str = include_str!("../../fixtures/qemu10/greeting.json");

/// The recorded output of a probe (`--version`, `-machine help`, …).
pub fn probe(kind: &str) -> &'static str {
    match kind {
        "version" => include_str!("../../fixtures/qemu10/version.txt"),
        "machine" => include_str!("../../fixtures/qemu10/machine-help.txt"),
        "cpu" => include_str!("../../fixtures/qemu10/cpu-help.txt"),
        _ => include_str!("../../fixtures/qemu10/accel-help.txt"),
    }
}

/// The recorded replies the fake reuses as they are or as templates.
const REPLIES: &[(&str, &str)] = &[
    (
        "query-migrate-completed",
        include_str!("../../fixtures/qemu10/replies/query-migrate-completed.json"),
    ),
    (
        "query-cpus-fast",
        include_str!("../../fixtures/qemu10/replies/query-cpus-fast.json"),
    ),
];

/// The `return` value of the recorded reply `name`.
pub fn reply(name: &str) -> Value {
    let text = REPLIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap_or("{\"return\": {}}");
    serde_json::from_str::<Value>(text)
        .map(|mut v| v["return"].take())
        .unwrap_or(Value::Null)
}
