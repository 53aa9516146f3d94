//! Who may reach what on the host: the daemon's files are private (umask
//! 077, its dirs 0700), and the API socket is 0660 for the `ferrovirt`
//! group (like libvirt's group), so its members use the CLI without root.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, bail};
use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, Group, chown};

/// The group the API socket is shared with when none is configured.
pub const DEFAULT_GROUP: &str = "ferrovirt";

/// Everything the daemon and its children (QEMU, qemu-img, dnsmasq …)
/// create is private to its owner from here on.
pub fn private_umask() {
    umask(Mode::from_bits_truncate(0o077));
}

/// The group that may use the API socket: `configured` (a name or a
/// numeric GID, which must exist) or, when none is, `ferrovirt` if the
/// host has it; `None` keeps the socket root's own.
pub fn socket_group(configured: Option<&str>) -> anyhow::Result<Option<Gid>> {
    let Some(name) = configured else {
        return Ok(Group::from_name(DEFAULT_GROUP)
            .ok()
            .flatten()
            .map(|g| g.gid));
    };
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(Some(Gid::from_raw(gid)));
    }
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(Some(g.gid)),
        Ok(None) => bail!("--socket-group {name}: no such group on this host"),
        Err(e) => bail!("--socket-group {name}: cannot look the group up: {e}"),
    }
}

/// Creates `dir` if needed and gives it `mode` (an existing dir from an
/// older version is tightened too).
pub fn own_dir(dir: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", dir.display()))
}

/// Opens the API socket (and, when the daemon owns its dir, that dir) to
/// `group`: 0660 / 0750 with the group, else 0600 / 0700.
pub fn share_socket(socket: &Path, own_dir: bool, group: Option<Gid>) -> anyhow::Result<()> {
    let (sock_mode, dir_mode) = if group.is_some() {
        (0o660, 0o750)
    } else {
        (0o600, 0o700)
    };
    let mut paths = vec![(socket, sock_mode)];
    if own_dir && let Some(dir) = socket.parent() {
        paths.push((dir, dir_mode));
    }
    for (path, mode) in paths {
        if let Some(gid) = group {
            chown(path, None, Some(gid))
                .with_context(|| format!("cannot give {} to group {gid}", path.display()))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numeric_group_is_taken_as_is_and_an_unknown_name_is_refused() {
        assert_eq!(
            socket_group(Some("4321")).unwrap(),
            Some(Gid::from_raw(4321))
        );
        let err = socket_group(Some("no-such-group-fv")).unwrap_err();
        assert!(
            err.to_string().contains("no-such-group-fv: no such group"),
            "{err}"
        );
    }
}
