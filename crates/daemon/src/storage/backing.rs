//! Backing chains as ferrovirt made them. QEMU is told every disk's whole
//! chain (`backing` on each `-blockdev`), taken from the records ferrovirt
//! keeps beside the images it makes ([`record`]), never from a header: a
//! header is whatever a guest, or whoever made the file, wrote.
//!
//! An image ferrovirt did not make (a disk named by path, a file put into
//! a pool by hand) keeps the format it is declared with; as a qcow2 image
//! it must be self-contained, since the backing or data file its header
//! names would be opened on the host's behalf: it is refused, naming the
//! disk's field.

use std::path::Path;

use ferrovirt_api::{Disk, DiskFormat, InstanceSpec};
use ferrovirt_core::{BackingChains, BackingFile, DiskSource, Error};
use ferrovirt_storage::record;

use crate::daemon::Daemon;

/// Chains longer than this are refused (a record loop, or worse).
const MAX_DEPTH: usize = 256;

/// The backing chain of the image at `path`, read as `format`: top's
/// backing first, empty for raw images and self-contained ones.
pub async fn chain(
    d: &Daemon,
    field: &str,
    path: &str,
    format: DiskFormat,
) -> Result<Vec<BackingFile>, Error> {
    let mut out: Vec<BackingFile> = Vec::new();
    let is_file = matches!(DiskSource::recorded(path, format), DiskSource::File { .. });
    // A missing file is for validation to name.
    if !is_file || !Path::new(path).exists() {
        return Ok(out);
    }
    let (mut path, mut format) = (path.to_owned(), format);
    while format == DiskFormat::Qcow2 {
        let next = match record::read(Path::new(&path)) {
            Some(rec) if rec.format == DiskFormat::Qcow2 => rec.backing,
            _ => {
                self_contained(d, field, &path).await?;
                None
            }
        };
        let Some(b) = next else { break };
        if out.len() >= MAX_DEPTH || b.path == path || out.iter().any(|x| x.path == b.path) {
            return Err(Error::validation(
                field,
                format!("the recorded backing chain of {path} loops"),
            ));
        }
        out.push(BackingFile {
            path: b.path.clone(),
            format: b.format,
        });
        (path, format) = (b.path, b.format);
    }
    Ok(out)
}

/// Checks a qcow2 image ferrovirt did not make names no backing or data
/// file.
async fn self_contained(d: &Daemon, field: &str, path: &str) -> Result<(), Error> {
    let info = d
        .img()
        .info(Path::new(path), DiskFormat::Qcow2)
        .await
        .map_err(|e| {
            Error::validation(
                field,
                format!(
                    "cannot read {path} as a qcow2 image: {}",
                    ferrovirt_core::error::chain(&e)
                ),
            )
        })?;
    let named = info
        .named_backing()
        .map(|b| ("backing file", b))
        .or(info.data_file().map(|f| ("external data file", f)));
    match named {
        Some((what, file)) => Err(Error::validation(
            field,
            format!(
                "the qcow2 image {path} names {what} {file}, which ferrovirt did not make; \
                 only chains ferrovirt made are opened (import the image as a volume to flatten it)"
            ),
        )),
        None => Ok(()),
    }
}

/// Checks the chain of one disk (`at` is its field path, `disks[2]`, or
/// empty for a request that is one disk).
pub async fn check_disk(d: &Daemon, at: &str, disk: &Disk) -> Result<(), Error> {
    if disk.path.is_empty() {
        return Ok(());
    }
    chain(d, &field(at, "path"), &disk.path, disk.format)
        .await
        .map(drop)
}

/// The chains of every disk of `spec`, for its QEMU command line.
pub async fn chains(d: &Daemon, spec: &InstanceSpec) -> Result<BackingChains, Error> {
    let mut out = BackingChains::new();
    for (i, disk) in spec.disks.iter().enumerate() {
        if disk.path.is_empty() {
            continue;
        }
        let c = chain(d, &format!("disks[{i}].path"), &disk.path, disk.format).await?;
        if !c.is_empty() {
            out.insert(disk.path.clone(), c);
        }
    }
    Ok(out)
}

/// `at.name`, or `name` alone.
pub fn field(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}
