//! The save file format: a header (magic + the instance spec as JSON) in
//! the first [`HEADER_SIZE`] bytes, then QEMU's migration stream.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use ferrovirt_api::InstanceSpec;
use ferrovirt_core::Error;

/// Bytes reserved for the header before the migration stream.
pub const HEADER_SIZE: u64 = 64 * 1024;
const MAGIC: &[u8] = b"FERROVIRT-SAVE 1\n";

pub fn write_header(path: &Path, spec: &InstanceSpec) -> Result<(), Error> {
    let mut header = MAGIC.to_vec();
    serde_json::to_writer(&mut header, spec).expect("spec serializes");
    header.push(b'\n');
    if header.len() as u64 > HEADER_SIZE {
        return Err(Error::internal(
            "the instance spec does not fit in the save header",
        ));
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::internal(format!("cannot open {}: {e}", path.display())))?;
    f.write_all_at(&header, 0)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))
}

/// Checks that `path` is a complete save file: a header, and a stream
/// after it.
pub fn check(path: &Path) -> Result<(), Error> {
    read_header(path)?;
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if len <= HEADER_SIZE {
        return Err(Error::validation(
            "file",
            format!("{}: has a header but no saved memory", path.display()),
        ));
    }
    Ok(())
}

/// Reads the instance spec from a save file's header.
pub fn read_header(path: &Path) -> Result<InstanceSpec, Error> {
    let bad = |why: String| Error::validation("file", format!("{}: {why}", path.display()));
    let mut f = std::fs::File::open(path).map_err(|e| bad(format!("cannot open it: {e}")))?;
    let mut header = vec![0u8; HEADER_SIZE as usize];
    f.read_exact(&mut header)
        .map_err(|_| bad("too short to be a Ferrovirt save file".into()))?;
    let rest = header
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("not a Ferrovirt save file".into()))?;
    let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    serde_json::from_slice(&rest[..end]).map_err(|e| bad(format!("corrupt header: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn header_round_trip_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sav");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(HEADER_SIZE + 10)
            .unwrap();
        let spec: InstanceSpec = serde_json::from_value(serde_json::json!({"name": "vm"})).unwrap();
        write_header(&path, &spec).unwrap();
        assert_eq!(read_header(&path).unwrap(), spec);
        let junk = dir.path().join("junk");
        std::fs::File::create(&junk)
            .unwrap()
            .write_all(&[7u8; 70000])
            .unwrap();
        let err = read_header(&junk).unwrap_err();
        assert!(
            err.message.contains("not a Ferrovirt save file"),
            "{}",
            err.message
        );
        assert_eq!(err.field.as_deref(), Some("file"));
    }
}
