//! A raw disk image that boots the test guest through the firmware.
//!
//! The whole disk is one FAT16 file system (no partition table, like a
//! "superfloppy"): `mkfs.vfat` makes it, `syslinux --install` writes its boot
//! sector and `ldlinux.sys`/`ldlinux.c32` (through mtools, so no mounting and
//! no root), and `mcopy` adds the guest's `bzImage`, `initrd.img` and a
//! `syslinux.cfg`. SeaBIOS runs the boot sector, SYSLINUX loads the kernel
//! and initramfs with BIOS disk calls, and the guest comes up exactly as with
//! direct boot, with [`DISK_BOOT_MARKER`] added to its command line.

use std::fs::{self, File};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::{DISK_BOOT_MARKER, tool};

/// Name of the image in the guest's cache directory.
pub(crate) const FILE_NAME: &str = "disk.img";

/// Size of the image: room for the kernel (~8 MiB) and initramfs (~3 MiB),
/// and small enough for mkfs.vfat to choose FAT16. The file is sparse.
pub(crate) const SIZE: u64 = 64 << 20;

/// FAT volume label.
const LABEL: &str = "FVBOOT";

/// FAT volume serial number (hex), fixed so builds do not differ by it.
const VOLUME_ID: &str = "46560001";

/// The programs the build runs, and the Debian packages providing them.
/// `syslinux --install` itself runs `mcopy` and `mattrib`.
const TOOLS: &[(&str, &str)] = &[
    ("mkfs.vfat", "dosfstools"),
    ("syslinux", "syslinux"),
    ("mcopy", "mtools"),
    ("mattrib", "mtools"),
    ("mdir", "mtools"),
];

/// The files the finished image holds in its root directory.
const EXPECTED_FILES: &[&str] = &[
    "ldlinux.sys",
    "ldlinux.c32",
    "bzImage",
    "initrd.img",
    "syslinux.cfg",
];

/// The SYSLINUX configuration: boot the only entry at once (no prompt, no
/// shift/alt escape), and mirror SYSLINUX's own messages (its banner, or why
/// it cannot load the kernel) to the first serial port.
pub(crate) fn syslinux_cfg(cmdline: &str) -> String {
    format!(
        "SERIAL 0 115200\n\
         DEFAULT linux\n\
         PROMPT 0\n\
         NOESCAPE 1\n\
         TIMEOUT 0\n\
         LABEL linux\n\
         \x20 KERNEL bzImage\n\
         \x20 APPEND initrd=initrd.img {cmdline} {DISK_BOOT_MARKER}\n"
    )
}

/// Everything about the image's make-up, for the guest's cache key.
pub(crate) fn recipe(cmdline: &str) -> String {
    format!(
        "raw {SIZE} bytes, FAT over the whole disk, label {LABEL}, id {VOLUME_ID}, syslinux\n{}",
        syslinux_cfg(cmdline)
    )
}

