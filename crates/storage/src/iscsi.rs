//! iSCSI pools: the LUNs of one target, found with libiscsi's `iscsi-ls`
//! and sized with `qemu-img info`; QEMU opens them with its own initiator.

use ferrovirt_api::{PoolSource, VolumeFormat};
use ferrovirt_core::disk_source::{ISCSI_INITIATOR, IscsiUrl};
use ferrovirt_core::runner::{Command, CommandRunner};
use ferrovirt_core::{Error, VolumeInfo};

use crate::image;
use crate::run::run;

/// `iscsi://host:port/target/lun`.
pub fn lun_url(src: &PoolSource, lun: u32) -> String {
    IscsiUrl::new(
        src.host.as_deref().unwrap_or_default(),
        src.target.as_deref().unwrap_or_default(),
        lun,
    )
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

pub async fn luns(runner: &dyn CommandRunner, src: &PoolSource) -> Result<Vec<VolumeInfo>, Error> {
    let host = src.host.as_deref().unwrap_or_default();
    let target = src.target.as_deref().unwrap_or_default();
    let portal = format!("iscsi://{host}/");
    let out = run(
        runner,
        &format!("cannot list the LUNs of {target} at {host}"),
        Command::new("iscsi-ls").args(["-s", "-i", ISCSI_INITIATOR, &portal]),
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
        let size = image::virtual_size(runner, &format!("cannot size LUN {lun} of {target}"), &url)
            .await?;
        vols.push(VolumeInfo {
            name: format!("lun-{lun}"),
            path: url,
            format: VolumeFormat::Raw,
            virtual_size: size,
            actual_size: size,
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

    #[tokio::test]
    async fn luns_are_listed_and_sized_through_the_runner() {
        use ferrovirt_core::fake_runner::{FakeRunner, Reply};
        let f = FakeRunner::new();
        f.on(
            "iscsi-ls",
            &[],
            Reply::stdout(
                "Target:iqn.x:t Portal:127.0.0.1:3260,1\nLun:1 Type:DIRECT_ACCESS (Size:1M)",
            ),
        )
        .on(
            "qemu-img",
            &["info"],
            Reply::stdout(r#"{"virtual-size": 1048576}"#),
        );
        let src = PoolSource {
            host: Some("127.0.0.1".into()),
            target: Some("iqn.x:t".into()),
            ..Default::default()
        };
        let vols = luns(&f, &src).await.unwrap();
        assert_eq!(vols.len(), 1);
        assert_eq!(vols[0].name, "lun-1");
        assert_eq!(vols[0].virtual_size, 1 << 20);
        assert_eq!(
            f.lines(),
            [
                format!("iscsi-ls -s -i {ISCSI_INITIATOR} iscsi://127.0.0.1/"),
                "qemu-img info -U -f raw --output=json iscsi://127.0.0.1:3260/iqn.x:t/1".to_owned()
            ]
        );
        f.on("iscsi-ls", &[], Reply::stdout("Target:iqn.other Portal:x"));
        let err = luns(&f, &src).await.unwrap_err();
        assert_eq!(
            err.message,
            "the iSCSI portal 127.0.0.1 offers no target iqn.x:t"
        );
        f.on("iscsi-ls", &[], Reply::fail(1, "iscsi_connect failed"));
        let err = luns(&f, &src).await.unwrap_err();
        assert_eq!(
            err.message,
            "cannot list the LUNs of iqn.x:t at 127.0.0.1: iscsi_connect failed"
        );
    }
}
