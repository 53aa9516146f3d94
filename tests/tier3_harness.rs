//! Harness of the tier-3 tests: the real ferrovirtd, unprivileged, with a
//! temp socket, state dir and runtime dir, launching the fake QEMU
//! (`fake-qemu-system-x86_64` of the testkit) instead of qemu-system. No
//! network namespace: the instances have no NICs and no default network.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrovirt_api::{Instance, InstanceStatus, StateAction};
use ferrovirt_client::{Client, ClientError};
pub use ferrovirt_e2e::{alive, kill9};
use ferrovirt_e2e::{bin, qemu_pids_in};
use ferrovirt_testkit::fake_qemu::FakeQemu;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// How long any single step of a tier-3 test may take.
pub const STEP: Duration = Duration::from_secs(10);

pub struct FakeHost {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub client: Client,
    /// Extra environment of the daemon (and so of the fakes it starts),
    /// applied at its next start.
    pub env: Vec<(String, String)>,
}

impl FakeHost {
    pub async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    /// Starts a daemon with extra environment (e.g. `FERROVIRT_LISTEN`).
    pub async fn start_with(env: Vec<(String, String)>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fv-tier3-")
            .tempdir()
            .expect("temp dir");
        let client = Client::new(dir.path().join("api.sock")).expect("client");
        let mut host = Self {
            dir,
            child: None,
            client,
            env,
        };
        host.spawn().await;
        host
    }

    /// Creates `name` with one 16 MiB qcow2 disk (made by the real
    /// qemu-img) and starts it; returns the disk's path.
    pub async fn running_with_disk(&self, name: &str) -> String {
        let disk = self.dir.path().join(format!("{name}.qcow2"));
        let ok = tokio::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&disk)
            .arg("16M")
            .status()
            .await
            .expect("run qemu-img")
            .success();
        assert!(ok, "qemu-img create failed");
        let disk = disk.display().to_string();
        let spec = json!({"name": name, "memory": 64,
                          "disks": [{"path": disk, "format": "qcow2"}]});
        self.client.create_instance(&spec).await.expect("create");
        let inst = self.client.action(name, StateAction::Start).await.unwrap();
        assert_eq!(inst.state.status, InstanceStatus::Running);
        disk
    }

    /// Saves `name` to its managed save and waits for success.
    pub async fn managed_save(&self, name: &str) {
        let req = ferrovirt_api::SavePost { file: None };
        let op = self.client.save_instance(name, &req).await.unwrap();
        let op = self
            .client
            .wait_operation(&op.id.to_string(), 10.0)
            .await
            .unwrap();
        assert_eq!(
            op.status,
            ferrovirt_api::OperationStatus::Success,
            "{:?}",
            op.error
        );
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("daemon log");
        let child = Command::new(bin("ferrovirtd"))
            .arg("--socket")
            .arg(self.dir.path().join("api.sock"))
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .arg("--runtime-dir")
            .arg(self.runtime_dir())
            .arg("--qemu")
            .arg(bin("fake-qemu-system-x86_64"))
            .env("FERROVIRT_NO_DEFAULT_NETWORK", "1")
            .env("FERROVIRT_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn ferrovirtd");
        self.child = Some(child);
        let end = Instant::now() + STEP;
        while self.client.list_instances().await.is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("ferrovirtd exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < end,
                "ferrovirtd did not come up:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILLs the daemon; the fake QEMUs live on.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Waits until the daemon has exited on its own (e.g. killed by a
    /// fault injection point).
    pub async fn wait_exited(&mut self) {
        let end = Instant::now() + STEP;
        let child = self.child.as_mut().expect("a daemon was started");
        while child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < end, "ferrovirtd is still running");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.child = None;
    }

    /// Starts the daemon again on the same state.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// The control handle of instance `name`'s fake QEMU.
    pub fn fake(&self, name: &str) -> FakeQemu {
        FakeQemu::in_runtime_dir(&self.runtime_dir().join("instances").join(name))
    }

    /// Creates an instance with no disk, no NIC and the given policies
    /// (`{"on_poweroff": "restart", …}`) and starts it.
    pub async fn running(&self, name: &str, policies: Value) -> Instance {
        let mut spec = json!({"name": name, "memory": 64});
        if let (Some(s), Some(p)) = (spec.as_object_mut(), policies.as_object()) {
            s.extend(p.clone());
        }
        self.client.create_instance(&spec).await.expect("create");
        let inst = self
            .client
            .action(name, StateAction::Start)
            .await
            .expect("start");
        assert_eq!(inst.state.status, InstanceStatus::Running);
        inst
    }

    /// PIDs of the fake QEMUs started from this daemon's runtime dir.
    pub fn qemu_pids(&self) -> Vec<u32> {
        qemu_pids_in(&self.runtime_dir())
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        for pid in self.qemu_pids() {
            kill9(pid);
        }
        if std::thread::panicking() {
            eprintln!("--- ferrovirtd log ---\n{}", self.log());
        }
    }
}

/// Waits until `pid` is gone.
pub async fn wait_gone(pid: u32) {
    let end = Instant::now() + STEP;
    while alive(pid) {
        assert!(Instant::now() < end, "process {pid} is still alive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls until `cond` holds on the instance.
pub async fn wait_for(
    c: &Client,
    name: &str,
    what: &str,
    cond: impl Fn(&Instance) -> bool,
) -> Instance {
    let end = Instant::now() + STEP;
    loop {
        let inst = c.instance(name).await.expect("instance");
        if cond(&inst) {
            return inst;
        }
        assert!(
            Instant::now() < end,
            "{name}: {what} did not happen; it is {:?} ({})",
            inst.state.status,
            inst.state.reason
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls until the fake of `name` has received QMP command `cmd`.
pub async fn wait_command(fake: &FakeQemu, cmd: &str) -> Vec<String> {
    let end = Instant::now() + STEP;
    loop {
        if let Ok(cmds) = fake.commands().await
            && cmds.iter().any(|c| c == cmd)
        {
            return cmds;
        }
        assert!(Instant::now() < end, "the fake QEMU never received {cmd}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The HTTP status of a refused request.
pub fn http_code(e: &ClientError) -> u16 {
    match e {
        ClientError::Api(body) => body.code,
        other => panic!("not an API error: {other}"),
    }
}

/// The commands of `cmds` that act (the `query-*` ones left out: the
/// daemon may query at any time, e.g. on a STOP event).
pub fn actions(cmds: &[String]) -> Vec<&str> {
    cmds.iter()
        .map(String::as_str)
        .filter(|c| !c.starts_with("query-"))
        .collect()
}

/// Polls until the last acting commands the fake received are `tail`.
pub async fn wait_actions_end(fake: &FakeQemu, tail: &[&str]) -> Vec<String> {
    let end = Instant::now() + STEP;
    loop {
        let cmds = fake.commands().await.unwrap_or_default();
        if actions(&cmds).ends_with(tail) {
            return cmds;
        }
        assert!(
            Instant::now() < end,
            "the fake QEMU's last commands are not {tail:?}: {cmds:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the operation has ended.
pub async fn wait_op(c: &Client, op: &ferrovirt_api::Operation) -> ferrovirt_api::Operation {
    let end = Instant::now() + STEP;
    loop {
        let now = c.operation(&op.id.to_string()).await.expect("operation");
        if now.status.is_final() {
            return now;
        }
        assert!(
            Instant::now() < end,
            "operation {} did not end",
            now.description
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
