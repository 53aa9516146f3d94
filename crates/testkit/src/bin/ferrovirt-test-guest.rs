//! Builds (or finds in the cache) the Ferrovirt test guest and prints where
//! it is as JSON: `{"kernel": "...", "initrd": "...", "cmdline": "..."}`.
//!
//! The cache is `$FERROVIRT_GUEST_CACHE`, else `<workspace>/target/test-guest`.
//! The first run downloads the Debian kernel and busybox-static with apt.

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    if std::env::args()
        .nth(1)
        .is_some_and(|a| a == "--help" || a == "-h")
    {
        println!(
            "usage: ferrovirt-test-guest\n\nBuilds the test guest (cached in ${} or <workspace>/target/test-guest)\nand prints {{\"kernel\", \"initrd\", \"cmdline\"}} as JSON.",
            ferrovirt_testkit::CACHE_ENV
        );
        return Ok(());
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
