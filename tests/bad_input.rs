//! Bad input gets a clear error naming the field and the reason, and leaves
//! nothing behind.

use ferrovirt_api::StateAction;
use ferrovirt_client::ClientError;
use ferrovirt_e2e::*;
use serde_json::{Value, json};

async fn refused(d: &TestDaemon, spec: Value) -> (u16, String, Option<String>) {
    match d.client.create_instance(&spec).await {
        Err(ClientError::Api(body)) => (body.code, body.error, body.details.and_then(|d| d.field)),
        other => panic!("expected a refusal of {spec}, got {other:?}"),
    }
}

fn assert_nothing_left(d: &TestDaemon, expected: usize) {
    let list = futures::executor::block_on(d.client.list_instances()).unwrap();
    assert_eq!(list.len(), expected, "half-made instances: {list:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_specs_are_refused_with_the_field() {
    let d = TestDaemon::start().await;
    let base = guest_spec("ok");
    let with = |k: &str, v: Value| {
        let mut s = base.clone();
        s[k] = v;
        s
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (with("colour", json!("red")), "colour", "unknown field"),
        (with("memory", json!(0)), "memory", "at least 16 MiB"),
        (with("memory", json!(-5)), "memory", "invalid value"),
        (
            with("memory", json!(1u64 << 40)),
            "memory",
            "more than the host",
        ),
        (with("name", json!("a/b")), "name", "contains '/'"),
        (with("name", json!("..")), "name", "contains '.'"),
        (with("cpus", json!(0)), "cpus", "between 1 and"),
        (with("machine", json!("vax")), "machine", "unknown variant"),
        (
            with("cpu_model", json!({"named": "pentium9"})),
            "cpu_model",
            "QEMU does not know the CPU model",
        ),
        (
            with("boot", json!({"kernel": "/nonexistent/vmlinux"})),
            "boot.kernel",
            "/nonexistent/vmlinux does not exist",
        ),
        (
            with(
                "disks",
                json!([{"path": "/nonexistent.qcow2", "format": "qcow2"}]),
            ),
            "disks[0].path",
            "does not exist",
        ),
        (
            with("disks", json!([{"path": "/etc/hostname", "sise": 1}])),
            "disks[0].sise",
            "unknown field",
        ),
    ];
    for (spec, field, reason) in cases {
        let (code, error, got_field) = refused(&d, spec.clone()).await;
        assert_eq!(code, 400, "{spec}: {error}");
        assert_eq!(got_field.as_deref(), Some(field), "{spec}: {error}");
        assert!(error.contains(reason), "{spec}: {error:?} lacks {reason:?}");
    }
    assert_nothing_left(&d, 0);

    // Duplicate name.
    create(&d.client, base.clone()).await;
    let (code, error, _) = refused(&d, base.clone()).await;
    assert_eq!(code, 409);
    assert_eq!(error, "instance ok already exists");
    assert_nothing_left(&d, 1);

    // Wrong names on actions.
    match d.client.action("nope", StateAction::Start).await {
        Err(ClientError::Api(b)) => {
            assert_eq!(b.code, 404);
            assert_eq!(b.error, "instance nope does not exist");
        }
        other => panic!("{other:?}"),
    }

    // Start of a running VM; delete of a running VM without force.
    d.client.action("ok", StateAction::Start).await.unwrap();
    match d.client.action("ok", StateAction::Start).await {
        Err(ClientError::Api(b)) => assert_eq!(
            (b.code, b.error.as_str()),
            (409, "instance ok is already running")
        ),
        other => panic!("{other:?}"),
    }
    match d.client.delete_instance("ok", false).await {
        Err(ClientError::Api(b)) => {
            assert_eq!(b.code, 409);
            assert!(b.error.contains("is running; stop it first"), "{}", b.error);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.qemu_pids().len(), 1, "the running VM is untouched");
    d.client
        .delete_instance("ok", true)
        .await
        .expect("force delete");
    assert!(d.qemu_pids().is_empty());
    assert_nothing_left(&d, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_reports_malformed_yaml_and_unknown_fields() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bad_yaml = dir.path().join("bad.yaml");
    std::fs::write(&bad_yaml, "memory: [1, 2\ncpus: 2\n").unwrap();
    let (ok, _, err) = d.cli(&["create", "x", "-f", bad_yaml.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("is not valid YAML"), "{err}");

    let unknown = dir.path().join("unknown.yaml");
    std::fs::write(&unknown, "memory: 64\nboot:\n  kernal: /boot/vmlinuz\n").unwrap();
    let (ok, _, err) = d.cli(&["create", "x", "-f", unknown.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("boot.kernal: unknown field `kernal`"), "{err}");

    let (ok, _, err) = d.cli(&["create", "x", "--kernel", "/missing/vmlinux"]);
    assert!(!ok);
    assert!(
        err.contains("boot.kernel: /missing/vmlinux does not exist"),
        "{err}"
    );

    let (ok, _, err) = d.cli(&["start", "ghost"]);
    assert!(!ok);
    assert!(err.contains("instance ghost does not exist"), "{err}");

    let (ok, out, _) = d.cli(&["list", "--format", "json"]);
    assert!(ok);
    assert_eq!(out.trim(), "[]");

    // The CLI without a daemon says so.
    let out = std::process::Command::new(bin("ferrovirt"))
        .args(["list"])
        .env("FERROVIRT_SOCKET", dir.path().join("no.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach ferrovirtd"));
}

fn api_refusal<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String, Option<String>) {
    match r {
        Err(ClientError::Api(b)) => (b.code, b.error, b.details.and_then(|d| d.field)),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// User strings that would reach dnsmasq's configuration, a host
/// interface or a mount command are refused before they do, naming the
/// field: a line break in a domain would add a `dhcp-script` directive
/// that dnsmasq runs as root.
#[tokio::test(flavor = "multi_thread")]
async fn injected_names_and_options_are_refused_with_the_field() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    let before = c.networks().await.unwrap().len();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"name": "evil", "domain": "x\ndhcp-script=/tmp/evil"}),
            "domain",
        ),
        (json!({"name": "evil", "domain": "a b"}), "domain"),
        (
            json!({"name": "evil", "ipv4": {"address": "10.77.0.1/24",
                "hosts": [{"mac": "52:54:00:00:00:01", "ip": "10.77.0.9",
                    "name": "web\ndhcp-script=/tmp/evil"}]}}),
            "ipv4.hosts[0].name",
        ),
        (
            json!({"name": "evil", "type": "macvtap", "parent": "../../etc"}),
            "parent",
        ),
        (
            json!({"name": "evil", "type": "bridge", "parent": "-br0"}),
            "parent",
        ),
    ];
    for (spec, field) in cases {
        let (code, error, got) = api_refusal(c.create_network(&spec).await);
        assert_eq!(
            (code, got.as_deref()),
            (400, Some(field)),
            "{spec}: {error}"
        );
    }
    assert_eq!(c.networks().await.unwrap().len(), before, "nothing made");

    for options in ["exec", "suid", "dev", "defaults", "noatime,suid"] {
        let req: ferrovirt_api::PoolCreate = serde_json::from_value(json!({"spec": {
            "name": "evil", "type": "netfs",
            "source": {"host": "127.0.0.1", "export": "/srv", "options": options}}}))
        .unwrap();
        let (code, error, got) = api_refusal(c.create_pool(&req).await);
        assert_eq!(
            (code, got.as_deref()),
            (400, Some("source.options")),
            "{options}: {error}"
        );
    }
    assert!(
        c.pools()
            .await
            .unwrap()
            .iter()
            .all(|p| p.spec.name != "evil")
    );
}

/// Odd numbers get a 400 naming their field, never a panic or a wrapped
/// multiplication.
#[tokio::test(flavor = "multi_thread")]
async fn odd_numbers_are_refused_with_the_field() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    let id = "00000000-0000-4000-8000-000000000000";
    for timeout in [f64::NAN, -1.0, f64::INFINITY, 1e300] {
        let (code, error, got) = api_refusal(c.wait_operation(id, timeout).await);
        assert_eq!(
            (code, got.as_deref()),
            (400, Some("timeout")),
            "timeout={timeout}: {error}"
        );
    }
    // The daemon is still there to answer.
    c.operations()
        .await
        .expect("the daemon answers after odd waits");

    let base = guest_spec("big");
    let with = |k: &str, v: Value| {
        let mut s = base.clone();
        s[k] = v;
        s
    };
    let cases: Vec<(Value, &str)> = vec![
        (with("memory", json!(u64::MAX)), "memory"),
        (with("max_memory", json!(u64::MAX)), "max_memory"),
        (
            with(
                "disks",
                json!([{"path": "/etc/hostname", "format": "raw", "readonly": true,
                    "limits": {"read_bytes": u64::MAX}}]),
            ),
            "disks[0].limits.read_bytes",
        ),
        (
            with(
                "disks",
                json!([{"path": "/etc/hostname", "format": "raw", "readonly": true,
                    "limits": {"read_bytes": 1u64 << 30, "read_bytes_burst": 1u64 << 30,
                        "burst_seconds": u64::MAX}}]),
            ),
            "disks[0].limits.burst_seconds",
        ),
    ];
    for (spec, field) in cases {
        let (code, error, got) = refused(&d, spec.clone()).await;
        assert_eq!(
            (code, got.as_deref()),
            (400, Some(field)),
            "{spec}: {error}"
        );
    }
    assert_nothing_left(&d, 0);
}
