//! host check / host info, the OpenAPI document, and JSON logs.

use ferrovirt_api::CheckStatus;
use ferrovirt_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn host_check_and_info_tell_the_truth() {
    let d = TestDaemon::start().await;
    let check = d.client.host_check().await.unwrap();
    let names: Vec<&str> = check.items.iter().map(|i| i.name.as_str()).collect();
    for want in [
        "hardware virtualization",
        "/dev/kvm",
        "/dev/vhost-net",
        "/dev/net/tun",
        "cgroup v2",
        "QEMU",
        "qemu-img",
        "IOMMU",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for item in &check.items {
        assert!(
            item.status == CheckStatus::Pass || item.fix.is_some(),
            "{item:?} lacks a fix"
        );
    }
    // The accelerator follows the CPU flags, not the mere presence of /dev/kvm.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    let expected = if hw && std::path::Path::new("/dev/kvm").exists() {
        "kvm"
    } else {
        "tcg"
    };
    assert_eq!(check.accel.accel, expected, "{}", check.accel.reason);
    if std::path::Path::new("/sys/module/kvm_pvm").exists() && !hw {
        assert!(
            check.accel.reason.contains("kvm_pvm"),
            "{}",
            check.accel.reason
        );
    }

    let info = d.client.host_info().await.unwrap();
    assert!(info.cpus >= 1 && info.memory_mib > 0);
    assert!(
        info.qemu.version.starts_with("10."),
        "{}",
        info.qemu.version
    );
    for m in ["pc", "q35", "microvm"] {
        assert!(
            info.qemu.machines.iter().any(|x| x.name == m),
            "machine {m}"
        );
    }
    assert!(info.qemu.cpu_models.iter().any(|c| c == "qemu64"));
    assert!(info.qemu.accelerators.iter().any(|a| a == "tcg"));

    let (ok, out, _) = d.cli(&["host", "info"]);
    assert!(
        ok && out.contains("Accelerator:") && out.contains("q35"),
        "{out}"
    );
    let (_, out, _) = d.cli(&["host", "check"]);
    assert!(out.contains("PASS") && out.contains("fix:"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_is_generated_from_the_types() {
    let d = TestDaemon::start().await;
    let doc = d.client.openapi().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/1.0/instances",
        "/1.0/instances/{name}",
        "/1.0/instances/{name}/state",
        "/1.0/instances/{name}/console",
        "/1.0/events",
        "/1.0/host",
        "/1.0/host/check",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    let spec = &doc["components"]["schemas"]["InstanceSpec"];
    assert!(spec["properties"]["on_crash"].is_object(), "{spec}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(bin("ferrovirtd"))
        // Outside any test namespace: it must not touch networking.
        .args(["--no-default-network", "--log-format", "json", "--socket"])
        .arg(dir.path().join("s.sock"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--runtime-dir")
        .arg(dir.path().join("run"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut seen = 0;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{v}");
        seen += 1;
        if line.contains("serving the API") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen >= 2);
}
