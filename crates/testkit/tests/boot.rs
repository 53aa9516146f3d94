//! Boots the real test guest in QEMU (TCG), directly and from the bootable
//! disk through the firmware, and drives it through the command channel and
//! QMP. Needs `qemu-system-x86_64` and apt; fails (does
//! not skip) without them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ferrovirt_testkit::{CommandChannel, DISK_BOOT_MARKER, POWER_BUTTON_MARKER, TestGuest};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

const BOOT_DEADLINE: Duration = Duration::from_secs(90);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A QEMU process that is killed on every exit path.
struct Qemu {
    child: Child,
    dir: tempfile::TempDir,
    started: Instant,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Qemu {
    fn boot(guest: &TestGuest) -> Self {
        Self::start(guest.qemu_boot_args())
    }

    fn start(boot_args: Vec<OsString>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fv-boot-")
            .tempdir()
            .expect("create a temporary directory");
        let log = std::fs::File::create(dir.path().join("qemu.log")).expect("create qemu.log");
        let serial = dir.path().join("serial.sock");
        let qmp = dir.path().join("qmp.sock");
        let started = Instant::now();
        let child = Command::new("qemu-system-x86_64")
            .args([
                "-machine",
                "q35",
                "-accel",
                "tcg",
                "-nodefaults",
                "-no-user-config",
            ])
            .args(["-m", "256", "-display", "none"])
            .arg("-chardev")
            .arg(format!(
                "socket,id=c0,path={},server=on,wait=off",
                serial.display()
            ))
            .args(["-serial", "chardev:c0"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .args(boot_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start qemu-system-x86_64 (is QEMU installed? scripts/install-deps.sh)");
        Self {
            child,
            dir,
            started,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("qemu.log")).unwrap_or_default()
    }

    /// Connects to one of QEMU's server sockets once it exists.
    async fn connect(&mut self, name: &str) -> UnixStream {
        let path = self.path(name);
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(stream) = UnixStream::connect(&path).await {
                return stream;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "QEMU exited ({status}) before {name} appeared:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < end,
                "{} never appeared:\n{}",
                path.display(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn channel(&mut self) -> CommandChannel<UnixStream> {
        CommandChannel::new(self.connect("serial.sock").await)
    }

    /// Waits for QEMU to exit by itself.
    async fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(status) => status.expect("wait for QEMU"),
            Err(_) => panic!("QEMU did not exit within {deadline:?}:\n{}", self.log()),
        }
    }
}

fn guest() -> TestGuest {
    let guest = ferrovirt_testkit::test_guest().expect("build the test guest");
    assert!(Path::new(&guest.kernel).is_file() && Path::new(&guest.initrd).is_file());
    guest
}

async fn run_ok(channel: &mut CommandChannel<UnixStream>, cmd: &str) -> String {
    let out = channel.run(cmd, COMMAND_TIMEOUT).await.expect(cmd);
    assert_eq!(out.exit_code, 0, "{cmd} failed: {}", out.output);
    out.output
}

async fn counter(channel: &mut CommandChannel<UnixStream>) -> u64 {
    let text = run_ok(channel, "cat /tmp/counter").await;
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("counter {text:?}: {e}"))
}

/// Minimal QMP: greeting, capabilities, then one command; events are skipped.
async fn qmp_execute(qemu: &mut Qemu, command: &str) {
    let stream = qemu.connect("qmp.sock").await;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut next = async || {
        tokio::time::timeout(COMMAND_TIMEOUT, lines.next_line())
            .await
            .expect("QMP answer in time")
            .expect("read QMP")
            .expect("QMP connection open")
    };
    let greeting = next().await;
    assert!(greeting.contains("\"QMP\""), "QMP greeting: {greeting}");
    for execute in ["qmp_capabilities", command] {
        write
            .write_all(format!("{{\"execute\":\"{execute}\"}}\n").as_bytes())
            .await
            .expect("write QMP");
        loop {
            let line = next().await;
            if line.contains("\"event\"") {
                continue;
            }
            assert!(line.contains("\"return\""), "{execute} failed: {line}");
            break;
        }
    }
}

#[tokio::test]
async fn boots_runs_commands_and_powers_off_on_acpi_button() {
    let guest = guest();
    let mut qemu = Qemu::boot(&guest);
    let mut channel = qemu.channel().await;
    channel
        .wait_ready(BOOT_DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}\nQEMU log:\n{}", qemu.log()));
    eprintln!(
        "guest ready {:?} after QEMU started",
        qemu.started.elapsed()
    );
    assert!(
        channel
            .transcript()
            .contains(ferrovirt_testkit::READY_MARKER)
    );

    let out = channel
        .run("echo hello; exit 3", COMMAND_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(out.output, "hello\n");
    assert_eq!(out.exit_code, 3);
    let out = channel
        .run("echo to-stderr >&2; false", COMMAND_TIMEOUT)
        .await
        .unwrap();
    assert_eq!((out.output.as_str(), out.exit_code), ("to-stderr\n", 1));
    let big = run_ok(&mut channel, "seq 1 20000").await;
    assert_eq!(big.lines().count(), 20000);

    // The counter advances while the guest runs.
    let first = counter(&mut channel).await;
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let now = counter(&mut channel).await;
        if now > first {
            break;
        }
        assert!(Instant::now() < end, "counter stuck at {first}");
    }

    // A second channel on a guest that is already up finds it with a probe.
    drop(channel.into_inner());
    let mut channel = qemu.channel().await;
    channel.wait_ready(BOOT_DEADLINE).await.unwrap();
    assert_eq!(run_ok(&mut channel, "echo again").await, "again\n");
    let modules = run_ok(&mut channel, "cat /proc/modules").await;
    for module in ["button ", "evdev ", "virtio_pci ", "ext4 "] {
        assert!(modules.contains(module), "{module}not loaded:\n{modules}");
    }

    qmp_execute(&mut qemu, "system_powerdown").await;
    channel
        .wait_for_text(POWER_BUTTON_MARKER, COMMAND_TIMEOUT)
        .await
        .unwrap();
    let status = qemu.wait_exit(COMMAND_TIMEOUT).await;
    assert!(
        status.success(),
        "QEMU exit status {status}:\n{}",
        qemu.log()
    );
}

#[tokio::test]
async fn reboot_and_poweroff_from_inside_the_guest() {
    let guest = guest();
    let mut qemu = Qemu::boot(&guest);
    let mut channel = qemu.channel().await;
    channel.wait_ready(BOOT_DEADLINE).await.unwrap();

    // The initramfs lives in RAM: a file made now is gone after a reboot.
    run_ok(&mut channel, "touch /tmp/before-reboot").await;
    channel.send("reboot -f").await.unwrap();
    // The next ready marker comes from the second boot.
    channel
        .wait_ready(BOOT_DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}\nQEMU log:\n{}", qemu.log()));
    let out = channel
        .run("test -e /tmp/before-reboot", COMMAND_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(out.exit_code, 1, "the guest did not reboot");

    // Without -f, busybox signals PID 1, whose trap runs `poweroff -f`.
    channel.send("poweroff").await.unwrap();
    let status = qemu.wait_exit(COMMAND_TIMEOUT).await;
    assert!(
        status.success(),
        "QEMU exit status {status}:\n{}",
        qemu.log()
    );
}

#[tokio::test]
async fn power_button_pressed_right_after_ready_is_not_missed() {
    let guest = guest();
    let mut qemu = Qemu::boot(&guest);
    let mut channel = qemu.channel().await;
    channel.wait_ready(BOOT_DEADLINE).await.unwrap();
    qmp_execute(&mut qemu, "system_powerdown").await;
    channel
        .wait_for_text(POWER_BUTTON_MARKER, COMMAND_TIMEOUT)
        .await
        .unwrap();
    let status = qemu.wait_exit(COMMAND_TIMEOUT).await;
    assert!(
        status.success(),
        "QEMU exit status {status}:\n{}",
        qemu.log()
    );
}

#[tokio::test]
async fn boots_from_the_bootable_disk_through_the_firmware() {
    let disk = ferrovirt_testkit::bootable_disk().expect("build the bootable disk");
    // No -kernel: SeaBIOS boots the disk, SYSLINUX loads the bzImage.
    let mut drive = OsString::from("file=");
    drive.push(&disk);
    drive.push(",format=raw,if=virtio,readonly=on");
    let mut qemu = Qemu::start(vec!["-drive".into(), drive]);
    let mut channel = qemu.channel().await;
    channel
        .wait_ready(BOOT_DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}\nQEMU log:\n{}", qemu.log()));
    eprintln!(
        "disk-booted guest ready {:?} after QEMU started",
        qemu.started.elapsed()
    );
    let cmdline = run_ok(&mut channel, "cat /proc/cmdline").await;
    assert!(
        cmdline.split_whitespace().any(|w| w == DISK_BOOT_MARKER),
        "{cmdline}"
    );
    assert!(cmdline.contains("BOOT_IMAGE=bzImage"), "{cmdline}");
    channel.send("poweroff").await.unwrap();
    let status = qemu.wait_exit(COMMAND_TIMEOUT).await;
    assert!(
        status.success(),
        "QEMU exit status {status}:\n{}",
        qemu.log()
    );
}
