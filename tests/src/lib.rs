//! Harness of the end-to-end tests: a private ferrovirtd per test (own
//! socket, state dir and runtime dir under a temp dir), the test guest, and
//! helpers that wait on states and events with deadlines.
//!
//! The binaries are taken from the cargo target dir; `scripts/test.sh`
//! builds them before the tests run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrovirt_api::{Event, EventKind, Instance, InstanceStatus};
use ferrovirt_client::Client;
use ferrovirt_testkit::CommandChannel;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio::io::DuplexStream;

/// How long a boot of the test guest may take (TCG, loaded CI machine).
pub const BOOT: Duration = Duration::from_secs(60);
/// How long one guest command may take.
pub const CMD: Duration = Duration::from_secs(20);

/// Directory holding the built binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FERROVIRT_BIN_DIR") {
        return dir.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug")
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A ferrovirtd of the test's own, inside a network namespace of its own
/// (`netns`): whatever it does to networking stays there.
pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub netns: String,
    child: Option<Child>,
    pub client: Client,
    /// Extra environment of the daemon (applied at its next start).
    pub env: Vec<(String, String)>,
    /// Extra arguments of the daemon (applied at its next start).
    pub args: Vec<String>,
}

/// Runs `ip ARGS`, panicking on failure.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command inside a namespace; returns (success, stdout+stderr).
pub fn in_netns(netns: &str, cmd: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", netns])
        .args(cmd)
        .output()
        .expect("ip netns exec");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

impl TestDaemon {
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fv-e2e-")
            .tempdir()
            .expect("temp dir");
        let client = Client::new(dir.path().join("api.sock")).expect("client");
        let netns = format!(
            "fv-{}-{}",
            std::process::id(),
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("fv-e2e-")
        );
        ip(&["netns", "add", &netns]);
        in_netns(&netns, &["ip", "link", "set", "lo", "up"]);
        let mut d = Self {
            dir,
            netns,
            child: None,
            client,
            env: Vec::new(),
            args: Vec::new(),
        };
        d.spawn().await;
        d
    }

    /// PID of the running daemon (its mount namespace is its own: `ip
    /// netns exec` gives it one).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("daemon log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .arg(bin("ferrovirtd"))
            .arg("--socket")
            .arg(self.socket())
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--runtime-dir")
            .arg(self.runtime_dir())
            .args(&self.args)
            .env("FERROVIRT_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn ferrovirtd");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if self.client.list_instances().await.is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("ferrovirtd exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < end,
                "ferrovirtd did not come up:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILLs the daemon (VMs keep running).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the daemon again on the same state.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Runs the CLI against this daemon; returns (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(bin("ferrovirt"))
            .args(args)
            .env("FERROVIRT_SOCKET", self.socket())
            .output()
            .expect("run ferrovirt");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// PIDs of QEMUs started from this daemon's runtime dir.
    pub fn qemu_pids(&self) -> Vec<u32> {
        qemu_pids_in(&self.runtime_dir())
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.kill();
        for pid in self.qemu_pids() {
            kill9(pid);
        }
        // Everything still running in the namespace (dnsmasq, OVS) goes too.
        let pids = Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            kill9(pid);
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        if std::thread::panicking() {
            eprintln!("--- ferrovirtd log ---\n{}", self.log());
        }
    }
}

/// A spec that direct-boots the test guest.
pub fn guest_spec(name: &str) -> Value {
    let g = ferrovirt_testkit::test_guest().expect("test guest");
    json!({
        "name": name,
        "memory": 256,
        "boot": {
            "kernel": g.kernel.display().to_string(),
            "initrd": g.initrd.display().to_string(),
            "cmdline": g.cmdline,
        },
    })
}

pub async fn create(c: &Client, spec: Value) -> Instance {
    c.create_instance(&spec).await.expect("create")
}

/// Opens a command channel on the instance's console.
pub async fn channel(c: &Client, name: &str) -> CommandChannel<DuplexStream> {
    CommandChannel::new(c.console(name).await.expect("console"))
}

/// Polls the API until the instance has `status`.
pub async fn wait_status(
    c: &Client,
    name: &str,
    status: InstanceStatus,
    within: Duration,
) -> Instance {
    let end = Instant::now() + within;
    loop {
        let inst = c.instance(name).await.expect("instance");
        if inst.state.status == status {
            return inst;
        }
        assert!(
            Instant::now() < end,
            "{name} did not become {status:?} within {within:?}; it is {:?} ({})",
            inst.state.status,
            inst.state.reason
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for an event of `kind` about `name`.
pub async fn wait_event(
    events: &mut (impl Stream<Item = Event> + Unpin),
    name: &str,
    kind: EventKind,
    within: Duration,
) -> Event {
    let end = Instant::now() + within;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, events.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind:?} event for {name} within {within:?}"))
            .expect("event stream ended");
        if ev.instance == name && ev.kind == kind {
            return ev;
        }
    }
}

/// Reads the guest's counter (advances every ~100 ms while the guest runs).
pub async fn counter(ch: &mut CommandChannel<DuplexStream>) -> u64 {
    let out = ch.run("cat /tmp/counter", CMD).await.expect("read counter");
    out.output.trim().parse().expect("counter is a number")
}

/// Whether a process is alive (and not a zombie).
/// PIDs of the live QEMUs (real or fake) started from `runtime_dir`.
pub fn qemu_pids_in(runtime_dir: &Path) -> Vec<u32> {
    let marker = format!("{}/", runtime_dir.join("instances").display());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if !alive(pid) {
            continue;
        }
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains("qemu-system") && cmd.contains(&marker) {
            pids.push(pid);
        }
    }
    pids
}

/// Kills `pid` at once.
pub fn kill9(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Whether a process is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The udhcpc script the test guest uses to apply a lease.
const DHCP_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/$mask" dev "$interface"
	[ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
	: >/etc/resolv.conf
	for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
	[ -n "$domain" ] && echo "search $domain" >>/etc/resolv.conf
	;;
deconfig)
	ip addr flush dev "$interface"
	ip link set "$interface" up
	;;
esac
exit 0
"#;

/// Runs DHCP on the guest's `iface`, sending `hostname`; returns the address.
pub async fn dhcp(ch: &mut CommandChannel<DuplexStream>, iface: &str, hostname: &str) -> String {
    let script = DHCP_SCRIPT.replace('\'', "'\\''");
    let setup = format!(
        "mkdir -p /etc && printf '%s' '{script}' > /tmp/dhcp.sh && chmod +x /tmp/dhcp.sh && ip link set {iface} up"
    );
    let out = ch.run(&setup, CMD).await.expect("dhcp setup");
    assert_eq!(out.exit_code, 0, "{}", out.output);
    let cmd = format!(
        "udhcpc -i {iface} -n -q -t 15 -T 1 -s /tmp/dhcp.sh -x hostname:{hostname} 2>&1; ip -4 -o addr show {iface}"
    );
    let out = ch.run(&cmd, Duration::from_secs(40)).await.expect("udhcpc");
    assert_eq!(out.exit_code, 0, "udhcpc failed: {}", out.output);
    out.output
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("no address after DHCP: {}", out.output))
        .to_owned()
}

/// Sets a static address on the guest's `iface`.
pub async fn static_ip(ch: &mut CommandChannel<DuplexStream>, iface: &str, cidr: &str) {
    let out = ch
        .run(
            &format!("ip link set {iface} up && ip addr add {cidr} dev {iface}"),
            CMD,
        )
        .await
        .expect("static ip");
    assert_eq!(out.exit_code, 0, "{}", out.output);
}

/// Whether the guest can ping `ip` (3 tries).
pub async fn ping(ch: &mut CommandChannel<DuplexStream>, ip: &str) -> bool {
    ch.run(
        &format!("ping -c 1 -W 1 {ip} || ping -c 1 -W 1 {ip} || ping -c 1 -W 2 {ip}"),
        CMD,
    )
    .await
    .expect("ping")
    .exit_code
        == 0
}

/// Creates an empty qcow2 image of `mib` MiB and returns its path.
pub fn qcow2(dir: &Path, name: &str, mib: u64) -> String {
    let path = dir.join(name);
    let ok = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&path)
        .arg(format!("{mib}M"))
        .status()
        .expect("run qemu-img")
        .success();
    assert!(ok, "qemu-img create {}", path.display());
    path.display().to_string()
}

