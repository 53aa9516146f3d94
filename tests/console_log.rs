//! End to end: the console log of a real guest is capped and rotated by the
//! daemon, and `console --log --tail N` prints the end of it. Also checks
//! the modes of what a real QEMU creates under the daemon's umask.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use ferrovirt_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_chatty_guest_leaves_a_capped_console_log_with_backups() {
    const CAP: u64 = 16 * 1024;
    let mut d = TestDaemon::start().await;
    d.env
        .push(("FERROVIRT_CONSOLE_LOG_SIZE".into(), CAP.to_string()));
    d.restart().await;
    create(&d.client, guest_spec("chatty")).await;
    let mut ch = boot(&d.client, "chatty").await;
    // 84 KB of numbered lines: the cap five times over.
    let out = sh(&mut ch, "seq 100000 112000").await;
    assert!(out.contains("112000"), "the guest printed it all");

    let dir = d.state_dir().join("logs/chatty");
    let size = |n: &str| std::fs::metadata(dir.join(n)).map(|m| m.len()).ok();
    assert!(size("console.log").unwrap() <= CAP);
    for n in ["console.log.1", "console.log.2", "console.log.3"] {
        assert_eq!(size(n), Some(CAP), "{n}");
    }
    assert_eq!(size("console.log.4"), None, "three backups only");

    let (ok, tail, err) = d.cli(&["console", "chatty", "--log", "--tail", "20000"]);
    assert!(ok, "{err}");
    assert_eq!(tail.len(), 20000, "across console.log and .1");
    // The guest's channel output is base64 on the wire, so compare bytes:
    // the tail is the end of .1 + the current file (give or take what the
    // guest printed since).
    let mut all = std::fs::read(dir.join("console.log.1")).unwrap();
    all.extend(std::fs::read(dir.join("console.log")).unwrap());
    let at = all
        .windows(tail.len())
        .rposition(|w| w == tail.as_bytes())
        .expect("the tail is a piece of the log");
    assert!(
        all.len() - (at + tail.len()) < 4096,
        "the tail ends {} bytes before the end of the log",
        all.len() - (at + tail.len())
    );
    assert!(
        at < std::fs::metadata(dir.join("console.log.1")).unwrap().len() as usize,
        "it reaches into console.log.1"
    );

    // What the real QEMU made under the daemon's umask is private.
    let rt = d.runtime_dir().join("instances/chatty");
    for entry in std::fs::read_dir(&rt).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        let mode = meta.permissions().mode() & 0o777;
        let private = if meta.file_type().is_socket() {
            mode & 0o077 == 0
        } else {
            mode == 0o600
        };
        assert!(private, "{} is {mode:o}", entry.path().display());
    }
    for f in ["qemu.log", "console.log"] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    force_stop(&d.client, "chatty").await;
}
