//! What storage hands the QEMU driver for one disk: a value, so the
//! storage crate never depends on the qemu crate (nor the reverse).

use std::path::PathBuf;

use ferrovirt_api::DiskFormat;

/// The initiator name QEMU (and iscsi-ls) present to iSCSI targets.
pub const ISCSI_INITIATOR: &str = "iqn.2026-11.org.ferrovirt:initiator";

/// Where a disk's bytes are, as QEMU should open them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskSource {
    /// An image file of a recorded format (never probed from content).
    File { path: PathBuf, format: DiskFormat },
    /// A host block device (an LVM logical volume), always raw.
    BlockDevice { path: PathBuf },
    /// A LUN that QEMU opens with its own iSCSI initiator, raw.
    Iscsi(IscsiUrl),
}

impl DiskSource {
    /// The source a disk spec records as `path` and `format`: an iSCSI URL,
    /// a device under /dev, or else an image file.
    pub fn recorded(path: &str, format: DiskFormat) -> Self {
        if let Some(url) = IscsiUrl::parse(path) {
            Self::Iscsi(url)
        } else if path.starts_with("/dev/") {
            Self::BlockDevice { path: path.into() }
        } else {
            Self::File {
                path: path.into(),
                format,
            }
        }
    }

    /// The path or URL a disk spec records for this source.
    pub fn location(&self) -> String {
        match self {
            Self::File { path, .. } | Self::BlockDevice { path } => path.display().to_string(),
            Self::Iscsi(url) => url.to_url(),
        }
    }

    /// The format of the data QEMU reads.
    pub fn format(&self) -> DiskFormat {
        match self {
            Self::File { format, .. } => *format,
            Self::BlockDevice { .. } | Self::Iscsi(_) => DiskFormat::Raw,
        }
    }
}

/// A backing file ferrovirt itself gave a disk's image (a snapshot's
/// frozen file, a linked clone's base). QEMU is told the whole chain and
/// never follows a file named in an image's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingFile {
    pub path: String,
    pub format: DiskFormat,
}

/// The backing chain of each disk image, by the image's path, top's
/// backing first; an image not in it has no backing file.
pub type BackingChains = std::collections::BTreeMap<String, Vec<BackingFile>>;

/// An `iscsi://host[:port]/target-iqn/lun` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiUrl {
    /// `host:port`.
    pub portal: String,
    pub target: String,
    pub lun: u32,
}

impl IscsiUrl {
    /// A LUN of `target` at `host` (port 3260 unless `host` names one).
    pub fn new(host: &str, target: &str, lun: u32) -> Self {
        Self {
            portal: with_port(host),
            target: target.to_owned(),
            lun,
        }
    }

    pub fn parse(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("iscsi://")?;
        let (host, path) = rest.split_once('/')?;
        let (target, lun) = path.rsplit_once('/')?;
        if host.is_empty() || target.is_empty() {
            return None;
        }
        Some(Self {
            portal: with_port(host),
            target: target.to_owned(),
            lun: lun.parse().ok()?,
        })
    }

    pub fn to_url(&self) -> String {
        format!("iscsi://{}/{}/{}", self.portal, self.target, self.lun)
    }
}

fn with_port(host: &str) -> String {
    if host.contains(':') && !host.ends_with(']') {
        host.to_owned()
    } else {
        format!("{host}:3260")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iscsi_urls_round_trip_with_the_default_port() {
        let u = IscsiUrl::parse("iscsi://127.0.0.1/iqn.x:t/2").unwrap();
        assert_eq!(u, IscsiUrl::new("127.0.0.1", "iqn.x:t", 2));
        assert_eq!(u.to_url(), "iscsi://127.0.0.1:3260/iqn.x:t/2");
        assert_eq!(IscsiUrl::parse("iscsi://h/t/x"), None);
        let s = DiskSource::Iscsi(u);
        assert_eq!(s.format(), DiskFormat::Raw);
        assert_eq!(s.location(), "iscsi://127.0.0.1:3260/iqn.x:t/2");
        assert_eq!(
            DiskSource::recorded("/dev/vg/lv", DiskFormat::Raw),
            DiskSource::BlockDevice {
                path: "/dev/vg/lv".into()
            }
        );
        assert_eq!(
            DiskSource::recorded("/p/a.qcow2", DiskFormat::Qcow2).format(),
            DiskFormat::Qcow2
        );
    }
}
