//! The host side of networks: links (through iproute2), TAP devices
//! (TUNSETIFF), macvtap devices and Open vSwitch ports (ovs-vsctl).

use std::os::fd::OwnedFd;
use std::path::Path;

use ferrovirt_core::runner::{Command, CommandRunner, RunError};
use ipnet::Ipv4Net;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("`{command}` did not succeed")]
    Run {
        command: String,
        #[source]
        source: RunError,
    },
    #[error("cannot open {what}")]
    Open {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

async fn run(runner: &dyn CommandRunner, cmd: Command) -> Result<String, HostError> {
    runner
        .run(&cmd)
        .await
        .map(|o| o.stdout)
        .map_err(|source| HostError::Run {
            command: cmd.line(),
            source,
        })
}

/// Runs `ip ARGS`.
pub async fn ip(runner: &dyn CommandRunner, args: &[&str]) -> Result<String, HostError> {
    run(runner, Command::new("ip").args(args.iter().copied())).await
}

/// Runs `ovs-vsctl ARGS` (honouring OVS_RUNDIR for a private OVS).
pub async fn ovs(runner: &dyn CommandRunner, args: &[&str]) -> Result<String, HostError> {
    let cmd = Command::new("ovs-vsctl")
        .arg("--timeout=10")
        .args(args.iter().copied());
    run(runner, cmd).await
}

pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Creates a bridge with the host's address on it, up.
pub async fn create_bridge(
    runner: &dyn CommandRunner,
    name: &str,
    address: &str,
) -> Result<(), HostError> {
    if !link_exists(name) {
        ip(runner, &["link", "add", name, "type", "bridge"]).await?;
    }
    // Already there after a restart: that is fine.
    let _ = ip(runner, &["addr", "add", address, "dev", name]).await;
    ip(runner, &["link", "set", name, "up"]).await.map(drop)
}

/// Deletes a link if it exists.
pub async fn delete_link(runner: &dyn CommandRunner, name: &str) -> Result<(), HostError> {
    if link_exists(name) {
        ip(runner, &["link", "del", name]).await?;
    }
    Ok(())
}

/// Subnets the host already uses (routes and addresses), so new networks
/// do not collide with them.
pub async fn used_subnets(runner: &dyn CommandRunner) -> Vec<Ipv4Net> {
    let mut nets = Vec::new();
    for args in [
        &["-4", "route", "show", "table", "all"][..],
        &["-4", "-o", "addr", "show"][..],
    ] {
        let out = ip(runner, args).await.unwrap_or_default();
        for word in out.split_whitespace() {
            if let Ok(n) = word.parse::<Ipv4Net>() {
                nets.push(n.trunc());
            }
        }
    }
    nets
}

/// Whether `address` (an IPv4 address) is on link `dev`.
pub async fn has_address(runner: &dyn CommandRunner, dev: &str, address: &str) -> bool {
    ip(runner, &["-4", "-o", "addr", "show", "dev", dev])
        .await
        .unwrap_or_default()
        .split_whitespace()
        .any(|w| w.split('/').next() == Some(address))
}

/// Turns on IPv4 forwarding (needed by nat and routed networks).
pub fn enable_forwarding() -> Result<(), HostError> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|source| HostError::Open {
        what: "/proc/sys/net/ipv4/ip_forward".into(),
        source,
    })
}

/// All 6 bytes of a MAC as 12 hex digits, for interface names: `fv` + one
/// letter + 12 digits is exactly the 15 bytes Linux allows, and distinct
/// MACs always give distinct names (a shorter suffix let two NICs whose
/// MACs differ only in their high bytes share, or steal, one device).
fn mac_suffix(mac: &str) -> String {
    mac.split(':').collect::<Vec<_>>().concat().to_lowercase()
}

/// The TAP of a NIC: `fvt` + the MAC's 12 hex digits (stable, so a
/// restarted daemon finds it).
pub fn tap_name(mac: &str) -> String {
    format!("fvt{}", mac_suffix(mac))
}

/// The macvtap of a NIC.
pub fn macvtap_name(mac: &str) -> String {
    format!("fvm{}", mac_suffix(mac))
}

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    _pad: [u8; 22],
}

const TUNSETIFF: u64 = 0x4004_54ca;
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
const IFF_VNET_HDR: i16 = 0x4000;

