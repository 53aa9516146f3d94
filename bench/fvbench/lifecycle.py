"""Ferrovirt vs libvirt vs raw QEMU on the instance life cycle: start, boot
to ready, forced and graceful stop, create, list, daemon memory
(docs/benchmarks.md). Each daemon in a network namespace of its own."""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

from . import host
from .guest import fsize, ms, now, timed, wait_ready
from .host import Skip, log, out, run
from .stats import ForeignLoad, median, rotated
from .systems import Ferrovirt, Floor, Libvirt, System, binding, golden_template, libvirt_or_skip, template_of

STEM = "latest"
GOLDEN = host.ROOT / "crates/qemu/tests/golden/direct_kernel_boot_tcg.argv"


# option: (default, --quick default, help); "flag": a store_true option
OPTIONS = {"runs": (10, 2, "runs per latency figure"), "instances": (1000, 50, "defined for the list test"),
           "running": (10, 3, "running for the memory figure"), "no-graceful": ("flag", None, "no graceful stops")}


def mem_detail(pid: int) -> dict[str, int]:
    """VmRSS and its anonymous / file-backed parts, and PSS (KiB)."""
    res = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            res[k] = int(v.split()[0])
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            res["Pss"] = int(line.split()[1])
    return res


def rss_settled(pid: int, settle: float = 1.0, samples: int = 5) -> dict[str, int]:
    """mem_detail() of the median-VmRSS sample of a few, after `settle` s."""
    time.sleep(settle)
    vals = []
    for _ in range(samples):
        vals.append(mem_detail(pid))
        time.sleep(0.1)
    return sorted(vals, key=lambda d: d.get("VmRSS", 0))[len(vals) // 2]


def prewarm(*files: str) -> None:
    """Reads binaries and their libraries: every daemon starts from the same,
    warm page cache (the file-backed part of VmRSS depends on it)."""
    for f in filter(lambda f: Path(f).is_file(), files):
        for lib in [f] + re.findall(r"=> (/\S+)", out(["ldd", f])):
            try:
                Path(lib).read_bytes()
            except OSError:
                pass


def lv_smoke(lv: Libvirt) -> None:
    """The domain XML the benchmark uses must define, start and stop."""
    lv.define("bench-smoke")
    try:
        lv.start("bench-smoke")
        lv.stop("bench-smoke")
    finally:
        lv.virsh("undefine", "bench-smoke")


def run_suite(a, h: host.Host, b: host.Binaries, qemu: str) -> dict:
    meta: dict = {}
    prewarm(str(b.ferrovirtd), str(b.cli), qemu)
    links = h.links()
    fvd = host.start_ferrovirtd(h, b, qemu, h.netns("fv"), "fv")

    def start_lv() -> host.Libvirtd:
        prewarm("/usr/sbin/libvirtd", shutil.which("virsh") or "",
                *map(str, (host.LV_DRIVERS / "connection-driver").glob("*.so")))
        lvd = host.start_libvirtd(h, h.netns("lv"), "lv")
        try:
            lv_smoke(Libvirt(lvd.uri, h.tmp / "lvdata", b.guest, qemu, lvd.dir, connect=False))
        except Exception as e:  # noqa: BLE001
            raise Skip(f"libvirt could not start the benchmark's domain: {str(e)[-300:]}") from e
        return lvd
    lvd = libvirt_or_skip(h, a, meta, start_lv)
    if h.links() != links:
        log(f"warning: host network interfaces changed meanwhile: [{links}] -> [{h.links()}]")
    return measure(a, h, b, qemu, fvd, lvd, meta)


def measure(a, h: host.Host, b: host.Binaries, qemu: str, fvd: host.Ferrovirtd,
            lvd: host.Libvirtd | None, meta: dict) -> dict:
    N, M = a.runs, a.instances
    rss_defined, memory = 50, 256
    samples: dict[str, list[float]] = {}
    rss: dict[str, dict] = {}
    notes: list[str] = []

    def add(key: str, v: float) -> None:
        samples.setdefault(key, []).append(v)

    fv = Ferrovirt(str(b.cli), fvd.sock, fvd.state, b.guest, memory)
    fl = Floor(qemu, h.tmp / "floor", b.guest, golden_template(GOLDEN), memory)
    lv = Libvirt(lvd.uri, h.tmp / "lvdata", b.guest, qemu, lvd.dir, memory, connect=False) if lvd else None
    have_lv_api = lv is not None and binding() is not None
    if lv is not None and binding() is None:
        notes.append("The libvirt Python binding is not importable: no 'libvirt API' rows.")
    meta["libvirt_python"] = have_lv_api
    config = {"runs": N, "instances": M, "running": a.running, "rss_defined": rss_defined,
              "memory_mib": memory, "graceful": not a.no_graceful}
    foreign = ForeignLoad({os.getppid(), os.getpid(), fvd.pid} | ({lvd.pid} if lvd else set()), str(h.tmp))

    def daemon_rss(key: str) -> None:
        rss[key] = {"ferrovirtd": rss_settled(fvd.pid)}
        if lv is not None:
            rss[key]["libvirtd"] = rss_settled(lvd.pid, settle=0)
        log(f"RSS {key}: " + ", ".join(f"{k} {v['VmRSS']} KiB" for k, v in rss[key].items()))

    # ---- idle memory (before the bench opens its own libvirt connection)
    daemon_rss("idle")
    if lv is not None:
        lv.open_api()
    # ---- process start-up cost of the two CLIs (context for the CLI rows)
    for _ in range(N):
        add("noop.fv_cli", timed(run, [str(b.cli), "--version"]))
        if lv is not None:
            add("noop.lv_virsh", timed(run, ["virsh", "--version"]))

    # ---- warm-up (untimed): one start and stop each; Ferrovirt's QEMU argv becomes the floor's
    fv.create("bench-fv")
    if lv is not None:
        lv.define("bench-lv")
    fv.start("bench-fv")
    fv_argv = host.cmdline(fv.pid("bench-fv"))
    fv.stop("bench-fv")
    meta["ferrovirt_argv"] = fv_argv
    golden = fl.argv("bench-floor")
    fl.template = template_of(fv_argv, "bench-fv", [str(fvd.run_dir / "instances" / "bench-fv"),
                                                    str(fvd.state / "logs" / "bench-fv")])
    for f in ("qmp.sock", "console.sock", "console.log", "qemu.log", "qemu.pid"):
        if not any(f"{{DIR}}/{f}" in x for x in fl.template):
            raise RuntimeError(f"cannot derive the floor's argv: no {f} in {fv_argv}")
    meta["floor_argv"] = fl.argv("bench-floor")
    meta["floor_argv_is_golden"] = meta["floor_argv"] == golden
    fl.start("bench-floor")
    fl.stop("bench-floor")
    if lv is not None:
        lv.start("bench-lv")
        meta["libvirt_argv"] = host.cmdline(lv.pid("bench-lv"))
        lv.stop("bench-lv")

    def boot(key: str, sys_: System, name: str, start) -> None:
        off = fsize(sys_.console_log(name))
        t0 = now()
        start(name)
        add(f"start.{key}", ms(t0, now()))
        add(f"ready.{key}", wait_ready(sys_.console_log(name), off, t0))

    def cycle_floor() -> None:
        boot("floor", fl, "bench-floor", fl.start)
        add("stop_force.floor", timed(fl.stop, "bench-floor"))

    def cycle_fv() -> None:
        boot("fv_api", fv, "bench-fv", fv.start)
        add("stop_force.fv_api", timed(fv.stop, "bench-fv"))
        add("start.fv_cli", timed(fv.cli_run, "start", "bench-fv"))
        add("stop_force.fv_cli", timed(fv.cli_run, "stop", "bench-fv", "--force"))

    def cycle_lv() -> None:
        boot("lv_virsh", lv, "bench-lv", lv.start)
        add("stop_force.lv_virsh", timed(lv.stop, "bench-lv"))
        if have_lv_api:
            add("start.lv_api", timed(lv.start_api, "bench-lv"))
            add("stop_force.lv_api", timed(lv.stop_api, "bench-lv"))

    cycles = [cycle_floor, cycle_fv] + ([cycle_lv] if lv is not None else [])
    for i in range(N):
        log(f"start/stop run {i + 1}/{N}")
        for c in rotated(cycles, i):
            c()

    # ---- graceful stop (ACPI power button; the guest powers off)
    if not a.no_graceful:
        def graceful(sys_: System, name: str, start, key: str, stop) -> None:
            off = fsize(sys_.console_log(name))
            start(name)
            wait_ready(sys_.console_log(name), off)
            add(key, timed(stop, name))
        gs = [lambda: graceful(fl, "bench-floor", fl.start, "stop_graceful.floor", fl.stop_graceful),
              lambda: graceful(fv, "bench-fv", fv.start, "stop_graceful.fv_api", fv.stop_graceful)]
        if lv is not None:
            gs.append(lambda: graceful(lv, "bench-lv", lv.start, "stop_graceful.lv_api" if have_lv_api
                                       else "stop_graceful.lv_virsh", lv.shutdown_wait))
        for i in range(N):
            log(f"graceful stop run {i + 1}/{N}")
            for g in rotated(gs, i):
                g()

    # ---- define many; memory with R defined and R running; list
    width = max(4, len(str(M)))
    names = {"fv": [f"fv-{k:0{width}d}" for k in range(1, M + 1)],
             "lv": [f"lv-{k:0{width}d}" for k in range(1, M + 1)]}
    log(f"defining {M} instances on each side")
    for k in range(M):
        # even: the CLIs; odd: the APIs. Ferrovirt and libvirt alternate.
        if k % 2 == 0:
            add("create.fv_cli", timed(fv.create_cli, names["fv"][k]))
            if lv is not None:
                add("create.lv_virsh", timed(lv.define, names["lv"][k]))
        else:
            add("create.fv_api", timed(fv.create, names["fv"][k]))
            if have_lv_api:
                add("create.lv_api", timed(lv.define_api, names["lv"][k]))
            elif lv is not None:
                add("create.lv_virsh", timed(lv.define, names["lv"][k]))
        if k + 1 == min(rss_defined, M):
            daemon_rss(f"defined_{k + 1}")
            running(min(a.running, k + 1), fv, lv, fvd, lvd, names, add, rss)
    daemon_rss(f"defined_{M}")
    # the per-instance create latency as the store fills: first and last 10%
    tenth = max(1, len(samples.get("create.fv_api", [])) // 10)
    meta["create_first_last_10pct_median_ms"] = {
        k: [median(xs[:tenth]), median(xs[-tenth:])] for k, xs in samples.items() if k.startswith("create.")}

    # ---- list with M (+1) defined
    n_fv = len(json.loads(fv.list_raw()))
    if n_fv != M + 1:
        notes.append(f"GET /1.0/instances returned {n_fv} instances, expected {M + 1}")
    if have_lv_api and len(lv.conn.listAllDomains(0)) != M + 1:
        notes.append(f"libvirt lists {len(lv.conn.listAllDomains(0))} domains, expected {M + 1}")
    ops = [("list.fv_cli", lambda: fv.cli_run("list")), ("list.fv_api", fv.list_raw)]
    if lv is not None:
        ops.append(("list.lv_virsh", lambda: lv.virsh("list", "--all")))
        if have_lv_api:
            ops.append(("list.lv_api", lambda: len(lv.conn.listAllDomains(0))))
            # what GET /1.0/instances also gives: each domain's state
            ops.append(("list_state.lv_api", lambda: [d.state() for d in lv.conn.listAllDomains(0)]))
    for i in range(N):
        log(f"list run {i + 1}/{N}")
        for key, fn in rotated(ops, i):
            add(key, timed(fn))

    # ---- leave nothing running (the host's cleanup kills whatever is left)
    fl.stop_all()
    for n in fv.running():
        fv.stop(n)
    if lv is not None:
        for n in lv.running():
            lv.stop(n)
    meta["foreign_activity"] = foreign.result()
    return {"meta": meta, "config": config, "samples_ms": samples, "rss_kib": rss, "notes": notes}


def running(R: int, fv: Ferrovirt, lv: Libvirt | None, fvd, lvd, names, add, rss) -> None:
    """R instances running, one manager at a time (they share 2 CPUs)."""
    for side, m, dpid, dname in (("fv", fv, fvd.pid, "ferrovirtd"),
                                 ("lv", lv, lvd.pid if lvd else 0, "libvirtd")):
        if m is None:
            continue
        vms = names[side][:R]
        log(f"{side}: starting {R} instances")
        t0 = now()
        offs = {}
        for n in vms:
            offs[n] = fsize(m.console_log(n))
            m.start(n)
        add(f"start_{R}_serial.{side}", ms(t0, now()))
        for n in vms:
            wait_ready(m.console_log(n), offs[n], t0, timeout=600)
        add(f"ready_{R}_all.{side}", ms(t0, now()))
        key = f"running_{R}"
        rss.setdefault(key, {})[dname] = rss_settled(dpid)
        rss[key][f"qemu_total_{side}"] = {"VmRSS": sum(mem_detail(m.pid(n))["VmRSS"] for n in vms)}
        log(f"RSS {key}: {dname} {rss[key][dname]['VmRSS']} KiB")
        for n in vms:
            m.stop(n)
