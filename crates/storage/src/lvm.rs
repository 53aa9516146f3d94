//! Logical pools: an LVM volume group whose logical volumes are the
//! volumes. On a kernel without device-mapper, LVM can still keep the
//! metadata (activation disabled), but no volume can be opened: such
//! volumes are listed with an empty path.

use std::path::PathBuf;

use ferrovirt_api::VolumeFormat;
use ferrovirt_core::runner::{Command, CommandRunner};
use ferrovirt_core::{Error, Space, VolumeInfo};

use crate::run::run;

/// Whether the kernel has device-mapper, which activating LVs needs.
pub fn has_device_mapper() -> bool {
    std::fs::read_to_string("/proc/misc").is_ok_and(|m| m.contains("device-mapper"))
}

/// `lvm` with the options this host needs: no metadata archive clutter in
/// /etc/lvm, and activation off where device-mapper is missing.
async fn lvm(runner: &dyn CommandRunner, doing: &str, args: &[&str]) -> Result<String, Error> {
    let config = if has_device_mapper() {
        "backup{backup=0 archive=0}"
    } else {
        "backup{backup=0 archive=0} global{activation=0}"
    };
    let mut all = vec![args[0], "--config", config];
    all.extend_from_slice(&args[1..]);
    run(runner, doing, Command::new("lvm").args(all)).await
}

pub fn lv_path(vg: &str, lv: &str) -> PathBuf {
    PathBuf::from("/dev").join(vg).join(lv)
}

pub async fn create_vg(runner: &dyn CommandRunner, vg: &str, device: &str) -> Result<(), Error> {
    let doing = format!("cannot create volume group {vg} on {device}");
    lvm(runner, &doing, &["pvcreate", "-y", "-ff", device]).await?;
    lvm(runner, &doing, &["vgcreate", "-y", vg, device])
        .await
        .map(drop)
}

pub async fn check_vg(runner: &dyn CommandRunner, vg: &str) -> Result<(), Error> {
    lvm(
        runner,
        &format!("volume group {vg} is not usable"),
        &["vgs", "--noheadings", vg],
    )
    .await
    .map(drop)
}

fn fields(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().split('|').map(|f| f.trim().to_owned()).collect())
        .collect()
}

fn num(s: &str) -> u64 {
    s.parse().unwrap_or(0)
}

/// One row per object of an LVM report (`vgs`/`lvs`) of `vg`, sizes in bytes.
async fn report(
    runner: &dyn CommandRunner,
    doing: &str,
    command: &str,
    columns: &str,
    vg: &str,
) -> Result<Vec<Vec<String>>, Error> {
    let out = lvm(
        runner,
        doing,
        &[
            command,
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "--separator",
            "|",
            "-o",
            columns,
            vg,
        ],
    )
    .await?;
    Ok(fields(&out))
}

pub async fn space(runner: &dyn CommandRunner, vg: &str) -> Result<Space, Error> {
    let rows = report(
        runner,
        &format!("cannot read volume group {vg}"),
        "vgs",
        "vg_size,vg_free",
        vg,
    )
    .await?;
    let row = rows.into_iter().next().unwrap_or_default();
    let capacity = num(row.first().map(String::as_str).unwrap_or("0"));
    let available = num(row.get(1).map(String::as_str).unwrap_or("0"));
    Ok(Space {
        capacity,
        allocation: capacity.saturating_sub(available),
        available,
    })
}

pub async fn list(runner: &dyn CommandRunner, vg: &str) -> Result<Vec<VolumeInfo>, Error> {
    let rows = report(
        runner,
        &format!("cannot list the volumes of {vg}"),
        "lvs",
        "lv_name,lv_size",
        vg,
    )
    .await?;
    let active = has_device_mapper();
    let mut vols: Vec<VolumeInfo> = rows
        .into_iter()
        .filter(|r| r.len() >= 2)
        .map(|r| {
            let size = num(&r[1]);
            VolumeInfo {
                path: if active {
                    lv_path(vg, &r[0]).display().to_string()
                } else {
                    String::new()
                },
                name: r[0].clone(),
                format: VolumeFormat::Raw,
                virtual_size: size,
                actual_size: size,
                has_backing: false,
            }
        })
        .collect();
    vols.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(vols)
}

fn bytes(size: u64) -> String {
    format!("{size}b")
}

pub async fn create(
    runner: &dyn CommandRunner,
    vg: &str,
    lv: &str,
    size: u64,
) -> Result<(), Error> {
    let size = bytes(size);
    let mut args = vec!["lvcreate", "-y", "-L", &size, "-n", lv];
    if !has_device_mapper() {
        args.extend(["-an", "-Zn"]);
    }
    args.push(vg);
    lvm(runner, &format!("cannot create logical volume {lv}"), &args)
        .await
        .map(drop)
}

pub async fn remove(runner: &dyn CommandRunner, vg: &str, lv: &str) -> Result<(), Error> {
    let target = format!("{vg}/{lv}");
    lvm(
        runner,
        &format!("cannot remove logical volume {lv}"),
        &["lvremove", "-y", &target],
    )
    .await
    .map(drop)
}

pub async fn resize(
    runner: &dyn CommandRunner,
    vg: &str,
    lv: &str,
    size: u64,
) -> Result<(), Error> {
    let target = format!("{vg}/{lv}");
    let size = bytes(size);
    lvm(
        runner,
        &format!("cannot resize logical volume {lv}"),
        &["lvresize", "-f", "-L", &size, &target],
    )
    .await
    .map(drop)
}

pub async fn wipe(runner: &dyn CommandRunner, vol: &VolumeInfo) -> Result<(), Error> {
    if vol.path.is_empty() {
        return Err(inactive(&vol.name));
    }
    run(
        runner,
        &format!("cannot wipe logical volume {}", vol.name),
        Command::new("blkdiscard").args(["--zeroout", &vol.path]),
    )
    .await
    .map(drop)
}

/// The error for using an LV this kernel cannot activate.
pub fn inactive(lv: &str) -> Error {
    Error::conflict(format!(
        "logical volume {lv} cannot be opened: this kernel has no device-mapper, so LVM cannot activate it"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvm_reports_parse() {
        let rows = fields("  root|1073741824\n  data|33554432\n\n");
        assert_eq!(
            rows,
            vec![vec!["root", "1073741824"], vec!["data", "33554432"]]
        );
        assert_eq!(lv_path("vg0", "data"), PathBuf::from("/dev/vg0/data"));
    }
}
