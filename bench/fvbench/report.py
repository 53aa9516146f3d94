"""The results: each suite's raw JSON (with a "summary" of medians and
ratios) and its Markdown tables, as docs/benchmarks*.md show them. Every
table is one `table()` of rows [label, figure, ...]."""
from __future__ import annotations

from .snapnet import SNAP_ROWS
from .stats import (MIB, bin_line, cell, counts, fmt_kib, fmt_ms, fmt_ratio, fmt_size, fmt_unit,
                    machine_line, median, not_quiet, ratio, row, table, verdict)


# ------------------------------------------------------------------ lifecycle

COLS = [("floor", "raw QEMU (floor)"), ("fv_api", "Ferrovirt API"), ("fv_cli", "ferrovirt CLI"),
        ("lv_api", "libvirt API"), ("lv_virsh", "virsh")]
# ratio: (Ferrovirt's column, the other's)
RATIOS = {"api_vs_floor": ("fv_api", "floor"), "api_vs_lv_api": ("fv_api", "lv_api"),
          "cli_vs_virsh": ("fv_cli", "lv_virsh"), "api_vs_virsh": ("fv_api", "lv_virsh")}
# target (≥: a speed-up, the other's ÷ Ferrovirt's), Ferrovirt's figure, the other's, limit, what is compared
TARGETS = [
    ("start ≤ 1.2 × floor", "start.fv_api", "start.floor", 1.2, "Ferrovirt API ÷ floor"),
    ("start ≤ 0.5 × libvirt", "start.fv_api", "start.lv_virsh", 0.5,
     "Ferrovirt API (PUT) ÷ `virsh start` (as specified)"),
    ("start ≤ 0.5 × libvirt (CLI vs CLI)", "start.fv_cli", "start.lv_virsh", 0.5, "`ferrovirt start` ÷ `virsh start`"),
    ("start ≤ 0.5 × libvirt (API vs API)", "start.fv_api", "start.lv_api", 0.5,
     "Ferrovirt API ÷ libvirt API (`virDomainCreate`)"),
    ("create ≥ 5 × faster than virsh", "create.fv_cli", "create.lv_virsh", 5,
     "`virsh define` ÷ `ferrovirt create` (speed-up)"),
    ("create ≥ 5 × faster (API vs API)", "create.fv_api", "create.lv_api", 5,
     "`virDomainDefineXML` ÷ POST /1.0/instances (speed-up)"),
    ("list ({n}) ≥ 5 × faster than virsh", "list.fv_cli", "list.lv_virsh", 5,
     "`virsh list --all` ÷ `ferrovirt list` (speed-up)"),
    ("list ({n}) ≥ 5 × faster (API vs API)", "list.fv_api", "list.lv_api", 5,
     "`virConnectListAllDomains` ÷ GET /1.0/instances (speed-up)"),
    ("list ({n}) ≥ 5 × faster (API vs API, with states)", "list.fv_api", "list_state.lv_api", 5,
     "`virConnectListAllDomains` + `virDomainGetState` each ÷ GET /1.0/instances (speed-up)"),
    ("idle RSS < 0.25 × libvirtd", "ferrovirtd.VmRSS", "libvirtd.VmRSS", 0.25, "ferrovirtd ÷ libvirtd VmRSS, idle"),
    ("idle RSS < 0.25 × libvirtd (private part)", "ferrovirtd.RssAnon", "libvirtd.RssAnon", 0.25,
     "ferrovirtd ÷ libvirtd RssAnon, idle")]


