//! Resolving and downloading the guest's Debian packages with apt.
//!
//! Only the ordinary apt clients are used: `apt-cache show` to learn a
//! package's candidate version and checksum, `apt-get download` to fetch it.
//! Downloads are kept (with their content hash next to them) so later builds
//! need neither the network nor a second pass over 70 MB of kernel package.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::tool;

/// The metapackage that points at the distribution's current kernel.
pub(crate) const KERNEL_METAPACKAGE: &str = "linux-image-amd64";
/// Statically linked busybox: the guest's whole user space.
pub(crate) const BUSYBOX_PACKAGE: &str = "busybox-static";

/// The candidate version of a package, as apt would install it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Package {
    /// Package name, e.g. `linux-image-6.1.0-56-amd64`.
    pub name: String,
    /// Candidate version, e.g. `6.1.192-2`.
    pub version: String,
    /// The SHA-256 apt's metadata lists for the .deb, if any.
    pub sha256: Option<String>,
    /// The .deb's file name in the archive (`Filename:` without directories).
    pub file_name: String,
}

/// A package file in the download cache.
#[derive(Debug, Clone)]
pub(crate) struct Download {
    /// The package it holds.
    pub package: Package,
    /// Where the .deb is.
    pub path: PathBuf,
    /// SHA-256 of its contents (hex).
    pub sha256: String,
}

/// The concrete kernel package the kernel metapackage currently depends on.
pub(crate) fn kernel_package() -> Result<Package> {
    let meta = show(KERNEL_METAPACKAGE)?;
    let depends = meta.get("Depends").ok_or_else(|| Error::Package {
        package: KERNEL_METAPACKAGE.to_owned(),
        reason: "its candidate has no Depends field".to_owned(),
    })?;
    let name = kernel_dependency(depends).ok_or_else(|| Error::Package {
        package: KERNEL_METAPACKAGE.to_owned(),
        reason: format!("none of its dependencies is a linux-image package: {depends}"),
    })?;
    package(&name)
}

/// The candidate of the named package.
pub(crate) fn package(name: &str) -> Result<Package> {
    let fields = show(name)?;
    let field = |key: &str| {
        fields.get(key).cloned().ok_or_else(|| Error::Package {
            package: name.to_owned(),
            reason: format!("apt-cache show printed no {key} field"),
        })
    };
    let file_name = field("Filename")?
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    if !file_name.ends_with(".deb") || file_name.contains("..") {
        return Err(Error::Package {
            package: name.to_owned(),
            reason: format!("unexpected archive file name {file_name:?}"),
        });
    }
    Ok(Package {
        name: field("Package")?,
        version: field("Version")?,
        sha256: fields.get("SHA256").cloned(),
        file_name,
    })
}

/// Makes sure the package is in `downloads`, fetching it with `apt-get
/// download` if needed, and returns it with its content hash.
pub(crate) fn download(package: &Package, downloads: &Path) -> Result<Download> {
    let path = downloads.join(&package.file_name);
    let hash_path = downloads.join(format!("{}.sha256", package.file_name));
    if path.is_file()
        && let Ok(hash) = fs::read_to_string(&hash_path)
        && is_sha256_hex(hash.trim())
    {
        return Ok(Download {
            package: package.clone(),
            path,
            sha256: hash.trim().to_owned(),
        });
    }

    fs::create_dir_all(downloads).map_err(Error::io("create directory", downloads))?;
    let staging = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(downloads)
        .map_err(Error::io("create a temporary directory in", downloads))?;
    tracing::info!(package = %package.name, version = %package.version, "downloading");
    tool::run(
        Command::new("apt-get")
            .arg("download")
            .arg(format!("{}={}", package.name, package.version))
            .current_dir(staging.path()),
        &format!("download {} {}", package.name, package.version),
        &[0],
    )?;
    let fetched = single_deb(staging.path())?;
    let sha256 = sha256_file(&fetched)?;
    if let Some(expected) = &package.sha256
        && !expected.eq_ignore_ascii_case(&sha256)
    {
        return Err(Error::Checksum {
            path: fetched,
            expected: expected.clone(),
            actual: sha256,
        });
    }
    fs::rename(&fetched, &path).map_err(Error::io("move the download into", &path))?;
    // The hash file is written last and atomically: its presence means the
    // .deb next to it is complete.
    let hash_tmp = staging.path().join("sha256");
    fs::write(&hash_tmp, format!("{sha256}\n")).map_err(Error::io("write", &hash_tmp))?;
    fs::rename(&hash_tmp, &hash_path).map_err(Error::io("create", &hash_path))?;
    Ok(Download {
        package: package.clone(),
        path,
        sha256,
    })
}

