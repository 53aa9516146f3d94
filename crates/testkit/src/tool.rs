//! Running host tools (apt-get, dpkg-deb, xz…) with errors that say what for.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::error::{Error, Result};

/// How many bytes of a failing tool's stderr go into the error message.
const STDERR_TAIL: usize = 2000;

/// Runs `command`, capturing its output, and fails unless it exits with one of
/// `ok_codes` (usually just 0).
pub(crate) fn run(command: &mut Command, purpose: &str, ok_codes: &[i32]) -> Result<Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| spawn_error(command, purpose, source))?;
    check(command, purpose, &output.status, &output.stderr, ok_codes)?;
    Ok(output)
}

/// Runs `command` with its standard output written to the file `out`.
pub(crate) fn run_to_file(
    command: &mut Command,
    out: &Path,
    purpose: &str,
    ok_codes: &[i32],
) -> Result<()> {
    let file = File::create(out).map_err(Error::io("create", out))?;
    let output = command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| spawn_error(command, purpose, source))?;
    check(command, purpose, &output.status, &output.stderr, ok_codes)
}

fn spawn_error(command: &Command, purpose: &str, source: std::io::Error) -> Error {
    Error::ToolMissing {
        tool: command.get_program().to_string_lossy().into_owned(),
        purpose: purpose.to_owned(),
        source,
    }
}

fn check(
    command: &Command,
    purpose: &str,
    status: &std::process::ExitStatus,
    stderr: &[u8],
    ok_codes: &[i32],
) -> Result<()> {
    if status.code().is_some_and(|code| ok_codes.contains(&code)) {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(stderr);
    let stderr = stderr.trim();
    let start = stderr.len().saturating_sub(STDERR_TAIL);
    let start = (start..=stderr.len())
        .find(|&i| stderr.is_char_boundary(i))
        .unwrap_or(0);
    Err(Error::ToolFailed {
        command: describe(command),
        purpose: purpose.to_owned(),
        status: *status,
        stderr: stderr[start..].to_owned(),
    })
}

/// The command line, for messages.
fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Directories searched after `PATH`: tools such as `mkfs.vfat` live in
/// `sbin`, which is not on an ordinary user's `PATH` on Debian.
const SBIN_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Finds an executable named `name` in `PATH`, then in the `sbin` directories.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
