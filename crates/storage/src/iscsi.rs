//! iSCSI pools: the LUNs of one target, found with libiscsi's `iscsi-ls`
//! and sized with `qemu-img info`; QEMU opens them with its own initiator.

use ferrovirt_api::{PoolSource, VolumeFormat};
use ferrovirt_core::Error;
use ferrovirt_qemu::command::{ISCSI_INITIATOR, IscsiUrl};

use crate::VolumeInfo;
use crate::run::run;

/// `iscsi://host:port/target/lun`.
pub fn lun_url(src: &PoolSource, lun: u32) -> String {
    let host = src.host.as_deref().unwrap_or_default();
    let portal = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:3260")
    };
    IscsiUrl {
        portal,
        target: src.target.clone().unwrap_or_default(),
        lun,
    }
    .to_url()
}

/// Disk LUNs from `iscsi-ls -s` output for `target`.
fn parse_luns(out: &str, target: &str) -> Vec<u32> {
    let mut in_target = false;
    let mut luns = Vec::new();
    for line in out.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Target:") {
            in_target = rest.split_whitespace().next() == Some(target);
        } else if in_target
            && let Some(rest) = line.strip_prefix("Lun:")
            && line.contains("DIRECT_ACCESS")
            && let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok())
        {
            luns.push(n);
        }
    }
    luns
}

pub async fn luns(src: &PoolSource) -> Result<Vec<VolumeInfo>, Error> {
    let host = src.host.as_deref().unwrap_or_default();
    let target = src.target.as_deref().unwrap_or_default();
    let portal = format!("iscsi://{host}/");
    let out = run(
        &format!("cannot list the LUNs of {target} at {host}"),
        "iscsi-ls",
        &["-s", "-i", ISCSI_INITIATOR, &portal],
    )
    .await?;
    let numbers = parse_luns(&out, target);
    if numbers.is_empty() && !out.contains(target) {
        return Err(Error::conflict(format!(
            "the iSCSI portal {host} offers no target {target}"
        )));
    }
    let mut vols = Vec::new();
    for lun in numbers {
        let url = lun_url(src, lun);
        let info = ferrovirt_qemu::img::info(std::path::Path::new(&url))
            .await
            .map_err(|e| {
                Error::internal(format!(
                    "cannot size LUN {lun} of {target}: {}",
                    ferrovirt_core::error::chain(&e)
                ))
            })?;
        vols.push(VolumeInfo {
            name: format!("lun-{lun}"),
            path: url,
            format: VolumeFormat::Raw,
            virtual_size: info.virtual_size,
            actual_size: info.virtual_size,
            has_backing: false,
        });
    }
    Ok(vols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luns_of_the_right_target() {
        let out = "Target:iqn.2026-11.test:t1 Portal:127.0.0.1:3260,1\nLun:0    Type:STORAGE_ARRAY_CONTROLLER\nLun:1    Type:DIRECT_ACCESS (Size:63M)\nLun:2    Type:DIRECT_ACCESS (Size:31M)\nTarget:iqn.other Portal:127.0.0.1:3260,1\nLun:1    Type:DIRECT_ACCESS (Size:1M)\n";
        assert_eq!(parse_luns(out, "iqn.2026-11.test:t1"), vec![1, 2]);
        let src = PoolSource {
            host: Some("127.0.0.1".into()),
            target: Some("iqn.x:t".into()),
            ..Default::default()
        };
        assert_eq!(lun_url(&src, 2), "iscsi://127.0.0.1:3260/iqn.x:t/2");
    }
}
