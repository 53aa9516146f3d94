//! Live resources: balloon, vCPU and memory hot-plug, stats, /metrics, and
//! the host's memory overcommit policy — checked from inside the guest.

use std::time::{Duration, Instant};

use ferrovirt_api::StateAction;
use ferrovirt_e2e::*;
use serde_json::json;

async fn meminfo_kb(ch: &mut ferrovirt_testkit::CommandChannel<tokio::io::DuplexStream>) -> u64 {
    let out = ch
        .run("grep MemTotal /proc/meminfo", CMD)
        .await
        .unwrap()
        .output;
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn balloon_cpu_and_memory_change_live() {
    let d = TestDaemon::start().await;
    let c = &d.client;
    let mut spec = guest_spec("res");
    spec["cpus"] = json!(1);
    spec["max_cpus"] = json!(2);
    spec["memory"] = json!(512);
    spec["max_memory"] = json!(768);
    create(c, spec).await;
    c.action("res", StateAction::Start).await.unwrap();
    let mut ch = channel(c, "res").await;
    ch.wait_ready(BOOT).await.unwrap();
    let before = meminfo_kb(&mut ch).await;

    // Balloon: the guest sees less memory.
    c.patch_instance("res", &json!({"balloon": 320}))
        .await
        .expect("balloon");
    let end = Instant::now() + Duration::from_secs(30);
    let mut now = meminfo_kb(&mut ch).await;
    while now > before - 64 * 1024 {
        assert!(
            Instant::now() < end,
            "MemTotal stayed at {now} kB (was {before})"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        now = meminfo_kb(&mut ch).await;
    }
    let end = Instant::now() + Duration::from_secs(30);
    while c.instance_stats("res").await.unwrap().balloon_bytes != Some(320 << 20) {
        assert!(Instant::now() < end, "the balloon did not reach 320 MiB");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // vCPU hot-plug: a second CPU appears and runs work.
    c.patch_instance("res", &json!({"cpus": 2}))
        .await
        .expect("cpu hot-plug");
    let out = ch
        .run(
            "for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /sys/devices/system/cpu/cpu1 ] && break; sleep 0.5; done; \
             [ -e /sys/devices/system/cpu/cpu1/online ] && [ \"$(cat /sys/devices/system/cpu/cpu1/online)\" = 0 ] && echo 1 > /sys/devices/system/cpu/cpu1/online; \
             a=$(awk '/^cpu1 /{print $2+$3+$4}' /proc/stat); \
             (while :; do :; done) & p1=$!; (while :; do :; done) & p2=$!; sleep 2; kill $p1 $p2; \
             b=$(awk '/^cpu1 /{print $2+$3+$4}' /proc/stat); echo $a $b; grep -c ^processor /proc/cpuinfo",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let words: Vec<u64> = out
        .output
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(words.len(), 3, "{}", out.output);
    assert!(words[1] > words[0], "cpu1 ran work: {}", out.output);
    assert_eq!(words[2], 2, "two processors: {}", out.output);
    assert_eq!(c.instance_stats("res").await.unwrap().vcpus, 2);

    // Memory hot-plug: 128 MiB more, onlined by the guest.
    c.patch_instance("res", &json!({"memory": 640, "balloon": null}))
        .await
        .expect("memory hot-plug");
    let end = Instant::now() + Duration::from_secs(45);
    let mut grown = 0;
    while grown <= before + 96 * 1024 && Instant::now() < end {
        let out = ch
            .run(
                "for m in /sys/devices/system/memory/memory*/state; do grep -q offline $m && echo online > $m; done; \
                 grep MemTotal /proc/meminfo",
                CMD,
            )
            .await
            .unwrap()
            .output;
        grown = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        grown > before + 96 * 1024,
        "MemTotal grew: {before} → {grown} kB"
    );
    let err = c
        .patch_instance("res", &json!({"memory": 512}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("can only grow"), "{err}");
    let err = c
        .patch_instance("res", &json!({"cpus": 3}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_cpus"), "{err}");

    // /metrics parses as Prometheus text and carries the instance's series.
    let text = c.metrics().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("parses");
    let series: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.labels.get("instance") == Some("res"))
        .map(|s| s.metric.clone())
        .collect();
    for want in [
        "ferrovirt_instance_cpu_seconds",
        "ferrovirt_instance_memory_rss_bytes",
        "ferrovirt_instance_vcpus",
    ] {
        assert!(series.iter().any(|m| m == want), "{want} missing: {text}");
    }
    let (ok, out, _) = d.cli(&["stats"]);
    assert!(ok && out.contains("res"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_overcommit_is_refused() {
    let mut d = TestDaemon::start().await;
    d.args = vec!["--memory-overcommit".into(), "0.005".into()];
    d.restart().await;
    create(&d.client, guest_spec("big")).await;
    let err = d
        .client
        .action("big", StateAction::Start)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("over the limit") && err.contains("overcommit ratio 0.005"),
        "{err}"
    );
    assert!(d.qemu_pids().is_empty());
}
