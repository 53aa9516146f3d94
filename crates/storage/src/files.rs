//! Volumes that are image files in a directory (dir pools, and fs/netfs
//! pools once mounted).

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ferrovirt_api::{DiskFormat, VolumeCreate, VolumeFormat};
use ferrovirt_core::runner::CommandRunner;
use ferrovirt_core::{Error, Space, VolumeInfo};

use crate::image;
use crate::record::{self, ImageRecord};

/// In-progress files start with this; listings skip them and a pool's
/// start removes the ones a killed daemon left.
pub const PART_PREFIX: &str = ".part-";

/// The temporary name a new file is written under before it is renamed
/// into place, so a failure never leaves a half-made volume.
pub fn part_path(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!("{PART_PREFIX}{name}"))
}

const QCOW2_MAGIC: &[u8; 4] = b"QFI\xfb";

/// The virtual size in a qcow2 header. Read only from images recorded as
/// qcow2: the header of any other file is guest data.
fn qcow2_virtual_size(path: &Path) -> Option<u64> {
    let mut head = [0u8; 32];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .ok()?;
    (&head[..4] == QCOW2_MAGIC).then(|| {
        head[24..32]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    })
}

/// The volume file `name` of the directory, if there is one.
pub fn find(dir: &Path, name: &str) -> Option<VolumeInfo> {
    info(&dir.join(name), name.to_owned())
}

/// A volume as recorded: its format is the one ferrovirt made or imported
/// it with (raw when it has no record: a file someone put there), never
/// what its content looks like.
fn info(path: &Path, name: String) -> Option<VolumeInfo> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let rec = record::read(path).unwrap_or(ImageRecord::plain(DiskFormat::Raw));
    let virtual_size = match rec.format {
        DiskFormat::Qcow2 => qcow2_virtual_size(path).unwrap_or(0),
        DiskFormat::Raw => meta.len(),
    };
    Some(VolumeInfo {
        name,
        path: path.display().to_string(),
        format: rec.format.into(),
        virtual_size,
        actual_size: meta.blocks() * 512,
        has_backing: rec.backing.is_some(),
    })
}

pub fn list(dir: &Path) -> Result<Vec<VolumeInfo>, Error> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::internal(format!("cannot read {}: {e}", dir.display())))?;
    let mut out: Vec<VolumeInfo> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                return None;
            }
            info(&e.path(), name)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Removes the in-progress files a killed daemon left behind.
pub fn remove_parts(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(PART_PREFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

pub fn space(dir: &Path) -> Result<Space, Error> {
    let st = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| Error::internal(format!("cannot stat {}: {e}", dir.display())))?;
    let frsize = st.fragment_size();
    let capacity = st.blocks() * frsize;
    Ok(Space {
        capacity,
        allocation: capacity.saturating_sub(st.blocks_free() * frsize),
        available: st.blocks_available() * frsize,
    })
}

pub async fn create(
    runner: &dyn CommandRunner,
    dir: &Path,
    req: &VolumeCreate,
) -> Result<(), Error> {
    let path = dir.join(&req.name);
    let part = part_path(&path);
    let made = image::create(
        runner,
        &format!("cannot create volume {}", req.name),
        &part.display().to_string(),
        req.format,
        req.size,
        req.preallocation,
    )
    .await;
    let format = req.format.disk_format().unwrap_or_default();
    finish(made, &part, &path, Some(&ImageRecord::plain(format))).map(drop)
}

/// Makes a finished part file durable (qemu-img does not flush its
/// output), records it as `rec` (a file that is no volume, such as an
/// export, has none) and renames it into place, or removes it (and the
/// record) on failure.
pub fn finish<T>(
    result: Result<T, Error>,
    part: &Path,
    path: &Path,
    rec: Option<&ImageRecord>,
) -> Result<T, Error> {
    let result = result.and_then(|v| match rec {
        Some(rec) => record::write(path, rec).map(|()| v),
        None => Ok(v),
    });
    let result = result.and_then(|v| {
        let durable = std::fs::File::open(part)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(part, path))
            .and_then(|()| match path.parent() {
                Some(dir) => std::fs::File::open(dir).and_then(|d| d.sync_all()),
                None => Ok(()),
            });
        durable
            .map(|()| v)
            .map_err(|e| Error::internal(format!("cannot move {} into place: {e}", path.display())))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(part);
        if rec.is_some() {
            record::forget(path);
        }
    }
    result
}

pub async fn resize(
    runner: &dyn CommandRunner,
    vol: &VolumeInfo,
    size: u64,
    shrink: bool,
) -> Result<(), Error> {
    let doing = format!("cannot resize volume {}", vol.name);
    image::resize(runner, &doing, &vol.path, vol.format, size, shrink).await
}

/// Zeroes a file volume: raw files are emptied and re-extended (sparse
/// zeros), qcow2 images re-created empty with the same size.
pub async fn wipe(runner: &dyn CommandRunner, vol: &VolumeInfo) -> Result<(), Error> {
    let doing = format!("cannot wipe volume {}", vol.name);
    match vol.format {
        VolumeFormat::Qcow2 => {
            image::create(
                runner,
                &doing,
                &vol.path,
                VolumeFormat::Qcow2,
                vol.virtual_size,
                ferrovirt_api::Preallocation::Off,
            )
            .await?;
            // A wiped linked clone has no backing file any more.
            record::write(Path::new(&vol.path), &ImageRecord::plain(DiskFormat::Qcow2))
        }
        _ => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&vol.path)
                .map_err(|e| Error::internal(format!("{doing}: {e}")))?;
            f.set_len(0)
                .and_then(|()| f.set_len(vol.virtual_size))
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::internal(format!("{doing}: {e}")))
        }
    }
}

