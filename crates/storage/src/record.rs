//! What ferrovirt recorded of each image file it made or imported: its
//! format, the backing file it gave it, and the instance that owns it.
//!
//! A format is never guessed from an image's content: a guest writes what
//! it likes onto a raw disk, including a qcow2 header naming a host file.
//! The record is kept beside the image, in `.ferrovirt/<file>.json` of the
//! image's directory (pool listings skip dot files and volume names cannot
//! start with a dot), so it travels with the files of a shared pool and a
//! crash can never leave a file without the record it was made with: the
//! record is written before the file is moved into place.

use std::path::{Path, PathBuf};

use ferrovirt_api::DiskFormat;
use ferrovirt_core::Error;
use serde::{Deserialize, Serialize};

/// The directory of records, inside each directory holding images.
pub const RECORD_DIR: &str = ".ferrovirt";

/// A backing file ferrovirt gave an image (a linked clone's base, a
/// snapshot's frozen file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedBacking {
    pub path: String,
    pub format: DiskFormat,
}

/// An image file ferrovirt made or imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub format: DiskFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing: Option<RecordedBacking>,
    /// The instance the file belongs to (snapshot overlays, clone copies),
    /// which removes it when it is deleted; none for pool volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl ImageRecord {
    /// A self-contained image of `format` (no backing, no owner).
    pub fn plain(format: DiskFormat) -> Self {
        Self {
            format,
            backing: None,
            owner: None,
        }
    }

    /// A qcow2 overlay on `backing` (of `backing_format`).
    pub fn overlay(backing: &str, backing_format: DiskFormat) -> Self {
        Self {
            format: DiskFormat::Qcow2,
            backing: Some(RecordedBacking {
                path: backing.to_owned(),
                format: backing_format,
            }),
            owner: None,
        }
    }

    pub fn owned_by(mut self, instance: &str) -> Self {
        self.owner = Some(instance.to_owned());
        self
    }
}

/// Where the record of `image` is kept.
pub fn record_path(image: &Path) -> PathBuf {
    let dir = image.parent().unwrap_or(Path::new("/"));
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(RECORD_DIR).join(format!("{name}.json"))
}

/// Whether `path` is inside a record directory (never a disk).
pub fn is_record_path(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == RECORD_DIR)
}

/// The record of `image`, if ferrovirt made one.
pub fn read(image: &Path) -> Option<ImageRecord> {
    let text = std::fs::read(record_path(image)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Records `rec` for `image` (durably, replacing any older record).
pub fn write(image: &Path, rec: &ImageRecord) -> Result<(), Error> {
    let path = record_path(image);
    let fail = |e: std::io::Error| {
        Error::internal(format!(
            "cannot record the format of {}: {e}",
            image.display()
        ))
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(rec).expect("a record serializes");
    // The directory may vanish between the two steps when the last record
    // in it is forgotten at that moment: make it again once.
    let put = || std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&tmp, &bytes));
    put()
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => put(),
            _ => Err(e),
        })
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .and_then(|()| std::fs::File::open(dir)?.sync_all())
        .map_err(fail)
}

/// Drops the record of `image`, and the record directory once it is
/// empty (nothing of the daemon's is left beside a deleted image).
pub fn forget(image: &Path) {
    let path = record_path(image);
    let _ = std::fs::remove_file(&path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Removes an image file and its record.
pub fn remove_image(image: &Path) {
    let _ = std::fs::remove_file(image);
    forget(image);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_live_beside_their_images_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("web-disk0.s1.qcow2");
        assert_eq!(read(&img), None, "nothing is recorded unless written");
        let rec = ImageRecord::overlay("/p/base.raw", DiskFormat::Raw).owned_by("web");
        write(&img, &rec).unwrap();
        assert_eq!(read(&img), Some(rec));
        assert_eq!(
            record_path(&img),
            dir.path().join(".ferrovirt/web-disk0.s1.qcow2.json")
        );
        assert!(is_record_path(&record_path(&img)));
        assert!(!is_record_path(&img));
        std::fs::write(&img, b"x").unwrap();
        remove_image(&img);
        assert!(!img.exists());
        assert_eq!(read(&img), None);
    }
}
