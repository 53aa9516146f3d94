//! Image formats are recorded, never guessed from content: a guest that
//! writes a qcow2 header naming a host file onto its raw disk never reads
//! that file, whatever the daemon does with the volume next (stop/start,
//! PATCH, detach + attach, a full clone), and a qcow2 image whose header
//! names a backing file the daemon did not make is refused.

use std::path::Path;

use ferrovirt_api::VolumeFormat;
use ferrovirt_e2e::*;
use serde_json::json;

const SECRET: &str = "FERROVIRT-HOST-SECRET";

/// A host file full of the secret, and a small qcow2 image naming it as
/// its backing file (what a hostile guest writes onto its disk).
fn secret_and_header(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET.repeat(1 << 14)).unwrap();
    let header = dir.join("header.qcow2");
    sh_host(&format!(
        "qemu-img create -q -f qcow2 -o cluster_size=512 -F raw -b {} {} 1M",
        secret.display(),
        header.display()
    ));
    (secret, std::fs::read(&header).unwrap())
}

/// How many times the guest finds the secret on `dev` (0 when it cannot).
async fn secret_seen(ch: &mut Ch, dev: &str) -> u64 {
    let out = ch
        .run(
            &format!("dd if=/dev/{dev} bs=64k count=16 2>/dev/null | grep -c {SECRET}"),
            CMD,
        )
        .await
        .unwrap();
    out.output.trim().parse().unwrap_or(0)
}

fn base64(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_written_qcow2_header_never_reads_a_host_file() {
    let d = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (secret, header) = secret_and_header(dir.path());
    cli_ok(
        &d,
        &[
            "volume",
            "create",
            "default/data.raw",
            "4M",
            "--image-format",
            "raw",
        ],
    );
    create(&d.client, guest_spec("evil")).await;
    let mut ch = boot(&d.client, "evil").await;
    let attach = [
        "disk",
        "attach",
        "evil",
        "--volume",
        "default/data.raw",
        "--as",
        "data",
    ];
    cli_ok(&d, &attach);
    wait_block(&mut ch, "vda", true).await;

    // The guest writes the header onto its raw disk, flushed.
    sh(
        &mut ch,
        &format!(
            "echo {} | base64 -d | dd of=/dev/vda conv=notrunc,fsync 2>/dev/null",
            base64(&header)
        ),
    )
    .await;
    assert_eq!(secret_seen(&mut ch, "vda").await, 0);

    // Detach and attach again (which resolves the volume again).
    cli_ok(&d, &["disk", "detach", "evil", "data"]);
    wait_block(&mut ch, "vda", false).await;
    cli_ok(&d, &attach);
    wait_block(&mut ch, "vda", true).await;
    assert_eq!(
        secret_seen(&mut ch, "vda").await,
        0,
        "the guest read the host file through a re-attached disk"
    );

    // Stop, PATCH (which resolves the volume again), start.
    force_stop(&d.client, "evil").await;
    d.client
        .patch_instance("evil", &json!({"description": "patched"}))
        .await
        .expect("patch");
    let inst = d.client.instance("evil").await.unwrap();
    assert_eq!(inst.spec.disks[0].format.as_str(), "raw", "{inst:?}");
    let mut ch = boot(&d.client, "evil").await;
    assert_eq!(
        secret_seen(&mut ch, "vda").await,
        0,
        "the guest read the host file through its own disk after a PATCH"
    );
    force_stop(&d.client, "evil").await;

    // The volume is still raw, and a full copy carries only its bytes.
    let vol = d.client.volume("default", "data.raw").await.unwrap();
    assert_eq!(vol.format, VolumeFormat::Raw, "{vol:?}");
    assert!(vol.backing_chain.is_empty(), "{vol:?}");
    cli_ok(&d, &["volume", "clone", "default/data.raw", "copy.raw"]);
    let copy = d.client.volume("default", "copy.raw").await.unwrap();
    assert_eq!(copy.format, VolumeFormat::Raw, "{copy:?}");
    let copied = std::fs::read(&copy.path).unwrap();
    assert!(
        !String::from_utf8_lossy(&copied).contains(SECRET),
        "the clone flattened the host file into its copy"
    );
    assert_eq!(&copied[..header.len()], &header[..], "the guest's bytes");

    // A qcow2 file named by path whose header names a backing file that
    // ferrovirt did not make is refused, naming the field.
    let bad = dir.path().join("bad.qcow2");
    std::fs::write(&bad, &header).unwrap();
    let mut spec = guest_spec("named");
    spec["disks"] = json!([{"path": bad.display().to_string(), "format": "qcow2"}]);
    let err = d
        .client
        .create_instance(&spec)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("disks[0]") && err.contains("backing") && err.contains("secret"),
        "{err}"
    );
    assert!(secret.exists());
}