/// The guest's command channel over the console.
pub type Ch = CommandChannel<DuplexStream>;

/// Runs a guest command that must succeed; its output.
pub async fn sh(ch: &mut Ch, cmd: &str) -> String {
    let out = ch.run(cmd, CMD).await.expect(cmd);
    assert_eq!(out.exit_code, 0, "`{cmd}` failed: {}", out.output);
    out.output
}

/// Starts an instance and waits for its guest to be ready.
pub async fn boot(c: &Client, name: &str) -> Ch {
    c.action(name, ferrovirt_api::StateAction::Start)
        .await
        .expect("start");
    let mut ch = channel(c, name).await;
    ch.wait_ready(BOOT).await.expect("guest ready");
    ch
}

/// Stops an instance at once (no ACPI).
pub async fn force_stop(c: &Client, name: &str) {
    c.change_state(
        name,
        &ferrovirt_api::StatePut {
            action: ferrovirt_api::StateAction::Stop,
            force: true,
            timeout: None,
        },
    )
    .await
    .expect("force stop");
}

/// Waits until /sys/block/DEV exists (or is gone) in the guest.
pub async fn wait_block(ch: &mut Ch, dev: &str, present: bool) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let out = ch
            .run(&format!("test -e /sys/block/{dev}"), CMD)
            .await
            .unwrap();
        if (out.exit_code == 0) == present {
            return;
        }
        assert!(
            Instant::now() < end,
            "/sys/block/{dev} present={} never became {present}",
            !present
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Size of a guest block device in bytes.
pub async fn guest_bytes(ch: &mut Ch, dev: &str) -> u64 {
    let out = sh(ch, &format!("cat /sys/block/{dev}/size")).await;
    out.trim().parse::<u64>().unwrap() * 512
}

/// Writes `text` into the first sector of a guest device, flushed.
pub async fn write_marker(ch: &mut Ch, dev: &str, text: &str) {
    sh(
        ch,
        &format!("printf '{text}' | dd of=/dev/{dev} bs=512 conv=sync,fsync 2>/dev/null"),
    )
    .await;
}

/// The first `len` bytes of a guest device.
pub async fn read_marker(ch: &mut Ch, dev: &str, len: usize) -> String {
    sh(
        ch,
        &format!("dd if=/dev/{dev} bs=512 count=1 2>/dev/null | head -c {len}"),
    )
    .await
}

/// Runs the CLI against `d`; it must succeed. Its standard output.
pub fn cli_ok(d: &TestDaemon, args: &[&str]) -> String {
    let (ok, out, err) = d.cli(args);
    assert!(ok, "ferrovirt {} failed: {err}{out}", args.join(" "));
    out
}

/// Runs the CLI against `d`; it must fail. Its standard error.
pub fn cli_err(d: &TestDaemon, args: &[&str]) -> String {
    let (ok, out, err) = d.cli(args);
    assert!(!ok, "ferrovirt {} should fail: {out}", args.join(" "));
    err
}

/// Runs a host shell command that must succeed; its output.
pub fn sh_host(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new sparse file of `mib` MiB.
pub fn sparse_file(path: &Path, mib: u64) {
    std::fs::File::create(path)
        .unwrap()
        .set_len(mib << 20)
        .unwrap();
}

/// A new sparse file of `mib` MiB starting with `marker`.
pub fn marked_file(path: &Path, mib: u64, marker: &str) {
    use std::io::Write;
    sparse_file(path, mib);
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(marker.as_bytes()).unwrap();
}

/// A live migration request to `target` with every option at its default.
pub fn migrate_request(target: ferrovirt_api::MigrationTarget) -> ferrovirt_api::MigratePost {
    ferrovirt_api::MigratePost {
        target,
        offline: false,
        copy_storage: false,
        postcopy: false,
        auto_converge: false,
        bandwidth: None,
        max_downtime: None,
        compress: false,
    }
}
