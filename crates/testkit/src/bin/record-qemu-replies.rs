//! Records what the real QEMU answers, into the fixtures of the fake QEMU.
//!
//! Run by hand when QEMU is upgraded (`cargo run -p ferrovirt-testkit --bin
//! record-qemu-replies [OUT_DIR]`): it saves the probe outputs (`--version`,
//! `-machine help`, `-cpu help`, `-accel help`), then starts
//! `qemu-system-x86_64` paused, with no guest and one tiny qcow2 disk, drives
//! it through QMP (runstates, a snapshot job, a migration to a file, an
//! incoming migration from that file, errors, quit) and saves each reply and
//! every event exactly as QEMU wrote them. The fake QEMU builds its answers
//! from these files, so their shapes come from QEMU 10, not from memory.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const QEMU: &str = "qemu-system-x86_64";

fn main() -> Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/qemu10"));
    std::fs::create_dir_all(out.join("replies"))?;
    for (file, args) in [
        ("version.txt", &["--version"][..]),
        ("machine-help.txt", &["-machine", "help"]),
        ("cpu-help.txt", &["-cpu", "help"]),
        ("accel-help.txt", &["-accel", "help"]),
    ] {
        let o = Command::new(QEMU).args(args).output()?;
        if !o.status.success() {
            bail!("{QEMU} {} failed", args.join(" "));
        }
        std::fs::write(out.join(file), o.stdout)?;
    }
    let tmp = tempfile::tempdir()?;
    let disk = tmp.path().join("disk.qcow2");
    let ok = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&disk)
        .arg("16M")
        .status()?
        .success();
    if !ok {
        bail!("qemu-img create failed");
    }
    let mut rec = Recorder::new(&out);
    let save = tmp.path().join("state.sav");
    let uri = format!("file:{},offset=65536", save.display());
    {
        let mut q = Qemu::start(tmp.path(), &disk, &[])?;
        rec.greeting(&q.greeting)?;
        rec.step(
            &mut q,
            "qmp_capabilities",
            json!({"execute": "qmp_capabilities"}),
        )?;
        rec.step(&mut q, "bogus", json!({"execute": "bogus"}))?;
        rec.step(&mut q, "query-status-prelaunch", cmd("query-status"))?;
        rec.step(&mut q, "query-migrate-none", cmd("query-migrate"))?;
        rec.step(&mut q, "query-jobs-none", cmd("query-jobs"))?;
        rec.step(&mut q, "cont", cmd("cont"))?;
        rec.step(&mut q, "query-status-running", cmd("query-status"))?;
        rec.step(&mut q, "system_powerdown", cmd("system_powerdown"))?;
        rec.step(&mut q, "stop", cmd("stop"))?;
        rec.step(&mut q, "query-status-paused", cmd("query-status"))?;
        rec.step(&mut q, "cont-again", cmd("cont"))?;
        let save_args = json!({"job-id": "snap-a", "tag": "a", "vmstate": "disk0",
                               "devices": ["disk0"]});
        rec.step(&mut q, "snapshot-save", with("snapshot-save", save_args))?;
        rec.job(&mut q, "snap-a", "snapshot-save")?;
        let load_args = json!({"job-id": "load-a", "tag": "a", "vmstate": "disk0",
                               "devices": ["disk0"]});
        rec.step(&mut q, "snapshot-load", with("snapshot-load", load_args))?;
        rec.job(&mut q, "load-a", "snapshot-load")?;
        let del_args = json!({"job-id": "del-a", "tag": "a", "devices": ["disk0"]});
        rec.step(&mut q, "snapshot-delete", with("snapshot-delete", del_args))?;
        rec.job(&mut q, "del-a", "snapshot-delete")?;
        rec.step(
            &mut q,
            "job-dismiss-missing",
            with("job-dismiss", json!({"id": "nope"})),
        )?;
        let bw = json!({"max-bandwidth": i64::MAX});
        rec.step(
            &mut q,
            "migrate-set-parameters",
            with("migrate-set-parameters", bw),
        )?;
        std::fs::File::create(&save)?.set_len(65536)?;
        rec.step(&mut q, "migrate", with("migrate", json!({"uri": uri})))?;
        rec.migration(&mut q, "query-migrate")?;
        rec.step(&mut q, "query-status-postmigrate", cmd("query-status"))?;
        rec.step(&mut q, "system_reset", cmd("system_reset"))?;
        rec.step(&mut q, "query-status-after-reset", cmd("query-status"))?;
        rec.step(
            &mut q,
            "migrate-incoming-not-deferred",
            with("migrate-incoming", json!({"uri": uri})),
        )?;
        for c in [
            "query-block",
            "query-cpus-fast",
            "query-hotpluggable-cpus",
            "query-blockstats",
            "query-balloon",
        ] {
            rec.step(&mut q, c, cmd(c))?;
        }
        let flat = json!({"flat": true});
        rec.step(
            &mut q,
            "query-named-block-nodes",
            with("query-named-block-nodes", flat),
        )?;
        // A failed load leaves the VM in restore-vm: done last.
        let missing = json!({"job-id": "load-x", "tag": "x", "vmstate": "disk0",
                             "devices": ["disk0"]});
        rec.step(
            &mut q,
            "snapshot-load-missing",
            with("snapshot-load", missing),
        )?;
        rec.job(&mut q, "load-x", "snapshot-load-missing")?;
        rec.step(
            &mut q,
            "query-status-after-failed-load",
            cmd("query-status"),
        )?;
        rec.step(&mut q, "cont-after-failed-load", cmd("cont"))?;
        rec.step(&mut q, "quit", cmd("quit"))?;
        q.wait_exit(&mut rec)?;
    }
    {
        let mut q = Qemu::start(tmp.path(), &disk, &["-incoming", "defer"])?;
        rec.prefix = "incoming-".into();
        rec.step(
            &mut q,
            "qmp_capabilities",
            json!({"execute": "qmp_capabilities"}),
        )?;
        rec.step(&mut q, "query-status-inmigrate", cmd("query-status"))?;
        rec.step(
            &mut q,
            "migrate-incoming",
            with("migrate-incoming", json!({"uri": uri})),
        )?;
        rec.migration(&mut q, "query-migrate")?;
        rec.step(&mut q, "query-status-loaded", cmd("query-status"))?;
        rec.step(&mut q, "quit", cmd("quit"))?;
        q.wait_exit(&mut rec)?;
    }
    std::fs::write(out.join("events.jsonl"), rec.events.join(""))?;
    println!("recorded into {}", out.display());
    Ok(())
}