/// The paths of the build tools, or one error naming every missing tool and
/// the packages to install.
pub(crate) fn find_tools() -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut missing: Vec<(&str, &str)> = Vec::new();
    for &(program, package) in TOOLS {
        match tool::find_program(program) {
            Some(path) => found.push(path),
            None => missing.push((program, package)),
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let mut packages: Vec<&str> = missing.iter().map(|&(_, p)| p).collect();
    packages.sort_unstable();
    packages.dedup();
    Err(Error::ToolsNotInstalled {
        purpose: "build the bootable test-guest disk".to_owned(),
        tools: missing
            .iter()
            .map(|&(t, _)| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", "),
        packages: packages.join(" "),
    })
}

/// Builds the raw image `out` from the guest's `bzimage` and `initrd`,
/// booting with `cmdline` (plus [`DISK_BOOT_MARKER`]); `scratch` is a
/// directory for temporary files. Checks the result before returning.
pub(crate) fn build(
    bzimage: &Path,
    initrd: &Path,
    cmdline: &str,
    out: &Path,
    scratch: &Path,
) -> Result<()> {
    let tools = find_tools()?;
    let [mkfs, syslinux, mcopy, _mattrib, mdir] = tools.as_slice() else {
        unreachable!("find_tools returns one path per tool");
    };
    // syslinux runs mcopy and mattrib by name: let it find the same ones.
    let mtools_dir = mcopy.parent().unwrap_or(Path::new("/usr/bin"));
    let path = std::env::join_paths(std::iter::once(mtools_dir.to_owned()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap_or_default();
    let command = |program: &Path| {
        let mut command = Command::new(program);
        command.env("PATH", &path).env("MTOOLS_SKIP_CHECK", "1");
        command
    };

    let file = File::create(out).map_err(Error::io("create", out))?;
    file.set_len(SIZE).map_err(Error::io("size", out))?;
    drop(file);
    tool::run(
        command(mkfs).args(["-n", LABEL, "-i", VOLUME_ID]).arg(out),
        "make the FAT file system of the boot disk",
        &[0],
    )?;
    tool::run(
        command(syslinux).arg("--install").arg(out),
        "install the SYSLINUX boot loader on the boot disk",
        &[0],
    )?;
    let cfg = scratch.join("syslinux.cfg");
    fs::write(&cfg, syslinux_cfg(cmdline)).map_err(Error::io("write", &cfg))?;
    for (source, name) in [
        (bzimage, "bzImage"),
        (initrd, "initrd.img"),
        (cfg.as_path(), "syslinux.cfg"),
    ] {
        tool::run(
            command(mcopy)
                .arg("-i")
                .arg(out)
                .arg("-o")
                .arg(source)
                .arg(format!("::/{name}")),
            &format!("copy {name} onto the boot disk"),
            &[0],
        )?;
    }

    let mut sector = [0u8; 512];
    File::open(out)
        .and_then(|mut f| f.read_exact(&mut sector))
        .map_err(Error::io("read the boot sector of", out))?;
    check_boot_sector(&sector).map_err(|reason| bad_image(out, reason))?;
    let listing = tool::run(
        command(mdir).args(["-a", "-b", "-i"]).arg(out).arg("::/"),
        "list the boot disk",
        &[0],
    )?;
    let listing = String::from_utf8_lossy(&listing.stdout).to_lowercase();
    for name in EXPECTED_FILES {
        if !listing
            .lines()
            .any(|l| l.trim() == format!("::/{}", name.to_lowercase()))
        {
            return Err(bad_image(out, format!("{name} is missing:\n{listing}")));
        }
    }
    Ok(())
}

fn bad_image(path: &Path, reason: String) -> Error {
    Error::Layout(format!(
        "the built boot disk {} is wrong: {reason}",
        path.display()
    ))
}

/// Checks that a disk's first sector is a FAT16 boot sector that SYSLINUX
/// wrote: OEM name `SYSLINUX`, file system type `FAT16`, signature `55 AA`.
pub(crate) fn check_boot_sector(sector: &[u8]) -> Result<(), String> {
    if sector.len() < 512 {
        return Err(format!("the boot sector has only {} bytes", sector.len()));
    }
    if sector[510..512] != [0x55, 0xaa] {
        return Err(format!(
            "no boot signature 55 aa at offset 510 (found {:02x?})",
            &sector[510..512]
        ));
    }
    if &sector[3..11] != b"SYSLINUX" {
        return Err(format!(
            "OEM name is {:?}, not SYSLINUX: the boot loader is not installed",
            String::from_utf8_lossy(&sector[3..11])
        ));
    }
    if &sector[0x36..0x3e] != b"FAT16   " {
        return Err(format!(
            "file system type is {:?}, not FAT16",
            String::from_utf8_lossy(&sector[0x36..0x3e])
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslinux_cfg_boots_the_kernel_with_the_marker() {
        let cfg = syslinux_cfg("console=ttyS0 quiet");
        assert!(cfg.contains("DEFAULT linux\n"), "{cfg}");
        assert!(cfg.contains("\n  KERNEL bzImage\n"), "{cfg}");
        assert!(
            cfg.ends_with("\n  APPEND initrd=initrd.img console=ttyS0 quiet fvboot=disk\n"),
            "{cfg}"
        );
    }

    #[test]
    fn boot_sector_check_wants_signature_syslinux_and_fat16() {
        let mut sector = [0u8; 512];
        assert!(check_boot_sector(&sector).unwrap_err().contains("55 aa"));
        sector[510..].copy_from_slice(&[0x55, 0xaa]);
        assert!(check_boot_sector(&sector).unwrap_err().contains("SYSLINUX"));
        sector[3..11].copy_from_slice(b"SYSLINUX");
        assert!(check_boot_sector(&sector).unwrap_err().contains("FAT16"));
        sector[0x36..0x3e].copy_from_slice(b"FAT16   ");
        check_boot_sector(&sector).unwrap();
        assert!(check_boot_sector(&sector[..100]).is_err());
    }

    /// Builds a real image (with stand-in kernel and initramfs) using the
    /// host tools; fails, rather than skips, when they are missing.
    #[test]
    fn builds_an_image_with_boot_sector_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let bzimage = dir.path().join("bzImage");
        let initrd = dir.path().join("initrd.img");
        fs::write(&bzimage, vec![0xabu8; 100_000]).unwrap();
        fs::write(&initrd, b"initramfs").unwrap();
        let out = dir.path().join("disk.img");
        build(&bzimage, &initrd, "console=ttyS0", &out, dir.path())
            .unwrap_or_else(|e| panic!("{e}"));
        let data = fs::read(&out).unwrap();
        assert_eq!(data.len() as u64, SIZE);
        check_boot_sector(&data).unwrap();
        // The stand-in kernel and the configuration are in the file system.
        let find = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
        assert!(find(&[0xab; 4096]));
        assert!(find(b"APPEND initrd=initrd.img console=ttyS0 fvboot=disk"));
    }
}
