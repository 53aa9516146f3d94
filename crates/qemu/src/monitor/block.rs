//! Block verbs: nodes, disks, snapshots' overlays, resize, I/O limits,
//! removable media, NBD exports.

use ferrovirt_api::IoLimits;
use serde_json::{Value, json};

use super::{Monitor, Result};

/// A disk as `query-block` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    /// The device's QOM path or id (`qdev`).
    pub qdev: String,
    /// The root node of the inserted medium, if any.
    pub node: Option<String>,
    /// The file at the top of the medium's chain.
    pub file: Option<String>,
}

/// A node as `query-named-block-nodes` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockNode {
    pub node: String,
    pub file: String,
    pub driver: String,
}

/// The I/O counters of one disk device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockStats {
    pub qdev: String,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
}

/// The I/O limits of one disk device, in a throttle group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    /// The QOM id holding the block backend.
    pub target: String,
    pub group: String,
    pub limits: IoLimits,
}

impl Throttle {
    /// The arguments of `block_set_io_throttle` (all zero lifts the limits).
    pub fn args(&self) -> Value {
        let l = &self.limits;
        let v = |x: Option<u64>| x.unwrap_or(0);
        let mut args = json!({
            "id": self.target,
            "bps": 0, "bps_rd": v(l.read_bytes), "bps_wr": v(l.write_bytes),
            "iops": 0, "iops_rd": v(l.read_iops), "iops_wr": v(l.write_iops),
            "bps_rd_max": v(l.read_bytes_burst), "bps_wr_max": v(l.write_bytes_burst),
            "iops_rd_max": v(l.read_iops_burst), "iops_wr_max": v(l.write_iops_burst),
            "group": self.group,
        });
        let length = l.burst_seconds.unwrap_or(1);
        for (burst, key) in [
            (l.read_bytes_burst, "bps_rd_max_length"),
            (l.write_bytes_burst, "bps_wr_max_length"),
            (l.read_iops_burst, "iops_rd_max_length"),
            (l.write_iops_burst, "iops_wr_max_length"),
        ] {
            if burst.is_some() {
                args[key] = json!(length);
            }
        }
        args
    }
}

impl Monitor {
    /// Opens a node (the JSON comes from the pure builder,
    /// [`crate::command::blockdev_nodes`] and friends).
    pub async fn blockdev_add(&self, node: &Value) -> Result<()> {
        self.run("blockdev-add", Some(node.clone())).await
    }

    pub async fn blockdev_del(&self, node: &str) -> Result<()> {
        self.run("blockdev-del", Some(json!({"node-name": node})))
            .await
    }

    /// Opens a qcow2 overlay file as node `node`, with no backing yet
    /// (a snapshot transaction gives it one).
    pub async fn add_overlay(&self, node: &str, file: &str) -> Result<()> {
        self.blockdev_add(&json!({"driver": "qcow2", "node-name": node,
            "file": {"driver": "file", "filename": file}, "backing": null}))
            .await
    }

    /// Opens node `node` on an NBD export of a peer.
    pub async fn add_nbd_node(
        &self,
        node: &str,
        host: &str,
        port: u16,
        export: &str,
    ) -> Result<()> {
        self.blockdev_add(
            &json!({"driver": "nbd", "node-name": node, "export": export,
            "server": {"type": "inet", "host": host, "port": port.to_string()}}),
        )
        .await
    }

    /// Releases a node the monitor still holds after a block job took it
    /// out of a chain, with its protocol node. A node still in use is kept.
    pub async fn drop_node(&self, node: &str) {
        // Sent at once, answered in order: the protocol node goes once its
        // format node has released it (or was never separate: an overlay
        // opened with its file inline).
        let file = format!("{node}-file");
        let _ = tokio::join!(self.blockdev_del(node), self.blockdev_del(&file));
    }

    /// Makes each overlay node the new top of its disk, atomically:
    /// `(top node, overlay node)` pairs.
    pub async fn snapshot_overlays(&self, pairs: &[(String, String)]) -> Result<()> {
        let actions: Vec<Value> = pairs
            .iter()
            .map(|(top, overlay)| {
                json!({"type": "blockdev-snapshot", "data": {"node": top, "overlay": overlay}})
            })
            .collect();
        self.run("transaction", Some(json!({"actions": actions})))
            .await
    }

    /// A disk-only internal snapshot `tag` of `nodes`, atomically.
    pub async fn snapshot_internal_sync(&self, nodes: &[String], tag: &str) -> Result<()> {
        let actions: Vec<Value> = nodes
            .iter()
            .map(|n| {
                json!({"type": "blockdev-snapshot-internal-sync",
                       "data": {"device": n, "name": tag}})
            })
            .collect();
        self.run("transaction", Some(json!({"actions": actions})))
            .await
    }

