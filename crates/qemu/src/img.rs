//! qemu-img: the real tool for image work (JSON output where it has it),
//! run through a [`CommandRunner`] so it never blocks the runtime and a
//! fake can stand in for it in tests. [`QemuImg`] holds the runner; the
//! free functions run the host's qemu-img for callers that have no runner
//! at hand yet.

use std::path::Path;

use ferrovirt_api::DiskFormat;
use ferrovirt_core::runner::{Command, CommandRunner, Limits, RunError};
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
    #[serde(rename = "format-specific", default)]
    pub format_specific: Option<serde_json::Value>,
}

impl ImageInfo {
    /// The external data file a qcow2 header names, if any.
    pub fn data_file(&self) -> Option<&str> {
        self.format_specific
            .as_ref()?
            .pointer("/data/data-file")?
            .as_str()
    }

    /// The backing file the header names, as QEMU would open it.
    pub fn named_backing(&self) -> Option<&str> {
        self.full_backing_filename
            .as_deref()
            .or(self.backing_filename.as_deref())
    }
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

    /// Image metadata of an image of `format` (never probed from its
    /// content); `-U` so it also works on images a running QEMU holds. Its
    /// header is untrusted (a guest or a user wrote it), so qemu-img runs
    /// under [`Limits::UNTRUSTED_IMAGE`].
    pub async fn info(&self, path: &Path, format: DiskFormat) -> Result<ImageInfo, ImgError> {
        let args = [
            "info",
            "-U",
            "-f",
            format.as_str(),
            "--output=json",
            s(path),
        ];
        let cmd = qemu_img(args).limited(Limits::UNTRUSTED_IMAGE);
        self.json("info", cmd).await
    }

    /// What a file a user asks to import is, read as the format they
    /// declare (any qemu-img reads: vmdk, vdi …) or, when they declare
    /// none, the one qemu-img finds: the one place a format is read from
    /// content, under limits, and the import records it.
    pub async fn identify(
        &self,
        path: &Path,
        declared: Option<&str>,
    ) -> Result<ImageInfo, ImgError> {
        let mut cmd = qemu_img(["info", "-U", "--output=json"]);
        if let Some(f) = declared {
            cmd = cmd.args(["-f", f]);
        }
        let cmd = cmd.arg(s(path)).limited(Limits::UNTRUSTED_IMAGE);
        self.json("info", cmd).await
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
        let cmd = qemu_img(["commit", "-q", "-f", "qcow2", s(image)]).no_timeout();
        self.run("commit", cmd).await.map(drop)
    }

    /// Internal snapshot operations on a closed image: `-c` create, `-a`
    /// apply, `-d` delete.
    pub async fn snapshot(&self, op: char, tag: &str, image: &Path) -> Result<(), ImgError> {
        let flag = format!("-{op}");
        let cmd = qemu_img(["snapshot", "-f", "qcow2", &flag, tag, s(image)]);
        self.run("snapshot", cmd).await.map(drop)
    }

    /// Rebases `image` onto `backing` (or onto nothing), copying the data
    /// that differs so the guest-visible content stays the same.
    pub async fn rebase(
        &self,
        image: &Path,
        backing: Option<(&Path, DiskFormat)>,
    ) -> Result<(), ImgError> {
        let cmd = match backing {
            Some((b, fmt)) => qemu_img([
                "rebase",
                "-q",
                "-f",
                "qcow2",
                "-F",
                fmt.as_str(),
                "-b",
                s(b),
                s(image),
            ]),
            None => qemu_img(["rebase", "-q", "-f", "qcow2", "-b", "", s(image)]),
        };
        self.run("rebase", cmd.no_timeout()).await.map(drop)
    }

