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
    let mut args = vec!["-t".to_owned(), fstype];
    if !opts.is_empty() {
        args.push("-o".into());
        args.push(opts.join(","));
    }
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
            ["-t", "nfs", "-o", "vers=4.2,soft", "nas:/srv/vms", "/mnt/n"]
        );
        let spec: PoolSpec = serde_json::from_value(serde_json::json!({
            "name": "f", "type": "fs", "source": {"device": "/srv/fs.img", "filesystem": "xfs"}}))
        .unwrap();
        assert_eq!(
            mount_args(&spec, Path::new("/p")),
            ["-t", "xfs", "-o", "loop", "/srv/fs.img", "/p"]
        );
    }
}
