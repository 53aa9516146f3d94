#!/usr/bin/env python3
"""Turns the raw JSON of fvbench.py into the Markdown results.

Usage: report.py RAW.json OUT.md   (also prints the Markdown to stdout)

Adds the medians, ratios and target verdicts to RAW.json (key "summary").
"""
from __future__ import annotations

import json
import math
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


def fmt_kib(v):
    if v is None:
        return "–"
    return f"{v / 1024:.1f} MiB"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}x"


COLS = [("floor", "raw QEMU (floor)"), ("fv_api", "Ferrovirt API"),
        ("fv_cli", "ferrovirt CLI"), ("lv_api", "libvirt API"), ("lv_virsh", "virsh")]


def main() -> int:
    raw_path, md_path = Path(sys.argv[1]), Path(sys.argv[2])
    raw = json.loads(raw_path.read_text())
    S = raw["samples_ms"]
    cfg, meta, rss = raw["config"], raw["meta"], raw["rss_kib"]
    med = {k: median(v) for k, v in S.items()}
    n = {k: len(v) for k, v in S.items()}
    m = lambda k: med.get(k)  # noqa: E731
    M, R = cfg["instances"], cfg["running"]

    rows = [
        ("start", "Start: request → vCPUs running"),
        ("ready", "Boot to ready: start request → guest's ready marker on the serial log"),
        ("stop_force", "Stop, forced (SIGKILL / `virsh destroy`) until QEMU is gone"),
        ("stop_graceful", "Stop, graceful (ACPI power button) until QEMU is gone"),
        ("create", "Create / define one instance"),
        ("list", f"List with {M + 1} defined instances"),
        ("list_state", f"List with {M + 1}, libvirt API + each domain's state"),
        ("noop", "CLI process start-up (`--version`), for reference"),
        (f"start_{R}_serial", f"Start {R} instances one after the other"),
        (f"ready_{R}_all", f"… until all {R} guests are ready"),
    ]
    out = []
    w = out.append
    w("# Ferrovirt benchmark results\n")
    w(f"Run: {meta.get('date')} · mode: {'quick' if meta.get('quick') else 'full'} · "
      f"N = {cfg['runs']} runs per figure (create: one sample per instance, {M} per side) · "
      f"guest: {cfg['memory_mib']} MiB, 1 vCPU, q35, TCG, no disk, no NIC.\n")
    w(f"Machine: {meta.get('cpus')} × {meta.get('cpu_model')}, "
      f"{meta.get('mem_total_kib', 0) / 1048576:.1f} GiB, Linux {meta.get('kernel')}. "
      f"QEMU {meta.get('qemu_version', '?')}, libvirt {meta.get('libvirt_version', 'skipped')}, "
      f"Ferrovirt {meta.get('ferrovirt_commit', '?')} (HEAD at run time; {meta.get('profile', '?')} "
      f"build of {meta.get('ferrovirtd_binary_mtime', '?')}).\n")
    w("## Latency (median, lower is better)\n")
    w("| Operation | " + " | ".join(c[1] for c in COLS) + " |")
    w("|---|" + "---:|" * len(COLS))
    for key, label in rows:
        cells = []
        any_ = False
        for c, _ in COLS:
            k = f"{key}.{c}"
            if k.startswith(f"start_{R}_serial.") or k.startswith(f"ready_{R}_all."):
                k = f"{key}.{'fv' if c == 'fv_api' else 'lv' if c == 'lv_virsh' else '-'}"
            v = m(k)
            any_ = any_ or v is not None
            cells.append(fmt_ms(v))
        if any_:
            w(f"| {label} | " + " | ".join(cells) + " |")
    w("")
    w(f"For the {R}-instance rows: Ferrovirt through the API, libvirt through virsh.")
    w("")

    # ---- ratios
    w("## Ratios (Ferrovirt ÷ other; below 1 means Ferrovirt is faster)\n")
    w("| Operation | Ferrovirt API ÷ floor | Ferrovirt API ÷ libvirt API | "
      "ferrovirt CLI ÷ virsh | Ferrovirt API ÷ virsh |")
    w("|---|---:|---:|---:|---:|")
    summary = {"medians_ms": med, "counts": n, "ratios": {}, "targets": []}
    for key, label in rows[:7]:
        if key == "list_state":  # GET /1.0/instances already carries the states
            r = {"api_vs_floor": None, "api_vs_lv_api": ratio(m("list.fv_api"), m("list_state.lv_api")),
                 "cli_vs_virsh": None, "api_vs_virsh": None}
            summary["ratios"][key] = r
            w(f"| {label} (vs GET /1.0/instances) | " + " | ".join(fmt_ratio(v) for v in r.values()) + " |")
            continue
        r = {
            "api_vs_floor": ratio(m(f"{key}.fv_api"), m(f"{key}.floor")),
            "api_vs_lv_api": ratio(m(f"{key}.fv_api"), m(f"{key}.lv_api")),
            "cli_vs_virsh": ratio(m(f"{key}.fv_cli"), m(f"{key}.lv_virsh")),
            "api_vs_virsh": ratio(m(f"{key}.fv_api"), m(f"{key}.lv_virsh")),
        }
        summary["ratios"][key] = r
        if any(v is not None for v in r.values()):
            w(f"| {label.split(':')[0]} | " + " | ".join(fmt_ratio(v) for v in r.values()) + " |")
    w("")

    # ---- memory
    def mem(v, who, field="VmRSS"):
        d = v.get(who)
        return d.get(field) if isinstance(d, dict) else None

    w("## Daemon memory\n")
    w("VmRSS as asked; RssAnon is its private (heap, stacks) part, which does not depend on "
      "how much of the binaries and libraries the page cache holds (see docs/benchmarks.md).\n")
    w("| State | ferrovirtd VmRSS | libvirtd VmRSS | ratio | ferrovirtd RssAnon | "
      "libvirtd RssAnon | ratio |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    order = ["idle"] + sorted([k for k in rss if k.startswith("defined_")],
                              key=lambda s: int(s.split("_")[1]))
    order += [k for k in rss if k.startswith("running_")]
    labels = {"idle": "idle (fresh daemon, no instance)"}
    for k in order:
        v = rss[k]
        lab = labels.get(k)
        if lab is None and k.startswith("defined_"):
            lab = f"{k.split('_')[1]} instances defined"
        if lab is None and k.startswith("running_"):
            lab = f"{k.split('_')[1]} instances running (of {cfg['rss_defined']} defined)"
        cells = []
        for field in ("VmRSS", "RssAnon"):
            a, b = mem(v, "ferrovirtd", field), mem(v, "libvirtd", field)
            cells += [fmt_kib(a), fmt_kib(b), fmt_ratio(ratio(a, b))]
        w(f"| {lab} | " + " | ".join(cells) + " |")
    for k in [k for k in rss if k.startswith("running_")]:
        v = rss[k]
        w("")
        w(f"QEMU processes with {k.split('_')[1]} running: Ferrovirt's "
          f"{fmt_kib(mem(v, 'qemu_total_fv'))}, libvirt's {fmt_kib(mem(v, 'qemu_total_lv'))} "
          "(sum of VmRSS).")
    w("")

    # ---- targets
    def target(name, value, limit, lower_is_better=True, how=""):
        if value is None:
            verdict = "not measured"
        else:
            ok = value <= limit if lower_is_better else value >= limit
            verdict = "**met**" if ok else "**not met**"
        summary["targets"].append({"target": name, "value": value, "limit": limit,
                                   "verdict": verdict.strip("*"), "how": how})
        return f"| {name} | {how} | {fmt_ratio(value)} | {verdict} |"

    def speedup(slow, fast):
        return None if slow is None or fast in (None, 0) else slow / fast

    w("## Targets\n")
    w("| Target | Compared | Measured | Verdict |")
    w("|---|---|---:|---|")
    w(target("start ≤ 1.2 × floor", ratio(m("start.fv_api"), m("start.floor")), 1.2,
             how="Ferrovirt API ÷ floor"))
    w(target("start ≤ 0.5 × libvirt", ratio(m("start.fv_api"), m("start.lv_virsh")), 0.5,
             how="Ferrovirt API (PUT) ÷ `virsh start` (as specified)"))
    w(target("start ≤ 0.5 × libvirt (CLI vs CLI)", ratio(m("start.fv_cli"), m("start.lv_virsh")),
             0.5, how="`ferrovirt start` ÷ `virsh start`"))
    w(target("start ≤ 0.5 × libvirt (API vs API)", ratio(m("start.fv_api"), m("start.lv_api")),
             0.5, how="Ferrovirt API ÷ libvirt API (`virDomainCreate`)"))
    w(target("create ≥ 5 × faster than virsh", speedup(m("create.lv_virsh"), m("create.fv_cli")),
             5, False, how="`virsh define` ÷ `ferrovirt create` (speed-up)"))
    w(target("create ≥ 5 × faster (API vs API)", speedup(m("create.lv_api"), m("create.fv_api")),
             5, False, how="`virDomainDefineXML` ÷ POST /1.0/instances (speed-up)"))
    w(target(f"list ({M + 1}) ≥ 5 × faster than virsh", speedup(m("list.lv_virsh"), m("list.fv_cli")),
             5, False, how="`virsh list --all` ÷ `ferrovirt list` (speed-up)"))
    w(target(f"list ({M + 1}) ≥ 5 × faster (API vs API)", speedup(m("list.lv_api"), m("list.fv_api")),
             5, False, how="`virConnectListAllDomains` ÷ GET /1.0/instances (speed-up)"))
    w(target(f"list ({M + 1}) ≥ 5 × faster (API vs API, with states)",
             speedup(m("list_state.lv_api"), m("list.fv_api")), 5, False,
             how="`virConnectListAllDomains` + `virDomainGetState` each ÷ GET /1.0/instances (speed-up)"))
    idle = rss.get("idle", {})
    w(target("idle RSS < 0.25 × libvirtd", ratio(mem(idle, "ferrovirtd"), mem(idle, "libvirtd")),
             0.25, how="ferrovirtd ÷ libvirtd VmRSS, idle"))
    w(target("idle RSS < 0.25 × libvirtd (private part)",
             ratio(mem(idle, "ferrovirtd", "RssAnon"), mem(idle, "libvirtd", "RssAnon")),
             0.25, how="ferrovirtd ÷ libvirtd RssAnon, idle"))
    w("")
    w("Ratios are of medians. \"Speed-up\" is libvirt's median ÷ Ferrovirt's (higher is better).")
    fl = meta.get("create_first_last_10pct_median_ms")
    if fl:
        w("")
        w("Create latency as the store fills (median of the first vs the last 10% of the "
          f"{M} creates): " + "; ".join(f"{k.split('.')[1]} {fmt_ms(v[0])} → {fmt_ms(v[1])}"
                                        for k, v in fl.items()) + ".")
    if "floor_argv_same_options" in meta:  # results of older versions of fvbench.py
        w("")
        w("Floor argv = Ferrovirt's argv (options and values, paths aside): "
          f"{'yes' if meta['floor_argv_same_options'] else 'NO (see latest.json)'}.")
    if "floor_argv_is_golden" in meta:
        w("")
        w("Floor argv: the argv of the QEMU ferrovirtd launched, instance paths, name and "
          "UUID aside; " + ("the same as crates/qemu/tests/golden/direct_kernel_boot_tcg.argv."
                            if meta["floor_argv_is_golden"] else
                            "it differs from crates/qemu/tests/golden/direct_kernel_boot_tcg.argv "
                            "(see latest.json).") )
    fa = meta.get("foreign_activity")
    if fa and (fa.get("with_foreign_qemu") or fa.get("with_cargo_or_rustc")):
        w("")
        w(f"**Warning: the host was not quiet.** Of {fa['samples']} one-second samples, "
          f"{fa['with_foreign_qemu']} saw QEMUs this run did not start and "
          f"{fa['with_cargo_or_rustc']} saw cargo/rustc running (max 1-min load "
          f"{fa['max_loadavg_1min']:.2f}). Latencies are inflated; rerun on a quiet host.")
    for note in raw.get("notes", []):
        w("")
        w(f"Note: {note}")
    w("")
    w("Sample counts: " + ", ".join(f"{k} {v}" for k, v in sorted(n.items())) + ".")
    w("")
    md = "\n".join(out)
    md_path.write_text(md)
    raw["summary"] = summary
    raw_path.write_text(json.dumps(raw, indent=1, default=lambda x: None
                                   if isinstance(x, float) and math.isnan(x) else x))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
