//! The audit log: one JSON line per request from a TLS peer (and, with
//! `--audit-local`, per mutating local request) appended to
//! `STATE/audit.log` (mode 0600). When the file passes [`MAX_BYTES`] it is
//! renamed to `audit.log.1` (replacing the previous one) and a new one is
//! started, so the log takes at most twice that.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

/// Size after which the log is rotated.
pub const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// One audited request.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub time: String,
    /// The client certificate; `null` for a local (unix socket) request.
    pub fingerprint: Option<String>,
    /// The name it is trusted as, if it is.
    pub name: Option<String>,
    /// `admin`, `restricted`, `untrusted` or `local`.
    pub role: &'static str,
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// Serializes writers, so lines never interleave and rotation is atomic
/// with respect to appends.
static WRITER: Mutex<()> = Mutex::new(());

pub fn file(state_dir: &Path) -> PathBuf {
    state_dir.join("audit.log")
}

fn append(path: &Path, line: &[u8], max: u64) -> std::io::Result<()> {
    let _guard = WRITER.lock().unwrap_or_else(|e| e.into_inner());
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= max) {
        std::fs::rename(path, path.with_extension("log.1"))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?
        .write_all(line)
}

/// Appends `entry` to the audit log in `state_dir`; a failure is logged,
/// never fatal to the request.
pub async fn record(state_dir: &Path, entry: Entry) {
    let mut line = serde_json::to_vec(&entry).expect("audit entry serializes");
    line.push(b'\n');
    let path = file(state_dir);
    let written = tokio::task::spawn_blocking(move || append(&path, &line, MAX_BYTES)).await;
    if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_log_is_private_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path());
        append(&path, b"one\n", 6).unwrap();
        append(&path, b"two\n", 6).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        append(&path, b"three\n", 6).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        assert_eq!(
            std::fs::read_to_string(path.with_extension("log.1")).unwrap(),
            "one\ntwo\n"
        );
    }
}
