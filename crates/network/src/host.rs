//! The host side of networks: links (through iproute2), TAP devices
//! (TUNSETIFF), macvtap devices and Open vSwitch ports (ovs-vsctl).

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Command;

use ipnet::Ipv4Net;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot run {tool}")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("cannot open {what}")]
    Open {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn run(tool: &str, args: &[&str]) -> Result<String, HostError> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|source| HostError::Spawn {
            tool: tool.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(HostError::Failed {
            command: format!("{tool} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip ARGS`.
pub fn ip(args: &[&str]) -> Result<String, HostError> {
    run("ip", args)
}

/// Runs `ovs-vsctl ARGS` (honouring OVS_RUNDIR for a private OVS).
pub fn ovs(args: &[&str]) -> Result<String, HostError> {
    run("ovs-vsctl", &[&["--timeout=10"], args].concat())
}

pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Creates a bridge with the host's address on it, up.
pub fn create_bridge(name: &str, address: &str) -> Result<(), HostError> {
    if !link_exists(name) {
        ip(&["link", "add", name, "type", "bridge"])?;
    }
    let _ = ip(&["addr", "add", address, "dev", name]);
    ip(&["link", "set", name, "up"]).map(drop)
}

/// Deletes a link if it exists.
pub fn delete_link(name: &str) -> Result<(), HostError> {
    if link_exists(name) {
        ip(&["link", "del", name])?;
    }
    Ok(())
}

/// Subnets the host already uses (routes and addresses), so new networks
/// do not collide with them.
pub fn used_subnets() -> Vec<Ipv4Net> {
    let mut nets = Vec::new();
    for args in [
        &["-4", "route", "show", "table", "all"][..],
        &["-4", "-o", "addr", "show"][..],
    ] {
        let out = ip(args).unwrap_or_default();
        for word in out.split_whitespace() {
            if let Ok(n) = word.parse::<Ipv4Net>() {
                nets.push(n.trunc());
            }
        }
    }
    nets
}

/// Turns on IPv4 forwarding (needed by nat and routed networks).
pub fn enable_forwarding() -> Result<(), HostError> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|source| HostError::Open {
        what: "/proc/sys/net/ipv4/ip_forward".into(),
        source,
    })
}

/// The 4 low bytes of a MAC as hex, for interface names.
fn mac_suffix(mac: &str) -> String {
    mac.split(':')
        .skip(2)
        .collect::<Vec<_>>()
        .concat()
        .to_lowercase()
}

/// The TAP of a NIC: `fvt` + the MAC's low bytes (stable, so a restarted
/// daemon finds it).
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
pub fn attach_to_bridge(link: &str, bridge: &str) -> Result<(), HostError> {
    ip(&["link", "set", link, "master", bridge])?;
    ip(&["link", "set", link, "up"]).map(drop)
}

/// Creates macvtap `name` on `parent` and opens its character device.
pub fn open_macvtap(name: &str, parent: &str, mode: &str, mac: &str) -> Result<OwnedFd, HostError> {
    if !link_exists(name) {
        ip(&[
            "link", "add", "link", parent, "name", name, "type", "macvtap", "mode", mode,
        ])?;
    }
    ip(&["link", "set", name, "address", mac, "up"])?;
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
pub fn ovs_ensure_bridge(br: &str) -> Result<(), HostError> {
    ovs(&["--may-exist", "add-br", br])?;
    if !Path::new("/sys/module/openvswitch").exists() {
        ovs(&["set", "bridge", br, "datapath_type=netdev"])?;
    }
    ip(&["link", "set", br, "up"]).map(drop).or(Ok(()))
}

/// Adds `port` to OVS bridge `br`, with an access VLAN tag if given.
pub fn ovs_add_port(br: &str, port: &str, vlan: Option<u16>) -> Result<(), HostError> {
    let tag = vlan.map(|v| format!("tag={v}"));
    let mut args = vec!["--may-exist", "add-port", br, port];
    if let Some(t) = &tag {
        args.push(t);
    }
    ovs(&args)?;
    ip(&["link", "set", port, "up"]).map(drop)
}

pub fn ovs_del_port(port: &str) {
    let _ = ovs(&["--if-exists", "del-port", port]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_fit_and_are_stable() {
        assert_eq!(tap_name("52:54:00:AB:cd:0e"), "fvt00abcd0e");
        assert_eq!(macvtap_name("52:54:00:ab:cd:0e"), "fvm00abcd0e");
        assert!(tap_name("52:54:00:ab:cd:0e").len() <= 15);
    }
}