/// Creates (or opens) TAP device `name` and returns its queue fd, which
/// QEMU gets over QMP; the device disappears when the last fd closes.
#[allow(unsafe_code)]
pub fn open_tap(name: &str) -> Result<OwnedFd, HostError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|source| HostError::Open {
            what: "/dev/net/tun".into(),
            source,
        })?;
    let mut req = IfReq {
        name: [0; 16],
        flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
        _pad: [0; 22],
    };
    let bytes = name.as_bytes();
    req.name[..bytes.len().min(15)].copy_from_slice(&bytes[..bytes.len().min(15)]);
    let fd: OwnedFd = file.into();
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`; `req` has its
    // layout (16-byte name, then the flags in a 24-byte union) and lives for
    // the call; the fd is an open /dev/net/tun.
    let rc = unsafe {
        nix::libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            TUNSETIFF as _,
            &mut req as *mut IfReq,
        )
    };
    if rc < 0 {
        return Err(HostError::Open {
            what: format!("TAP device {name}"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(fd)
}

/// Puts a link into a Linux bridge and brings it up.
pub async fn attach_to_bridge(
    runner: &dyn CommandRunner,
    link: &str,
    bridge: &str,
) -> Result<(), HostError> {
    ip(runner, &["link", "set", link, "master", bridge]).await?;
    ip(runner, &["link", "set", link, "up"]).await.map(drop)
}

/// Creates macvtap `name` on `parent` and opens its character device.
pub async fn open_macvtap(
    runner: &dyn CommandRunner,
    name: &str,
    parent: &str,
    mode: &str,
    mac: &str,
) -> Result<OwnedFd, HostError> {
    if !link_exists(name) {
        let args = [
            "link", "add", "link", parent, "name", name, "type", "macvtap", "mode", mode,
        ];
        ip(runner, &args).await?;
    }
    ip(runner, &["link", "set", name, "address", mac, "up"]).await?;
    let index =
        std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex")).map_err(|source| {
            HostError::Open {
                what: format!("the index of {name}"),
                source,
            }
        })?;
    let dev = format!("/dev/tap{}", index.trim());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dev)
        .map_err(|source| HostError::Open { what: dev, source })?;
    Ok(file.into())
}

/// Makes sure OVS bridge `br` exists; the userspace datapath is used when
/// the kernel has no openvswitch module.
pub async fn ovs_ensure_bridge(runner: &dyn CommandRunner, br: &str) -> Result<(), HostError> {
    ovs(runner, &["--may-exist", "add-br", br]).await?;
    if !Path::new("/sys/module/openvswitch").exists() {
        ovs(runner, &["set", "bridge", br, "datapath_type=netdev"]).await?;
    }
    // The netdev datapath's bridge may not be a kernel link to bring up.
    let _ = ip(runner, &["link", "set", br, "up"]).await;
    Ok(())
}

/// Adds `port` to OVS bridge `br`, with an access VLAN tag if given.
pub async fn ovs_add_port(
    runner: &dyn CommandRunner,
    br: &str,
    port: &str,
    vlan: Option<u16>,
) -> Result<(), HostError> {
    let tag = vlan.map(|v| format!("tag={v}"));
    let mut args = vec!["--may-exist", "add-port", br, port];
    if let Some(t) = &tag {
        args.push(t);
    }
    ovs(runner, &args).await?;
    ip(runner, &["link", "set", port, "up"]).await.map(drop)
}

pub async fn ovs_del_port(runner: &dyn CommandRunner, port: &str) {
    let _ = ovs(runner, &["--if-exists", "del-port", port]).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_fit_and_are_stable() {
        assert_eq!(tap_name("52:54:00:AB:cd:0e"), "fvt525400abcd0e");
        assert_eq!(macvtap_name("52:54:00:ab:cd:0e"), "fvm525400abcd0e");
        assert!(tap_name("52:54:00:ab:cd:0e").len() <= 15);
    }

    #[test]
    fn macs_differing_only_in_their_high_bytes_get_distinct_names() {
        // These two shared `fvt00abcd0e` when names kept the 4 low bytes.
        let (a, b) = ("52:54:00:ab:cd:0e", "02:00:00:ab:cd:0e");
        assert_ne!(tap_name(a), tap_name(b));
        assert_ne!(macvtap_name(a), macvtap_name(b));
    }
}
