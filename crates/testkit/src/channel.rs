//! Host side of the guest command channel.
//!
//! The guest's `/init` (see `init.sh`) reads lines from its serial console
//! and answers each command line with one result line:
//!
//! ```text
//! host -> guest   @@FV <id> <base64 of a shell command>
//! guest -> host   @@FV-END <id> <exit code> <base64 of stdout+stderr>
//! ```
//!
//! Both sides ignore lines that do not parse, so kernel messages, tty echo
//! and leftovers of earlier sessions on the same console do no harm. The
//! channel works over any byte stream: a QEMU chardev socket, or the
//! daemon's console stream.

use std::collections::HashMap;
use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::READY_MARKER;

/// Prefix of a command line sent to the guest.
pub const COMMAND_PREFIX: &str = "@@FV ";
/// Prefix of a result line printed by the guest.
pub const RESULT_PREFIX: &str = "@@FV-END ";

/// How often [`CommandChannel::wait_ready`] probes the guest.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// The command a probe runs.
const PROBE_COMMAND: &str = "true";
/// How much of the transcript an error message quotes.
const ERROR_TAIL: usize = 600;

/// What a command printed (stdout and stderr together) and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Standard output and standard error, interleaved as written (lossy
    /// UTF-8).
    pub output: String,
    /// The shell's exit status: the command's code, or 128 + signal.
    pub exit_code: i32,
}

