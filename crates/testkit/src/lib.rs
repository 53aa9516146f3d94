//! Test support for Ferrovirt.
//!
//! * [`test_guest`] builds (once, then from cache) a tiny Linux guest from
//!   Debian packages: the Debian kernel as an ELF `vmlinux` that QEMU
//!   direct-boots through PVH, and a busybox initramfs whose `/init` prints
//!   [`READY_MARKER`] on the serial console and serves a command channel.
//! * [`bootable_disk`] builds (once, then from cache) a raw disk image that
//!   boots the same guest through the firmware (SeaBIOS → SYSLINUX → the
//!   Debian bzImage), with [`DISK_BOOT_MARKER`] on its kernel command line.
//! * [`CommandChannel`] is the host side of that channel: it runs shell
//!   commands in the guest over any byte stream (a QEMU chardev socket, the
//!   daemon's console stream) and returns their output and exit code.
//!
//! The guest also keeps `/tmp/counter` advancing about every 100 ms (to prove
//! a guest is running or paused), and answers the ACPI power button by
//! printing [`POWER_BUTTON_MARKER`] and powering off.

mod apt;
pub mod channel;
mod cpio;
mod disk;
mod elf;
mod error;
pub mod fake_qemu;
mod image;
mod kernel;
mod modules;
mod tool;

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use channel::{ChannelError, CommandChannel, CommandOutput};
pub use error::{Error, Result};

/// Printed by the guest on ttyS0 once the command channel listens.
pub const READY_MARKER: &str = "FERROVIRT-GUEST-READY";
/// Printed by the guest on ttyS0 when the ACPI power button is pressed,
/// just before it powers off.
pub const POWER_BUTTON_MARKER: &str = "FERROVIRT-ACPI-POWER-BUTTON";
/// Word on the kernel command line (`/proc/cmdline`) of a guest booted from
/// [`bootable_disk`] rather than directly.
pub const DISK_BOOT_MARKER: &str = "fvboot=disk";
/// Path of the guest's counter file, advanced about every 100 ms.
pub const COUNTER_PATH: &str = "/tmp/counter";

/// Environment variable that overrides the cache directory.
pub const CACHE_ENV: &str = "FERROVIRT_GUEST_CACHE";

/// Bump when the build changes in a way the inputs do not show.
const BUILDER_VERSION: &str = "ferrovirt-testkit guest builder 1";

/// The files a guest directory holds; part of the cache key, so that a
/// change here (like the addition of `bzImage`) rebuilds older caches.
const LAYOUT_VERSION: &str =
    "layout 2: vmlinux initrd.img bzImage cmdline manifest.json, disk.img on demand";

/// A built test guest: boot it with `-kernel`, `-initrd` and `-append`, or
/// from the disk [`bootable_disk`] makes of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestGuest {
    /// Decompressed ELF `vmlinux` with a PVH entry note (QEMU direct boot).
    pub kernel: PathBuf,
    /// gzip-compressed newc initramfs with busybox, modules and `/init`.
    pub initrd: PathBuf,
    /// The Debian kernel as packaged (`vmlinuz`, a compressed bzImage), for
    /// boot loaders and `-kernel` boots that go through the real-mode setup.
    pub bzimage: PathBuf,
    /// Kernel command line (serial console on ttyS0).
    pub cmdline: String,
}

impl TestGuest {
    /// The QEMU arguments that direct-boot this guest:
    /// `-kernel <vmlinux> -initrd <initrd> -append <cmdline>`.
    pub fn qemu_boot_args(&self) -> Vec<OsString> {
        vec![
            "-kernel".into(),
            self.kernel.clone().into(),
            "-initrd".into(),
            self.initrd.clone().into(),
            "-append".into(),
            self.cmdline.clone().into(),
        ]
    }

    /// The guest's cache directory (`<cache>/guest-<key>`).
    fn dir(&self) -> &Path {
        self.kernel.parent().unwrap_or(Path::new("."))
    }

    fn is_complete(&self) -> bool {
        [&self.kernel, &self.initrd, &self.bzimage]
            .iter()
            .all(|p| p.is_file())
    }
}

/// Builds the test guest, or finds it in the cache.
///
/// The cache is `$FERROVIRT_GUEST_CACHE`, else `<workspace>/target/test-guest`.
/// See [`test_guest_in`].
pub fn test_guest() -> Result<TestGuest> {
    test_guest_in(&cache_dir())
}