/// Copies `src` to `dst` by sharing extents (reflink) when the filesystem
/// can; `Ok(false)` when it cannot, so the caller copies the bytes.
pub fn clone_file(src: &Path, dst: &Path) -> Result<bool, Error> {
    let from = std::fs::File::open(src)
        .map_err(|e| Error::internal(format!("cannot open {}: {e}", src.display())))?;
    let to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", dst.display())))?;
    match rustix::fs::ioctl_ficlone(&to, &from) {
        Ok(()) => Ok(true),
        Err(_) => {
            drop(to);
            let _ = std::fs::remove_file(dst);
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_list_resize_wipe_files() {
        let runner = ferrovirt_core::TokioRunner;
        let dir = tempfile::tempdir().unwrap();
        for (name, format) in [
            ("a.qcow2", VolumeFormat::Qcow2),
            ("b.img", VolumeFormat::Raw),
        ] {
            let req = VolumeCreate {
                name: name.into(),
                size: 64 << 20,
                format,
                preallocation: Default::default(),
            };
            create(&runner, dir.path(), &req).await.unwrap();
        }
        std::fs::write(dir.path().join(".part-x"), b"half").unwrap();
        let vols = list(dir.path()).unwrap();
        assert_eq!(vols.len(), 2, "{vols:?}");
        assert_eq!(vols[0].format, VolumeFormat::Qcow2);
        assert_eq!(vols[0].virtual_size, 64 << 20);
        assert_eq!(vols[1].format, VolumeFormat::Raw);
        assert_eq!(vols[1].virtual_size, 64 << 20);
        assert!(vols[1].actual_size < 1 << 20, "raw volumes are sparse");
        resize(&runner, &vols[0], 128 << 20, false).await.unwrap();
        assert_eq!(list(dir.path()).unwrap()[0].virtual_size, 128 << 20);
        std::fs::write(&vols[1].path, b"data").unwrap();
        let raw = VolumeInfo {
            virtual_size: 4,
            ..vols[1].clone()
        };
        wipe(&runner, &raw).await.unwrap();
        assert_eq!(std::fs::read(&vols[1].path).unwrap(), vec![0u8; 4]);
        remove_parts(dir.path());
        assert!(!dir.path().join(".part-x").exists());
    }

    #[tokio::test]
    async fn formats_are_recorded_never_read_from_content() {
        let runner = ferrovirt_core::TokioRunner;
        let dir = tempfile::tempdir().unwrap();
        let req = VolumeCreate {
            name: "data.raw".into(),
            size: 1 << 20,
            format: VolumeFormat::Raw,
            preallocation: Default::default(),
        };
        create(&runner, dir.path(), &req).await.unwrap();
        // What a guest writes: a qcow2 header naming a host file.
        let header = dir.path().join("header.qcow2");
        let made = std::process::Command::new("qemu-img")
            .args([
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "raw",
                "-b",
                "/etc/hostname",
            ])
            .arg(&header)
            .arg("1M")
            .status()
            .unwrap();
        assert!(made.success());
        let bytes = std::fs::read(&header).unwrap();
        std::fs::remove_file(&header).unwrap();
        let path = dir.path().join("data.raw");
        std::fs::write(&path, &bytes).unwrap();
        let v = find(dir.path(), "data.raw").unwrap();
        assert_eq!(v.format, VolumeFormat::Raw);
        assert_eq!(v.virtual_size, bytes.len() as u64);
        assert!(!v.has_backing);
        // A file put into the pool by hand has no record: raw.
        std::fs::write(dir.path().join("dropped.qcow2"), &bytes).unwrap();
        assert_eq!(
            find(dir.path(), "dropped.qcow2").unwrap().format,
            VolumeFormat::Raw
        );
        assert_eq!(
            list(dir.path()).unwrap().len(),
            2,
            "records are not volumes"
        );
    }

    #[tokio::test]
    async fn failed_create_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let req = VolumeCreate {
            name: "x.raw".into(),
            size: 1 << 20,
            format: VolumeFormat::Raw,
            preallocation: ferrovirt_api::Preallocation::Metadata,
        };
        assert!(
            create(&ferrovirt_core::TokioRunner, dir.path(), &req)
                .await
                .is_err(),
            "raw has no metadata preallocation"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
