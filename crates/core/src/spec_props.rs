//! Property tests of instance spec parsing and validation: arbitrary JSON
//! never panics the parser or the validator, and a spec that passes
//! validation survives a JSON round trip and validates again unchanged.

use std::path::Path;

use ferrovirt_api::InstanceSpec;
use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::spec::{HostLimits, ValidSpec};

/// Field names of specs (top level and nested), so that generated objects
/// reach the validator instead of stopping at "unknown field".
const KEYS: &[&str] = &[
    "name",
    "cpus",
    "memory",
    "max_cpus",
    "max_memory",
    "balloon",
    "machine",
    "accel",
    "cpu_model",
    "boot",
    "disks",
    "nics",
    "serial",
    "graphics",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "autostart",
    "description",
    "kernel",
    "initrd",
    "cmdline",
    "order",
    "path",
    "format",
    "bus",
    "media",
    "readonly",
    "cache",
    "aio",
    "limits",
    "read_iops",
    "read_bytes",
    "read_bytes_burst",
    "burst_seconds",
    "group",
    "network",
    "mac",
    "type",
    "named",
];

/// Words the enums and names accept, mixed with hostile ones.
const WORDS: &[&str] = &[
    "vm1",
    "q35",
    "pc",
    "microvm",
    "kvm",
    "tcg",
    "host",
    "qemu64",
    "virtio",
    "sata",
    "ide",
    "disk",
    "cdrom",
    "qcow2",
    "raw",
    "none",
    "vnc",
    "restart",
    "destroy",
    "/etc/hostname",
    "../x",
    "a\nb",
    "",
    "hd",
    "network",
    "cdrom",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u64..5000).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// A top-level spec object: mostly a good name plus arbitrary fields.
fn spec_json() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just(Value::from("vm1")), leaf()],
        prop::collection::vec((prop::sample::select(KEYS), json()), 0..6),
    )
        .prop_map(|(name, kv)| {
            let mut m = Map::new();
            m.insert("name".into(), name);
            for (k, v) in kv {
                m.insert(k.to_owned(), v);
            }
            Value::Object(m)
        })
}

fn host(memory_mib: u64) -> HostLimits {
    HostLimits {
        memory_mib,
        cpu_models: vec!["qemu64".into(), "host".into()],
    }
}

fn exists(_: &Path) -> bool {
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_json_never_panics_and_valid_specs_round_trip(
        value in spec_json(),
        memory_mib in prop_oneof![Just(0u64), 1u64..u64::MAX],
    ) {
        let Ok(spec) = serde_json::from_value::<InstanceSpec>(value) else {
            return Ok(());
        };
        let host = host(memory_mib);
        let Ok(valid) = ValidSpec::new(spec, &host, &exists) else {
            return Ok(());
        };
        let text = serde_json::to_string(valid.get()).unwrap();
        let back: InstanceSpec = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, valid.get());
        let again = ValidSpec::new(back, &host, &exists);
        prop_assert_eq!(again.as_ref().ok(), Some(&valid), "{:?}", again);
        // Whatever passed keeps MiB → bytes in range.
        prop_assert!(valid.get().max_memory.unwrap().checked_mul(1 << 20).is_some());
    }
}