fn cmd(name: &str) -> Value {
    json!({"execute": name})
}

fn with(name: &str, arguments: Value) -> Value {
    json!({"execute": name, "arguments": arguments})
}

struct Qemu {
    child: Child,
    writer: UnixStream,
    lines: mpsc::Receiver<String>,
    greeting: String,
}

impl Qemu {
    fn start(dir: &Path, disk: &Path, extra: &[&str]) -> Result<Self> {
        let sock = dir.join("qmp.sock");
        let _ = std::fs::remove_file(&sock);
        let file = json!({"driver": "file", "filename": disk, "node-name": "disk0-file"});
        let fmt = json!({"driver": "qcow2", "file": "disk0-file", "node-name": "disk0"});
        let child = Command::new(QEMU)
            .args(["-S", "-nodefaults", "-no-user-config", "-no-shutdown"])
            .args(["-action", "panic=pause", "-machine", "q35", "-accel", "tcg"])
            .args(["-display", "none", "-m", "64"])
            .args([
                "-blockdev",
                &file.to_string(),
                "-blockdev",
                &fmt.to_string(),
            ])
            .args(["-device", "virtio-blk-pci,drive=disk0,id=disk0-dev"])
            .arg("-chardev")
            .arg(format!(
                "socket,id=qmp,path={},server=on,wait=off",
                sock.display()
            ))
            .args(["-mon", "chardev=qmp,mode=control"])
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .context("starting QEMU")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match UnixStream::connect(&sock) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(e).context("connecting to QMP"),
            }
        };
        let writer = stream.try_clone()?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let greeting = lines.recv_timeout(Duration::from_secs(10))?;
        Ok(Self {
            child,
            writer,
            lines,
            greeting,
        })
    }

    fn wait_exit(&mut self, rec: &mut Recorder) -> Result<()> {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            rec.event("exit", &line);
        }
        self.child.wait()?;
        Ok(())
    }
}

