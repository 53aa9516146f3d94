#!/usr/bin/env python3
"""Turns the raw JSON of snapnet.py into bench/results/snapnet-latest.md.

Usage: snapnet_report.py RAW.json OUT.md   (also prints the Markdown)

Adds medians and ratios to RAW.json (key "summary").
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def median(xs):
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return None
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def fmt_ms(v):
    if v is None:
        return "–"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 100:
        return f"{v:.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    return f"{v:.2f} ms"


def fmt_rate(v):
    if v is None:
        return "–"
    return f"{v:.1f} MiB/s" if v < 100 else f"{v:.0f} MiB/s"


def fmt_size(b):
    if b is None:
        return "–"
    if b >= 1 << 20:
        return f"{b / (1 << 20):.1f} MiB"
    if b >= 1 << 10:
        return f"{b / 1024:.0f} KiB"
    return f"{b} B"


def cell(xs, fmt):
    """median, with the spread when there are several samples."""
    if not xs:
        return "–"
    m = median(xs)
    if len(xs) == 1:
        return fmt(m)
    return f"{fmt(m)} ({fmt(min(xs))}–{fmt(max(xs))})"


SNAP_ROWS = [
    ("snap_mem_create", "Internal snapshot **with memory**, running VM",
     "`snapshot create VM mN`", "`snapshot-create-as VM mN`"),
    ("snap_mem_revert", "Revert to it, running VM (memory restored)",
     "`snapshot revert VM mN`", "`snapshot-revert VM mN`"),
    ("snap_mem_delete", "Delete that snapshot (running VM)",
     "`snapshot delete VM mN`", "`snapshot-delete VM mN`"),
    ("snap_disk_create", "Internal disk-only snapshot, **stopped** VM",
     "`snapshot create VM dN`", "`snapshot-create-as VM dN`"),
    ("snap_disk_delete", "Delete it (stopped VM)",
     "`snapshot delete VM dN`", "`snapshot-delete VM dN`"),
    ("snap_ext_create", "**External** disk-only snapshot, running VM",
     "`snapshot create VM eN --external --no-memory`",
     "`snapshot-create-as VM eN --disk-only --atomic`"),
    ("snap_ext_delete", "Delete it (merge the overlay back, running VM)",
     "`snapshot delete VM eN`", "`snapshot-delete VM eN`"),
    ("managedsave", "Managed save (memory to the daemon's file, QEMU stops)",
     "`save VM`", "`managedsave VM`"),
    ("managedsave_start", "… start, resuming the managed save",
     "`start VM`", "`start VM`"),
    ("save_file", "Save to a file", "`save VM --file F`", "`save VM F`"),
    ("restore_file", "Restore from that file", "`restore F`", "`restore F`"),
]

NET_ROWS = [
    ("net_create", "cli", "Create + start a NAT network (CLI)",
     "`network create N --type nat --ipv4 10.123.x.1/24`", "`net-define F` + `net-start N`"),
    ("net_delete", "cli", "Stop + delete it (CLI)",
     "`network delete N`", "`net-destroy N` + `net-undefine N`"),
    ("net_create", "api", "Create + start (API)",
     "`POST /1.0/networks`", "`virNetworkDefineXML` + `virNetworkCreate`"),
    ("net_delete", "api", "Stop + delete (API)",
     "`DELETE /1.0/networks/N`", "`virNetworkDestroy` + `virNetworkUndefine`"),
]

TPUT_ROWS = [
    ("tput_g2h", "Guest → host (guest `dd \\| nc` → Python sink on the bridge address)"),
    ("tput_h2g", "Host → guest (Python source → guest `nc -l`)"),
    ("tput_g2g", "Guest → guest, same bridge (`dd \\| nc` → `nc -l`)"),
    ("tput_loopback", "Reference: guest → itself over its loopback (no NIC)"),
    ("tput_pipe", "Reference: `dd \\| cat` inside the guest (no network)"),
]


def main() -> int:
    raw_path, md_path = Path(sys.argv[1]), Path(sys.argv[2])
    raw = json.loads(raw_path.read_text())
    S, meta, cfg = raw["samples"], raw["meta"], raw["config"]
    sizes, checks, errors = raw.get("sizes", {}), raw.get("checks", {}), raw.get("errors", {})
    med = {k: median(v) for k, v in S.items()}
    summary = {"medians": med, "counts": {k: len(v) for k, v in S.items()}, "ratios": {}}
    out = []
    w = out.append

    def ratio(a, b):
        return None if a is None or b in (None, 0) else a / b

    def verdict(r, lower_is_better=True):
        if r is None:
            return "–"
        if 0.95 <= r <= 1.05:
            return "same (±5%)"
        fv_better = r < 1 if lower_is_better else r > 1
        if lower_is_better:
            return f"Ferrovirt, {1 / r:.1f}×" if fv_better else f"libvirt, {r:.1f}×"
        return f"Ferrovirt, {r:.2f}×" if fv_better else f"libvirt, {1 / r:.2f}×"

    w("# Ferrovirt vs libvirt: snapshots, save/restore, networks\n")
    fa = meta.get("foreign_activity", {})
    w(f"Run: {meta.get('date')} · mode: {'quick' if meta.get('quick') else 'full'} · "
      f"N = {cfg['runs']} per snapshot/save figure, {cfg['net_runs']} per network figure, "
      f"{cfg['tput_runs']} × {cfg['tput_mib']} MiB per throughput figure · guest: "
      f"{cfg['memory_mib']} MiB, 1 vCPU, q35, TCG (the project's busybox test guest).\n")
    w(f"Machine: {meta.get('cpus')} × {meta.get('cpu_model')}, "
      f"{meta.get('mem_total_kib', 0) / 1048576:.1f} GiB, Linux {meta.get('kernel')}. "
      f"QEMU {meta.get('qemu_version', '?')}, libvirt {meta.get('libvirt_version') or 'skipped'}, "
      f"Ferrovirt {meta.get('ferrovirt_commit', '?')} ({meta.get('profile', '?')} build of "
      f"{meta.get('ferrovirtd_binary_mtime', '?')}). Load average at start "
      f"{' '.join(meta.get('loadavg_at_start', []))}, at end {' '.join(meta.get('loadavg_at_end', []))}; "
      f"max 1-min load during the run {fa.get('max_loadavg_1min', 0):.2f}. "
      f"Section times: " + ", ".join(f"{k} {v:.0f} s" for k, v in meta.get("section_seconds", {}).items())
      + ".\n")
    if meta.get("libvirt_skipped"):
        w(f"**libvirt skipped:** {meta['libvirt_skipped']}\n")
    if meta.get("libvirt_network_skipped"):
        w(f"**libvirt networks skipped:** {meta['libvirt_network_skipped']}\n")
    if fa.get("with_foreign_qemu") or fa.get("with_cargo_or_rustc") or meta.get("other_bench_running_at_start"):
        w(f"**Warning: the host was not quiet.** Of {fa.get('samples')} one-second samples, "
          f"{fa.get('with_foreign_qemu')} saw QEMUs this run did not start and "
          f"{fa.get('with_cargo_or_rustc')} saw cargo/rustc running"
          f"{'; bench/run.sh was running at the start' if meta.get('other_bench_running_at_start') else ''}. "
          "Figures are inflated and noisier than on a quiet host.\n")

    # ---- snapshots
    if any(k.startswith(("snap_", "managedsave", "save_", "restore_")) for k in S):
        w("## A. Snapshots and save/restore (median, min–max; lower is better)\n")
        w("VM with a 256 MiB qcow2 data disk (virtio). Ferrovirt through its CLI (`ferrovirt …`), "
          "libvirt through virsh; each command returns once the operation is done.\n")
        w("| Operation | Ferrovirt | libvirt | Ferrovirt ÷ libvirt | Faster |")
        w("|---|---:|---:|---:|---|")
        for key, label, _, _ in SNAP_ROWS:
            a, b = S.get(f"{key}.fv", []), S.get(f"{key}.lv", [])
            if not a and not b and f"{key}.fv" not in errors and f"{key}.lv" not in errors:
                continue
            r = ratio(med.get(f"{key}.fv"), med.get(f"{key}.lv"))
            summary["ratios"][key] = r
            ca = cell(a, fmt_ms) if a else ("**failed**" if f"{key}.fv" in errors else "–")
            cb = cell(b, fmt_ms) if b else ("**failed**" if f"{key}.lv" in errors else "–")
            w(f"| {label} | {ca} | {cb} | {'–' if r is None else f'{r:.2f}'} | {verdict(r)} |")
        w("")
        w("<details><summary>Commands</summary>\n")
        w("| Operation | ferrovirt | virsh |")
        w("|---|---|---|")
        for _, label, f, l in SNAP_ROWS:
            w(f"| {label.replace('**', '')} | {f} | {l} |")
        w("\n</details>\n")
        if sizes:
            w("Sizes (first run):\n")
            w("| What | Ferrovirt | libvirt |")
            w("|---|---:|---:|")
            for key, label in [("vm_state_size", "Memory state inside the qcow2 (`vm-state-size`)"),
                               ("qcow2_growth_mem_snapshot", "qcow2 file growth from one memory snapshot"),
                               ("managedsave_file", "Managed save file"),
                               ("save_file", "`save --file` / `virsh save` file")]:
                a, b = sizes.get(f"{key}.fv"), sizes.get(f"{key}.lv")
                if a is not None or b is not None:
                    w(f"| {label} | {fmt_size(a)} | {fmt_size(b)} |")
            w("")
        ex = raw.get("extra", {})
        if ex.get("ext_overlay_files.fv") or ex.get("ext_overlay_files.lv"):
            w(f"External snapshot overlay files: Ferrovirt {ex.get('ext_overlay_files.fv')}, "
              f"libvirt {ex.get('ext_overlay_files.lv')}; disk directory after the delete: "
              f"Ferrovirt {ex.get('ext_files_after_delete.fv')}, libvirt "
              f"{ex.get('ext_files_after_delete.lv')}.\n")

    # ---- networks
    if any(k.startswith("net_") for k in S):
        w("## B1. Network create / delete (median, min–max; lower is better)\n")
        w("A NAT network with a bridge, the host's address, DHCP and DNS (dnsmasq) and "
          "masquerading; each daemon in its own network namespace.\n")
        w("| Operation | Ferrovirt | libvirt | Ferrovirt ÷ libvirt | Faster |")
        w("|---|---:|---:|---:|---|")
        for key, via, label, _, _ in NET_ROWS:
            fk, lk = (f"{key}.fv_cli", f"{key}.lv_virsh") if via == "cli" else (f"{key}.fv_api", f"{key}.lv_api")
            a, b = S.get(fk, []), S.get(lk, [])
            if not a and not b:
                continue
            r = ratio(med.get(fk), med.get(lk))
            summary["ratios"][f"{key}_{via}"] = r
            w(f"| {label} | {cell(a, fmt_ms)} | {cell(b, fmt_ms)} | "
              f"{'–' if r is None else f'{r:.2f}'} | {verdict(r)} |")
        parts = [("net_define.lv_virsh", "`net-define`"), ("net_start.lv_virsh", "`net-start`"),
                 ("net_destroy.lv_virsh", "`net-destroy`"), ("net_undefine.lv_virsh", "`net-undefine`")]
        if any(S.get(k) for k, _ in parts):
            w("")
            w("virsh steps (median): " + ", ".join(f"{n} {fmt_ms(med.get(k))}" for k, n in parts) + ".")
        w("")

    # ---- throughput
    if any(k.startswith(("tput_", "dhcp_")) for k in S):
        w("## B2. Throughput through TAP + Linux bridge (median, min–max; higher is better)\n")
        w(f"virtio-net, **no vhost-net** (`/dev/vhost-net` "
          f"{'exists' if meta.get('vhost_net_present') else 'does not exist on this host'}), "
          f"{cfg['tput_mib']} MiB per sample; busybox tools in a TCG guest, so these are "
          "emulation-bound figures, not what the same setup does under KVM.\n")
        w("| Path | Ferrovirt | libvirt | Ferrovirt ÷ libvirt | Faster |")
        w("|---|---:|---:|---:|---|")
        for key, label in TPUT_ROWS:
            a, b = S.get(f"{key}.fv", []), S.get(f"{key}.lv", [])
            if not a and not b:
                continue
            r = ratio(med.get(f"{key}.fv"), med.get(f"{key}.lv"))
            summary["ratios"][key] = r
            w(f"| {label} | {cell(a, fmt_rate)} | {cell(b, fmt_rate)} | "
              f"{'–' if r is None else f'{r:.2f}'} | {verdict(r, lower_is_better=False)} |")
        a, b = S.get("dhcp_lease.fv", []), S.get("dhcp_lease.lv", [])
        if a or b:
            w(f"| DHCP lease in the guest (`udhcpc`, time; lower is better) | {cell(a, fmt_ms)} | "
              f"{cell(b, fmt_ms)} | – | – |")
        w("")
        ex = raw.get("extra", {})
        for side, who in (("fv", "Ferrovirt"), ("lv", "libvirt")):
            if ex.get(f"qemu_nic_args.{side}"):
                w(f"{who}'s QEMU NIC options: `{' '.join(ex[f'qemu_nic_args.{side}'])}`")
                w("")
        if not ex.get("qemu_nic_args.fv"):
            pass
        w("Ferrovirt adds its NICs over QMP after QEMU starts (`netdev_add` of a TAP fd, "
          "`device_add` on a PCIe root port), so its argv has none.\n")

    # ---- checks and errors
    if checks:
        w("## Checks\n")
        for k, v in sorted(checks.items()):
            w(f"- `{k}`: {v}")
        w("")
    if errors:
        w("## Failures\n")
        for k, v in sorted(errors.items()):
            w(f"- `{k}`: {v}")
        w("")
    again = {k: v for k, v in raw.get("extra", {}).get("guest_commands_sent_again", {}).items() if v}
    if again:
        w("Guest commands sent again after getting no answer (the test guest's init dropped a "
          "command line it had received; see the docs): "
          + ", ".join(f"{'Ferrovirt' if k == 'fv' else 'libvirt'} {v}" for k, v in again.items())
          + ". These are harness retries, not part of any timed figure.\n")
    for note in raw.get("notes", []):
        w(f"Note: {note}\n")
    w("Sample counts: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(S.items())) + ".")
    w("")
    md = "\n".join(out)
    md_path.write_text(md)
    raw["summary"] = summary
    raw_path.write_text(json.dumps(raw, indent=1))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
