//! The console log: everything the guest writes on its serial console,
//! written by the daemon's console hub (not by QEMU) so that it can be
//! capped: when `console.log` would pass the size cap it becomes
//! `console.log.1` (older ones shift to `.2`, `.3`; the oldest goes), like
//! virtlogd. Files are 0600. Reading the end (`logs --tail`) seeks from the
//! end of the files instead of reading them whole.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Backups kept besides the current file.
pub const BACKUPS: u32 = 3;

/// A size-capped log with numbered backups.
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    cap: u64,
    file: File,
    size: u64,
}

fn backup(path: &Path, n: u32) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl RotatingLog {
    /// Opens `path` for appending (creating it and its dir); `cap` bytes at
    /// most per file.
    pub fn open(path: &Path, cap: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            cap: cap.max(1),
            file,
            size,
        })
    }

    /// Appends `bytes`, rotating whenever the current file is full.
    pub fn append(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            if self.size >= self.cap {
                self.rotate()?;
            }
            let room = (self.cap - self.size).min(bytes.len() as u64) as usize;
            self.file.write_all(&bytes[..room])?;
            self.size += room as u64;
            bytes = &bytes[room..];
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        for n in (1..BACKUPS).rev() {
            let from = backup(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, backup(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, backup(&self.path, 1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// The last `n` bytes of the log at `path`, reaching into its backups when
/// the current file is shorter; only those bytes are read.
pub fn tail(path: &Path, n: u64) -> std::io::Result<Vec<u8>> {
    let mut parts = Vec::new();
    let mut left = n;
    for file in std::iter::once(path.to_owned()).chain((1..=BACKUPS).map(|i| backup(path, i))) {
        if left == 0 {
            break;
        }
        let mut f = match File::open(&file) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        let take = len.min(left);
        f.seek(SeekFrom::Start(len - take))?;
        let mut part = Vec::with_capacity(take as usize);
        f.take(take).read_to_end(&mut part)?;
        left -= part.len() as u64;
        parts.push(part);
    }
    Ok(parts.into_iter().rev().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_log_rotates_at_the_cap_and_keeps_three_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/console.log");
        let mut log = RotatingLog::open(&path, 100).unwrap();
        let text: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        for chunk in text.chunks(33) {
            log.append(chunk).unwrap();
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert_eq!(size(&path), 100);
        for n in 1..=BACKUPS {
            assert_eq!(size(&backup(&path, n)), 100, "backup {n}");
        }
        assert!(!backup(&path, BACKUPS + 1).exists());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The newest bytes are at the end of the current file.
        assert_eq!(std::fs::read(&path).unwrap(), &text[900..]);
        assert_eq!(tail(&path, 10).unwrap(), &text[990..]);
        assert_eq!(tail(&path, 150).unwrap(), &text[850..], "across .1");
        assert_eq!(tail(&path, 10_000).unwrap(), &text[600..], "all kept");
        // Reopening continues the current file.
        let mut again = RotatingLog::open(&path, 100).unwrap();
        again.append(b"z").unwrap();
        assert_eq!(size(&path), 1);
        assert_eq!(tail(&dir.path().join("none.log"), 5).unwrap(), b"");
    }

    /// Bytes this process has read so far (`rchar` of /proc/self/io).
    fn bytes_read() -> u64 {
        std::fs::read_to_string("/proc/self/io")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("rchar: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap()
    }

    #[test]
    fn tail_reads_only_the_end_of_a_big_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut big = vec![b'.'; 16 << 20];
        big.extend_from_slice(b"the end\n");
        std::fs::write(&path, &big).unwrap();
        let before = bytes_read();
        assert_eq!(tail(&path, 8).unwrap(), b"the end\n");
        let read = bytes_read() - before;
        assert!(read < 64 * 1024, "read {read} bytes of a 16 MiB log");
    }
}
