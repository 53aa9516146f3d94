//! qemu-img: the real tool for image work (JSON output where it has it).

use std::path::Path;
use std::process::Stdio;

use serde::Deserialize;
use tokio::io::AsyncReadExt;

#[derive(Debug, thiserror::Error)]
pub enum ImgError {
    #[error("cannot run qemu-img")]
    Spawn(#[source] std::io::Error),
    #[error("qemu-img {action} failed: {message}")]
    Failed { action: String, message: String },
    #[error("qemu-img {action} printed unexpected output")]
    Parse {
        action: String,
        #[source]
        source: serde_json::Error,
    },
}

/// What `qemu-img info --output=json` says of an image.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ImageInfo {
    pub filename: String,
    pub format: String,
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    #[serde(rename = "actual-size", default)]
    pub actual_size: u64,
    #[serde(rename = "backing-filename", default)]
    pub backing_filename: Option<String>,
    #[serde(rename = "full-backing-filename", default)]
    pub full_backing_filename: Option<String>,
    #[serde(default)]
    pub snapshots: Vec<InternalSnapshot>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct InternalSnapshot {
    pub name: String,
    #[serde(rename = "vm-state-size", default)]
    pub vm_state_size: u64,
}

async fn run(action: &str, args: &[&str]) -> Result<String, ImgError> {
    let out = tokio::process::Command::new("qemu-img")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(ImgError::Spawn)?;
    if !out.status.success() {
        return Err(ImgError::Failed {
            action: action.to_owned(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Image metadata; `-U` so it also works on images a running QEMU holds.
pub async fn info(path: &Path) -> Result<ImageInfo, ImgError> {
    let text = run("info", &["info", "-U", "--output=json", s(path)]).await?;
    serde_json::from_str(&text).map_err(|source| ImgError::Parse {
        action: "info".into(),
        source,
    })
}

/// The image and every image below it, top first.
pub async fn backing_chain(path: &Path) -> Result<Vec<ImageInfo>, ImgError> {
    let text = run(
        "info",
        &["info", "-U", "--backing-chain", "--output=json", s(path)],
    )
    .await?;
    serde_json::from_str(&text).map_err(|source| ImgError::Parse {
        action: "info --backing-chain".into(),
        source,
    })
}

/// Creates a qcow2 overlay of `size` bytes on `backing` without opening the
/// backing file, which a running QEMU may hold locked.
pub async fn create_overlay_sized(
    overlay: &Path,
    backing: &Path,
    backing_format: &str,
    size: u64,
) -> Result<(), ImgError> {
    let size = size.to_string();
    run(
        "create",
        &[
            "create",
            "-q",
            "-u",
            "-f",
            "qcow2",
            "-F",
            backing_format,
            "-b",
            s(backing),
            s(overlay),
            &size,
        ],
    )
    .await
    .map(drop)
}

/// Writes `image`'s data into its backing file (`qemu-img commit`).
pub async fn commit(image: &Path) -> Result<(), ImgError> {
    run("commit", &["commit", "-q", s(image)]).await.map(drop)
}

/// Creates a qcow2 overlay whose backing file is `backing`.
pub async fn create_overlay(
    overlay: &Path,
    backing: &Path,
    backing_format: &str,
) -> Result<(), ImgError> {
    run(
        "create",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            backing_format,
            "-b",
            s(backing),
            s(overlay),
        ],
    )
    .await
    .map(drop)
}

/// Internal snapshot operations on a closed image: `-c` create, `-a`
/// apply, `-d` delete.
pub async fn snapshot(op: char, tag: &str, image: &Path) -> Result<(), ImgError> {
    let flag = format!("-{op}");
    run("snapshot", &["snapshot", &flag, tag, s(image)])
        .await
        .map(drop)
}

/// Rebases `image` onto `backing` (or onto nothing), copying the data that
/// differs so the guest-visible content stays the same.
pub async fn rebase(image: &Path, backing: Option<(&Path, &str)>) -> Result<(), ImgError> {
    match backing {
        Some((b, fmt)) => run("rebase", &["rebase", "-q", "-F", fmt, "-b", s(b), s(image)]).await,
        None => run("rebase", &["rebase", "-q", "-b", "", s(image)]).await,
    }
    .map(drop)
}

/// Copies an image (sparse, all of its backing chain flattened), reporting
/// progress in percent. `snapshot` copies an internal snapshot's state.
pub async fn convert(
    src: &Path,
    dst: &Path,
    dst_format: &str,
    snapshot: Option<&str>,
    progress: impl FnMut(f64),
) -> Result<(), ImgError> {
    convert_from(src, None, dst, dst_format, snapshot, progress).await
}

/// [`convert`] with the source's format given rather than probed.
pub async fn convert_from(
    src: &Path,
    src_format: Option<&str>,
    dst: &Path,
    dst_format: &str,
    snapshot: Option<&str>,
    mut progress: impl FnMut(f64),
) -> Result<(), ImgError> {
    let mut args: Vec<String> = vec![
        "convert".into(),
        "-p".into(),
        "-U".into(),
        "-O".into(),
        dst_format.into(),
    ];
    if let Some(f) = src_format {
        args.push("-f".into());
        args.push(f.into());
    }
    if let Some(tag) = snapshot {
        args.push("-l".into());
        args.push(format!("snapshot.name={tag}"));
    }
    args.push(s(src).into());
    args.push(s(dst).into());
    let mut child = tokio::process::Command::new("qemu-img")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(ImgError::Spawn)?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut buf = [0u8; 256];
    let mut pending = String::new();
    while let Ok(n) = stdout.read(&mut buf).await {
        if n == 0 {
            break;
        }
        pending.push_str(&String::from_utf8_lossy(&buf[..n]));
        while let Some(pos) = pending.find(['\r', '\n']) {
            let line: String = pending.drain(..=pos).collect();
            if let Some(p) = parse_progress(&line) {
                progress(p);
            }
        }
    }
    let out = child.wait_with_output().await.map_err(ImgError::Spawn)?;
    if !out.status.success() {
        return Err(ImgError::Failed {
            action: "convert".into(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// `    (42.17/100%)` → 42.17
pub fn parse_progress(line: &str) -> Option<f64> {
    let inner = line.trim().strip_prefix('(')?.split('/').next()?;
    inner.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_parse() {
        assert_eq!(parse_progress("    (42.17/100%)\r"), Some(42.17));
        assert_eq!(parse_progress("(100.00/100%)"), Some(100.0));
        assert_eq!(parse_progress("garbage"), None);
    }

    #[tokio::test]
    async fn overlay_snapshot_rebase_convert_on_real_images() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.qcow2");
        run("create", &["create", "-q", "-f", "qcow2", s(&base), "16M"])
            .await
            .unwrap();
        snapshot('c', "s1", &base).await.unwrap();
        let i = info(&base).await.unwrap();
        assert_eq!(i.virtual_size, 16 << 20);
        assert_eq!(i.snapshots[0].name, "s1");
        let top = dir.path().join("top.qcow2");
        create_overlay(&top, &base, "qcow2").await.unwrap();
        assert_eq!(
            info(&top).await.unwrap().backing_filename.as_deref(),
            Some(s(&base))
        );
        rebase(&top, None).await.unwrap();
        assert_eq!(info(&top).await.unwrap().backing_filename, None);
        let copy = dir.path().join("copy.raw");
        let mut seen = Vec::new();
        convert(&top, &copy, "raw", None, |p| seen.push(p))
            .await
            .unwrap();
        assert_eq!(info(&copy).await.unwrap().virtual_size, 16 << 20);
        assert_eq!(seen.last().copied(), Some(100.0));
        let err = info(&dir.path().join("missing")).await.unwrap_err();
        assert!(err.to_string().contains("qemu-img info failed"), "{err}");
    }
}
