//! A writer for the "newc" cpio format the kernel unpacks as initramfs.
//!
//! Writing it here (instead of running `cpio`) makes the archive
//! reproducible (fixed owners, times and inode numbers) and lets it hold
//! device nodes such as `/dev/console` without root privileges.

use std::collections::BTreeMap;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

#[derive(Debug, Clone)]
enum Entry {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
    CharDevice { mode: u32, major: u32, minor: u32 },
}

/// An archive being assembled; paths are relative (no leading `/`).
#[derive(Debug, Default)]
pub(crate) struct Archive {
    entries: BTreeMap<String, Entry>,
}

impl Archive {
    /// Adds a directory (and its parents).
    pub(crate) fn dir(&mut self, path: &str, mode: u32) {
        let path = normalize(path);
        self.parents(&path);
        self.entries.insert(path, Entry::Dir { mode });
    }

    /// Adds a regular file (and its parent directories).
    pub(crate) fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) {
        let path = normalize(path);
        self.parents(&path);
        self.entries.insert(path, Entry::File { mode, data });
    }

    /// Adds a symbolic link (and its parent directories).
    pub(crate) fn symlink(&mut self, path: &str, target: &str) {
        let path = normalize(path);
        self.parents(&path);
        self.entries.insert(
            path,
            Entry::Symlink {
                target: target.to_owned(),
            },
        );
    }

    /// Adds a character device node (and its parent directories).
    pub(crate) fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) {
        let path = normalize(path);
        self.parents(&path);
        self.entries
            .insert(path, Entry::CharDevice { mode, major, minor });
    }

    /// Whether the archive has an entry at `path`.
    pub(crate) fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(&normalize(path))
    }

    fn parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            self.entries
                .entry(path[..end].to_owned())
                .or_insert(Entry::Dir { mode: 0o755 });
            end += 1;
        }
    }

    /// The archive in newc format, parents before children, ending with
    /// the `TRAILER!!!` record.
    pub(crate) fn to_newc(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let ino = u32::try_from(ino + 1).unwrap_or(u32::MAX);
            let (mode, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match entry {
                Entry::Dir { mode } => (S_IFDIR | mode, 2, &[], (0, 0)),
                Entry::File { mode, data } => (S_IFREG | mode, 1, data, (0, 0)),
                Entry::Symlink { target } => (S_IFLNK | 0o777, 1, target.as_bytes(), (0, 0)),
                Entry::CharDevice { mode, major, minor } => {
                    (S_IFCHR | mode, 1, &[], (*major, *minor))
                }
            };
            record(&mut out, ino, mode, nlink, rdev, path, data);
        }
        record(&mut out, 0, 0, 1, (0, 0), "TRAILER!!!", &[]);
        out
    }
}

fn normalize(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_owned()
}

fn record(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    name: &str,
    data: &[u8],
) {
    let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let namesize = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    let fields = [
        ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(4) * 4, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One record read back: name, mode, rdev, data.
    type Record = (String, u32, (u32, u32), Vec<u8>);

    /// Reads back the records of an archive; a tiny newc parser.
    fn parse(mut data: &[u8]) -> Vec<Record> {
        let mut out = Vec::new();
        let field = |h: &[u8], i: usize| {
            u32::from_str_radix(std::str::from_utf8(&h[6 + i * 8..14 + i * 8]).unwrap(), 16)
                .unwrap()
        };
        loop {
            assert_eq!(&data[..6], b"070701");
            let (mode, size, namesize) = (
                field(data, 1),
                field(data, 6) as usize,
                field(data, 11) as usize,
            );
            let rdev = (field(data, 9), field(data, 10));
            let name = std::str::from_utf8(&data[110..110 + namesize - 1])
                .unwrap()
                .to_owned();
            let data_at = (110 + namesize).div_ceil(4) * 4;
            let body = data[data_at..data_at + size].to_vec();
            data = &data[(data_at + size).div_ceil(4) * 4..];
            if name == "TRAILER!!!" {
                assert!(data.is_empty());
                return out;
            }
            out.push((name, mode, rdev, body));
        }
    }

    #[test]
    fn writes_parents_first_with_padding() {
        let mut archive = Archive::default();
        archive.file("/bin/busybox", 0o755, b"elf!!".to_vec());
        archive.symlink("bin/sh", "busybox");
        archive.char_device("dev/console", 0o600, 5, 1);
        archive.dir("proc", 0o555);
        let records = parse(&archive.to_newc());
        let names: Vec<&str> = records.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            names,
            ["bin", "bin/busybox", "bin/sh", "dev", "dev/console", "proc"]
        );
        assert_eq!(records[0].1, S_IFDIR | 0o755);
        assert_eq!(records[1].1, S_IFREG | 0o755);
        assert_eq!(records[1].3, b"elf!!");
        assert_eq!(records[2].1, S_IFLNK | 0o777);
        assert_eq!(records[2].3, b"busybox");
        assert_eq!(records[4].2, (5, 1));
        assert!(archive.contains("/bin/sh"));
    }

    #[test]
    fn is_reproducible() {
        let build = || {
            let mut a = Archive::default();
            a.file("init", 0o755, b"#!/bin/sh\n".to_vec());
            a.to_newc()
        };
        assert_eq!(build(), build());
    }
}
