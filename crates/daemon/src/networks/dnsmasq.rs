//! The dnsmasq process of a managed network: detached, like QEMU, so DHCP
//! and DNS keep working while the daemon restarts.

use std::path::PathBuf;

use ferrovirt_api::{Lease, NetworkSpec};
use ferrovirt_core::Error;
use ferrovirt_network::{dnsmasq, plan};

use crate::daemon::Daemon;

struct Files {
    conf: PathBuf,
    pid: PathBuf,
    leases: PathBuf,
    hosts: PathBuf,
}

fn files(d: &Daemon, name: &str) -> Files {
    let dir = super::dir(d, name);
    Files {
        conf: dir.join("dnsmasq.conf"),
        pid: dir.join("dnsmasq.pid"),
        leases: dir.join("leases"),
        hosts: dir.join("hosts"),
    }
}

fn pid(d: &Daemon, name: &str) -> Option<i32> {
    let f = files(d, name);
    let pid: i32 = std::fs::read_to_string(&f.pid).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains(&f.conf.display().to_string())
        .then_some(pid)
}

/// Whether the network's dnsmasq runs.
pub fn running(d: &Daemon, name: &str) -> bool {
    pid(d, name).is_some()
}

pub fn stop(d: &Daemon, name: &str) {
    if let Some(pid) = pid(d, name) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        for _ in 0..100 {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z"))
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Writes the configuration and (re)starts dnsmasq.
pub fn restart(d: &Daemon, spec: &NetworkSpec) -> Result<(), Error> {
    let name = &spec.name;
    let f = files(d, name);
    let dir = super::dir(d, name);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
    let cfg = spec
        .ipv4
        .as_ref()
        .ok_or_else(|| Error::internal(format!("network {name} has no IPv4 configuration")))?;
    let p = plan::ipv4_plan(cfg)?;
    let conf = dnsmasq::config(
        spec,
        &p,
        &dnsmasq::DnsmasqFiles {
            pid: &f.pid,
            leases: &f.leases,
            hosts: &f.hosts,
        },
    );
    let (hosts, names) = dnsmasq::static_hosts(spec);
    let write = |path: &PathBuf, text: &str| {
        std::fs::write(path, text)
            .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))
    };
    write(&f.conf, &conf)?;
    write(&f.hosts, &hosts)?;
    write(&f.hosts.with_extension("names"), &names)?;
    if !f.leases.exists() {
        write(&f.leases, "")?;
    }
    stop(d, name);
    let out = std::process::Command::new("dnsmasq")
        .arg(format!("--conf-file={}", f.conf.display()))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::internal(format!("cannot run dnsmasq: {e}; install dnsmasq-base")))?;
    if !out.status.success() {
        return Err(Error::internal(format!(
            "dnsmasq of network {name} failed to start: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

pub fn leases(d: &Daemon, name: &str) -> Vec<Lease> {
    let text = std::fs::read_to_string(files(d, name).leases).unwrap_or_default();
    dnsmasq::parse_leases(&text)
}
