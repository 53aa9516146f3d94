//! qemu-img: the real tool for image work (JSON output where it has it),
//! run through a [`CommandRunner`] so it never blocks the runtime and a
//! fake can stand in for it in tests. [`QemuImg`] holds the runner; the
//! free functions run the host's qemu-img for callers that have no runner
//! at hand yet.

use std::path::Path;

use ferrovirt_core::runner::{Command, CommandRunner, RunError};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ImgError {
    #[error("cannot run qemu-img {action}")]
    Run {
        action: String,
        #[source]
        source: RunError,
    },
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

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn qemu_img<'a>(args: impl IntoIterator<Item = &'a str>) -> Command {
    Command::new("qemu-img").args(args)
}

/// qemu-img through a runner.
#[derive(Debug, Clone, Copy)]
pub struct QemuImg<'r> {
    runner: &'r dyn CommandRunner,
}

impl<'r> QemuImg<'r> {
    pub fn new(runner: &'r dyn CommandRunner) -> Self {
        Self { runner }
    }

    async fn run(&self, action: &str, cmd: Command) -> Result<String, ImgError> {
        self.runner
            .run(&cmd)
            .await
            .map(|o| o.stdout)
            .map_err(|e| failed(action, e))
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        cmd: Command,
    ) -> Result<T, ImgError> {
        let text = self.run(action, cmd).await?;
        serde_json::from_str(&text).map_err(|source| ImgError::Parse {
            action: action.into(),
            source,
        })
    }

    /// Image metadata; `-U` so it also works on images a running QEMU holds.
    pub async fn info(&self, path: &Path) -> Result<ImageInfo, ImgError> {
        self.json("info", qemu_img(["info", "-U", "--output=json", s(path)]))
            .await
    }

    /// The image and every image below it, top first.
    pub async fn backing_chain(&self, path: &Path) -> Result<Vec<ImageInfo>, ImgError> {
        let args = ["info", "-U", "--backing-chain", "--output=json", s(path)];
        self.json("info --backing-chain", qemu_img(args)).await
    }

    /// Creates a qcow2 overlay of `size` bytes on `backing` without opening
    /// the backing file, which a running QEMU may hold locked.
    pub async fn create_overlay_sized(
        &self,
        overlay: &Path,
        backing: &Path,
        backing_format: &str,
        size: u64,
    ) -> Result<(), ImgError> {
        let size = size.to_string();
        let args = [
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
        ];
        self.run("create", qemu_img(args)).await.map(drop)
    }

    /// Creates a qcow2 overlay whose backing file is `backing`.
    pub async fn create_overlay(
        &self,
        overlay: &Path,
        backing: &Path,
        backing_format: &str,
    ) -> Result<(), ImgError> {
        let args = [
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            backing_format,
            "-b",
            s(backing),
            s(overlay),
        ];
        self.run("create", qemu_img(args)).await.map(drop)
    }

    /// Writes `image`'s data into its backing file (`qemu-img commit`),
    /// as long as the data takes.
    pub async fn commit(&self, image: &Path) -> Result<(), ImgError> {
        let cmd = qemu_img(["commit", "-q", s(image)]).no_timeout();
        self.run("commit", cmd).await.map(drop)
    }

    /// Internal snapshot operations on a closed image: `-c` create, `-a`
    /// apply, `-d` delete.
    pub async fn snapshot(&self, op: char, tag: &str, image: &Path) -> Result<(), ImgError> {
        let flag = format!("-{op}");
        let cmd = qemu_img(["snapshot", &flag, tag, s(image)]);
        self.run("snapshot", cmd).await.map(drop)
    }

    /// Rebases `image` onto `backing` (or onto nothing), copying the data
    /// that differs so the guest-visible content stays the same.
    pub async fn rebase(
        &self,
        image: &Path,
        backing: Option<(&Path, &str)>,
    ) -> Result<(), ImgError> {
        let cmd = match backing {
            Some((b, fmt)) => qemu_img(["rebase", "-q", "-F", fmt, "-b", s(b), s(image)]),
            None => qemu_img(["rebase", "-q", "-b", "", s(image)]),
        };
        self.run("rebase", cmd.no_timeout()).await.map(drop)
    }