def lifecycle(raw: dict) -> str:
    S, cfg, meta, rss = raw["samples_ms"], raw["config"], raw["meta"], raw["rss_kib"]
    med = {k: median(v) for k, v in S.items()}
    m = med.get
    M, R = cfg["instances"], cfg["running"]
    rows = [("start", "Start: request → vCPUs running"),
            ("ready", "Boot to ready: start request → guest's ready marker on the serial log"),
            ("stop_force", "Stop, forced (SIGKILL / `virsh destroy`) until QEMU is gone"),
            ("stop_graceful", "Stop, graceful (ACPI power button) until QEMU is gone"),
            ("create", "Create / define one instance"), ("list", f"List with {M + 1} defined instances"),
            ("list_state", f"List with {M + 1}, libvirt API + each domain's state"),
            ("noop", "CLI process start-up (`--version`), for reference"),
            (f"start_{R}_serial", f"Start {R} instances one after the other"),
            (f"ready_{R}_all", f"… until all {R} guests are ready")]

    def lat(key: str, col: str):  # the R-instance rows: Ferrovirt through the API, libvirt through virsh
        if key.startswith((f"start_{R}_", f"ready_{R}_")):
            col = {"fv_api": "fv", "lv_virsh": "lv"}.get(col, "-")
        return m(f"{key}.{col}")
    summary = {"medians_ms": med, "counts": {k: len(v) for k, v in S.items()}, "ratios": {}, "targets": []}
    ratios = []
    for key, label in rows[:7]:
        fv = "list" if key == "list_state" else key  # GET /1.0/instances already carries the states
        r = summary["ratios"][key] = {k: ratio(m(f"{fv}.{a}"), m(f"{key}.{b}")) for k, (a, b) in RATIOS.items()}
        ratios.append([f"{label} (vs GET /1.0/instances)", *map(fmt_ratio, r.values())] if key == "list_state"
                      else [label.split(":")[0], *r.values()])

    def mem(v, who, field="VmRSS"):
        d = v.get(who)
        return d.get(field) if isinstance(d, dict) else None
    memory = []
    for k in ["idle"] + sorted([k for k in rss if k.startswith("defined_")], key=lambda s: int(s.split("_")[1])) \
            + [k for k in rss if k.startswith("running_")]:
        n = k.split("_")[-1]
        cells = [{"idle": "idle (fresh daemon, no instance)"}.get(k) or (
            f"{n} instances defined" if k.startswith("defined_") else
            f"{n} instances running (of {cfg['rss_defined']} defined)")]
        for field in ("VmRSS", "RssAnon"):
            x, y = mem(rss[k], "ferrovirtd", field), mem(rss[k], "libvirtd", field)
            cells += [fmt_kib(x), fmt_kib(y), fmt_ratio(ratio(x, y))]
        memory.append(cells)

    def val(key):  # a latency median, or idle memory ("ferrovirtd.VmRSS")
        return mem(rss.get("idle", {}), *key.split(".")) if key.startswith(("ferrovirtd.", "libvirtd.")) else m(key)
    targets = []
    for name, fv, other, limit, how in TARGETS:
        up = "≥" in name  # a speed-up, other ÷ Ferrovirt
        value = ratio(val(other), val(fv)) if up else ratio(val(fv), val(other))
        verdict = "not measured" if value is None else "met" if (value >= limit if up else value <= limit) \
            else "not met"
        summary["targets"].append({"target": name.format(n=M + 1), "value": value, "limit": limit,
                                   "verdict": verdict, "how": how})
        targets.append([name.format(n=M + 1), how, fmt_ratio(value), verdict if value is None else f"**{verdict}**"])
    L = ["# Ferrovirt benchmark results\n",
         f"Run: {meta.get('date')} · mode: {'quick' if meta.get('quick') else 'full'} · N = {cfg['runs']} runs "
         f"per figure (create: one sample per instance, {M} per side) · guest: {cfg['memory_mib']} MiB, 1 vCPU, "
         "q35, TCG, no disk, no NIC.\n", machine_line(meta, "HEAD at run time; ") + "\n", *bin_line(meta),
         "## Latency (median, lower is better)\n",
         *table(["Operation", *(c[1] for c in COLS)], [[label, *(lat(key, c) for c, _ in COLS)]
                                                      for key, label in rows], fmt_ms),
         "", f"For the {R}-instance rows: Ferrovirt through the API, libvirt through virsh.", "",
         "## Ratios (Ferrovirt ÷ other; below 1 means Ferrovirt is faster)\n",
         *table(["Operation", "Ferrovirt API ÷ floor", "Ferrovirt API ÷ libvirt API", "ferrovirt CLI ÷ virsh",
                 "Ferrovirt API ÷ virsh"], ratios, fmt_ratio),
         "", "## Daemon memory\n",
         "VmRSS as asked; RssAnon is its private (heap, stacks) part, which does not depend on how much of "
         "the binaries and libraries the page cache holds (see docs/benchmarks.md).\n",
         *table(["State", "ferrovirtd VmRSS", "libvirtd VmRSS", "ratio", "ferrovirtd RssAnon", "libvirtd RssAnon",
                 "ratio"], memory)]
    for k in [k for k in rss if k.startswith("running_")]:
        L += ["", f"QEMU processes with {k.split('_')[1]} running: Ferrovirt's "
              f"{fmt_kib(mem(rss[k], 'qemu_total_fv'))}, libvirt's {fmt_kib(mem(rss[k], 'qemu_total_lv'))} "
              "(sum of VmRSS)."]
    L += ["", "## Targets\n", *table(["Target", "Compared", "Measured", "Verdict"], targets, align="llrl"),
          "", "Ratios are of medians. \"Speed-up\" is libvirt's median ÷ Ferrovirt's (higher is better)."]
    fl = meta.get("create_first_last_10pct_median_ms")
    if fl:
        L += ["", f"Create latency as the store fills (median of the first vs the last 10% of the {M} creates): "
              + "; ".join(f"{k.split('.')[1]} {fmt_ms(v[0])} → {fmt_ms(v[1])}" for k, v in fl.items()) + "."]
    if "floor_argv_is_golden" in meta:
        golden = "crates/qemu/tests/golden/direct_kernel_boot_tcg.argv"
        L += ["", "Floor argv: the argv of the QEMU ferrovirtd launched, instance paths, name and UUID aside; "
              + (f"the same as {golden}." if meta["floor_argv_is_golden"] else
                 f"it differs from {golden} (see latest.json).")]
    if not_quiet(meta.get("foreign_activity")):
        L += ["", not_quiet(meta["foreign_activity"])]
    for note in raw.get("notes", []) + ([f"libvirt skipped: {meta['libvirt_skipped']}"]
                                        if meta.get("libvirt_skipped") else []):
        L += ["", f"Note: {note}"]
    L += ["", counts(S), ""]
    raw["summary"] = summary
    return "\n".join(L)