/// The cache directory [`test_guest`] uses.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os(CACHE_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            // crates/testkit -> workspace root
            let workspace = manifest.ancestors().nth(2).unwrap_or(manifest);
            workspace.join("target").join("test-guest")
        }
    }
}

/// Builds the test guest in `cache`, or finds it there.
///
/// Resolves the current Debian kernel (the package `linux-image-amd64`
/// depends on) and `busybox-static` with apt, downloads them into
/// `cache/downloads` unless already there, and builds the guest into
/// `cache/guest-<key>`, where the key is a SHA-256 over the packages'
/// contents, the init script and the builder version. Safe to call from many
/// processes at once: builds hold a lock file and are made in a temporary
/// directory that is renamed into place.
pub fn test_guest_in(cache: &Path) -> Result<TestGuest> {
    static BUILT: Mutex<Vec<(PathBuf, TestGuest)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, guest)) = built.iter().find(|(dir, _)| dir == cache) {
        return Ok(guest.clone());
    }
    let guest = build_or_find(cache)?;
    built.push((cache.to_owned(), guest.clone()));
    Ok(guest)
}

/// Takes the cache's lock file. Returns it (the lock lasts until it is
/// dropped) and whether it is really locked: without file locks (some
/// network file systems) concurrent builds still work, thanks to the atomic
/// renames; they just do the work twice.
fn lock_cache(cache: &Path) -> Result<(File, bool)> {
    let lock_path = cache.join(".lock");
    let lock = File::create(&lock_path).map_err(Error::io("create", &lock_path))?;
    let locked = match lock.lock() {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => false,
        Err(e) => return Err(Error::io("lock", &lock_path)(e)),
    };
    Ok((lock, locked))
}

fn build_or_find(cache: &Path) -> Result<TestGuest> {
    fs::create_dir_all(cache).map_err(Error::io("create directory", cache))?;
    let cache = cache.canonicalize().map_err(Error::io("resolve", cache))?;
    let (lock, locked) = lock_cache(&cache)?;

    let ingredients = apt::resolve(&cache.join("packages.json"))?;
    let downloads = cache.join("downloads");
    if locked {
        remove_leftovers(&downloads, ".download-");
    }
    let kernel_deb = apt::download(&ingredients.kernel, &downloads)?;
    let busybox_deb = apt::download(&ingredients.busybox, &downloads)?;
    let key = cache_key(&[&kernel_deb.sha256, &busybox_deb.sha256]);
    let dir = cache.join(format!("guest-{}", &key[..16]));
    let guest = TestGuest {
        kernel: dir.join("vmlinux"),
        initrd: dir.join("initrd.img"),
        bzimage: dir.join("bzImage"),
        cmdline: image::CMDLINE.to_owned(),
    };
    if guest.is_complete() {
        return Ok(guest);
    }

    tracing::info!(dir = %dir.display(), "building the test guest");
    if locked {
        remove_leftovers(&cache, ".build-");
    }
    let staging = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(&cache)
        .map_err(Error::io("create a temporary directory in", &cache))?;
    let out = staging.path().join("out");
    let scratch = staging.path().join("scratch");
    for d in [&out, &scratch] {
        fs::create_dir(d).map_err(Error::io("create directory", d))?;
    }
    image::build(&key, &kernel_deb, &busybox_deb, &out, &scratch)?;
    if let Err(e) = fs::rename(&out, &dir) {
        // Someone else (without a working lock) got there first: theirs is
        // as good as ours.
        if !guest.is_complete() {
            return Err(Error::io("move the built guest to", &dir)(e));
        }
    }
    drop(lock);
    Ok(guest)
}

/// Builds a raw disk image that boots the test guest through the firmware,
/// or finds it in the cache; returns its path.
///
/// The cache is the one [`test_guest`] uses; the image is
/// `<cache>/guest-<key>/disk.img`, next to the guest it is made of. See
/// [`bootable_disk_in`].
pub fn bootable_disk() -> Result<PathBuf> {
    bootable_disk_in(&cache_dir())
}