    pub async fn query_block(&self) -> Result<Vec<BlockDevice>> {
        let v = self.call("query-block", None).await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .map(|b| BlockDevice {
                qdev: b["qdev"].as_str().unwrap_or_default().to_owned(),
                node: b["inserted"]["node-name"].as_str().map(str::to_owned),
                file: b["inserted"]["file"].as_str().map(str::to_owned),
            })
            .collect())
    }

    pub async fn query_named_block_nodes(&self) -> Result<Vec<BlockNode>> {
        let v = self
            .call("query-named-block-nodes", Some(json!({"flat": true})))
            .await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .map(|n| BlockNode {
                node: n["node-name"].as_str().unwrap_or_default().to_owned(),
                file: n["file"].as_str().unwrap_or_default().to_owned(),
                driver: n["drv"].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// The format node QEMU opened `path` with.
    pub async fn node_of_file(&self, path: &str) -> Result<Option<String>> {
        Ok(self
            .query_named_block_nodes()
            .await?
            .into_iter()
            .find(|n| n.file == path && n.driver != "file")
            .map(|n| n.node))
    }

    /// The root node of the disk whose top file is `path`.
    pub async fn root_node_of(&self, path: &str) -> Result<Option<String>> {
        Ok(self
            .query_block()
            .await?
            .into_iter()
            .find(|b| b.file.as_deref() == Some(path))
            .and_then(|b| b.node))
    }

    /// The files at the top of each disk (what the guest writes to).
    pub async fn active_files(&self) -> Result<Vec<String>> {
        Ok(self
            .query_block()
            .await?
            .into_iter()
            .filter_map(|b| b.file)
            .collect())
    }

    pub async fn query_blockstats(&self) -> Result<Vec<BlockStats>> {
        let v = self.call("query-blockstats", None).await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let s = &e["stats"];
                let n = |k: &str| s[k].as_u64().unwrap_or(0);
                BlockStats {
                    qdev: e["qdev"].as_str().unwrap_or_default().to_owned(),
                    read_bytes: n("rd_bytes"),
                    write_bytes: n("wr_bytes"),
                    read_ops: n("rd_operations"),
                    write_ops: n("wr_operations"),
                }
            })
            .collect())
    }

    /// Grows (or shrinks) the image under node `node` to `bytes`.
    pub async fn block_resize(&self, node: &str, bytes: u64) -> Result<()> {
        self.run(
            "block_resize",
            Some(json!({"node-name": node, "size": bytes})),
        )
        .await
    }

    pub async fn set_io_throttle(&self, t: &Throttle) -> Result<()> {
        self.run("block_set_io_throttle", Some(t.args())).await
    }

    /// Inserts a read-only medium into the removable drive `device`.
    pub async fn change_medium(&self, device: &str, file: &str, format: &str) -> Result<()> {
        self.run(
            "blockdev-change-medium",
            Some(json!({"id": device, "filename": file, "format": format,
                        "read-only-mode": "read-only"})),
        )
        .await
    }

    pub async fn eject(&self, device: &str) -> Result<()> {
        self.run("eject", Some(json!({"id": device, "force": true})))
            .await
    }

    pub async fn nbd_server_start(&self, host: &str, port: u16) -> Result<()> {
        self.run(
            "nbd-server-start",
            Some(json!({"addr": {"type": "inet",
                                 "data": {"host": host, "port": port.to_string()}}})),
        )
        .await
    }

    pub async fn nbd_server_stop(&self) -> Result<()> {
        self.run("nbd-server-stop", None).await
    }

    /// Exports node `node` writable over the running NBD server, under its
    /// own name.
    pub async fn nbd_export(&self, node: &str) -> Result<()> {
        self.run(
            "block-export-add",
            Some(
                json!({"type": "nbd", "id": format!("exp-{node}"), "node-name": node,
                        "writable": true}),
            ),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_arguments() {
        let l = IoLimits {
            read_iops: Some(100),
            read_iops_burst: Some(200),
            write_bytes: Some(1 << 20),
            burst_seconds: Some(5),
            ..Default::default()
        };
        let t = Throttle {
            target: "disk1-dev".into(),
            group: "vm-disk1".into(),
            limits: l,
        };
        let a = t.args();
        assert_eq!(a["id"], "disk1-dev");
        assert_eq!(a["iops_rd"], 100);
        assert_eq!(a["iops_rd_max"], 200);
        assert_eq!(a["iops_rd_max_length"], 5);
        assert_eq!(a["bps_wr"], 1 << 20);
        assert_eq!(a["group"], "vm-disk1");
        assert!(a.get("bps_wr_max_length").is_none());
        let lifted = Throttle {
            limits: IoLimits::default(),
            ..t
        };
        assert_eq!(lifted.args()["iops_rd"], 0);
    }
}