# ------------------------------------------------------------------ snapnet

# figure, Ferrovirt's column, libvirt's, label
NET_ROWS = [("net_create_cli", "net_create.fv_cli", "net_create.lv_virsh", "Create + start a NAT network (CLI)"),
            ("net_delete_cli", "net_delete.fv_cli", "net_delete.lv_virsh", "Stop + delete it (CLI)"),
            ("net_create_api", "net_create.fv_api", "net_create.lv_api", "Create + start (API)"),
            ("net_delete_api", "net_delete.fv_api", "net_delete.lv_api", "Stop + delete (API)")]
TPUT_ROWS = [
    ("tput_g2h", "Guest → host (guest `dd \\| nc` → Python sink on the bridge address)"),
    ("tput_h2g", "Host → guest (Python source → guest `nc -l`)"),
    ("tput_g2g", "Guest → guest, same bridge (`dd \\| nc` → `nc -l`)"),
    ("tput_loopback", "Reference: guest → itself over its loopback (no NIC)"),
    ("tput_pipe", "Reference: `dd \\| cat` inside the guest (no network)")]
SIZE_ROWS = [("vm_state_size", "Memory state inside the qcow2 (`vm-state-size`)"),
             ("qcow2_growth_mem_snapshot", "qcow2 file growth from one memory snapshot"),
             ("managedsave_file", "Managed save file"), ("save_file", "`save --file` / `virsh save` file")]