/// Runs `apt-cache show` for the candidate version and parses its fields.
fn show(name: &str) -> Result<HashMap<String, String>> {
    let output = tool::run(
        Command::new("apt-cache")
            .args(["show", "--no-all-versions", name])
            .env("LC_ALL", "C"),
        &format!("look up package {name} (has `apt-get update` been run?)"),
        &[0],
    )?;
    let text = String::from_utf8_lossy(&output.stdout);
    let fields = parse_stanza(&text);
    if fields.is_empty() {
        return Err(Error::Package {
            package: name.to_owned(),
            reason: "apt-cache show printed nothing; is it a virtual package, or are the apt lists missing?"
                .to_owned(),
        });
    }
    Ok(fields)
}

/// Parses the first RFC 822-style stanza of apt output (continuation lines
/// are appended to the previous field).
pub(crate) fn parse_stanza(text: &str) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if fields.is_empty() {
                continue;
            }
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(value) = last.as_ref().and_then(|key| fields.get_mut(key)) {
                let value: &mut String = value;
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            fields.insert(key.trim().to_owned(), value.trim().to_owned());
            last = Some(key.trim().to_owned());
        }
    }
    fields
}

/// Picks the concrete kernel package out of a `Depends:` value such as
/// `linux-image-6.1.0-56-amd64 (= 6.1.192-2)`.
pub(crate) fn kernel_dependency(depends: &str) -> Option<String> {
    depends
        .split([',', '|'])
        .map(|dep| dep.split_whitespace().next().unwrap_or_default())
        .find(|name| name.starts_with("linux-image-") && *name != KERNEL_METAPACKAGE)
        .map(str::to_owned)
}

fn single_deb(dir: &Path) -> Result<PathBuf> {
    let mut debs = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        if entry.path().extension().is_some_and(|ext| ext == "deb") {
            debs.push(entry.path());
        }
    }
    match debs.len() {
        1 => Ok(debs.remove(0)),
        n => Err(Error::Layout(format!(
            "apt-get download left {n} .deb files in {}, expected one",
            dir.display()
        ))),
    }
}

/// SHA-256 (hex) of a file's contents.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(Error::io("open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(Error::io("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_first_stanza_with_continuations() {
        let text = "Package: linux-image-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\nDescription: Linux\n more text\n\nPackage: other\n";
        let fields = parse_stanza(text);
        assert_eq!(fields["Package"], "linux-image-amd64");
        assert_eq!(fields["Version"], "6.1.192-2");
        assert_eq!(fields["Description"], "Linux\nmore text");
        assert_eq!(fields.len(), 4);
    }

    #[test]
    fn picks_the_concrete_kernel_package() {
        assert_eq!(
            kernel_dependency("linux-image-6.1.0-56-amd64 (= 6.1.192-2)").as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(
            kernel_dependency("initramfs-tools | linux-initramfs-tool, linux-image-6.12.95+deb12-amd64 (= 6.12.95-1~bpo12+1)").as_deref(),
            Some("linux-image-6.12.95+deb12-amd64")
        );
        assert_eq!(kernel_dependency("foo, bar"), None);
    }
}
