//! Building the guest from its two packages: unpack them, make the ELF
//! kernel, and pack busybox, the init script and the chosen modules into a
//! gzip-compressed newc initramfs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::apt::Download;
use crate::cpio::Archive;
use crate::error::{Error, Result};
use crate::kernel;
use crate::modules::ModuleTree;
use crate::tool;

/// The guest's `/init`.
pub(crate) const INIT_SCRIPT: &str = include_str!("init.sh");

/// Kernel command line: serial console, few boot messages, and reboot at once
/// on a panic instead of hanging (QEMU reports the reset).
pub(crate) const CMDLINE: &str = "console=ttyS0 quiet panic=-1";

/// Modules the guest cannot work without (if they are modules at all):
/// the ACPI power button and the event interface that delivers it.
pub(crate) const REQUIRED_MODULES: &[&str] = &["button", "evdev"];

/// Modules loaded when present; their failure to load is ignored. Listed
/// in a sensible load order (dependencies are added automatically).
pub(crate) const OPTIONAL_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_mmio",
    "ahci",
    "ata_piix",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "virtio_scsi",
    "sd_mod",
    "sr_mod",
    "virtio_balloon",
    "virtio_rng",
    "crc32c_generic",
    "ext4",
    "vmw_vsock_virtio_transport",
    "pvpanic_mmio",
    "pvpanic_pci",
];

/// Where the guest's module load list lives.
const MODULE_LIST: &str = "etc/ferrovirt/modules";

/// What went into a built guest; written next to it as `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Manifest {
    /// Cache key of the build.
    pub key: String,
    /// Kernel package and version.
    pub kernel_package: String,
    /// Kernel release (`uname -r`).
    pub kernel_release: String,
    /// Compression of the bzImage payload.
    pub kernel_compression: String,
    /// busybox package and version.
    pub busybox_package: String,
    /// Kernel command line.
    pub cmdline: String,
    /// Modules packed, in load order.
    pub modules: Vec<String>,
    /// Requested modules that are built into the kernel.
    pub builtin_modules: Vec<String>,
    /// Optional modules left out, and why.
    pub skipped_modules: Vec<(String, String)>,
}