def snapnet(raw: dict) -> str:
    S, meta, cfg = raw["samples"], raw["meta"], raw["config"]
    sizes, checks, errors, ex = raw.get("sizes", {}), raw.get("checks", {}), raw.get("errors", {}), raw.get("extra", {})
    med = {k: median(v) for k, v in S.items()}
    summary = {"medians": med, "counts": {k: len(v) for k, v in S.items()}, "ratios": {}}
    fa = meta.get("foreign_activity", {})
    L = ["# Ferrovirt vs libvirt: snapshots, save/restore, networks\n",
         f"Run: {meta.get('date')} · mode: {'quick' if meta.get('quick') else 'full'} · N = {cfg['runs']} per "
         f"snapshot/save figure, {cfg['net_runs']} per network figure, {cfg['tput_runs']} × {cfg['tput_mib']} MiB "
         f"per throughput figure · guest: {cfg['memory_mib']} MiB, 1 vCPU, q35, TCG (the project's busybox test "
         "guest).\n",
         machine_line(meta) + f" Load average at start {' '.join(map(str, meta.get('loadavg_at_start', [])))}, "
         f"at end {' '.join(meta.get('loadavg_at_end', []))}; max 1-min load during the run "
         f"{fa.get('max_loadavg_1min', 0):.2f}. Section times: "
         + ", ".join(f"{k} {v:.0f} s" for k, v in meta.get("section_seconds", {}).items()) + ".\n", *bin_line(meta)]
    for k, what in (("libvirt_skipped", "libvirt"), ("libvirt_network_skipped", "libvirt networks")):
        if meta.get(k):
            L.append(f"**{what} skipped:** {meta[k]}\n")
    if not_quiet(fa):
        L.append(not_quiet(fa) + "\n")

    def compare(rows, fmt=fmt_ms, lower=True, cols=("Operation", "Ferrovirt", "libvirt")):
        """A table of (figure, Ferrovirt's key, libvirt's key, label), the rows measured or failed."""
        out = []
        for key, fk, lk, label in rows:
            if S.get(fk) or S.get(lk) or fk in errors or lk in errors:
                r = summary["ratios"][key] = ratio(med.get(fk), med.get(lk))
                out.append([label, *(cell(S[k], fmt) if S.get(k) else "**failed**" if k in errors else "–"
                                     for k in (fk, lk)), "–" if r is None else f"{r:.2f}", verdict(r, lower)])
        return table([*cols, "Ferrovirt ÷ libvirt", "Faster"], out, align="lrrrl")
    if any(k.startswith(("snap_", "managedsave", "save_", "restore_")) for k in S):
        L += ["## A. Snapshots and save/restore (median, min–max; lower is better)\n",
              "VM with a 256 MiB qcow2 data disk (virtio). Ferrovirt through its CLI (`ferrovirt …`), libvirt "
              "through virsh; each command returns once the operation is done.\n",
              *compare([(k, f"{k}.fv", f"{k}.lv", label) for k, label, _, _ in SNAP_ROWS]),
              "", "<details><summary>Commands</summary>\n",
              *table(["Operation", "ferrovirt", "virsh"], [[label.replace("**", ""), f, v]
                                                           for _, label, f, v in SNAP_ROWS], align="lll"),
              "\n</details>\n"]
        if sizes:
            L += ["Sizes (first run):\n", *table(["What", "Ferrovirt", "libvirt"], [
                [label, sizes.get(f"{k}.fv"), sizes.get(f"{k}.lv")] for k, label in SIZE_ROWS], fmt_size), ""]
        if ex.get("ext_overlay_files.fv") or ex.get("ext_overlay_files.lv"):
            L.append(f"External snapshot overlay files: Ferrovirt {ex.get('ext_overlay_files.fv')}, libvirt "
                     f"{ex.get('ext_overlay_files.lv')}; disk directory after the delete: Ferrovirt "
                     f"{ex.get('ext_files_after_delete.fv')}, libvirt {ex.get('ext_files_after_delete.lv')}.\n")
    if any(k.startswith("net_") for k in S):
        L += ["## B1. Network create / delete (median, min–max; lower is better)\n",
              "A NAT network with a bridge, the host's address, DHCP and DNS (dnsmasq) and masquerading; each "
              "daemon in its own network namespace.\n",
              *compare([r for r in NET_ROWS if S.get(r[1]) or S.get(r[2])])]
        parts = [("net_define.lv_virsh", "`net-define`"), ("net_start.lv_virsh", "`net-start`"),
                 ("net_destroy.lv_virsh", "`net-destroy`"), ("net_undefine.lv_virsh", "`net-undefine`")]
        if any(S.get(k) for k, _ in parts):
            L += ["", "virsh steps (median): " + ", ".join(f"{n} {fmt_ms(med.get(k))}" for k, n in parts) + "."]
        L.append("")
    if any(k.startswith(("tput_", "dhcp_")) for k in S):
        L += ["## B2. Throughput through TAP + Linux bridge (median, min–max; higher is better)\n",
              f"virtio-net, **no vhost-net** (`/dev/vhost-net` "
              f"{'exists' if meta.get('vhost_net_present') else 'does not exist on this host'}), {cfg['tput_mib']} "
              "MiB per sample; busybox tools in a TCG guest, so these are emulation-bound figures, not what the same "
              "setup does under KVM.\n",
              *compare([(k, f"{k}.fv", f"{k}.lv", label) for k, label in TPUT_ROWS if S.get(f"{k}.fv")
                        or S.get(f"{k}.lv")], fmt_unit("MiB/s"), False, ("Path", "Ferrovirt", "libvirt"))]
        if S.get("dhcp_lease.fv") or S.get("dhcp_lease.lv"):
            L.append(row("DHCP lease in the guest (`udhcpc`, time; lower is better)", cell(S.get("dhcp_lease.fv", [])),
                         cell(S.get("dhcp_lease.lv", [])), "–", "–"))
        L.append("")
        for side, who in (("fv", "Ferrovirt"), ("lv", "libvirt")):
            if ex.get(f"qemu_nic_args.{side}"):
                L += [f"{who}'s QEMU NIC options: `{' '.join(ex[f'qemu_nic_args.{side}'])}`", ""]
        L.append("Ferrovirt adds its NICs over QMP after QEMU starts (`netdev_add` of a TAP fd, `device_add` on a "
                 "PCIe root port), so its argv has none.\n")
    for title, d in (("Checks", checks), ("Failures", errors)):
        if d:
            L += [f"## {title}\n"] + [f"- `{k}`: {v}" for k, v in sorted(d.items())] + [""]
    again = {k: v for k, v in ex.get("guest_commands_sent_again", {}).items() if v}
    if again:
        L.append("Guest commands sent again after getting no answer (the test guest's init dropped a command line "
                 "it had received; see the docs): " + ", ".join(
                     f"{'Ferrovirt' if k == 'fv' else 'libvirt'} {v}" for k, v in again.items())
                 + ". These are harness retries, not part of any timed figure.\n")
    L += [f"Note: {n}\n" for n in raw.get("notes", [])] + [counts(S), ""]
    raw["summary"] = summary
    return "\n".join(L)


