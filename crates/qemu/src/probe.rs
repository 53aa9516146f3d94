//! What a QEMU binary supports, asked once per binary and cached on disk.
//!
//! The cache key is the binary's path, size and modification time, so an
//! upgraded QEMU is probed again.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferrovirt_api::{MachineType, QemuInfo};

/// The QEMU binary used when none is configured.
pub const DEFAULT_BINARY: &str = "qemu-system-x86_64";

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("QEMU binary {binary} was not found on this host; install qemu-system-x86")]
    NotFound { binary: String },
    #[error("cannot run {binary} {arg}")]
    Run {
        binary: String,
        arg: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{binary} {arg} failed: {stderr}")]
    Failed {
        binary: String,
        arg: String,
        stderr: String,
    },
}

/// Resolves a binary name through `PATH`.
pub fn resolve(binary: &str) -> Option<PathBuf> {
    if binary.contains('/') {
        return Path::new(binary).is_file().then(|| PathBuf::from(binary));
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(binary))
        .find(|p| p.is_file())
}

/// Probes `binary`, using and refreshing the JSON cache at `cache_file`.
pub fn probe_cached(binary: &str, cache_file: &Path) -> Result<QemuInfo, ProbeError> {
    let path = resolve(binary).ok_or_else(|| ProbeError::NotFound {
        binary: binary.to_owned(),
    })?;
    let key = cache_key(&path);
    let mut cache: BTreeMap<String, QemuInfo> = std::fs::read(cache_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if let Some(info) = key.as_ref().and_then(|k| cache.get(k)) {
        return Ok(info.clone());
    }
    let info = probe(&path)?;
    if let Some(key) = key {
        cache.insert(key, info.clone());
        if let Some(dir) = cache_file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = cache_file.with_extension("tmp");
        if let Ok(bytes) = serde_json::to_vec_pretty(&cache)
            && std::fs::write(&tmp, bytes).is_ok()
        {
            let _ = std::fs::rename(&tmp, cache_file);
        }
    }
    Ok(info)
}

/// Bumped when the probe's parsing changes, so old cache entries are redone.
const PROBE_VERSION: u32 = 2;

fn cache_key(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    Some(format!(
        "v{PROBE_VERSION}:{}:{}:{}.{}",
        path.display(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

/// Asks the binary directly, without the cache.
pub fn probe(path: &Path) -> Result<QemuInfo, ProbeError> {
    let version = run(path, &["--version"])?;
    let machines = run(path, &["-machine", "help"])?;
    let cpus = run(path, &["-cpu", "help"])?;
    let accels = run(path, &["-accel", "help"])?;
    Ok(QemuInfo {
        binary: path.display().to_string(),
        version: parse_version(&version),
        machines: parse_machines(&machines),
        cpu_models: parse_cpu_models(&cpus),
        accelerators: parse_accels(&accels),
    })
}

fn run(path: &Path, args: &[&str]) -> Result<String, ProbeError> {
    let out = Command::new(path)
        .args(args)
        .output()
        .map_err(|source| ProbeError::Run {
            binary: path.display().to_string(),
            arg: args.join(" "),
            source,
        })?;
    if !out.status.success() {
        return Err(ProbeError::Failed {
            binary: path.display().to_string(),
            arg: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `QEMU emulator version 10.0.2 (Debian …)` → `10.0.2`.
pub fn parse_version(text: &str) -> String {
    text.lines()
        .next()
        .and_then(|l| l.split("version ").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("unknown")
        .to_owned()
}

/// Parses `-machine help`.
pub fn parse_machines(text: &str) -> Vec<MachineType> {
    text.lines()
        .skip_while(|l| !l.starts_with("Supported machines"))
        .skip(1)
        .filter_map(|l| {
            let (name, desc) = l.split_once(char::is_whitespace)?;
            let desc = desc.trim();
            let alias = desc
                .split("(alias of ")
                .nth(1)
                .map(|a| a.trim_end_matches(')').to_owned());
            Some(MachineType {
                name: name.to_owned(),
                description: desc.to_owned(),
                alias,
            })
        })
        .collect()
}

/// Parses `-cpu help`: the model lines after `Available CPUs:` and before
/// the flag list. QEMU 10 indents them; older versions prefix `x86 `.
pub fn parse_cpu_models(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.starts_with("Available CPUs"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("Recognized CPUID flags"))
        .map(|l| l.trim_start())
        .map(|l| l.strip_prefix("x86 ").unwrap_or(l))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Parses `-accel help`.
pub fn parse_accels(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_help_outputs() {
        assert_eq!(
            parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds)\nCopyright"),
            "10.0.2"
        );
        let m = parse_machines(
            "Supported machines are:\nmicrovm              microvm (i386)\npc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-10.0)\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].alias.as_deref(), Some("pc-i440fx-10.0"));
        let old = parse_cpu_models(
            "Available CPUs:\nx86 486                   (alias)\nx86 qemu64  QEMU\n\nRecognized CPUID flags:\n  fpu\n",
        );
        assert_eq!(old, vec!["486", "qemu64"]);
        let qemu10 = parse_cpu_models(
            "Available CPUs:\n  486                   (alias configured by machine type)\n  qemu64-v1             QEMU Virtual CPU version 2.5+\n\nRecognized CPUID flags:\n  3dnow\n",
        );
        assert_eq!(qemu10, vec!["486", "qemu64-v1"]);
        assert_eq!(
            parse_accels("Accelerators supported in QEMU binary:\ntcg\nkvm\n"),
            vec!["tcg", "kvm"]
        );
    }
}