    /// Copies an image (sparse, all of its backing chain flattened),
    /// reporting progress in percent; `src_format` is given rather than
    /// probed when known, `snapshot` copies an internal snapshot's state.
    /// Dropping the future kills the copy.
    pub async fn convert_from(
        &self,
        src: &Path,
        src_format: Option<&str>,
        dst: &Path,
        dst_format: &str,
        snapshot: Option<&str>,
        mut progress: impl FnMut(f64) + Send,
    ) -> Result<(), ImgError> {
        let mut cmd = qemu_img(["convert", "-p", "-U", "-O", dst_format]);
        if let Some(f) = src_format {
            cmd = cmd.args(["-f", f]);
        }
        if let Some(tag) = snapshot {
            cmd = cmd.arg("-l").arg(format!("snapshot.name={tag}"));
        }
        let cmd = cmd.args([s(src), s(dst)]).no_timeout();
        let mut on_line = |line: &str| {
            if let Some(p) = parse_progress(line) {
                progress(p);
            }
        };
        self.runner
            .run_lines(&cmd, &mut on_line)
            .await
            .map(drop)
            .map_err(|e| failed("convert", e))
    }
}

fn failed(action: &str, e: RunError) -> ImgError {
    match e {
        RunError::Failed { stderr, .. } => ImgError::Failed {
            action: action.to_owned(),
            message: stderr,
        },
        source => ImgError::Run {
            action: action.to_owned(),
            source,
        },
    }
}

/// `    (42.17/100%)` → 42.17
pub fn parse_progress(line: &str) -> Option<f64> {
    let inner = line.trim().strip_prefix('(')?.split('/').next()?;
    inner.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovirt_core::runner::TokioRunner;

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
        let host = QemuImg::new(&TokioRunner);
        host.run(
            "create",
            qemu_img(["create", "-q", "-f", "qcow2", s(&base), "16M"]),
        )
        .await
        .unwrap();
        host.snapshot('c', "s1", &base).await.unwrap();
        let i = host.info(&base).await.unwrap();
        assert_eq!(i.virtual_size, 16 << 20);
        assert_eq!(i.snapshots[0].name, "s1");
        let top = dir.path().join("top.qcow2");
        host.create_overlay(&top, &base, "qcow2").await.unwrap();
        assert_eq!(
            host.info(&top).await.unwrap().backing_filename.as_deref(),
            Some(s(&base))
        );
        host.rebase(&top, None).await.unwrap();
        assert_eq!(host.info(&top).await.unwrap().backing_filename, None);
        let copy = dir.path().join("copy.raw");
        let mut seen = Vec::new();
        host.convert_from(&top, Some("qcow2"), &copy, "raw", None, |p| seen.push(p))
            .await
            .unwrap();
        assert_eq!(host.info(&copy).await.unwrap().virtual_size, 16 << 20);
        assert_eq!(seen.last().copied(), Some(100.0));
        let err = host.info(&dir.path().join("missing")).await.unwrap_err();
        assert!(err.to_string().contains("qemu-img info failed"), "{err}");
    }

    #[tokio::test]
    async fn copies_report_progress_and_failures_through_the_runner() {
        use ferrovirt_core::fake_runner::{FakeRunner, Reply};
        let fake = FakeRunner::new();
        fake.on(
            "qemu-img",
            &["convert"],
            Reply::stdout("    (0.00/100%)\n    (50.00/100%)\n    (100.00/100%)"),
        )
        .on("qemu-img", &["commit"], Reply::fail(1, "Permission denied"))
        .on("qemu-img", &["info"], Reply::NotFound);
        let img = QemuImg::new(&fake);
        let mut seen = Vec::new();
        img.convert_from(
            Path::new("/a.qcow2"),
            Some("qcow2"),
            Path::new("/b.raw"),
            "raw",
            None,
            |p| seen.push(p),
        )
        .await
        .unwrap();
        assert_eq!(seen, [0.0, 50.0, 100.0]);
        let calls = fake.calls();
        assert_eq!(
            calls[0].line(),
            "qemu-img convert -p -U -O raw -f qcow2 /a.qcow2 /b.raw"
        );
        assert_eq!(
            calls[0].timeout, None,
            "copies run as long as the data needs"
        );
        let err = img.commit(Path::new("/top")).await.unwrap_err();
        assert_eq!(err.to_string(), "qemu-img commit failed: Permission denied");
        let err = img.info(Path::new("/x")).await.unwrap_err();
        assert_eq!(
            ferrovirt_core::error::chain(&err),
            "cannot run qemu-img info: cannot run qemu-img: it is not installed on this host"
        );
    }
}
