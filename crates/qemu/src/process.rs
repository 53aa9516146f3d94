//! Launching QEMU detached from the daemon, and finding it again.
//!
//! QEMU is started with `-daemonize`: the launcher process exits once QEMU
//! has initialized (QMP socket listening), and the VM process is re-parented
//! away from the daemon, in its own session. No PR_SET_PDEATHSIG, so the VM
//! keeps running when the daemon stops, crashes or is upgraded.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{InstancePaths, QemuCommand};

/// How long QEMU may take to initialize before `-daemonize` returns.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot prepare {path}")]
    Prepare {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {binary}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("QEMU failed to start: {message}")]
    Failed { message: String },
}

fn prepare(path: &Path) -> Result<(), LaunchError> {
    std::fs::create_dir_all(path).map_err(|source| LaunchError::Prepare {
        path: path.display().to_string(),
        source,
    })
}

/// Starts QEMU and returns its PID once it is initialized (paused, with
/// its QMP socket listening).
pub async fn launch(cmd: &QemuCommand, paths: &InstancePaths) -> Result<u32, LaunchError> {
    prepare(&paths.runtime_dir)?;
    prepare(&paths.log_dir)?;
    for stale in [paths.qmp_socket(), paths.console_socket(), paths.pidfile()] {
        let _ = std::fs::remove_file(stale);
    }
    // QEMU's `-D` opens (and truncates) the same file: it holds the
    // messages of the current run; `stderr` catches what QEMU prints
    // before it has opened it.
    let log_path = paths.qemu_log();
    let prepare_log = |source| LaunchError::Prepare {
        path: log_path.display().to_string(),
        source,
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&log_path)
        .map_err(prepare_log)?;
    let stderr = log.try_clone().map_err(prepare_log)?;
    let launcher = tokio::process::Command::new(&cmd.binary)
        .args(&cmd.args)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .kill_on_drop(true)
        .status();
    let Ok(status) = tokio::time::timeout(LAUNCH_TIMEOUT, launcher).await else {
        // The launcher is killed on drop; a VM process it forked goes too.
        if let Some(pid) = read_pid(paths).filter(|pid| is_alive(*pid, paths)) {
            kill_now(pid);
        }
        return Err(LaunchError::Failed {
            message: format!(
                "{} did not finish initializing (QMP socket listening) within {} s",
                cmd.binary,
                LAUNCH_TIMEOUT.as_secs()
            ),
        });
    };
    let status = status.map_err(|source| LaunchError::Spawn {
        binary: cmd.binary.clone(),
        source,
    })?;
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let message = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(LaunchError::Failed {
            message: if message.is_empty() {
                format!("{} exited with {status}", cmd.binary)
            } else {
                message
            },
        });
    }
    let pid = read_pid(paths).ok_or_else(|| LaunchError::Failed {
        message: "QEMU started but wrote no pidfile".into(),
    })?;
    if let Ok(mut log) = std::fs::OpenOptions::new().append(true).open(&log_path) {
        let _ = writeln!(
            log,
            "{} ferrovirtd started QEMU (pid {pid}): {} {}",
            unix_time(),
            cmd.binary,
            cmd.args.join(" ")
        );
    }
    Ok(pid)
}

fn unix_time() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    format!("[{secs:.3}]")
}

/// The PID from the instance's pidfile.
pub fn read_pid(paths: &InstancePaths) -> Option<u32> {
    std::fs::read_to_string(paths.pidfile())
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` is a live (non-zombie) QEMU of this instance: the check
/// looks for the instance's QMP socket on the command line, so a recycled
/// PID is never mistaken for the VM.
pub fn is_alive(pid: u32, paths: &InstancePaths) -> bool {
    running(pid) && cmdline_is_ours(pid, paths) == Some(true)
}

/// Whether the PID exists and is not a zombie.
fn running(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

/// `Some(true)` if the command line names the instance's QMP socket,
/// `Some(false)` if it is another program, `None` if it is unreadable or
/// empty (a process in the middle of exiting has no command line).
fn cmdline_is_ours(pid: u32, paths: &InstancePaths) -> Option<bool> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if cmdline.is_empty() {
        return None;
    }
    let needle = paths.qmp_socket().display().to_string();
    Some(String::from_utf8_lossy(&cmdline).contains(&needle))
}

/// Kills QEMU at once.
pub fn kill_now(pid: u32) {
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
}

/// Waits until the process has really exited (it may linger a moment with
/// no command line while the kernel tears it down); `false` on timeout.
pub async fn wait_gone(pid: u32, paths: &InstancePaths, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while running(pid) && cmdline_is_ours(pid, paths) != Some(false) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    true
}

/// Removes the runtime files of a stopped instance.
/// Makes what QEMU created owner-only: `-daemonize` sets QEMU's umask to
/// 027, so its sockets, pidfile and log would otherwise be group-readable.
pub fn make_private(paths: &InstancePaths) {
    use std::os::unix::fs::PermissionsExt;
    for dir in [&paths.runtime_dir, &paths.log_dir] {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600));
        }
    }
}

pub fn clean_runtime(paths: &InstancePaths) {
    let _ = std::fs::remove_dir_all(&paths.runtime_dir);
}
