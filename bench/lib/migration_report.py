#!/usr/bin/env python3
"""Turns bench/migration.sh's raw JSON into the Markdown report.

Usage: migration_report.py RAW.json OUT.md
"""
from __future__ import annotations

import json
import sys

LABELS = {"floor": "floor", "ferrovirt": "Ferrovirt", "libvirt": "libvirt",
          "floor_capped": "floor, 128 MiB/s cap"}


def median(xs):
    s = sorted(x for x in xs if x is not None)
    n = len(s)
    if n == 0:
        return None
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def fmt(v, unit="ms"):
    if v is None:
        return "–"
    if unit == "ms" and v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 100:
        return f"{v:.0f} {unit}"
    return f"{v:.1f} {unit}" if isinstance(v, float) else f"{v} {unit}"


def cell(xs, unit="ms"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    m = fmt(median(xs), unit)
    if len(xs) > 1:
        return f"{m} ({fmt(min(xs), unit)}–{fmt(max(xs), unit)})"
    return m


def ratio(a, b):
    if a is None or b in (None, 0):
        return "–"
    return f"{a / b:.2f}"


def main() -> int:
    d = json.load(open(sys.argv[1]))
    meta = d["meta"]
    sides = d["sides"]
    samples = d["samples"]
    L = []
    w = L.append
    w("# Live migration: Ferrovirt vs libvirt vs QEMU by hand\n")
    w(f"Run of {meta.get('date_utc', '?')}"
      f"{' (**--quick**: N = 1, figures not meant to be quoted)' if meta.get('quick') else ''}: "
      f"N = {d['runs']} per size and manager, guest sizes {', '.join(str(s) + ' MiB' for s in d['sizes'])}, "
      f"workload warm-up {d['warmup_s']:g} s. {meta.get('duration_s', '?')} s of measuring, "
      f"{meta.get('script_seconds', '?')} s for the whole script. "
      "See docs/benchmarks-migration.md for what each figure means.\n")
    w(f"- ferrovirtd: `{meta.get('ferrovirtd_binary')}` ({meta.get('profile')}, built "
      f"{meta.get('ferrovirtd_binary_mtime')}{', OLDER than the sources' if meta.get('ferrovirtd_binary_stale') else ''}), "
      f"workspace HEAD {meta.get('ferrovirt_commit')}")
    w(f"- QEMU {meta.get('qemu_version')}; libvirt "
      f"{meta.get('libvirt_version') or 'SKIPPED: ' + str(meta.get('libvirt_skipped'))}")
    w(f"- {meta.get('cpus')} CPUs ({meta.get('cpu_model')}), "
      f"{meta.get('mem_total_kib', 0) / 1048576:.1f} GiB, Linux {meta.get('kernel')}, TCG")
    w(f"- load: at start `{meta.get('uptime_at_start')}`; at end `{meta.get('uptime_at_end', '?')}`")
    fl = d.get("foreign_load") or {}
    if fl:
        w(f"- sampled every second ({fl.get('samples')} samples): 1-min load median "
          f"{fl.get('loadavg_1min_median')}, max {fl.get('loadavg_1min_max')}; seconds with other "
          f"QEMUs running: {fl.get('with_foreign_qemu')}; with cargo/rustc/tests: "
          f"{fl.get('with_cargo_rustc_or_tests')}")
        if fl.get("with_foreign_qemu") or fl.get("with_cargo_rustc_or_tests"):
            w("- **warning**: other work ran during this run; the figures are noisier")
    if d.get("floor_argv_differences") is not None:
        diff = d["floor_argv_differences"]
        w(f"- floor argv vs the QEMU ferrovirtd ran: "
          f"{'same options and values (paths and names aside)' if not diff else 'DIFFERENT: ' + '; '.join(diff)}")
    if d.get("ferrovirt_trust_ms") is not None:
        w(f"- before the first Ferrovirt run: B trusted A through a join token and an offline migration "
          f"({d['ferrovirt_trust_ms']:.0f} ms, not counted)")
    w("")

    for s in samples:  # QEMU done on A → resumed on B (not for libvirt: its downtime differs)
        if s["side"] != "libvirt" and s.get("stop_to_resume_ms") is not None \
                and s.get("downtime_ms") is not None:
            s["done_to_resume_ms"] = round(s["stop_to_resume_ms"] - s["downtime_ms"], 3)

    def get(side, mem, key):
        return [s.get(key) for s in samples if s["side"] == side and s["memory_mib"] == mem]

    for mem in d["sizes"]:
        w(f"## {mem} MiB guest\n")
        hdr = "| Figure (median, min–max) | " + " | ".join(LABELS.get(s, s) for s in sides)
        hdr += " | Ferrovirt ÷ floor | Ferrovirt ÷ libvirt |"
        w(hdr)
        w("|---" * (len(sides) + 3) + "|")
        for key, label in (("total_ms", "**Total**: request → guest runs on B, source gone"),
                           ("downtime_ms", "**Downtime** as reported (QEMU's; libvirt: computed by libvirt, see docs)"),
                           ("pause_ms", "**Guest pause**: last heartbeat on A → first on B"),
                           ("stop_to_resume_ms", "… of which last beat on A → resumed on B"),
                           ("done_to_resume_ms", "… … of which QEMU done on A → resumed on B (minus QEMU's downtime)"),
                           ("resume_to_first_beat_ms", "… and resumed on B → first beat on B"),
                           ("max_gap_ms", "(longest heartbeat gap while migrating)"),
                           ("baseline_max_gap_ms", "(longest heartbeat gap before migrating)")):
            row = f"| {label} | " + " | ".join(cell(get(s, mem, key)) for s in sides)
            fv = median(get("ferrovirt", mem, key))
            row += f" | {ratio(fv, median(get('floor', mem, key)))}"
            lr = ratio(fv, median(get('libvirt', mem, key))) if 'libvirt' in sides else '–'
            if key == "downtime_ms" and lr != "–":
                lr = f"({lr}: libvirt computes its own)"
            row += f" | {lr} |"
            if key in ("baseline_max_gap_ms", "max_gap_ms", "resume_to_first_beat_ms"):
                row = row.rsplit("|", 3)[0] + "| – | – |"
            w(row)
        w("")
        # details
        fv = [s for s in samples if s["side"] == "ferrovirt" and s["memory_mib"] == mem]
        if fv:
            def first(s, prefix):
                return next((t for t, st in s.get("stages", []) if st.startswith(prefix)), None)
            w(f"- Ferrovirt (polled every 20 ms): POST answered in {cell([s.get('post_ms') for s in fv])}; "
              f"instance on B paused, its QEMU listening, at "
              f"{cell([first(s, 'B: paused') for s in fv])}; operation stage \"migrating memory\" "
              f"first reported at {cell([first(s, 'migrating memory') for s in fv])}")
        for key in ("floor", "floor_capped"):
            fs = [s for s in samples if s["side"] == key and s["memory_mib"] == mem]
            if fs:
                ram = [s.get("ram") or {} for s in fs]
                peaks = [s["peak_dirty_pages_rate"] * 4096 / 1048576
                         for s in fs if s.get("peak_dirty_pages_rate")]
                w(f"- {LABELS[key]}: destination spawned in {cell([s.get('dest_spawn_ms') for s in fs])}, "
                  f"migrate → completed {cell([s.get('migrate_ms') for s in fs])}, "
                  f"`cont` on B {cell([s.get('cont_after_completed_ms') for s in fs])} after that, "
                  f"source gone {cell([s.get('source_gone_after_cont_ms') for s in fs])} later; "
                  f"sent {cell([r.get('transferred', 0) / 1048576 for r in ram], 'MiB')}, "
                  f"{cell([r.get('dirty-sync-count') for r in ram], 'passes')}, "
                  + (f"peak dirty rate {cell(peaks, 'MiB/s')} (`dirty-pages-rate`), " if any(peaks) else "") +
                  f"{cell([r.get('mbps') for r in ram], 'Mbit/s')} at the end")
        ls = [s for s in samples if s["side"] == "libvirt" and s["memory_mib"] == mem]
        if ls:
            def num(s, k):
                v = (s.get("domjobinfo") or {}).get(k, "").split()
                try:
                    x = float(v[0])
                    if len(v) > 1 and v[1] == "GiB":
                        x *= 1024
                    elif len(v) > 1 and v[1] == "KiB":
                        x /= 1024
                    return x
                except (IndexError, ValueError):
                    return None
            w(f"- libvirt (`domjobinfo --completed` on B): time elapsed "
              f"{cell([num(s, 'Time elapsed') for s in ls])}, memory processed "
              f"{cell([num(s, 'Memory processed') for s in ls], 'MiB')}, "
              f"{cell([num(s, 'Iteration') for s in ls], 'passes')}, bandwidth "
              f"{cell([num(s, 'Memory bandwidth') for s in ls], 'MiB/s')}")
        rates = []
        for s in samples:
            if s["memory_mib"] == mem and s.get("guest_uptime_s"):
                up0, up1 = s["guest_uptime_s"]
                if up1 > up0:
                    rates.append(s.get("workload_loops", 0) * 64 / (up1 - up0))
        w(f"- workload: 64 MiB rewrites completed per second of guest time (a lower bound of its "
          f"dirtying rate, partial rewrites not counted): {cell(rates, 'MiB/s')}")
        w("")
    if d["errors"]:
        w("## Failures\n")
        for e in d["errors"]:
            w(f"- {LABELS.get(e['side'], e['side'])}, {e['memory_mib']} MiB, run {e['run']}: "
              f"`{e['error'].strip().splitlines()[-1][:400]}`")
        w("")
    w("Raw samples: `migration-latest.json` (per run: total, downtime, pause and where it fell, "
      "the baseline gap, the floor's `query-migrate` RAM counters, libvirt's `domjobinfo`, "
      "Ferrovirt's operation stages).")
    open(sys.argv[2], "w").write("\n".join(L) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