# ------------------------------------------------------------------ migration

LABELS = {"floor": "floor", "ferrovirt": "Ferrovirt", "libvirt": "libvirt", "floor_capped": "floor, 128 MiB/s cap"}
MIG_ROWS = [("total_ms", "**Total**: request → guest runs on B, source gone"),
            ("downtime_ms", "**Downtime** as reported (QEMU's; libvirt: computed by libvirt, see docs)"),
            ("pause_ms", "**Guest pause**: last heartbeat on A → first on B"),
            ("stop_to_resume_ms", "… of which last beat on A → resumed on B"),
            ("done_to_resume_ms", "… … of which QEMU done on A → resumed on B (minus QEMU's downtime)"),
            ("resume_to_first_beat_ms", "… and resumed on B → first beat on B"),
            ("max_gap_ms", "(longest heartbeat gap while migrating)"),
            ("baseline_max_gap_ms", "(longest heartbeat gap before migrating)")]


def migration(raw: dict) -> str:
    d, meta, sides, samples = raw, raw["meta"], raw["sides"], raw["samples"]
    fl = d.get("foreign_load") or {}

    def c(xs, unit="ms"):
        return cell(xs, fmt_unit(unit))

    def rt(a, b):
        r = ratio(a, b)
        return "–" if r is None else f"{r:.2f}"
    L = ["# Live migration: Ferrovirt vs libvirt vs QEMU by hand\n",
         f"Run of {meta.get('date_utc', '?')}"
         f"{' (**--quick**: N = 1, figures not meant to be quoted)' if meta.get('quick') else ''}: "
         f"N = {d['runs']} per size and manager, guest sizes {', '.join(f'{s} MiB' for s in d['sizes'])}, workload "
         f"warm-up {d['warmup_s']:g} s. {meta.get('duration_s', '?')} s of measuring, "
         f"{meta.get('script_seconds', '?')} s for the whole run. See docs/benchmarks-migration.md for what each "
         "figure means.\n",
         f"- ferrovirtd: `{meta.get('ferrovirtd_binary')}` ({meta.get('profile')}, built "
         f"{meta.get('ferrovirtd_binary_mtime')}{', OLDER than the sources' if meta.get('ferrovirtd_binary_stale') else ''}"
         f"), workspace HEAD {meta.get('ferrovirt_commit')}",
         *bin_line(meta, "- ", ""),
         f"- QEMU {meta.get('qemu_version')}; libvirt "
         f"{meta.get('libvirt_version') or 'SKIPPED: ' + str(meta.get('libvirt_skipped'))}",
         f"- {meta.get('cpus')} CPUs ({meta.get('cpu_model')}), {meta.get('mem_total_kib', 0) / 1048576:.1f} GiB, "
         f"Linux {meta.get('kernel')}, TCG",
         f"- load: at start `{meta.get('uptime_at_start')}`; at end `{meta.get('uptime_at_end', '?')}`"]
    if fl:
        L.append(f"- sampled every second ({fl.get('samples')} samples): 1-min load median "
                 f"{fl.get('loadavg_1min_median')}, max {fl.get('max_loadavg_1min')}; seconds with other QEMUs "
                 f"running: {fl.get('with_foreign_qemu')}; with cargo/rustc/tests: {fl.get('with_cargo_or_rustc')}")
        if fl.get("with_foreign_qemu") or fl.get("with_cargo_or_rustc"):
            L.append("- **warning**: other work ran during this run; the figures are noisier")
    if d.get("floor_argv_differences") is not None:
        diff = d["floor_argv_differences"]
        L.append("- floor argv vs the QEMU ferrovirtd ran: " + (
            "same options and values (paths and names aside)" if not diff else "DIFFERENT: " + "; ".join(diff)))
    if d.get("ferrovirt_trust_ms") is not None:
        L.append(f"- before the first Ferrovirt run: B trusted A through a join token and an offline migration "
                 f"({d['ferrovirt_trust_ms']:.0f} ms, not counted)")
    L.append("")
    for s in samples:  # QEMU done on A → resumed on B (not for libvirt: its downtime differs)
        if s["side"] != "libvirt" and s.get("stop_to_resume_ms") is not None and s.get("downtime_ms") is not None:
            s["done_to_resume_ms"] = round(s["stop_to_resume_ms"] - s["downtime_ms"], 3)
    for mem in d["sizes"]:
        of = {side: [s for s in samples if s["side"] == side and s["memory_mib"] == mem] for side in LABELS}

        def get(side, key):
            return [s.get(key) for s in of.get(side, [])]
        rows = []
        for key, label in MIG_ROWS:
            fv = median(get("ferrovirt", key))
            lr = rt(fv, median(get("libvirt", key))) if "libvirt" in sides else "–"
            if key == "downtime_ms" and lr != "–":
                lr = f"({lr}: libvirt computes its own)"
            ratios = [rt(fv, median(get("floor", key))), lr]
            rows.append([label, *(c(get(s, key)) for s in sides),
                         *(["–", "–"] if key in ("baseline_max_gap_ms", "max_gap_ms", "resume_to_first_beat_ms")
                           else ratios)])
        L += [f"## {mem} MiB guest\n", *table(["Figure (median, min–max)", *(LABELS.get(s, s) for s in sides),
                                               "Ferrovirt ÷ floor", "Ferrovirt ÷ libvirt"], rows,
                                              align="l" * (len(sides) + 3)), ""]
        if of["ferrovirt"]:
            def first(s, prefix):
                return next((t for t, st in s.get("stages", []) if st.startswith(prefix)), None)
            fvs = of["ferrovirt"]
            L.append(f"- Ferrovirt (polled every 20 ms): POST answered in {c([s.get('post_ms') for s in fvs])}; "
                     f"instance on B paused, its QEMU listening, at {c([first(s, 'B: paused') for s in fvs])}; "
                     "operation stage \"migrating memory\" first reported at "
                     f"{c([first(s, 'migrating memory') for s in fvs])}")
        for key in ("floor", "floor_capped"):
            if of[key]:
                fs, ram = of[key], [s.get("ram") or {} for s in of[key]]
                peaks = [s["peak_dirty_pages_rate"] * 4096 / MIB for s in fs if s.get("peak_dirty_pages_rate")]
                L.append(f"- {LABELS[key]}: destination spawned in {c(get(key, 'dest_spawn_ms'))}, migrate → "
                         f"completed {c(get(key, 'migrate_ms'))}, `cont` on B "
                         f"{c(get(key, 'cont_after_completed_ms'))} after that, source gone "
                         f"{c(get(key, 'source_gone_after_cont_ms'))} later; sent "
                         f"{c([r.get('transferred', 0) / MIB for r in ram], 'MiB')}, "
                         f"{c([r.get('dirty-sync-count') for r in ram], 'passes')}, "
                         + (f"peak dirty rate {c(peaks, 'MiB/s')} (`dirty-pages-rate`), " if peaks else "")
                         + f"{c([r.get('mbps') for r in ram], 'Mbit/s')} at the end")
        if of["libvirt"]:
            def num(s, k):
                v = (s.get("domjobinfo") or {}).get(k, "").split()
                try:
                    return float(v[0]) * {"GiB": 1024, "KiB": 1 / 1024}.get(v[1] if len(v) > 1 else "", 1)
                except (IndexError, ValueError):
                    return None
            job = {k: [num(s, k) for s in of["libvirt"]] for k in
                   ("Time elapsed", "Memory processed", "Iteration", "Memory bandwidth")}
            L.append(f"- libvirt (`domjobinfo --completed` on B): time elapsed {c(job['Time elapsed'])}, "
                     f"memory processed {c(job['Memory processed'], 'MiB')}, {c(job['Iteration'], 'passes')}, "
                     f"bandwidth {c(job['Memory bandwidth'], 'MiB/s')}")
        rates = [s.get("workload_loops", 0) * 64 / (s["guest_uptime_s"][1] - s["guest_uptime_s"][0])
                 for s in samples if s["memory_mib"] == mem and s.get("guest_uptime_s")
                 and s["guest_uptime_s"][1] > s["guest_uptime_s"][0]]
        L += ["- workload: 64 MiB rewrites completed per second of guest time (a lower bound of its dirtying rate, "
              f"partial rewrites not counted): {c(rates, 'MiB/s')}", ""]
    if d["errors"]:
        L += ["## Failures\n"] + [f"- {LABELS.get(e['side'], e['side'])}, {e['memory_mib']} MiB, run {e['run']}: "
                                  f"`{e['error'].strip().splitlines()[-1][:400]}`" for e in d["errors"]] + [""]
    L.append("Raw samples: `migration-latest.json` (per run: total, downtime, pause and where it fell, the baseline "
             "gap, the floor's `query-migrate` RAM counters, libvirt's `domjobinfo`, Ferrovirt's operation stages).")
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------ storage

