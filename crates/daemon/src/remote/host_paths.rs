//! The host-path allow-list of restricted clients: the directories of the
//! dir and fs pools. A restricted client may name a host path only inside
//! one of them, after canonicalization (no `..`, no symlink out).

use std::path::{Component, Path, PathBuf};

use ferrovirt_api::PoolType;
use ferrovirt_core::Error;
use serde_json::Value;

use super::policy::HostPathField;
use crate::daemon::Daemon;

/// The canonical directories of the dir and fs pools (those that exist).
pub async fn allowed_dirs(d: &Daemon) -> Result<Vec<PathBuf>, Error> {
    let pools = crate::storage::records(d).await?;
    Ok(pools
        .iter()
        .filter(|p| matches!(p.spec.kind, PoolType::Dir | PoolType::Fs))
        .filter_map(|p| crate::storage::dir(d, &p.spec).canonicalize().ok())
        .collect())
}

/// Where `path` really is: canonical, following every symlink of the part
/// that exists (the last components may not exist yet, e.g. a file to
/// write). `None` if it is relative or has `.`/`..` components.
fn resolve(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return None;
    }
    let mut missing = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(real) = existing.canonicalize() {
            return Some(missing.iter().rev().fold(real, |p, c| p.join(c)));
        }
        missing.push(existing.file_name()?.to_owned());
        existing = existing.parent()?;
    }
}

/// Whether `path` lies inside one of `dirs` (canonical).
pub fn inside(dirs: &[PathBuf], path: &str) -> bool {
    resolve(Path::new(path)).is_some_and(|real| dirs.iter().any(|d| real.starts_with(d)))
}

/// The non-empty strings at `field` in `body`, with their field paths
/// (`disks[0].path`).
fn values<'a>(body: &'a Value, field: &[&str], prefix: String, out: &mut Vec<(String, &'a str)>) {
    let Some((first, rest)) = field.split_first() else {
        if let Some(s) = body.as_str().filter(|s| !s.is_empty()) {
            out.push((prefix, s));
        }
        return;
    };
    if *first == "[]" {
        for (i, item) in body.as_array().into_iter().flatten().enumerate() {
            values(item, rest, format!("{prefix}[{i}]"), out);
        }
    } else if let Some(v) = body.get(first) {
        let name = if prefix.is_empty() {
            (*first).to_owned()
        } else {
            format!("{prefix}.{first}")
        };
        values(v, rest, name, out);
    }
}

/// Refuses the first host path of `body` (at `fields`) outside `dirs`,
/// naming the field.
pub fn check(dirs: &[PathBuf], body: &Value, fields: &[HostPathField]) -> Result<(), Error> {
    let mut found = Vec::new();
    for f in fields {
        values(body, f, String::new(), &mut found);
    }
    match found.into_iter().find(|(_, path)| !inside(dirs, path)) {
        None => Ok(()),
        Some((field, path)) => {
            let allowed: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            Err(Error {
                kind: ferrovirt_core::ErrorKind::Forbidden,
                message: format!(
                    "{field}: a restricted client may name host paths only inside a pool's directory ({}); {path} is not",
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                ),
                field: Some(field),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_paths_really_inside_a_pool_are_allowed() {
        let tmp = tempfile::tempdir().unwrap();
        let pool = tmp.path().join("pool");
        std::fs::create_dir(&pool).unwrap();
        std::fs::write(pool.join("disk.qcow2"), "").unwrap();
        std::os::unix::fs::symlink("/etc", pool.join("out")).unwrap();
        let dirs = [pool.canonicalize().unwrap()];
        let p = |s: &str| format!("{}/{s}", pool.display());
        assert!(inside(&dirs, &p("disk.qcow2")));
        assert!(inside(&dirs, &p("new/file.img")), "a file to be written");
        assert!(!inside(&dirs, &p("../pool/disk.qcow2")), "no ..");
        assert!(!inside(&dirs, &p("out/shadow")), "no symlink out");
        assert!(!inside(&dirs, "/etc/shadow"));
        assert!(!inside(&dirs, "disk.qcow2"), "relative");
        assert!(!inside(&dirs, "iscsi://host/iqn/0"));
        assert!(!inside(&[], &p("disk.qcow2")));
    }

    #[test]
    fn the_refused_field_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = [tmp.path().canonicalize().unwrap()];
        let ok = format!("{}/a.img", dirs[0].display());
        let body = json!({"disks": [{"path": ok}, {"path": ""}, {"path": "/etc/shadow"}]});
        let e = check(&dirs, &body, &[&["disks", "[]", "path"]]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("disks[2].path"));
        assert_eq!(e.kind, ferrovirt_core::ErrorKind::Forbidden);
        assert!(e.message.contains("/etc/shadow"), "{}", e.message);
        let e = check(
            &dirs,
            &json!({"boot": {"kernel": "/boot/vmlinuz"}}),
            &[&["boot", "kernel"]],
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("boot.kernel"));
        check(
            &dirs,
            &json!({"disks": [{"path": ok}]}),
            &[&["disks", "[]", "path"]],
        )
        .unwrap();
    }
}
