//! One way to run every external tool (ip, nft, dnsmasq, ovs-vsctl,
//! qemu-img, mount, lvm, iscsi-ls …): a [`Command`] value handed to a
//! [`CommandRunner`], async and with a timeout, so nothing blocks the tokio
//! runtime and a dead NFS server or iSCSI target never hangs the daemon.
//!
//! [`TokioRunner`] runs the real tools; [`FakeRunner`](crate::fake_runner::FakeRunner)
//! replays scripted replies in tests and records every call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A boxed future, so [`CommandRunner`] is usable as `Arc<dyn CommandRunner>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long a tool may run when its command does not say otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// One run of an external tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
    /// Bytes written to the tool's stdin (closed after them); none means
    /// stdin is /dev/null.
    pub stdin: Option<Vec<u8>>,
    pub env: Vec<(String, String)>,
    /// `None` only for copies that take as long as the data needs; they are
    /// cancelled by dropping their future.
    pub timeout: Option<Duration>,
    /// CPU and memory limits the tool runs under (through `prlimit`).
    pub limits: Option<Limits>,
}

/// CPU and memory limits for a tool reading untrusted input, such as
/// qemu-img on an image a user supplied or a guest wrote: a crafted image
/// cannot make it eat the host's memory or CPU (OpenStack runs qemu-img
/// info the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of address space (`RLIMIT_AS`).
    pub address_space: u64,
    /// Seconds of CPU time (`RLIMIT_CPU`).
    pub cpu_seconds: u64,
}

impl Limits {
    /// What qemu-img gets for reading an untrusted image: 1 GiB, 30 s.
    pub const UNTRUSTED_IMAGE: Self = Self {
        address_space: 1 << 30,
        cpu_seconds: 30,
    };
}

impl Command {
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            stdin: None,
            env: Vec::new(),
            timeout: Some(DEFAULT_TIMEOUT),
            limits: None,
        }
    }

    /// Runs the tool under `limits`.
    pub fn limited(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// The program and arguments actually run: the tool itself, or
    /// `prlimit --as=… --cpu=… -- tool …` when it has limits.
    pub fn argv(&self) -> Vec<String> {
        let tool = std::iter::once(self.program.clone()).chain(self.args.iter().cloned());
        match self.limits {
            None => tool.collect(),
            Some(l) => [
                "prlimit".to_owned(),
                format!("--as={}", l.address_space),
                format!("--cpu={}", l.cpu_seconds),
                "--".to_owned(),
            ]
            .into_iter()
            .chain(tool)
            .collect(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// No time limit: for long copies, which their caller cancels.
    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// `program arg…`, as a user would type it.
    pub fn line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a tool printed; only successful runs produce one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Why a tool did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot run {program}: it is not installed on this host")]
    NotFound { program: String },
    #[error("cannot start {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {after:?} and was killed")]
    TimedOut { program: String, after: Duration },
    #[error("{program} failed ({}): {stderr}", exit_text(*.status))]
    Failed {
        program: String,
        /// The exit code; `None` when a signal ended the tool.
        status: Option<i32>,
        stderr: String,
    },
}

fn exit_text(status: Option<i32>) -> String {
    match status {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".into(),
    }
}

impl RunError {
    /// The tool's stderr for a failed run, else the error's sentence.
    pub fn reason(&self) -> String {
        match self {
            Self::Failed { stderr, .. } if !stderr.is_empty() => stderr.clone(),
            other => other.to_string(),
        }
    }
}

/// Runs external tools. Every call is async and bounded by the command's
/// timeout; dropping the future kills the tool.
pub trait CommandRunner: Send + Sync + fmt::Debug {
    /// Runs `cmd` to its end; a non-zero exit is [`RunError::Failed`].
    fn run<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<Output, RunError>>;

    /// Like [`run`](Self::run), calling `on_line` with each line of stdout
    /// as it comes (lines end at `\n` or `\r`, as progress bars print).
    fn run_lines<'a>(
        &'a self,
        cmd: &'a Command,
        on_line: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<Output, RunError>>;
}

/// Runs the real tools with tokio::process.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioRunner;

impl TokioRunner {
    async fn exec(
        cmd: &Command,
        mut on_line: Option<&mut (dyn FnMut(&str) + Send)>,
    ) -> Result<Output, RunError> {
        let argv = cmd.argv();
        let mut child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => RunError::NotFound {
                    program: cmd.program.clone(),
                },
                _ => RunError::Spawn {
                    program: cmd.program.clone(),
                    source,
                },
            })?;
        let spawn_err = |source| RunError::Spawn {
            program: cmd.program.clone(),
            source,
        };
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let feed = async {
            if let (Some(mut pipe), Some(bytes)) = (stdin, &cmd.stdin) {
                // A tool that exits without reading all its input is
                // judged by its exit status, not by the broken pipe.
                let _ = pipe.write_all(bytes).await;
            }
        };
        let read_out = async {
            let mut all = Vec::new();
            let mut pending = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = stdout.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
                if let Some(cb) = on_line.as_mut() {
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(pos) = pending.iter().position(|b| *b == b'\n' || *b == b'\r') {
                        let line: Vec<u8> = pending.drain(..=pos).collect();
                        cb(String::from_utf8_lossy(&line[..pos]).as_ref());
                    }
                }
            }
            if let Some(cb) = on_line.as_mut()
                && !pending.is_empty()
            {
                cb(String::from_utf8_lossy(&pending).as_ref());
            }
            Ok::<_, std::io::Error>(all)
        };
        let read_err = async {
            let mut all = Vec::new();
            stderr.read_to_end(&mut all).await.map(|_| all)
        };
        let work = async {
            let ((), out, err) = tokio::join!(feed, read_out, read_err);
            let status = child.wait().await.map_err(spawn_err)?;
            Ok::<_, RunError>((status, out.map_err(spawn_err)?, err.map_err(spawn_err)?))
        };
        let (status, out, err) = match cmd.timeout {
            Some(after) => {
                tokio::time::timeout(after, work)
                    .await
                    .map_err(|_| RunError::TimedOut {
                        program: cmd.program.clone(),
                        after,
                    })??
            }
            None => work.await?,
        };
        let stderr = String::from_utf8_lossy(&err).trim().to_owned();
        if !status.success() {
            return Err(RunError::Failed {
                program: cmd.program.clone(),
                status: status.code(),
                stderr,
            });
        }
        Ok(Output {
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr,
        })
    }
}

