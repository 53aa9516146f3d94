//! A [`CommandRunner`] for tests: scripted replies matched by program and
//! a prefix of the arguments, and a record of every call.

use std::sync::Mutex;
use std::time::Duration;

use crate::runner::{BoxFuture, Command, CommandRunner, Output, RunError};

/// What a scripted tool does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Exits 0 after printing these stdout lines (each given to a
    /// streaming caller as it comes).
    Lines(Vec<String>),
    /// Exits with `status`, printing `stderr`.
    Fail { status: i32, stderr: String },
    /// The program is not installed.
    NotFound,
    /// The program hangs until its timeout.
    Hang,
    /// The program has hung past its timeout already (no waiting).
    TimedOut,
}

impl Reply {
    /// Success with `stdout` (split into lines for streaming callers).
    pub fn stdout(text: &str) -> Self {
        Self::Lines(text.lines().map(str::to_owned).collect())
    }

    pub fn fail(status: i32, stderr: &str) -> Self {
        Self::Fail {
            status,
            stderr: stderr.to_owned(),
        }
    }
}

#[derive(Debug)]
struct Rule {
    program: String,
    prefix: Vec<String>,
    reply: Reply,
}

/// Replays scripted replies; a call that no rule matches succeeds with no
/// output. The latest matching rule wins, so a test can override one.
#[derive(Debug, Default)]
pub struct FakeRunner {
    rules: Mutex<Vec<Rule>>,
    calls: Mutex<Vec<Command>>,
}

impl FakeRunner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Scripts `reply` for `program` when its arguments start with `prefix`.
    pub fn on(&self, program: &str, prefix: &[&str], reply: Reply) -> &Self {
        self.rules.lock().expect("rules").push(Rule {
            program: program.to_owned(),
            prefix: prefix.iter().map(|s| (*s).to_owned()).collect(),
            reply,
        });
        self
    }

    /// Every command run so far, in order.
    pub fn calls(&self) -> Vec<Command> {
        self.calls.lock().expect("calls").clone()
    }

    /// Every command run so far as `program arg…` lines.
    pub fn lines(&self) -> Vec<String> {
        self.calls().iter().map(Command::line).collect()
    }

    fn reply_for(&self, cmd: &Command) -> Reply {
        self.calls.lock().expect("calls").push(cmd.clone());
        self.rules
            .lock()
            .expect("rules")
            .iter()
            .rev()
            .find(|r| r.program == cmd.program && cmd.args.starts_with(&r.prefix))
            .map(|r| r.reply.clone())
            .unwrap_or(Reply::Lines(Vec::new()))
    }

    async fn play(
        &self,
        cmd: &Command,
        mut on_line: Option<&mut (dyn FnMut(&str) + Send)>,
    ) -> Result<Output, RunError> {
        let program = cmd.program.clone();
        match self.reply_for(cmd) {
            Reply::Lines(lines) => {
                if let Some(cb) = on_line.as_mut() {
                    for l in &lines {
                        cb(l);
                    }
                }
                let mut stdout = lines.join("\n");
                if !lines.is_empty() {
                    stdout.push('\n');
                }
                Ok(Output {
                    stdout,
                    stderr: String::new(),
                })
            }
            Reply::Fail { status, stderr } => Err(RunError::Failed {
                program,
                status: Some(status),
                stderr,
            }),
            Reply::NotFound => Err(RunError::NotFound { program }),
            Reply::TimedOut => Err(RunError::TimedOut {
                program,
                after: cmd.timeout.unwrap_or_default(),
            }),
            Reply::Hang => {
                let after = cmd.timeout.unwrap_or(Duration::from_secs(3600));
                tokio::time::sleep(after).await;
                Err(RunError::TimedOut { program, after })
            }
        }
    }
}

impl CommandRunner for FakeRunner {
    fn run<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<Output, RunError>> {
        Box::pin(self.play(cmd, None))
    }

    fn run_lines<'a>(
        &'a self,
        cmd: &'a Command,
        on_line: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<Output, RunError>> {
        Box::pin(self.play(cmd, Some(on_line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_match_by_program_and_prefix_and_calls_are_kept() {
        let f = FakeRunner::new();
        f.on("ip", &["link"], Reply::stdout("1: lo"))
            .on("ip", &["link", "del"], Reply::fail(2, "Cannot find device"))
            .on("nft", &[], Reply::NotFound);
        let out = f.run(&Command::new("ip").args(["link", "show"])).await;
        assert_eq!(out.unwrap().stdout, "1: lo\n");
        let err = f
            .run(&Command::new("ip").args(["link", "del", "x"]))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ip failed (exit status 2): Cannot find device"
        );
        assert!(matches!(
            f.run(&Command::new("nft")).await,
            Err(RunError::NotFound { .. })
        ));
        assert_eq!(
            f.run(&Command::new("true")).await.unwrap(),
            Output::default()
        );
        assert_eq!(f.lines(), ["ip link show", "ip link del x", "nft", "true"]);
    }

    #[tokio::test]
    async fn hanging_tools_time_out_and_lines_stream() {
        let f = FakeRunner::new();
        f.on("mount", &[], Reply::Hang).on(
            "qemu-img",
            &["convert"],
            Reply::stdout("(50.00/100%)\n(100.00/100%)"),
        );
        let cmd = Command::new("mount").timeout(Duration::from_millis(20));
        assert!(matches!(f.run(&cmd).await, Err(RunError::TimedOut { .. })));
        let mut seen = Vec::new();
        let cmd = Command::new("qemu-img").arg("convert");
        f.run_lines(&cmd, &mut |l: &str| seen.push(l.to_owned()))
            .await
            .unwrap();
        assert_eq!(seen, ["(50.00/100%)", "(100.00/100%)"]);
    }
}
