//! fs and netfs pools: a filesystem (on a block device or image file) or an
//! NFS export mounted at the pool's directory.

use std::path::Path;

use ferrovirt_api::{PoolSource, PoolSpec, PoolType};
use ferrovirt_core::Error;
use ferrovirt_core::runner::{Command, CommandRunner};

use crate::run::run;

const FILESYSTEMS: &[&str] = &["ext4", "ext3", "xfs", "btrfs"];

pub fn check_filesystem(fs: Option<&str>) -> Result<(), Error> {
    match fs {
        None => Ok(()),
        Some(f) if FILESYSTEMS.contains(&f) => Ok(()),
        Some(f) => Err(Error::validation(
            "source.filesystem",
            format!("{f} is not one of {}", FILESYSTEMS.join(", ")),
        )),
    }
}

/// Mount options a pool may ask for: nothing that lets a file in the pool
/// gain privileges (`suid`, `dev`, `exec`, `defaults`, `user`…), only
/// tuning of the filesystem or NFS client. Those ending in `=` take a value.
const ALLOWED_OPTIONS: &[&str] = &[
    // any filesystem
    "ro",
    "rw",
    "noatime",
    "relatime",
    "nodiratime",
    "lazytime",
    "sync",
    "async",
    "noexec",
    "nosuid",
    "nodev",
    // ext4, xfs, btrfs
    "discard",
    "nodiscard",
    "barrier",
    "nobarrier",
    "commit=",
    "data=",
    "errors=",
    "inode64",
    "largeio",
    "logbsize=",
    "allocsize=",
    "compress=",
    "compress-force=",
    "space_cache",
    "ssd",
    "nossd",
    "autodefrag",
    "subvol=",
    "subvolid=",
    // nfs
    "vers=",
    "nfsvers=",
    "minorversion=",
    "soft",
    "softerr",
    "hard",
    "timeo=",
    "retrans=",
    "proto=",
    "port=",
    "mountport=",
    "mountproto=",
    "rsize=",
    "wsize=",
    "sec=",
    "lock",
    "nolock",
    "ac",
    "noac",
    "actimeo=",
    "acregmin=",
    "acregmax=",
    "acdirmin=",
    "acdirmax=",
    "tcp",
    "udp",
    "intr",
    "nointr",
    "resvport",
    "noresvport",
    "nconnect=",
    "local_lock=",
    "lookupcache=",
    "clientaddr=",
];

/// Options every mounted pool gets, last so that nothing before overrides
/// them: no set-uid programs and no device nodes from a pool's filesystem.
pub const FORCED_OPTIONS: &[&str] = &["nosuid", "nodev"];

/// Checks a pool's mount options against [`ALLOWED_OPTIONS`]; values are
/// plain words (letters, digits, `.`, `_`, `:`, `@`, `/`, `+`, `-`).
pub fn check_options(options: Option<&str>) -> Result<(), Error> {
    let Some(options) = options else {
        return Ok(());
    };
    for opt in options.split(',') {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (format!("{k}="), Some(v)),
            None => (opt.to_owned(), None),
        };
        let allowed = ALLOWED_OPTIONS.contains(&key.as_str())
            && value.is_none_or(|v| {
                !v.is_empty()
                    && v.chars().all(|c| {
                        c.is_ascii_alphanumeric()
                            || matches!(c, '.' | '_' | ':' | '@' | '/' | '+' | '-')
                    })
            });
        if !allowed {
            return Err(Error::validation(
                "source.options",
                format!(
                    "{opt:?} is not an allowed mount option (pools are always mounted nosuid,nodev; allowed: {})",
                    ALLOWED_OPTIONS.join(" ")
                ),
            ));
        }
    }
    Ok(())
}

fn filesystem(src: &PoolSource) -> &str {
    src.filesystem.as_deref().unwrap_or("ext4")
}

pub async fn mkfs(runner: &dyn CommandRunner, src: &PoolSource) -> Result<(), Error> {
    let dev = src.device.as_deref().unwrap_or_default();
    let fs = filesystem(src);
    let force = match fs {
        "ext4" | "ext3" => "-F",
        _ => "-f",
    };
    run(
        runner,
        &format!("cannot make a {fs} filesystem on {dev}"),
        Command::new(format!("mkfs.{fs}")).args(["-q", force, dev]),
    )
    .await
    .map(drop)
}

/// Whether something is mounted at `dir` (from /proc/self/mountinfo).
pub fn is_mounted(dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    let want = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
        m.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .any(|p| p.replace("\\040", " ") == want)
    })
}

/// The `mount` arguments of a pool.
pub fn mount_args(spec: &PoolSpec, dir: &Path) -> Vec<String> {
    let src = &spec.source;
    let mut opts: Vec<String> = src.options.iter().cloned().collect();
    let (fstype, what) = match spec.kind {
        PoolType::Netfs => (
            "nfs".to_owned(),
            format!(
                "{}:{}",
                src.host.as_deref().unwrap_or_default(),
                src.export.as_deref().unwrap_or_default()
            ),
        ),
        _ => {
            let dev = src.device.clone().unwrap_or_default();
            if !dev.starts_with("/dev/") {
                opts.insert(0, "loop".into());
            }
            (filesystem(src).to_owned(), dev)
        }
    };
    opts.extend(FORCED_OPTIONS.iter().map(|o| (*o).to_owned()));
    let mut args = vec!["-t".to_owned(), fstype, "-o".to_owned(), opts.join(",")];
    args.push(what);
    args.push(dir.display().to_string());
    args
}

pub async fn mount(runner: &dyn CommandRunner, spec: &PoolSpec, dir: &Path) -> Result<(), Error> {
    if is_mounted(dir) {
        return Ok(());
    }
    if spec.kind == PoolType::Netfs
        && !std::fs::read_to_string("/proc/filesystems")
            .is_ok_and(|f| f.lines().any(|l| l.trim_end().ends_with("\tnfs")))
    {
        return Err(Error::conflict(format!(
            "pool {}: this kernel cannot mount NFS (no nfs in /proc/filesystems; load the nfs module)",
            spec.name
        )));
    }
    run(
        runner,
        &format!("cannot mount pool {}", spec.name),
        Command::new("mount").args(mount_args(spec, dir)),
    )
    .await
    .map(drop)
}

pub async fn unmount(runner: &dyn CommandRunner, dir: &Path) -> Result<(), Error> {
    if !is_mounted(dir) {
        return Ok(());
    }
    let d = dir.display().to_string();
    run(
        runner,
        &format!("cannot unmount {d}"),
        Command::new("umount").arg(&d),
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_commands() {
        let spec: PoolSpec = serde_json::from_value(serde_json::json!({
            "name": "n", "type": "netfs",
            "source": {"host": "nas", "export": "/srv/vms", "options": "vers=4.2,soft"}}))
        .unwrap();
        assert_eq!(
            mount_args(&spec, Path::new("/mnt/n")),
            [
                "-t",
                "nfs",
                "-o",
                "vers=4.2,soft,nosuid,nodev",
                "nas:/srv/vms",
                "/mnt/n"
            ]
        );
        let spec: PoolSpec = serde_json::from_value(serde_json::json!({
            "name": "f", "type": "fs", "source": {"device": "/srv/fs.img", "filesystem": "xfs"}}))
        .unwrap();
        assert_eq!(
            mount_args(&spec, Path::new("/p")),
            ["-t", "xfs", "-o", "loop,nosuid,nodev", "/srv/fs.img", "/p"]
        );
    }
}