    /// Copies an image (sparse, all of its backing chain flattened),
    /// reporting progress in percent; `src_format` is the recorded (or
    /// declared) format, never probed; `snapshot` copies an internal
    /// snapshot's state. Dropping the future kills the copy.
    pub async fn convert_from(
        &self,
        src: &Path,
        src_format: &str,
        dst: &Path,
        dst_format: &str,
        snapshot: Option<&str>,
        mut progress: impl FnMut(f64) + Send,
    ) -> Result<(), ImgError> {
        let mut cmd = qemu_img(["convert", "-p", "-U", "-f", src_format, "-O", dst_format]);
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
        let i = host.info(&base, DiskFormat::Qcow2).await.unwrap();
        assert_eq!(i.virtual_size, 16 << 20);
        assert_eq!(i.snapshots[0].name, "s1");
        let top = dir.path().join("top.qcow2");
        host.create_overlay(&top, &base, "qcow2").await.unwrap();
        let q = DiskFormat::Qcow2;
        assert_eq!(
            host.info(&top, q)
                .await
                .unwrap()
                .backing_filename
                .as_deref(),
            Some(s(&base))
        );
        host.rebase(&top, None).await.unwrap();
        assert_eq!(host.info(&top, q).await.unwrap().backing_filename, None);
        let copy = dir.path().join("copy.raw");
        let mut seen = Vec::new();
        host.convert_from(&top, "qcow2", &copy, "raw", None, |p| seen.push(p))
            .await
            .unwrap();
        let raw = DiskFormat::Raw;
        assert_eq!(host.info(&copy, raw).await.unwrap().virtual_size, 16 << 20);
        assert_eq!(seen.last().copied(), Some(100.0));
        let err = host
            .info(&dir.path().join("missing"), raw)
            .await
            .unwrap_err();
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
            "qcow2",
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
            "qemu-img convert -p -U -f qcow2 -O raw /a.qcow2 /b.raw"
        );
        assert_eq!(
            calls[0].timeout, None,
            "copies run as long as the data needs"
        );
        let err = img.commit(Path::new("/top")).await.unwrap_err();
        assert_eq!(err.to_string(), "qemu-img commit failed: Permission denied");
        let err = img
            .info(Path::new("/x"), DiskFormat::Raw)
            .await
            .unwrap_err();
        assert_eq!(
            ferrovirt_core::error::chain(&err),
            "cannot run qemu-img info: cannot run qemu-img: it is not installed on this host"
        );
    }

    #[tokio::test]
    async fn every_qemu_img_call_names_the_format_and_info_runs_limited() {
        use ferrovirt_core::fake_runner::{FakeRunner, Reply};
        let fake = FakeRunner::new();
        let info = r#"{"filename": "/v", "format": "raw", "virtual-size": 1}"#;
        fake.on("qemu-img", &["info"], Reply::stdout(info));
        let img = QemuImg::new(&fake);
        let (v, b) = (Path::new("/v"), Path::new("/b"));
        img.info(v, DiskFormat::Raw).await.unwrap();
        img.commit(v).await.unwrap();
        img.snapshot('c', "s", v).await.unwrap();
        img.rebase(v, Some((b, DiskFormat::Raw))).await.unwrap();
        img.rebase(v, None).await.unwrap();
        img.create_overlay(v, b, "raw").await.unwrap();
        img.create_overlay_sized(v, b, "raw", 1).await.unwrap();
        img.convert_from(v, "raw", b, "qcow2", None, |_| {})
            .await
            .unwrap();
        let calls = fake.calls();
        assert_eq!(calls.len(), 8);
        for c in &calls {
            assert!(
                c.args.windows(2).any(|w| w[0] == "-f"),
                "no -f in {}",
                c.line()
            );
        }
        assert_eq!(
            calls[0].argv().join(" "),
            "prlimit --as=1073741824 --cpu=30 -- qemu-img info -U -f raw --output=json /v"
        );
        img.identify(v, None).await.unwrap();
        assert_eq!(
            fake.calls()[8].limits,
            Some(Limits::UNTRUSTED_IMAGE),
            "a user's file is read under limits"
        );
    }
}