struct Recorder {
    out: PathBuf,
    prefix: String,
    events: Vec<String>,
}

impl Recorder {
    fn new(out: &Path) -> Self {
        Self {
            out: out.to_owned(),
            prefix: String::new(),
            events: Vec::new(),
        }
    }

    fn greeting(&self, line: &str) -> Result<()> {
        std::fs::write(self.out.join("greeting.json"), format!("{line}\n"))?;
        Ok(())
    }

    fn event(&mut self, step: &str, line: &str) {
        if line.contains("\"event\"") {
            self.events.push(format!(
                "{{\"after\": \"{}{step}\", \"line\": {line}}}\n",
                self.prefix
            ));
        }
    }

    /// Sends `command`, saves its reply as `replies/NAME.json`, records
    /// the events seen meanwhile and for 300 ms after.
    fn step(&mut self, q: &mut Qemu, name: &str, command: Value) -> Result<Value> {
        Ok(self.step_raw(q, name, command)?.1)
    }

    /// [`Self::step`], also returning the reply's text as QEMU wrote it.
    fn step_raw(&mut self, q: &mut Qemu, name: &str, command: Value) -> Result<(String, Value)> {
        writeln!(q.writer, "{command}")?;
        let reply = loop {
            let line = q
                .lines
                .recv_timeout(Duration::from_secs(30))
                .context(name.to_owned())?;
            if line.contains("\"return\"") || line.contains("\"error\"") {
                break line;
            }
            self.event(name, &line);
        };
        let file = self
            .out
            .join("replies")
            .join(format!("{}{name}.json", self.prefix));
        std::fs::write(file, format!("{reply}\n"))?;
        let settle = Instant::now() + Duration::from_millis(300);
        while let Some(left) = settle.checked_duration_since(Instant::now()) {
            match q.lines.recv_timeout(left) {
                Ok(line) => self.event(name, &line),
                Err(_) => break,
            }
        }
        let v = serde_json::from_str(&reply)?;
        Ok((reply, v))
    }

    /// Polls query-jobs until job `id` concludes (saving the reply of each
    /// status seen), then dismisses it.
    fn job(&mut self, q: &mut Qemu, id: &str, name: &str) -> Result<()> {
        for _ in 0..200 {
            let (raw, r) = self.step_raw(q, &format!("{name}-query-jobs"), cmd("query-jobs"))?;
            let job = r["return"]
                .as_array()
                .and_then(|a| a.iter().find(|j| j["id"] == id))
                .cloned();
            let status = job
                .as_ref()
                .and_then(|j| j["status"].as_str())
                .unwrap_or("gone")
                .to_owned();
            let file = self
                .out
                .join("replies")
                .join(format!("{}{name}-query-jobs-{status}.json", self.prefix));
            std::fs::write(file, format!("{raw}\n"))?;
            if status == "concluded" || status == "gone" {
                self.step(
                    q,
                    &format!("{name}-job-dismiss"),
                    with("job-dismiss", json!({"id": id})),
                )?;
                return Ok(());
            }
        }
        bail!("job {id} did not conclude")
    }

    /// Polls query-migrate until the migration ends, saving each status.
    fn migration(&mut self, q: &mut Qemu, name: &str) -> Result<()> {
        for _ in 0..200 {
            let (raw, r) = self.step_raw(q, name, cmd("query-migrate"))?;
            let status = r["return"]["status"].as_str().unwrap_or("none").to_owned();
            let file = self
                .out
                .join("replies")
                .join(format!("{}{name}-{status}.json", self.prefix));
            std::fs::write(file, format!("{raw}\n"))?;
            if matches!(status.as_str(), "completed" | "failed" | "cancelled") {
                return Ok(());
            }
        }
        bail!("migration did not end")
    }
}
