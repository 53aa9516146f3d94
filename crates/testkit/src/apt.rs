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

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::tool;

/// The metapackage that points at the distribution's current kernel.
pub(crate) const KERNEL_METAPACKAGE: &str = "linux-image-amd64";
/// Statically linked busybox: the guest's whole user space.
pub(crate) const BUSYBOX_PACKAGE: &str = "busybox-static";

/// The candidate version of a package, as apt would install it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Files whose change can change apt's candidates: the package lists,
/// sources, pinning and the installed-package database.
const APT_STATE: &[&str] = &[
    "/var/lib/apt/lists",
    "/etc/apt/sources.list",
    "/etc/apt/sources.list.d",
    "/etc/apt/preferences",
    "/etc/apt/preferences.d",
    "/var/lib/dpkg/status",
];

/// The packages the guest is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ingredients {
    /// The concrete kernel package `linux-image-amd64` depends on.
    pub kernel: Package,
    /// `busybox-static`.
    pub busybox: Package,
}

/// A resolution saved with the apt state it was made in.
#[derive(Debug, Serialize, Deserialize)]
struct Resolution {
    apt_state: String,
    ingredients: Ingredients,
}

/// Resolves the guest's packages. Asking apt costs most of a second per
/// query on hosts without apt's binary cache, so the answer is kept in
/// `saved` and reused while apt's lists, sources, pinning and dpkg status
/// are unchanged.
pub(crate) fn resolve(saved: &Path) -> Result<Ingredients> {
    let apt_state = apt_state_stamp();
    if let Ok(text) = fs::read_to_string(saved)
        && let Ok(resolution) = serde_json::from_str::<Resolution>(&text)
        && resolution.apt_state == apt_state
    {
        return Ok(resolution.ingredients);
    }
    let ingredients = resolve_with_apt()?;
    let resolution = Resolution {
        apt_state,
        ingredients: ingredients.clone(),
    };
    let tmp = saved.with_extension(format!("tmp.{}", std::process::id()));
    let json = serde_json::to_string_pretty(&resolution).unwrap_or_default();
    fs::write(&tmp, json).map_err(Error::io("write", &tmp))?;
    fs::rename(&tmp, saved).map_err(Error::io("create", saved))?;
    Ok(ingredients)
}

fn resolve_with_apt() -> Result<Ingredients> {
    let stanzas = show(&[KERNEL_METAPACKAGE, BUSYBOX_PACKAGE])?;
    let meta = stanza_of(&stanzas, KERNEL_METAPACKAGE)?;
    let depends = meta.get("Depends").ok_or_else(|| Error::Package {
        package: KERNEL_METAPACKAGE.to_owned(),
        reason: "its candidate has no Depends field".to_owned(),
    })?;
    let kernel_name = kernel_dependency(depends).ok_or_else(|| Error::Package {
        package: KERNEL_METAPACKAGE.to_owned(),
        reason: format!("none of its dependencies is a linux-image package: {depends}"),
    })?;
    let busybox = package_from(BUSYBOX_PACKAGE, stanza_of(&stanzas, BUSYBOX_PACKAGE)?)?;
    let kernel_stanzas = show(&[&kernel_name])?;
    let kernel = package_from(&kernel_name, stanza_of(&kernel_stanzas, &kernel_name)?)?;
    Ok(Ingredients { kernel, busybox })
}

/// A stamp (hash of names, sizes and modification times) of [`APT_STATE`].
fn apt_state_stamp() -> String {
    let mut hasher = Sha256::new();
    let mut add = |path: &Path| {
        hasher.update(path.as_os_str().as_encoded_bytes());
        if let Ok(meta) = fs::metadata(path) {
            hasher.update(meta.len().to_le_bytes());
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .unwrap_or_default();
            hasher.update(mtime.as_nanos().to_le_bytes());
        }
        hasher.update([0]);
    };
    for root in APT_STATE {
        let root = Path::new(root);
        add(root);
        if let Ok(entries) = fs::read_dir(root) {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                add(&path);
            }
        }
    }
    hex(&hasher.finalize())
}

fn stanza_of<'a>(
    stanzas: &'a [HashMap<String, String>],
    name: &str,
) -> Result<&'a HashMap<String, String>> {
    stanzas
        .iter()
        .find(|s| s.get("Package").is_some_and(|p| p == name))
        .ok_or_else(|| Error::Package {
            package: name.to_owned(),
            reason: "apt-cache show printed nothing for it; is it a virtual package, or are the apt lists missing (run `apt-get update`)?"
                .to_owned(),
        })
}

/// The package described by an `apt-cache show` stanza.
fn package_from(name: &str, fields: &HashMap<String, String>) -> Result<Package> {
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

/// Runs `apt-cache show` for the candidate versions and parses the stanzas.
fn show(names: &[&str]) -> Result<Vec<HashMap<String, String>>> {
    let output = tool::run(
        Command::new("apt-cache")
            .args(["show", "--no-all-versions"])
            .args(names)
            .env("LC_ALL", "C"),
        &format!(
            "look up package(s) {} (has `apt-get update` been run?)",
            names.join(", ")
        ),
        &[0],
    )?;
    Ok(parse_stanzas(&String::from_utf8_lossy(&output.stdout)))
}

/// Parses RFC 822-style stanzas of apt output (continuation lines are
/// appended to the previous field).
pub(crate) fn parse_stanzas(text: &str) -> Vec<HashMap<String, String>> {
    let mut stanzas = Vec::new();
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !fields.is_empty() {
                stanzas.push(std::mem::take(&mut fields));
            }
            last = None;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(value) = last.as_ref().and_then(|key| fields.get_mut(key)) {
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
    if !fields.is_empty() {
        stanzas.push(fields);
    }
    stanzas
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
    fn parses_stanzas_with_continuations() {
        let text = "Package: linux-image-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\nDescription: Linux\n more text\n\nPackage: other\nFilename: pool/main/o/other/other_1_amd64.deb\n\n";
        let stanzas = parse_stanzas(text);
        assert_eq!(stanzas.len(), 2);
        let fields = &stanzas[0];
        assert_eq!(fields["Package"], "linux-image-amd64");
        assert_eq!(fields["Version"], "6.1.192-2");
        assert_eq!(fields["Description"], "Linux\nmore text");
        assert_eq!(fields.len(), 4);
        assert_eq!(stanza_of(&stanzas, "other").unwrap().len(), 2);
        assert!(stanza_of(&stanzas, "missing").is_err());
    }

    #[test]
    fn builds_packages_from_stanzas() {
        let stanzas = parse_stanzas(
            "Package: busybox-static\nVersion: 1:1.35.0-4\nFilename: pool/main/b/busybox/busybox-static_1.35.0-4_amd64.deb\nSHA256: ab\n",
        );
        let package = package_from("busybox-static", &stanzas[0]).unwrap();
        assert_eq!(package.file_name, "busybox-static_1.35.0-4_amd64.deb");
        assert_eq!(package.version, "1:1.35.0-4");
        assert_eq!(package.sha256.as_deref(), Some("ab"));
        let bad = parse_stanzas("Package: x\nVersion: 1\nFilename: ../../etc/passwd\n");
        assert!(package_from("x", &bad[0]).is_err());
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
