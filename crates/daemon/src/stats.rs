//! Usage counters of running instances (QMP, /proc, sysfs) and their
//! Prometheus exposition on `/metrics`.

use ferrovirt_api::{DiskStats, InstanceStats, NicStats};
use ferrovirt_core::Error;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::daemon::Daemon;

/// Clock ticks per second of /proc/PID/stat times.
const CLK_TCK: u64 = 100;

fn proc_cpu_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    ticks * (1_000_000_000 / CLK_TCK)
}

fn proc_rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn sysfs_u64(path: String) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Collects the counters of running instance `name`.
pub async fn collect(d: &Daemon, name: &str) -> Result<InstanceStats, Error> {
    let rec = d.record(name).await?;
    let rt = d
        .runtime(name)
        .ok_or_else(|| Error::conflict(format!("instance {name} is not running")))?;
    let m = rt.monitor();
    let balloon = m.query_balloon().await.ok().flatten();
    let vcpus = m
        .query_cpus_fast()
        .await
        .ok()
        .map(|c| c.len() as u32)
        .unwrap_or(rec.spec.cpus);
    let mut disks = Vec::new();
    for entry in m.query_blockstats().await.unwrap_or_default() {
        let Some(device) = entry
            .qdev
            .split('/')
            .find(|p| p.ends_with("-dev"))
            .map(|p| p.trim_end_matches("-dev").to_owned())
        else {
            continue;
        };
        disks.push(DiskStats {
            device,
            read_bytes: entry.read_bytes,
            write_bytes: entry.write_bytes,
            read_ops: entry.read_ops,
            write_ops: entry.write_ops,
        });
    }
    let nics = rec
        .spec
        .nics
        .iter()
        .filter_map(|n| n.mac.clone())
        .map(|mac| {
            let link = [
                ferrovirt_network::host::tap_name(&mac),
                ferrovirt_network::host::macvtap_name(&mac),
            ]
            .into_iter()
            .find(|l| ferrovirt_network::host::link_exists(l))
            .unwrap_or_default();
            // The host side's transmit is the guest's receive.
            NicStats {
                rx_bytes: sysfs_u64(format!("/sys/class/net/{link}/statistics/tx_bytes")),
                tx_bytes: sysfs_u64(format!("/sys/class/net/{link}/statistics/rx_bytes")),
                mac,
            }
        })
        .collect();
    Ok(InstanceStats {
        instance: name.to_owned(),
        cpu_time_ns: proc_cpu_ns(rt.pid()),
        rss_bytes: proc_rss_bytes(rt.pid()),
        balloon_bytes: balloon,
        vcpus,
        disks,
        nics,
    })
}

/// Counters of every running instance.
pub async fn collect_all(d: &Daemon) -> Vec<InstanceStats> {
    let mut out = Vec::new();
    for rec in d.store.list_instances().await.unwrap_or_default() {
        if d.runtime(&rec.spec.name).is_some()
            && let Ok(s) = collect(d, &rec.spec.name).await
        {
            out.push(s);
        }
    }
    out
}

type Labels = Vec<(String, String)>;

/// The Prometheus text exposition of `stats`.
pub fn exposition(stats: &[InstanceStats], defined: usize) -> String {
    let mut reg = Registry::with_prefix("ferrovirt");
    let gauge = |reg: &mut Registry, name: &str, help: &str| {
        let f = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        reg.register(name, help, f.clone());
        f
    };
    let instances = Gauge::<f64, AtomicU64>::default();
    reg.register("instances", "Defined instances", instances.clone());
    let running = Gauge::<f64, AtomicU64>::default();
    reg.register("instances_running", "Running instances", running.clone());
    let cpu = gauge(
        &mut reg,
        "instance_cpu_seconds",
        "CPU time used by the instance's QEMU",
    );
    let rss = gauge(
        &mut reg,
        "instance_memory_rss_bytes",
        "Resident memory of the instance's QEMU",
    );
    let balloon = gauge(
        &mut reg,
        "instance_balloon_bytes",
        "Memory the guest has after the balloon",
    );
    let vcpus = gauge(&mut reg, "instance_vcpus", "vCPUs present");
    let disk = gauge(
        &mut reg,
        "instance_disk_bytes",
        "Bytes read and written by a disk",
    );
    let disk_ops = gauge(
        &mut reg,
        "instance_disk_operations",
        "Read and write operations of a disk",
    );
    let net = gauge(
        &mut reg,
        "instance_network_bytes",
        "Bytes received and sent by a NIC (guest view)",
    );
    instances.set(defined as f64);
    running.set(stats.len() as f64);
    for s in stats {
        let l = |extra: &[(&str, &str)]| -> Labels {
            let mut v = vec![("instance".to_owned(), s.instance.clone())];
            v.extend(
                extra
                    .iter()
                    .map(|(k, val)| (k.to_string(), val.to_string())),
            );
            v
        };
        cpu.get_or_create(&l(&[])).set(s.cpu_time_ns as f64 / 1e9);
        rss.get_or_create(&l(&[])).set(s.rss_bytes as f64);
        if let Some(b) = s.balloon_bytes {
            balloon.get_or_create(&l(&[])).set(b as f64);
        }
        vcpus.get_or_create(&l(&[])).set(s.vcpus as f64);
        for dsk in &s.disks {
            disk.get_or_create(&l(&[("disk", &dsk.device), ("direction", "read")]))
                .set(dsk.read_bytes as f64);
            disk.get_or_create(&l(&[("disk", &dsk.device), ("direction", "write")]))
                .set(dsk.write_bytes as f64);
            disk_ops
                .get_or_create(&l(&[("disk", &dsk.device), ("direction", "read")]))
                .set(dsk.read_ops as f64);
            disk_ops
                .get_or_create(&l(&[("disk", &dsk.device), ("direction", "write")]))
                .set(dsk.write_ops as f64);
        }
        for n in &s.nics {
            net.get_or_create(&l(&[("mac", &n.mac), ("direction", "rx")]))
                .set(n.rx_bytes as f64);
            net.get_or_create(&l(&[("mac", &n.mac), ("direction", "tx")]))
                .set(n.tx_bytes as f64);
        }
    }
    let mut out = String::new();
    let _ = encode(&mut out, &reg);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_series_per_instance() {
        let s = InstanceStats {
            instance: "vm1".into(),
            cpu_time_ns: 2_500_000_000,
            rss_bytes: 1000,
            balloon_bytes: Some(2000),
            vcpus: 2,
            disks: vec![DiskStats {
                device: "disk0".into(),
                read_bytes: 1,
                write_bytes: 2,
                read_ops: 3,
                write_ops: 4,
            }],
            nics: vec![],
        };
        let text = exposition(&[s], 3);
        assert!(
            text.contains("ferrovirt_instance_cpu_seconds{instance=\"vm1\"} 2.5"),
            "{text}"
        );
        assert!(text.contains("\nferrovirt_instances 3"), "{text}");
        assert!(
            text.contains("disk=\"disk0\",direction=\"write\"} 2"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