/// Why talking to the guest failed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The guest did not answer in time.
    #[error("timed out after {after:?} waiting for {what}; last console output: {tail:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
        /// The end of the console transcript.
        tail: String,
    },
    /// The console stream ended (e.g. QEMU exited).
    #[error("the guest console closed while waiting for {what}; last console output: {tail:?}")]
    Closed {
        /// What was awaited.
        what: String,
        /// The end of the console transcript.
        tail: String,
    },
    /// Reading or writing the console stream failed.
    #[error("cannot {action} the guest console")]
    Io {
        /// "read from" or "write to".
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The host end of the command channel, over any byte stream `S`.
///
/// Everything received is kept in a transcript, so [`wait_for_text`]
/// also finds text that arrived while another call was reading.
///
/// [`wait_for_text`]: CommandChannel::wait_for_text
pub struct CommandChannel<S> {
    stream: S,
    transcript: Vec<u8>,
    /// Where the current, unfinished line starts in `transcript`.
    line_start: usize,
    /// Where [`wait_ready`](Self::wait_ready) looks for the next marker.
    ready_from: usize,
    next_id: u64,
    /// Commands sent whose results are awaited.
    pending: HashSet<u64>,
    /// Results received and not yet collected.
    results: HashMap<u64, CommandOutput>,
    /// Probes of the current `wait_ready`, and whether one answered.
    probes: HashSet<u64>,
    probe_answered: bool,
    closed: bool,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> CommandChannel<S> {
    /// Wraps a console stream. Nothing is sent or read yet.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            transcript: Vec::new(),
            line_start: 0,
            ready_from: 0,
            next_id: 1,
            pending: HashSet::new(),
            results: HashMap::new(),
            probes: HashSet::new(),
            probe_answered: false,
            closed: false,
            buf: vec![0; 64 * 1024],
        }
    }

    /// Waits until the guest can take commands: either the ready marker
    /// appears (a guest booting now), or a probe command answers (a guest
    /// that booted before this channel attached). Probes are sent every
    /// 500 ms. Each call consumes one ready marker, so calling it again
    /// after a guest reboot waits for the new boot.
    pub async fn wait_ready(&mut self, deadline: Duration) -> Result<(), ChannelError> {
        let what = format!("the guest to become ready ({READY_MARKER} or a probe answer)");
        let end = Instant::now() + deadline;
        self.probes.clear();
        self.probe_answered = false;
        let mut next_probe = Instant::now();
        loop {
            if let Some(at) = find(&self.transcript[self.ready_from..], READY_MARKER.as_bytes()) {
                self.ready_from += at + READY_MARKER.len();
                self.probes.clear();
                return Ok(());
            }
            if self.probe_answered {
                self.ready_from = self.transcript.len();
                self.probes.clear();
                return Ok(());
            }
            let now = Instant::now();
            if now >= end {
                return Err(self.timeout(what, deadline));
            }
            if now >= next_probe {
                let id = self.take_id();
                self.probes.insert(id);
                self.write_command(id, PROBE_COMMAND).await?;
                next_probe = now + PROBE_INTERVAL;
            }
            if !self.read_until(next_probe.min(end)).await? {
                continue;
            }
            if self.closed {
                return Err(self.closed_error(what));
            }
        }
    }

    /// Runs `cmd` with `sh -c` in the guest and returns its output and exit
    /// code. Fails if no result arrives within `timeout`.
    pub async fn run(
        &mut self,
        cmd: &str,
        timeout: Duration,
    ) -> Result<CommandOutput, ChannelError> {
        let id = self.send(cmd).await?;
        self.wait_result(id, timeout).await
    }

    /// Sends `cmd` without waiting for its result; returns its id for
    /// [`wait_result`](Self::wait_result). Useful for commands that do not
    /// come back, such as `poweroff -f` or `reboot -f`.
    pub async fn send(&mut self, cmd: &str) -> Result<u64, ChannelError> {
        let id = self.take_id();
        self.pending.insert(id);
        self.write_command(id, cmd).await?;
        Ok(id)
    }

    /// Waits for the result of the command [`send`](Self::send) returned
    /// `id` for.
    pub async fn wait_result(
        &mut self,
        id: u64,
        timeout: Duration,
    ) -> Result<CommandOutput, ChannelError> {
        let what = format!("the result of command {id}");
        let end = Instant::now() + timeout;
        loop {
            if let Some(output) = self.results.remove(&id) {
                return Ok(output);
            }
            if self.closed {
                return Err(self.closed_error(what));
            }
            if !self.read_until(end).await? {
                self.pending.remove(&id);
                return Err(self.timeout(what, timeout));
            }
        }
    }

    /// Waits until `needle` appears anywhere in what the guest sent since
    /// this channel was created (including text earlier calls already read).
    pub async fn wait_for_text(
        &mut self,
        needle: &str,
        deadline: Duration,
    ) -> Result<(), ChannelError> {
        let what = format!("{needle:?} on the console");
        let needle = needle.as_bytes();
        let end = Instant::now() + deadline;
        let mut searched: usize = 0;
        loop {
            let from = searched.saturating_sub(needle.len());
            if find(&self.transcript[from..], needle).is_some() {
                return Ok(());
            }
            searched = self.transcript.len();
            if self.closed {
                return Err(self.closed_error(what));
            }
            if !self.read_until(end).await? {
                return Err(self.timeout(what, deadline));
            }
        }
    }

    /// Everything received so far (lossy UTF-8), for debugging.
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.transcript).into_owned()
    }

    /// Gives the stream back.
    pub fn into_inner(self) -> S {
        self.stream
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    async fn write_command(&mut self, id: u64, cmd: &str) -> Result<(), ChannelError> {
        let line = encode_command(id, cmd);
        let io = |source| ChannelError::Io {
            action: "write to",
            source,
        };
        self.stream.write_all(line.as_bytes()).await.map_err(io)?;
        self.stream.flush().await.map_err(io)
    }

    /// Reads once, waiting at most until `until`. Returns `false` on
    /// timeout; `true` if data arrived or the stream closed (`self.closed`).
    async fn read_until(&mut self, until: Instant) -> Result<bool, ChannelError> {
        if self.closed {
            return Ok(true);
        }
        let read = tokio::time::timeout_at(until, self.stream.read(&mut self.buf)).await;
        match read {
            Err(_) => Ok(false),
            Ok(Ok(0)) => {
                self.closed = true;
                Ok(true)
            }
            Ok(Ok(n)) => {
                self.transcript.extend_from_slice(&self.buf[..n]);
                self.scan_lines();
                Ok(true)
            }
            Ok(Err(source)) => Err(ChannelError::Io {
                action: "read from",
                source,
            }),
        }
    }

    /// Parses the complete lines received since the last scan.
    fn scan_lines(&mut self) {
        while let Some(nl) = find(&self.transcript[self.line_start..], b"\n") {
            let line_end = self.line_start + nl;
            let parsed = parse_result_line(&self.transcript[self.line_start..line_end]);
            self.line_start = line_end + 1;
            let Some((id, output)) = parsed else { continue };
            if self.probes.remove(&id) {
                self.probe_answered = true;
            } else if self.pending.remove(&id) {
                self.results.insert(id, output);
            }
        }
    }

    fn tail(&self) -> String {
        let start = self.transcript.len().saturating_sub(ERROR_TAIL);
        String::from_utf8_lossy(&self.transcript[start..]).into_owned()
    }

    fn timeout(&self, what: String, after: Duration) -> ChannelError {
        ChannelError::Timeout {
            what,
            after,
            tail: self.tail(),
        }
    }

    fn closed_error(&self, what: String) -> ChannelError {
        ChannelError::Closed {
            what,
            tail: self.tail(),
        }
    }
}

