//! Builds (or finds in the cache) the Ferrovirt test guest and prints where
//! it is as JSON: `{"kernel": "...", "initrd": "...", "bzimage": "...",
//! "cmdline": "..."}`. With `--disk`, builds the raw disk image that boots
//! the guest through the firmware instead and prints its path.
//!
//! The cache is `$FERROVIRT_GUEST_CACHE`, else `<workspace>/target/test-guest`.
//! The first run downloads the Debian kernel and busybox-static with apt.

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        None => {}
        Some("--help" | "-h") => {
            println!(
                "usage: ferrovirt-test-guest [--disk]\n\nBuilds the test guest (cached in ${} or <workspace>/target/test-guest)\nand prints {{\"kernel\", \"initrd\", \"bzimage\", \"cmdline\"}} as JSON.\n\n  --disk  build the raw disk image that boots the guest through the\n          firmware (SYSLINUX on FAT; kernel command line gets {}) and\n          print its path",
                ferrovirt_testkit::CACHE_ENV,
                ferrovirt_testkit::DISK_BOOT_MARKER,
            );
            return Ok(());
        }
        Some("--disk") => {
            let disk = ferrovirt_testkit::bootable_disk().with_context(|| {
                format!(
                    "cannot build the bootable test-guest disk in {}",
                    ferrovirt_testkit::cache_dir().display()
                )
            })?;
            println!("{}", disk.display());
            return Ok(());
        }
        Some(other) => anyhow::bail!("unknown argument {other:?}; see --help"),
    }
    let guest = ferrovirt_testkit::test_guest().with_context(|| {
        format!(
            "cannot build the test guest in {}",
            ferrovirt_testkit::cache_dir().display()
        )
    })?;
    println!("{}", serde_json::to_string_pretty(&guest)?);
    Ok(())
}