/// Builds (or finds) the test guest in `cache`, then a raw disk image that
/// boots it through the firmware, and returns the image's path.
///
/// The image (64 MiB, sparse) is one FAT16 file system over the whole disk,
/// without a partition table, holding the SYSLINUX boot loader (boot sector,
/// `ldlinux.sys`, `ldlinux.c32`), the guest's [`TestGuest::bzimage`] as
/// `bzImage`, its `initrd.img` and a `syslinux.cfg` that boots them at once
/// with `initrd=initrd.img <TestGuest::cmdline> fvboot=disk` (see
/// [`DISK_BOOT_MARKER`]). SeaBIOS (QEMU's default firmware) boots it from any
/// disk bus; the guest then behaves as a direct-booted one: it prints
/// [`READY_MARKER`] on ttyS0 and serves the command channel. SYSLINUX also
/// prints its banner on ttyS0 before the kernel starts.
///
/// Needs `mkfs.vfat` (dosfstools), `syslinux` and mtools; no root and no
/// mounts. Tests that write to the disk should use a copy or an overlay.
pub fn bootable_disk_in(cache: &Path) -> Result<PathBuf> {
    let guest = test_guest_in(cache)?;
    let dir = guest.dir().to_owned();
    let disk = dir.join(disk::FILE_NAME);
    if disk.is_file() {
        return Ok(disk);
    }
    disk::find_tools()?;
    let cache = dir.parent().unwrap_or(&dir);
    let (lock, locked) = lock_cache(cache)?;
    if disk.is_file() {
        return Ok(disk); // built while we waited for the lock
    }
    tracing::info!(disk = %disk.display(), "building the bootable test-guest disk");
    if locked {
        remove_leftovers(&dir, ".disk-");
    }
    let staging = tempfile::Builder::new()
        .prefix(".disk-")
        .tempdir_in(&dir)
        .map_err(Error::io("create a temporary directory in", &dir))?;
    let image = staging.path().join(disk::FILE_NAME);
    disk::build(
        &guest.bzimage,
        &guest.initrd,
        &guest.cmdline,
        &image,
        staging.path(),
    )?;
    if let Err(e) = fs::rename(&image, &disk)
        && !disk.is_file()
    {
        return Err(Error::io("move the built disk to", &disk)(e));
    }
    drop(lock);
    Ok(disk)
}

/// Removes temporary directories that killed builds left behind. Only
/// called with the lock held, so no live build owns them.
fn remove_leftovers(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// SHA-256 (hex) over the package hashes, the init script, the kernel
/// command line, the module lists and the builder version.
fn cache_key(package_hashes: &[&str]) -> String {
    let mut hasher = Sha256::new();
    let mut field = |name: &str, value: &[u8]| {
        hasher.update(name.as_bytes());
        hasher.update((value.len() as u64).to_le_bytes());
        hasher.update(value);
    };
    field("builder", BUILDER_VERSION.as_bytes());
    field("layout", LAYOUT_VERSION.as_bytes());
    for hash in package_hashes {
        field("package", hash.as_bytes());
    }
    field("init", image::INIT_SCRIPT.as_bytes());
    field("cmdline", image::CMDLINE.as_bytes());
    for module in image::REQUIRED_MODULES {
        field("required-module", module.as_bytes());
    }
    for module in image::OPTIONAL_MODULES {
        field("optional-module", module.as_bytes());
    }
    field("disk", disk::recipe(image::CMDLINE).as_bytes());
    apt::hex(&hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_depends_on_packages() {
        let a = cache_key(&["aa", "bb"]);
        assert_eq!(a.len(), 64);
        assert_eq!(a, cache_key(&["aa", "bb"]));
        assert_ne!(a, cache_key(&["aa", "bc"]));
        assert_ne!(a, cache_key(&["aab", "b"]));
    }

    #[test]
    fn boot_args_name_kernel_initrd_and_cmdline() {
        let guest = TestGuest {
            kernel: "/c/vmlinux".into(),
            initrd: "/c/initrd.img".into(),
            bzimage: "/c/bzImage".into(),
            cmdline: "console=ttyS0".into(),
        };
        let args: Vec<String> = guest
            .qemu_boot_args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "-kernel",
                "/c/vmlinux",
                "-initrd",
                "/c/initrd.img",
                "-append",
                "console=ttyS0"
            ]
        );
    }
}
