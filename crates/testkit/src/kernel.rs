//! Turning the Debian `vmlinuz` (a bzImage) into an ELF `vmlinux`.
//!
//! QEMU boots an ELF kernel directly through its PVH entry point, skipping
//! the real-mode setup code and the in-guest self-decompression, which is
//! what makes TCG boots take a couple of seconds instead of many. The bzImage
//! setup header says where the compressed kernel (the "payload") lies; it is
//! decompressed with the matching host tool.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::elf;
use crate::error::{Error, Result};
use crate::tool;

/// ELF note owner and type of the PVH 32-bit entry point
/// (`XEN_ELFNOTE_PHYS32_ENTRY`), which QEMU needs to direct-boot an ELF.
const PVH_NOTE_OWNER: &[u8] = b"Xen";
const PVH_NOTE_TYPE: u32 = 18;

/// How the kernel payload inside a bzImage is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// gzip (`CONFIG_KERNEL_GZIP`).
    Gzip,
    /// xz (`CONFIG_KERNEL_XZ`, Debian's choice).
    Xz,
    /// zstd (`CONFIG_KERNEL_ZSTD`).
    Zstd,
    /// bzip2; recognised but not supported.
    Bzip2,
    /// lzma; recognised but not supported.
    Lzma,
    /// lz4; recognised but not supported.
    Lz4,
    /// lzo; recognised but not supported.
    Lzo,
}

impl Compression {
    /// Recognises a compressed stream by its first bytes.
    pub(crate) fn from_magic(data: &[u8]) -> Option<Self> {
        const TABLE: &[(&[u8], Compression)] = &[
            (&[0x1f, 0x8b], Compression::Gzip),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], Compression::Xz),
            (&[0x28, 0xb5, 0x2f, 0xfd], Compression::Zstd),
            (b"BZh", Compression::Bzip2),
            (&[0x5d, 0x00, 0x00], Compression::Lzma),
            (&[0x02, 0x21, 0x4c, 0x18], Compression::Lz4),
            (&[0x89, b'L', b'Z', b'O'], Compression::Lzo),
        ];
        TABLE
            .iter()
            .find(|(magic, _)| data.starts_with(magic))
            .map(|&(_, c)| c)
    }

    /// The name used in messages and the manifest.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "lzma",
            Compression::Lz4 => "lz4",
            Compression::Lzo => "lzo",
        }
    }
}

/// Finds the compressed kernel inside a bzImage using the setup header
/// (boot protocol 2.08+: `payload_offset` and `payload_length`).
pub(crate) fn bzimage_payload(image: &[u8]) -> Result<(Compression, &[u8]), String> {
    if image.get(0x202..0x206) != Some(b"HdrS") {
        return Err("no Linux boot header (HdrS) at offset 0x202; not a bzImage".to_owned());
    }
    let version = u16::from_le_bytes([image[0x206], image[0x207]]);
    if version < 0x0208 {
        return Err(format!(
            "boot protocol {}.{:02} is too old to describe its payload",
            version >> 8,
            version & 0xff
        ));
    }
    let setup_sects = match image.get(0x1f1) {
        Some(0) => 4,
        Some(&n) => usize::from(n),
        None => return Err("image too short".to_owned()),
    };
    let read_u32 = |at: usize| {
        image
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| "image too short".to_owned())
    };
    let start = (setup_sects + 1) * 512 + read_u32(0x248)?;
    let length = read_u32(0x24c)?;
    let payload = start
        .checked_add(length)
        .and_then(|end| image.get(start..end))
        .ok_or_else(|| format!("payload {start}+{length} lies outside the image"))?;
    let compression = Compression::from_magic(payload).ok_or_else(|| {
        format!(
            "unknown compression magic {:02x?} at offset {start}",
            &payload[..payload.len().min(6)]
        )
    })?;
    Ok((compression, payload))
}

/// Writes the ELF kernel contained in `vmlinuz` to `vmlinux` and checks that
/// QEMU can direct-boot it. `scratch` is a directory for temporary files.
pub(crate) fn extract_vmlinux(
    vmlinuz: &Path,
    vmlinux: &Path,
    scratch: &Path,
) -> Result<Compression> {
    let fail = |reason: String| Error::Kernel {
        path: vmlinuz.to_owned(),
        reason,
    };
    let image = fs::read(vmlinuz).map_err(Error::io("read", vmlinuz))?;
    let (compression, payload) = bzimage_payload(&image).map_err(fail)?;
    // All formats but gzip have the decompressed size appended (4 bytes) by
    // the kernel build; the tools would take it for a damaged second stream.
    let payload = match compression {
        Compression::Gzip => payload,
        _ => &payload[..payload.len().saturating_sub(4)],
    };
    let compressed = scratch.join(format!("vmlinux.{}", compression.name()));
    fs::write(&compressed, payload).map_err(Error::io("write", &compressed))?;
    let purpose = format!("decompress the {} kernel payload", compression.name());
    match compression {
        Compression::Xz => tool::run_to_file(
            Command::new("xz")
                .args(["--decompress", "--stdout", "--single-stream"])
                .arg(&compressed),
            vmlinux,
            &purpose,
            &[0],
        )?,
        // gzip exits with 2 for "trailing garbage ignored"; the ELF check
        // below decides whether the result is usable.
        Compression::Gzip => tool::run_to_file(
            Command::new("gzip")
                .args(["-d", "-c", "-q"])
                .arg(&compressed),
            vmlinux,
            &purpose,
            &[0, 2],
        )?,
        Compression::Zstd => tool::run_to_file(
            Command::new("zstd")
                .args(["-d", "-c", "-q"])
                .arg(&compressed),
            vmlinux,
            &purpose,
            &[0],
        )?,
        other => {
            return Err(fail(format!(
                "{} compressed kernels are not supported (only xz, gzip and zstd)",
                other.name()
            )));
        }
    }
    fs::remove_file(&compressed).map_err(Error::io("remove", &compressed))?;
    check_pvh(vmlinux)?;
    Ok(compression)
}