/// Builds `vmlinux`, `bzImage`, `initrd.img`, `cmdline` and `manifest.json`
/// in `out`, using `scratch` for the unpacked packages.
pub(crate) fn build(
    key: &str,
    kernel_deb: &Download,
    busybox_deb: &Download,
    out: &Path,
    scratch: &Path,
) -> Result<Manifest> {
    let kernel_root = scratch.join("kernel");
    let busybox_root = scratch.join("busybox");
    extract(&kernel_deb.path, &kernel_root)?;
    extract(&busybox_deb.path, &busybox_root)?;

    let (vmlinuz, release) = find_vmlinuz(&kernel_root)?;
    tracing::info!(%release, "decompressing the kernel");
    let compression = kernel::extract_vmlinux(&vmlinuz, &out.join("vmlinux"), scratch)?;
    // The packaged bzImage too, for boots through a boot loader.
    let bzimage = out.join("bzImage");
    fs::copy(&vmlinuz, &bzimage).map_err(Error::io("copy the kernel image to", &bzimage))?;

    let modules_dir = first_existing(
        &kernel_root,
        &[
            &format!("lib/modules/{release}"),
            &format!("usr/lib/modules/{release}"),
        ],
    )
    .ok_or_else(|| {
        Error::Layout(format!(
            "{} has no modules for {release}",
            kernel_deb.path.display()
        ))
    })?;
    let tree = ModuleTree::open(&modules_dir)?;
    let selection = tree.select(REQUIRED_MODULES, OPTIONAL_MODULES)?;

    let busybox =
        first_existing(&busybox_root, &["bin/busybox", "usr/bin/busybox"]).ok_or_else(|| {
            Error::Layout(format!(
                "{} has no busybox binary",
                busybox_deb.path.display()
            ))
        })?;

    let mut archive = Archive::default();
    for dir in ["dev", "proc", "sys", "run", "root", "mnt", "etc/ferrovirt"] {
        archive.dir(dir, 0o755);
    }
    archive.dir("tmp", 0o1777);
    archive.char_device("dev/console", 0o600, 5, 1);
    archive.char_device("dev/null", 0o666, 1, 3);
    archive.file("init", 0o755, INIT_SCRIPT.as_bytes().to_vec());
    archive.file(
        "bin/busybox",
        0o755,
        fs::read(&busybox).map_err(Error::io("read", &busybox))?,
    );
    for applet in busybox_applets(&busybox)? {
        if !archive.contains(&applet) {
            archive.symlink(&applet, "/bin/busybox");
        }
    }
    let guest_modules = format!("lib/modules/{release}");
    let mut load_list = String::new();
    for module in &selection.load_order {
        let path = format!("{guest_modules}/{}", module.rel_path);
        load_list.push_str(&format!("/{path}\n"));
        archive.file(&path, 0o644, module.contents.clone());
    }
    archive.file(MODULE_LIST, 0o644, load_list.into_bytes());
    archive.file(
        &format!("{guest_modules}/modules.dep"),
        0o644,
        selection.modules_dep().into_bytes(),
    );
    let builtin = modules_dir.join("modules.builtin");
    if builtin.is_file() {
        let data = fs::read(&builtin).map_err(Error::io("read", &builtin))?;
        archive.file(&format!("{guest_modules}/modules.builtin"), 0o644, data);
    }

    let cpio = scratch.join("initrd.cpio");
    fs::write(&cpio, archive.to_newc()).map_err(Error::io("write", &cpio))?;
    tool::run_to_file(
        Command::new("gzip").args(["-n", "-9", "-c"]).arg(&cpio),
        &out.join("initrd.img"),
        "compress the initramfs",
        &[0],
    )?;

    let manifest = Manifest {
        key: key.to_owned(),
        kernel_package: format!("{} {}", kernel_deb.package.name, kernel_deb.package.version),
        kernel_release: release,
        kernel_compression: compression.name().to_owned(),
        busybox_package: format!(
            "{} {}",
            busybox_deb.package.name, busybox_deb.package.version
        ),
        cmdline: CMDLINE.to_owned(),
        modules: selection
            .load_order
            .iter()
            .map(|m| m.name.clone())
            .collect(),
        builtin_modules: selection.builtin.clone(),
        skipped_modules: selection.skipped.clone(),
    };
    let cmdline_path = out.join("cmdline");
    fs::write(&cmdline_path, CMDLINE).map_err(Error::io("write", &cmdline_path))?;
    let manifest_path = out.join("manifest.json");
    let json = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    fs::write(&manifest_path, json + "\n").map_err(Error::io("write", &manifest_path))?;
    Ok(manifest)
}

fn extract(deb: &Path, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    tool::run(
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir),
        &format!("unpack {}", deb.display()),
        &[0],
    )?;
    Ok(())
}

/// The kernel image and its release, e.g. `boot/vmlinuz-6.1.0-56-amd64`.
fn find_vmlinuz(root: &Path) -> Result<(PathBuf, String)> {
    let boot = root.join("boot");
    let mut found = Vec::new();
    for entry in fs::read_dir(&boot).map_err(Error::io("list", &boot))? {
        let entry = entry.map_err(Error::io("list", &boot))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(release) = name.strip_prefix("vmlinuz-") {
            found.push((entry.path(), release.to_owned()));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(Error::Layout(format!(
            "expected one vmlinuz-* in {}, found {n}",
            boot.display()
        ))),
    }
}

fn first_existing(root: &Path, candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(|c| root.join(c)).find(|p| p.exists())
}

/// The applet paths busybox provides (`bin/sh`, `sbin/poweroff`, …), as
/// printed by `busybox --list-full`. The binary is static amd64, so it runs
/// on the (amd64) build host.
fn busybox_applets(busybox: &Path) -> Result<Vec<String>> {
    let output = tool::run(
        Command::new(busybox).arg("--list-full"),
        "list the busybox applets",
        &[0],
    )?;
    let applets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_owned())
        .filter(|l| !l.is_empty() && !l.contains("..") && l != "bin/busybox")
        .collect();
    if !applets.iter().any(|a| a == "bin/sh") {
        return Err(Error::Layout(format!(
            "{} does not provide bin/sh",
            busybox.display()
        )));
    }
    Ok(applets)
}