impl<S> std::fmt::Debug for CommandChannel<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandChannel")
            .field("received", &self.transcript.len())
            .field("next_id", &self.next_id)
            .field("pending", &self.pending)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// The line that asks the guest to run `cmd`. It starts with a newline so
/// that whatever partial line the guest's tty holds is ended first.
pub fn encode_command(id: u64, cmd: &str) -> String {
    format!("\n{COMMAND_PREFIX}{id} {}\n", STANDARD.encode(cmd))
}

/// Parses a result line (`@@FV-END <id> <code> <base64>`, possibly after
/// other text such as kernel noise, with or without a trailing `\r`).
/// Returns `None` for anything else, including corrupt base64.
pub fn parse_result_line(line: &[u8]) -> Option<(u64, CommandOutput)> {
    let marker = RESULT_PREFIX.as_bytes();
    let at = rfind(line, marker)?;
    let rest = std::str::from_utf8(&line[at + marker.len()..]).ok()?;
    let rest = rest.trim_end_matches(['\r', '\n']);
    let mut fields = rest.split(' ');
    let id = fields.next()?.parse().ok()?;
    let exit_code = fields.next()?.parse().ok()?;
    let encoded = fields.next().unwrap_or("");
    if fields.next().is_some() {
        return None;
    }
    let output = STANDARD.decode(encoded).ok()?;
    Some((
        id,
        CommandOutput {
            output: String::from_utf8_lossy(&output).into_owned(),
            exit_code,
        },
    ))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_as_one_base64_line() {
        assert_eq!(encode_command(7, "echo hi"), "\n@@FV 7 ZWNobyBoaQ==\n");
        assert_eq!(encode_command(1, ""), "\n@@FV 1 \n");
    }

    #[test]
    fn parses_result_lines() {
        let (id, out) = parse_result_line(b"@@FV-END 12 3 aGVsbG8K").unwrap();
        assert_eq!(id, 12);
        assert_eq!(out.exit_code, 3);
        assert_eq!(out.output, "hello\n");
    }

    #[test]
    fn parses_empty_output_with_and_without_trailing_space() {
        for line in [&b"@@FV-END 5 0 "[..], b"@@FV-END 5 0", b"@@FV-END 5 0 \r"] {
            let (id, out) = parse_result_line(line).unwrap();
            assert_eq!((id, out.exit_code, out.output.as_str()), (5, 0, ""));
        }
    }

    #[test]
    fn tolerates_noise_before_the_marker_and_carriage_returns() {
        let line = b"[   12.3] random: crng init done@@FV-END 4 1 b29wcw==\r";
        let (id, out) = parse_result_line(line).unwrap();
        assert_eq!((id, out.exit_code, out.output.as_str()), (4, 1, "oops"));
    }

    #[test]
    fn ignores_lines_that_do_not_parse() {
        for line in [
            &b""[..],
            b"FERROVIRT-GUEST-READY",
            b"@@FV 3 dHJ1ZQ==",
            b"@@FV-END x 0 aGk=",
            b"@@FV-END 3 zero aGk=",
            b"@@FV-END 3 0 not*base64",
            b"@@FV-END 3 0 aGk= extra",
            b"@@FV-END 3",
        ] {
            assert!(
                parse_result_line(line).is_none(),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn negative_and_signal_exit_codes_parse() {
        let (_, out) = parse_result_line(b"@@FV-END 1 137 ").unwrap();
        assert_eq!(out.exit_code, 137);
    }

    /// A fake guest on the other end of a duplex stream: answers each
    /// command line by running nothing, echoing the command as output.
    async fn fake_guest(stream: tokio::io::DuplexStream, print_ready: bool, answer: bool) {
        use tokio::io::AsyncBufReadExt;
        let (read, mut write) = tokio::io::split(stream);
        let mut lines = tokio::io::BufReader::new(read).lines();
        // Kernel noise, then (maybe) the marker.
        write
            .write_all(b"[    0.1] noise\r\nFERROVIRT-GUEST")
            .await
            .unwrap();
        if print_ready {
            write.write_all(b"-READY\r\n").await.unwrap();
        } else {
            write.write_all(b"-NOT-QUITE\r\n").await.unwrap();
        }
        while let Ok(Some(line)) = lines.next_line().await {
            // Echo, as a tty with echo on would.
            write
                .write_all(format!("{line}\r\n").as_bytes())
                .await
                .unwrap();
            let Some(rest) = line.strip_prefix(COMMAND_PREFIX) else {
                continue;
            };
            let (id, cmd) = rest.split_once(' ').unwrap();
            let cmd = String::from_utf8(STANDARD.decode(cmd).unwrap()).unwrap();
            if !answer {
                continue;
            }
            let code = if cmd == "false" { 1 } else { 0 };
            let reply = format!(
                "noise@@FV-END {id} {code} {}\r\n",
                STANDARD.encode(format!("ran {cmd}"))
            );
            // Split the reply to exercise partial lines.
            let (a, b) = reply.split_at(reply.len() / 2);
            write.write_all(a.as_bytes()).await.unwrap();
            write.flush().await.unwrap();
            tokio::task::yield_now().await;
            write.write_all(b.as_bytes()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn runs_commands_after_the_ready_marker() {
        let (host, guest) = tokio::io::duplex(4096);
        tokio::spawn(fake_guest(guest, true, true));
        let mut channel = CommandChannel::new(host);
        channel.wait_ready(Duration::from_secs(5)).await.unwrap();
        let out = channel.run("false", Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            out,
            CommandOutput {
                output: "ran false".into(),
                exit_code: 1
            }
        );
        let out = channel
            .run("echo hi", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(out.output, "ran echo hi");
        channel
            .wait_for_text("noise", Duration::from_secs(1))
            .await
            .unwrap();
        assert!(channel.transcript().contains("FERROVIRT-GUEST-READY"));
    }

    #[tokio::test]
    async fn wait_ready_probes_a_guest_that_already_booted() {
        let (host, guest) = tokio::io::duplex(4096);
        tokio::spawn(fake_guest(guest, false, true));
        let mut channel = CommandChannel::new(host);
        channel.wait_ready(Duration::from_secs(5)).await.unwrap();
        let out = channel.run("x", Duration::from_secs(5)).await.unwrap();
        assert_eq!(out.output, "ran x");
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_the_console_tail() {
        let (host, guest) = tokio::io::duplex(4096);
        tokio::spawn(fake_guest(guest, false, false));
        let mut channel = CommandChannel::new(host);
        let err = channel
            .wait_ready(Duration::from_secs(3))
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("timed out after 3s"), "{message}");
        assert!(message.contains("NOT-QUITE"), "{message}");
        let err = channel.run("x", Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, ChannelError::Timeout { .. }), "{err}");
    }

    #[tokio::test]
    async fn reports_a_closed_console() {
        let (host, guest) = tokio::io::duplex(4096);
        drop(guest);
        let mut channel = CommandChannel::new(host);
        let err = channel
            .wait_for_text("x", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, ChannelError::Closed { .. }), "{err}");
    }
}