/// Fails unless `vmlinux` is an ELF file with a PVH entry note.
pub(crate) fn check_pvh(vmlinux: &Path) -> Result<()> {
    let fail = |reason: String| Error::Kernel {
        path: vmlinux.to_owned(),
        reason,
    };
    let data = fs::read(vmlinux).map_err(Error::io("read", vmlinux))?;
    if !data.starts_with(elf::MAGIC) {
        return Err(fail(format!(
            "the decompressed kernel starts with {:02x?}, not \\x7fELF",
            &data[..data.len().min(4)]
        )));
    }
    let notes = elf::notes(&data).map_err(fail)?;
    if notes
        .iter()
        .any(|n| n.name == PVH_NOTE_OWNER && n.kind == PVH_NOTE_TYPE)
    {
        Ok(())
    } else {
        Err(fail(
            "it has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); is CONFIG_PVH off?".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bzimage(payload: &[u8]) -> Vec<u8> {
        let setup_sects = 3u8;
        let mut image = vec![0u8; (usize::from(setup_sects) + 1) * 512];
        image[0x1f1] = setup_sects;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        let offset = 100u32;
        image[0x248..0x24c].copy_from_slice(&offset.to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        image.extend(vec![0u8; offset as usize]);
        image.extend(payload);
        image.extend(b"trailing setup data");
        image
    }

    #[test]
    fn finds_the_payload_through_the_setup_header() {
        let payload = [0xfd, b'7', b'z', b'X', b'Z', 0x00, 1, 2, 3];
        let image = fake_bzimage(&payload);
        let (compression, found) = bzimage_payload(&image).unwrap();
        assert_eq!(compression, Compression::Xz);
        assert_eq!(found, payload);
    }

    #[test]
    fn rejects_images_without_header_or_known_magic() {
        assert!(bzimage_payload(&[0u8; 4096]).is_err());
        let image = fake_bzimage(b"no magic here");
        let err = bzimage_payload(&image).unwrap_err();
        assert!(err.contains("unknown compression"), "{err}");
    }

    fn compress(program: &str, data: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut child = Command::new(program)
            .arg("-c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{program} failed");
        out.stdout
    }

    #[test]
    fn extracts_gzip_xz_and_zstd_kernels() {
        let vmlinux = elf::build_test_elf(&[(PVH_NOTE_OWNER, PVH_NOTE_TYPE, &[0; 4])], b"");
        for (program, expected) in [
            ("gzip", Compression::Gzip),
            ("xz", Compression::Xz),
            ("zstd", Compression::Zstd),
        ] {
            let mut payload = compress(program, &vmlinux);
            if expected != Compression::Gzip {
                // The kernel build appends the decompressed size.
                payload.extend((vmlinux.len() as u32).to_le_bytes());
            }
            let dir = tempfile::tempdir().unwrap();
            let vmlinuz = dir.path().join("vmlinuz");
            std::fs::write(&vmlinuz, fake_bzimage(&payload)).unwrap();
            let out = dir.path().join("vmlinux");
            let found = extract_vmlinux(&vmlinuz, &out, dir.path()).unwrap();
            assert_eq!(found, expected);
            assert_eq!(std::fs::read(&out).unwrap(), vmlinux, "{program}");
        }
    }

    #[test]
    fn requires_the_pvh_note() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmlinux");
        std::fs::write(&path, elf::build_test_elf(&[(b"Xen", 17, &[0; 4])], b"")).unwrap();
        let err = check_pvh(&path).unwrap_err().to_string();
        assert!(err.contains("no PVH entry note"), "{err}");
        std::fs::write(&path, b"\x1f\x8bnot an elf").unwrap();
        let err = check_pvh(&path).unwrap_err().to_string();
        assert!(err.contains("not \\x7fELF"), "{err}");
    }

    #[test]
    fn recognises_compression_magics() {
        assert_eq!(
            Compression::from_magic(&[0x1f, 0x8b, 8]),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::from_magic(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::from_magic(b"\x7fELF"), None);
    }
}