NAMES = {"fv_cli": "Ferrovirt CLI", "fv_api": "Ferrovirt API", "virsh": "virsh", "lv_api": "libvirt API",
         "cp_sparse": "`cp --sparse=always`", "cp_sparse_noreflink": "`cp --sparse=always --reflink=never`",
         "virsh_reflink": "virsh `--reflink`"}


def storage(raw: dict) -> str:
    m, fl = raw["meta"], raw["meta"].get("foreign_load") or {}
    ms, mib = fmt_unit("ms"), lambda b: fmt_size(b, "KiB")
    runs = m.get("runs") or 0
    who = {"fv": "Ferrovirt", "lv": "libvirt"}

    def spread(xs):
        return cell(xs, ms, 3)

    def faster(a, b):
        return "–" if not a or not b else f"{b / a:.1f}×"
    L = ["# Storage benchmark: Ferrovirt vs libvirt", "",
         f"{'Quick (smoke) run, not for quoting' if m.get('quick') else 'Full run'}: {runs} run(s) per figure, "
         f"{'median (min–max)' if runs >= 3 else 'median' if runs > 1 else 'one sample'} each. Ferrovirt "
         f"{m.get('profile')} build {m.get('ferrovirt_commit')}, libvirt "
         f"{m.get('libvirt_version') or 'skipped: ' + str(m.get('libvirt_skipped'))}, qemu-img "
         f"{m.get('qemu_img_version')}, coreutils {m.get('coreutils_version')}, kernel {m.get('kernel')}, "
         f"{m.get('cpus')} CPUs. Date {m.get('date')}.", "", *bin_line(m)]
    if "linked" in raw:
        sizes = raw["linked"]["sizes"]
        tools = [t for t in NAMES if any(t in e["samples"] for e in sizes.values())]
        alloc = {t: v for e in sizes.values() for t, v in e["clone_allocated_bytes"].items()}
        L += ["## Linked clone (qcow2 overlay on a qcow2 base)", "",
              *table(["base", *(NAMES[t] for t in tools), "virsh / Ferrovirt CLI"], [
                  [f"{gib} GiB ({mib(e['base_allocated_bytes'])} on disk)", *(spread(e["samples"][t]) for t in tools),
                   faster(median(e["samples"].get("fv_cli", [])), median(e["samples"].get("virsh", [])))]
                  for gib, e in sizes.items()]),
              "", "A new overlay takes " + ", ".join(f"{mib(v)} ({NAMES[t]})" for t, v in alloc.items())
              + " on disk.", ""]
    if "full" in raw:
        f, src = raw["full"], raw["full"]["source"]
        L += [f"## Full clone of a raw file of {mib(src['virtual_bytes'])} ({mib(src['data_bytes'])} of random "
              "data, the rest holes)", "",
              "MiB/s = virtual size / time. \"Returned\": until the command exits; \"+ fsync\": then fsync(2) of the "
              "copy, i.e. until it is on the disk. The source is dropped from the page cache before each sample; one "
              "untimed warm-up round of every tool comes first.", ""]
        for label, e in f["filesystems"].items():
            rows = []
            for t, v in e["tools"].items():
                first = v["samples"][0]
                du = max(s["allocated_bytes"] for s in v["samples"])
                rows.append([NAMES[t], first.get("method") or ("reflink" if (first.get("shared_bytes") or 0) > 0
                                                              else "copy"),
                             spread([s["ms"] for s in v["samples"]]), f"{v['mib_s']:.0f}",
                             ms(v["median_ms_with_fsync"]), f"{v['mib_s_with_fsync']:.0f}", mib(du),
                             "yes" if du <= src["allocated_bytes"] + MIB else "**no**", mib(first.get("shared_bytes"))])
            where = "the pools' filesystem" if label == "tmp" else "a loop-mounted XFS with reflink=1"
            L += [f"### {e['filesystem']} ({where})", "",
                  *table(["tool", "method", "returned", "MiB/s", "+ fsync", "MiB/s", "copy on disk (du)", "sparse",
                          "reflinked"], rows, align="llrrrrrcr"), ""]
        L += [f"The source takes {mib(src['allocated_bytes'])} on disk (du); \"sparse\": no sample's copy took more "
              "than that (+1 MiB); \"reflinked\": bytes in extents the filesystem marks shared (FIEMAP). Every copy "
              "was compared byte for byte with its source (cmp) on the first run.", ""]
    if "volumes" in raw:
        counts_ = raw["volumes"]["counts"]
        first = next(iter(counts_.values()))
        ct, lt = [t for t in NAMES if t in first["create"]], [t for t in NAMES if t in first["list"]]
        L += ["## Volume create (qcow2, 1 GiB) and list", "", "Create: one more volume in a pool holding N−1; list: "
              "the pool holding N.", "",
              *table(["N", *(f"create: {NAMES[t]}" for t in ct), *(f"list: {NAMES[t]}" for t in lt)], [
                  [n.replace("+", " + ").replace("vm", " VMs defined"), *(spread(e["create"][t]) for t in ct),
                   *(spread(e["list"][t]) for t in lt)] for n, e in counts_.items()], align="r" * (1 + len(ct) + len(lt))),
              ""]
        fill = [f"{n}: " + ", ".join(f"{who[k]} {ms(v)}" for k, v in e["fill_ms"].items())
                for n, e in counts_.items() if n.isdigit() and int(n) > 1]
        if fill:
            L += ["Filling the pools through the APIs (one request per volume, from the previous N): "
                  + "; ".join(fill) + ".", ""]
        vm = [e for n, e in counts_.items() if not n.isdigit()]
        if vm:
            L += [f"\"+ {raw['volumes'].get('instances')} VMs defined\": the same pool with that many instances "
                  "(Ferrovirt) and domains (libvirt, defined through the API) defined, not running, each with a disk "
                  "on one of the pool's volumes; defining them took "
                  + ", ".join(f"{who[k]} {ms(v)}" for k, v in vm[0]["fill_ms"].items()) + ".", ""]
    L += [f"Measured in {m.get('measure_seconds')} s; other load: {fl.get('with_cargo_or_rustc', 0)} of "
          f"{fl.get('samples', 0)} one-second samples saw cargo/rustc, {fl.get('with_foreign_qemu', 0)} a QEMU; max "
          f"1-min load average {fl.get('max_loadavg_1min')}.", ""]
    return "\n".join(L)


REPORTS = {"lifecycle": lifecycle, "snapnet": snapnet, "migration": migration, "storage": storage}
