//! Tier 3: what local users can reach, and the console log's cap — the
//! real daemon over the fake QEMU. The modes of every dir, file and socket
//! the daemon makes; the API socket open to its group only (checked with
//! `setpriv` as two unprivileged uids when the test runs as root); the
//! console log rotating at its cap; `logs --tail` reaching into backups.

#[allow(dead_code)]
#[path = "tier3_harness.rs"]
mod harness;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferrovirt_e2e::bin;
use harness::*;
use serde_json::json;

/// A GID no account on the test host uses: the socket's group.
const GROUP: u32 = 47_111;
/// A member of [`GROUP`], and an outsider (uid, gid).
const MEMBER: u32 = 47_112;
const OUTSIDER: (u32, u32) = (47_113, 47_114);

/// Every path under `root`, `root` included.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_owned()];
    let mut i = 0;
    while i < out.len() {
        if out[i].is_dir()
            && let Ok(dir) = std::fs::read_dir(&out[i])
        {
            out.extend(dir.flatten().map(|e| e.path()));
        }
        i += 1;
    }
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Dirs 0700, files 0600, sockets with no group or other bits.
fn assert_private(root: &Path) {
    let mut bad = Vec::new();
    for p in walk(root) {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue; // gone meanwhile
        };
        let m = meta.permissions().mode() & 0o7777;
        let ok = if meta.is_dir() {
            m == 0o700
        } else if meta.file_type().is_socket() {
            m & 0o077 == 0
        } else {
            m == 0o600
        };
        if !ok {
            bad.push(format!("{} {:o}", p.display(), m));
        }
    }
    assert!(bad.is_empty(), "not private: {bad:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_the_daemon_makes_is_private_and_the_socket_is_its_groups() {
    let h = FakeHost::start_with(vec![("FERROVIRT_SOCKET_GROUP".into(), GROUP.to_string())]).await;
    h.running("plain", json!({})).await;
    h.fake("plain").send("print 100").await.unwrap();
    let log = h.dir.path().join("state/logs/plain/console.log");
    wait_until_file(&log, 100).await;
    // A managed save writes the save dir and file too.
    h.managed_save("plain").await;
    h.running("other", json!({})).await;

    assert_private(&h.dir.path().join("state"));
    assert_private(&h.runtime_dir());
    assert!(h.dir.path().join("state/save/plain.sav").exists());
    let sock = h.dir.path().join("api.sock");
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(mode(&sock), 0o660, "the API socket");
    assert_eq!(meta.gid(), GROUP, "the API socket's group");
}

async fn wait_until_file(path: &Path, len: u64) {
    let end = Instant::now() + STEP;
    while std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) < len {
        assert!(
            Instant::now() < end,
            "{} never reached {len} bytes",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `ferrovirt list` against `h` as `uid`/`gid` with no capabilities
/// (a copy of the CLI in the test's dir: the target dir may be private).
fn list_as(h: &FakeHost, uid: u32, gid: u32) -> std::process::Output {
    let cli = h.dir.path().join("ferrovirt");
    if !cli.exists() {
        std::fs::copy(bin("ferrovirt"), &cli).unwrap();
        std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::process::Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg(format!("--groups={gid}"))
        .arg("--inh-caps=-all")
        .arg(&cli)
        .arg("--socket")
        .arg(h.dir.path().join("api.sock"))
        .args(["list", "--format", "json"])
        .output()
        .expect("run setpriv")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_of_the_socket_group_uses_the_cli_and_others_are_refused() {
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        eprintln!("skipped: changing uid needs root");
        return;
    }
    let h = FakeHost::start_with(vec![("FERROVIRT_SOCKET_GROUP".into(), GROUP.to_string())]).await;
    h.running("shared", json!({})).await;
    // The test's temp dir is 0700: let others reach the socket inside.
    std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let out = list_as(&h, MEMBER, GROUP);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "member refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"shared\""), "{stdout}");

    let out = list_as(&h, OUTSIDER.0, OUTSIDER.1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an outsider listed instances");
    assert!(
        stderr.to_lowercase().contains("permission denied"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_log_rotates_at_its_cap_and_tail_reads_across_backups() {
    const CAP: u64 = 64 * 1024;
    let h =
        FakeHost::start_with(vec![("FERROVIRT_CONSOLE_LOG_SIZE".into(), CAP.to_string())]).await;
    h.running("chatty", json!({})).await;
    let fake = h.fake("chatty");
    // 5.5 caps: the current file, three full backups, the oldest dropped.
    let total = CAP * 11 / 2;
    fake.send(&format!("print {total}")).await.unwrap();
    let dir = h.dir.path().join("state/logs/chatty");
    let log = dir.join("console.log");
    let end = Instant::now() + STEP;
    loop {
        let current = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        // CAP / 2 in the current file also holds one cap earlier: wait for
        // the last line too.
        let last_line = format!("console line {:08}\n", (total - 1) / 22);
        let done = std::fs::read(&log).is_ok_and(|b| b.ends_with(last_line.as_bytes()));
        if dir.join("console.log.3").exists() && current == CAP / 2 && done {
            break;
        }
        assert!(
            Instant::now() < end,
            "the log never rotated: {current} bytes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in 1..=3 {
        let b = dir.join(format!("console.log.{n}"));
        assert_eq!(std::fs::metadata(&b).unwrap().len(), CAP, "{}", b.display());
        assert_eq!(mode(&b), 0o600);
    }
    assert!(!dir.join("console.log.4").exists());
    // Lines are 22 bytes ("console line 00000000\n"): the tail names the
    // last ones, across the current file and .1.
    let want = CAP * 3 / 4;
    let tail = h.client.log("chatty", "console", Some(want)).await.unwrap();
    assert_eq!(tail.len() as u64, want);
    let text = String::from_utf8(tail).unwrap();
    let last = (total - 1) / 22;
    assert!(
        text.contains(&format!("console line {:08}", last - 1)),
        "{}",
        &text[text.len() - 100..]
    );
    let all = h.client.log("chatty", "console", None).await.unwrap();
    assert_eq!(
        all.len() as u64,
        CAP / 2,
        "without --tail: the current file"
    );
}
