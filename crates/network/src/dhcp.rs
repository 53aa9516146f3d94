//! The dnsmasq process of a managed network: detached, like QEMU, so DHCP
//! and DNS keep working while the daemon restarts. Its files live in the
//! network's state directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrovirt_api::{Lease, NetworkSpec};
use ferrovirt_core::Error;
use ferrovirt_core::runner::{Command, CommandRunner};

use crate::{dnsmasq, plan};

/// How long a stopping dnsmasq gets before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The files of one network's dnsmasq.
#[derive(Debug, Clone)]
pub struct Dnsmasq {
    conf: PathBuf,
    pid: PathBuf,
    leases: PathBuf,
    hosts: PathBuf,
}

impl Dnsmasq {
    /// The dnsmasq whose files are in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            conf: dir.join("dnsmasq.conf"),
            pid: dir.join("dnsmasq.pid"),
            leases: dir.join("leases"),
            hosts: dir.join("hosts"),
        }
    }

    /// The pid of this network's dnsmasq, if it runs (the process's
    /// command line must name our configuration).
    pub fn pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(&self.pid)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains(&self.conf.display().to_string())
            .then_some(pid)
    }

    /// Stops dnsmasq: SIGTERM, a grace period, then SIGKILL.
    pub async fn stop(&self) {
        let Some(pid) = self.pid() else { return };
        let target = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        // dnsmasq is not our child: no exit event reaches us, so its /proc
        // entry is watched, without blocking the runtime.
        while alive(pid) {
            if tokio::time::Instant::now() >= deadline {
                let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Writes the configuration of `spec` and (re)starts dnsmasq.
    pub async fn restart(
        &self,
        runner: &dyn CommandRunner,
        spec: &NetworkSpec,
    ) -> Result<(), Error> {
        let name = &spec.name;
        // Specs are checked when they are made; checked again here since
        // this file is what dnsmasq, running as root, obeys.
        plan::check_spec(spec)?;
        if let Some(dir) = self.conf.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        }
        let cfg = spec
            .ipv4
            .as_ref()
            .ok_or_else(|| Error::internal(format!("network {name} has no IPv4 configuration")))?;
        let p = plan::ipv4_plan(cfg)?;
        let files = dnsmasq::DnsmasqFiles {
            pid: &self.pid,
            leases: &self.leases,
            hosts: &self.hosts,
        };
        let conf = dnsmasq::config(spec, &p, &files);
        let (hosts, names) = dnsmasq::static_hosts(spec);
        write(&self.conf, &conf)?;
        write(&self.hosts, &hosts)?;
        write(&self.hosts.with_extension("names"), &names)?;
        if !self.leases.exists() {
            write(&self.leases, "")?;
        }
        self.stop().await;
        // dnsmasq forks into the background once it listens.
        let cmd = Command::new("dnsmasq").arg(format!("--conf-file={}", self.conf.display()));
        runner.run(&cmd).await.map(drop).map_err(|e| {
            Error::internal(format!(
                "dnsmasq of network {name} failed to start: {}",
                e.reason()
            ))
        })
    }

    pub fn leases(&self) -> Vec<Lease> {
        let text = std::fs::read_to_string(&self.leases).unwrap_or_default();
        dnsmasq::parse_leases(&text)
    }
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text)
        .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))
}

/// Whether process `pid` still runs (a zombie does not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovirt_core::fake_runner::{FakeRunner, Reply};

    #[tokio::test]
    async fn restart_writes_the_files_and_runs_dnsmasq_on_them() {
        let dir = tempfile::tempdir().unwrap();
        let spec: NetworkSpec = serde_json::from_value(serde_json::json!({
            "name": "n1", "type": "nat", "ipv4": {"address": "10.9.0.1/24"}}))
        .unwrap();
        let d = Dnsmasq::new(dir.path());
        let fake = FakeRunner::new();
        d.restart(&fake, &spec).await.unwrap();
        let conf = dir.path().join("dnsmasq.conf");
        assert_eq!(
            fake.lines(),
            [format!("dnsmasq --conf-file={}", conf.display())]
        );
        assert!(std::fs::read_to_string(&conf).unwrap().contains("fvbr-n1"));
        assert!(dir.path().join("leases").exists());
        assert_eq!(d.pid(), None, "no dnsmasq runs on these files");
        fake.on("dnsmasq", &[], Reply::fail(2, "address already in use"));
        let err = d.restart(&fake, &spec).await.unwrap_err();
        assert_eq!(
            err.message,
            "dnsmasq of network n1 failed to start: address already in use"
        );
        fake.on("dnsmasq", &[], Reply::NotFound);
        let err = d.restart(&fake, &spec).await.unwrap_err();
        assert_eq!(
            err.message,
            "dnsmasq of network n1 failed to start: cannot run dnsmasq: it is not installed on this host"
        );
    }

    #[tokio::test]
    async fn a_stored_spec_with_an_injected_domain_never_reaches_dnsmasq() {
        let dir = tempfile::tempdir().unwrap();
        let spec: NetworkSpec = serde_json::from_value(serde_json::json!({
            "name": "n1", "type": "nat", "ipv4": {"address": "10.9.0.1/24"},
            "domain": "x\ndhcp-script=/tmp/evil"}))
        .unwrap();
        let fake = FakeRunner::new();
        let err = Dnsmasq::new(dir.path())
            .restart(&fake, &spec)
            .await
            .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("domain"));
        assert!(fake.lines().is_empty(), "dnsmasq did not run");
        assert!(!dir.path().join("dnsmasq.conf").exists());
    }

    #[tokio::test]
    async fn stop_ends_a_process_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dnsmasq::new(dir.path());
        // A stand-in whose command line names the configuration file.
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "sleep 30; true", &d.conf.display().to_string()])
            .spawn()
            .unwrap();
        let pid = child.id().unwrap() as i32;
        std::fs::write(&d.pid, pid.to_string()).unwrap();
        // Until the child has exec'd, its command line is the test's own.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while d.pid().is_none() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(d.pid(), Some(pid));
        let reap = tokio::spawn(async move { child.wait().await });
        d.stop().await;
        reap.await.unwrap().unwrap();
        assert_eq!(d.pid(), None);
    }
}
