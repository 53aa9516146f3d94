//! Waiting on QEMU jobs (snapshot-save/load/delete, block-stream, block-commit)
//! and migrations, with progress reported to an operation.

use std::time::Duration;

use ferrovirt_core::Error;
use ferrovirt_qmp::Qmp;
use serde_json::{Value, json};

use crate::operations::OpCtx;

fn qmp_err(doing: &str) -> impl Fn(ferrovirt_qmp::Error) -> Error + '_ {
    move |e| {
        Error::internal(format!(
            "{doing} failed: {}",
            ferrovirt_core::error::chain(&e)
        ))
    }
}

/// Runs a QMP command that starts job `id`, then waits for the job to
/// finish, reporting its progress under `stage`. Jobs are created with
/// auto-dismiss off where QEMU allows it, so their error can be read.
pub async fn run_job(
    qmp: &Qmp,
    ctx: Option<&OpCtx>,
    stage: &str,
    command: &str,
    args: Value,
) -> Result<(), Error> {
    let id = args["job-id"].as_str().unwrap_or_default().to_owned();
    qmp.execute(command, Some(args))
        .await
        .map_err(qmp_err(stage))?;
    wait_job(qmp, ctx, stage, &id).await
}

/// Waits for job `id`: polls `query-jobs` for progress until it concludes.
pub async fn wait_job(qmp: &Qmp, ctx: Option<&OpCtx>, stage: &str, id: &str) -> Result<(), Error> {
    loop {
        let jobs = qmp
            .execute("query-jobs", None)
            .await
            .map_err(qmp_err(stage))?;
        let Some(job) = jobs
            .as_array()
            .and_then(|a| a.iter().find(|j| j["id"] == id))
            .cloned()
        else {
            // Auto-dismissed jobs vanish when done; their errors are events.
            return Ok(());
        };
        let (cur, total) = (
            job["current-progress"].as_u64().unwrap_or(0),
            job["total-progress"].as_u64().unwrap_or(0),
        );
        if let Some(ctx) = ctx
            && total > 0
        {
            ctx.progress(stage, cur as f64 * 100.0 / total as f64, Some((cur, total)));
        }
        match job["status"].as_str().unwrap_or("") {
            "ready" => {
                qmp.execute("job-complete", Some(json!({"id": id})))
                    .await
                    .map_err(qmp_err(stage))?;
            }
            "concluded" | "null" => {
                let _ = qmp.execute("job-dismiss", Some(json!({"id": id}))).await;
                return match job["error"].as_str() {
                    Some(e) => Err(Error::internal(format!("{stage} failed: {e}"))),
                    None => Ok(()),
                };
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `max-bandwidth` meaning "no limit" (what libvirt sets too).
pub const UNLIMITED_BANDWIDTH: u64 = i64::MAX as u64;

/// Runs a migration to `uri` (e.g. `file:/path,offset=N`) and waits for it,
/// reporting RAM progress. The caller decides whether the VM is paused.
pub async fn migrate(qmp: &Qmp, ctx: Option<&OpCtx>, stage: &str, uri: &str) -> Result<(), Error> {
    // QEMU caps migration at 128 MiB/s by default; a local file needs no cap.
    qmp.execute(
        "migrate-set-parameters",
        Some(json!({"max-bandwidth": UNLIMITED_BANDWIDTH})),
    )
    .await
    .map_err(qmp_err(stage))?;
    qmp.execute("migrate", Some(json!({"uri": uri})))
        .await
        .map_err(qmp_err(stage))?;
    wait_migration(qmp, ctx, stage, true).await
}

/// Waits until `query-migrate` says completed (outgoing or incoming).
pub async fn wait_migration(
    qmp: &Qmp,
    ctx: Option<&OpCtx>,
    stage: &str,
    outgoing: bool,
) -> Result<(), Error> {
    loop {
        let m = qmp
            .execute("query-migrate", None)
            .await
            .map_err(qmp_err(stage))?;
        match m["status"].as_str().unwrap_or("") {
            "completed" => return Ok(()),
            "failed" | "cancelled" => {
                let why = m["error-desc"].as_str().unwrap_or("no reason given");
                return Err(Error::internal(format!("{stage} failed: {why}")));
            }
            // An incoming migration that has finished leaves no status.
            "" if !outgoing => {
                let status = qmp
                    .execute("query-status", None)
                    .await
                    .map_err(qmp_err(stage))?;
                if status["status"] != "inmigrate" {
                    return Ok(());
                }
            }
            _ => {}
        }
        if outgoing && ctx.is_some_and(OpCtx::is_cancelled) {
            let _ = qmp.execute("migrate_cancel", None).await;
            return Err(Error::conflict(format!("{stage} was cancelled")));
        }
        if let Some(ctx) = ctx {
            let ram = &m["ram"];
            let (done, total) = (
                ram["transferred"].as_u64().unwrap_or(0),
                ram["total"].as_u64().unwrap_or(0),
            );
            if total > 0 {
                let pct = (done as f64 * 100.0 / total as f64).min(99.0);
                ctx.progress(stage, pct, Some((done, total)));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The node name of the format node QEMU opened `path` with.
pub async fn node_of_file(qmp: &Qmp, path: &str) -> Result<Option<String>, Error> {
    let nodes = qmp
        .execute("query-named-block-nodes", Some(json!({"flat": true})))
        .await
        .map_err(qmp_err("listing block nodes"))?;
    Ok(nodes.as_array().and_then(|a| {
        a.iter()
            .find(|n| n["file"] == path && n["drv"] != "file")
            .and_then(|n| n["node-name"].as_str())
            .map(str::to_owned)
    }))
}

/// The root node of the attached disk whose top file is `path`.
pub async fn root_node_of(qmp: &Qmp, path: &str) -> Result<Option<String>, Error> {
    let block = qmp
        .execute("query-block", None)
        .await
        .map_err(qmp_err("listing disks"))?;
    Ok(block.as_array().and_then(|a| {
        a.iter()
            .find(|b| b["inserted"]["file"] == path)
            .and_then(|b| b["inserted"]["node-name"].as_str())
            .map(str::to_owned)
    }))
}

/// The files at the top of each attached disk (what the guest writes to).
pub async fn active_files(qmp: &Qmp) -> Result<Vec<String>, Error> {
    let block = qmp
        .execute("query-block", None)
        .await
        .map_err(qmp_err("listing disks"))?;
    Ok(block
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|b| b["inserted"]["file"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// Releases a node the monitor still holds after a block job took it out
/// of a disk's chain (nodes from `-blockdev` or `blockdev-add` stay alive,
/// and parents of their children, until deleted). Errors are ignored: a
/// node still in use is simply kept.
pub async fn drop_node(qmp: &Qmp, node: &str) {
    let _ = qmp
        .execute("blockdev-del", Some(json!({"node-name": node})))
        .await;
    let _ = qmp
        .execute(
            "blockdev-del",
            Some(json!({"node-name": format!("{node}-file")})),
        )
        .await;
}

/// Unplugs device `id` and waits until the guest has released it
/// (`DEVICE_DELETED`); `what` names it in errors, e.g. `NIC 52:54:…`.
pub async fn unplug_device(qmp: &Qmp, id: &str, what: &str) -> Result<(), Error> {
    let mut events = qmp.subscribe();
    qmp.execute("device_del", Some(serde_json::json!({"id": id})))
        .await
        .map_err(|e| Error::internal(format!("cannot unplug {what}: {e}")))?;
    let deleted = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Ok(ev) = events.recv().await {
            if ev.event == "DEVICE_DELETED" && ev.data["device"] == id {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !deleted {
        return Err(Error::conflict(format!(
            "the guest did not release {what} within 20 s (does it handle hot-unplug?)"
        )));
    }
    Ok(())
}
