//! The qemu-img work of pools: make, size, resize and empty images. The
//! image operations of instances (overlays, snapshots, copies) are the
//! QEMU driver's.

use ferrovirt_api::{Preallocation, VolumeFormat};
use ferrovirt_core::Error;
use ferrovirt_core::runner::{Command, CommandRunner};
use serde::Deserialize;

use crate::run::run;

fn qemu_img() -> Command {
    Command::new("qemu-img")
}

/// Creates an empty image of `size` bytes.
pub async fn create(
    runner: &dyn CommandRunner,
    doing: &str,
    path: &str,
    format: VolumeFormat,
    size: u64,
    prealloc: Preallocation,
) -> Result<(), Error> {
    let mut cmd = qemu_img().args(["create", "-q", "-f", format.as_str()]);
    if prealloc != Preallocation::Off {
        cmd = cmd.args(["-o", &format!("preallocation={}", prealloc.as_str())]);
    }
    // Preallocating a large image takes as long as writing it.
    let cmd = cmd.args([path, &size.to_string()]).no_timeout();
    run(runner, doing, cmd).await.map(drop)
}

/// Resizes an image; `shrink` allows losing its end.
pub async fn resize(
    runner: &dyn CommandRunner,
    doing: &str,
    path: &str,
    format: VolumeFormat,
    size: u64,
    shrink: bool,
) -> Result<(), Error> {
    let mut cmd = qemu_img().args(["resize", "-q", "-f", format.as_str()]);
    if shrink {
        cmd = cmd.arg("--shrink");
    }
    run(runner, doing, cmd.args([path, &size.to_string()]))
        .await
        .map(drop)
}

#[derive(Deserialize)]
struct Info {
    #[serde(rename = "virtual-size")]
    virtual_size: u64,
}

/// The virtual size of the raw image (or LUN URL) at `location`.
pub async fn virtual_size(
    runner: &dyn CommandRunner,
    doing: &str,
    location: &str,
) -> Result<u64, Error> {
    let text = run(
        runner,
        doing,
        qemu_img().args(["info", "-U", "-f", "raw", "--output=json", location]),
    )
    .await?;
    serde_json::from_str::<Info>(&text)
        .map(|i| i.virtual_size)
        .map_err(|e| Error::internal(format!("{doing}: qemu-img printed unexpected output: {e}")))
}