impl CommandRunner for TokioRunner {
    fn run<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<Output, RunError>> {
        Box::pin(Self::exec(cmd, None))
    }

    fn run_lines<'a>(
        &'a self,
        cmd: &'a Command,
        on_line: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<Output, RunError>> {
        Box::pin(Self::exec(cmd, Some(on_line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_real_tools_with_stdin_env_and_lines() {
        let r = TokioRunner;
        let out = r
            .run(
                &Command::new("sh")
                    .args(["-c", "cat; echo \"$X\" >&2"])
                    .stdin("in\n")
                    .env("X", "ex"),
            )
            .await
            .unwrap();
        assert_eq!(out.stdout, "in\n");
        assert_eq!(out.stderr, "ex");
        let mut lines = Vec::new();
        let cmd = Command::new("printf").arg("a\rb\nc\n");
        r.run_lines(&cmd, &mut |l: &str| lines.push(l.to_owned()))
            .await
            .unwrap();
        assert_eq!(lines, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn limited_tools_run_under_prlimit() {
        let cmd = Command::new("sh")
            .args(["-c", "ulimit -v; ulimit -t"])
            .limited(Limits::UNTRUSTED_IMAGE);
        assert_eq!(
            cmd.argv()[..4],
            ["prlimit", "--as=1073741824", "--cpu=30", "--"]
        );
        assert_eq!(
            cmd.line(),
            "sh -c ulimit -v; ulimit -t",
            "errors name the tool"
        );
        let out = TokioRunner.run(&cmd).await.unwrap();
        assert_eq!(out.stdout, "1048576\n30\n");
    }

    #[tokio::test]
    async fn failures_name_the_program_and_why() {
        let r = TokioRunner;
        let err = r
            .run(&Command::new("sh").args(["-c", "echo bad thing >&2; exit 3"]))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RunError::Failed {
                    status: Some(3),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "sh failed (exit status 3): bad thing");
        let err = r
            .run(&Command::new("ferrovirt-no-such-tool"))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot run ferrovirt-no-such-tool: it is not installed on this host"
        );
    }

    #[tokio::test]
    async fn a_slow_tool_is_killed_at_its_timeout() {
        let started = std::time::Instant::now();
        let err = TokioRunner
            .run(
                &Command::new("sleep")
                    .arg("10")
                    .timeout(Duration::from_millis(100)),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::TimedOut { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            err.to_string(),
            "sleep did not finish within 100ms and was killed"
        );
    }
}
