"""Ferrovirt vs libvirt vs raw QEMU on the instance life cycle: start, boot
to ready, forced and graceful stop, create, list, daemon memory
(docs/benchmarks.md). Each daemon in a network namespace of its own."""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from . import host
from .guest import fsize, ms, now, wait_ready
from .host import Skip, log, out, run
from .stats import ForeignLoad, Samples, median
from .floor import Floor, template
from .systems import Ferrovirt, Libvirt, binding, libvirt_or_skip

STEM = "latest"
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


def run_suite(a, h: host.Host, b: host.Binaries) -> dict:
    N, M, memory, rss_defined = a.runs, a.instances, 256, 50
    meta: dict = {}
    prewarm(str(b.ferrovirtd), str(b.cli), b.qemu)
    links = h.links()
    fv = Ferrovirt(h, b, h.netns("fv"), "fv", memory=memory)

    def start_lv() -> host.Libvirtd:
        prewarm("/usr/sbin/libvirtd", shutil.which("virsh") or "",
                *map(str, (host.LV_DRIVERS / "connection-driver").glob("*.so")))
        lvd = host.start_libvirtd(h, h.netns("lv"), "lv")
        smoke = Libvirt(h, b, lvd, connect=False)
        try:  # the domain XML the benchmark uses must define, start and stop
            smoke.define("bench-smoke")
            try:
                smoke.start("bench-smoke")
                smoke.stop("bench-smoke")
            finally:
                smoke.virsh("undefine", "bench-smoke")
        except Exception as e:  # noqa: BLE001
            raise Skip(f"libvirt could not start the benchmark's domain: {str(e)[-300:]}") from e
        return lvd
    lvd = libvirt_or_skip(h, a, meta, start_lv)
    if h.links() != links:
        log(f"warning: host network interfaces changed meanwhile: [{links}] -> [{h.links()}]")
    S, rss, notes = Samples(), {}, []
    fl = Floor(b, h.tmp / "floor", memory)
    lv = Libvirt(h, b, lvd, memory, connect=False) if lvd else None
    api = lv is not None and binding() is not None  # "libvirt API" rows
    if lv is not None and not api:
        notes.append("The libvirt Python binding is not importable: no 'libvirt API' rows.")
    meta["libvirt_python"] = api
    config = {"runs": N, "instances": M, "running": a.running, "rss_defined": rss_defined,
              "memory_mib": memory, "graceful": not a.no_graceful}
    foreign = ForeignLoad(h.tmp)

    def daemon_rss(key: str) -> None:
        rss[key] = {"ferrovirtd": rss_settled(fv.daemon_pid)}
        if lv is not None:
            rss[key]["libvirtd"] = rss_settled(lvd.pid, settle=0)
        log(f"RSS {key}: " + ", ".join(f"{k} {v['VmRSS']} KiB" for k, v in rss[key].items()))

    # ---- idle memory (before the bench opens its own libvirt connection)
    daemon_rss("idle")
    if lv is not None:
        lv.open_api()
    # ---- process start-up cost of the two CLIs (context for the CLI rows)
    for _ in range(N):
        S.time("noop.fv_cli", run, [str(b.cli), "--version"])
        if lv is not None:
            S.time("noop.lv_virsh", run, ["virsh", "--version"])

    # ---- warm-up (untimed): one start and stop each; Ferrovirt's QEMU argv becomes the floor's
    fv.create("bench-fv")
    if lv is not None:
        lv.define("bench-lv")
    fv.start("bench-fv")
    fv_argv = meta["ferrovirt_argv"] = host.cmdline(fv.pid("bench-fv"))
    fv.stop("bench-fv")
    golden = fl.argv("bench-floor")
    fl.template = template(fv_argv, "bench-fv", (str(fv.run_dir / "instances" / "bench-fv"),
                                                 str(fv.state_dir / "logs" / "bench-fv")))
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

    # ---- start, boot to ready, forced stop: the floor, then each manager's API and CLI
    def cycle(key: str, sys_, name: str, *more: tuple):
        def step(_i: int) -> None:
            start, ready = sys_.boot(name)
            S.add(f"start.{key}", start)
            S.add(f"ready.{key}", ready)
            S.time(f"stop_force.{key}", sys_.stop, name)
            for m in more:
                S.time(*m)
        return step

    def graceful(key: str, sys_, name: str, stop):
        def step(_i: int) -> None:
            sys_.boot(name)
            S.time(f"stop_graceful.{key}", stop, name)
        return step
    cycles = [cycle("floor", fl, "bench-floor"),
              cycle("fv_api", fv, "bench-fv", ("start.fv_cli", fv.cli_run, "start", "bench-fv"),
                    ("stop_force.fv_cli", fv.cli_run, "stop", "bench-fv", "--force"))]
    stops = [graceful("floor", fl, "bench-floor", fl.stop_graceful),
             graceful("fv_api", fv, "bench-fv", fv.stop_graceful)]
    if lv is not None:
        dom = lambda: lv.conn.lookupByName("bench-lv")  # noqa: E731
        by_api = [("start.lv_api", lambda: dom().create()), ("stop_force.lv_api", lambda: dom().destroy())]
        cycles.append(cycle("lv_virsh", lv, "bench-lv", *(by_api if api else [])))
        stops.append(graceful("lv_api" if api else "lv_virsh", lv, "bench-lv", lv.shutdown_wait))
    S.rounds(N, "start/stop", cycles)
    if not a.no_graceful:  # ACPI power button; the guest powers off
        S.rounds(N, "graceful stop", stops)

    # ---- define many; memory with R defined and R running; list
    width = max(4, len(str(M)))
    names = {s: [f"{s}-{k:0{width}d}" for k in range(1, M + 1)] for s in ("fv", "lv")}

    def running(R: int) -> None:
        """R instances running, one manager at a time (they share 2 CPUs)."""
        for side, m, dpid, dname in (("fv", fv, fv.daemon_pid, "ferrovirtd"),
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
            S.add(f"start_{R}_serial.{side}", ms(t0, now()))
            for n in vms:
                wait_ready(m.console_log(n), offs[n], t0, timeout=600)
            S.add(f"ready_{R}_all.{side}", ms(t0, now()))
            key = f"running_{R}"
            rss.setdefault(key, {})[dname] = rss_settled(dpid)
            rss[key][f"qemu_total_{side}"] = {"VmRSS": sum(mem_detail(m.pid(n))["VmRSS"] for n in vms)}
            log(f"RSS {key}: {dname} {rss[key][dname]['VmRSS']} KiB")
            for n in vms:
                m.stop(n)

    log(f"defining {M} instances on each side")
    for k in range(M):
        # even: the CLIs; odd: the APIs. Ferrovirt and libvirt alternate.
        if k % 2 == 0:
            S.time("create.fv_cli", fv.create_cli, names["fv"][k])
        else:
            S.time("create.fv_api", fv.create, names["fv"][k])
        if api and k % 2:
            S.time("create.lv_api", lambda n: lv.conn.defineXML(lv.xml(n)), names["lv"][k])
        elif lv is not None:
            S.time("create.lv_virsh", lv.define, names["lv"][k])
        if k + 1 == min(rss_defined, M):
            daemon_rss(f"defined_{k + 1}")
            running(min(a.running, k + 1))
    daemon_rss(f"defined_{M}")
    # the per-instance create latency as the store fills: first and last 10%
    tenth = max(1, len(S.get("create.fv_api", [])) // 10)
    meta["create_first_last_10pct_median_ms"] = {
        k: [median(xs[:tenth]), median(xs[-tenth:])] for k, xs in S.items() if k.startswith("create.")}

    # ---- list with M (+1) defined
    n_fv = len(json.loads(fv.request("GET", "/1.0/instances")))
    if n_fv != M + 1:
        notes.append(f"GET /1.0/instances returned {n_fv} instances, expected {M + 1}")
    if api and len(lv.conn.listAllDomains(0)) != M + 1:
        notes.append(f"libvirt lists {len(lv.conn.listAllDomains(0))} domains, expected {M + 1}")
    ops = [("list.fv_cli", fv.cli_run, "list"), ("list.fv_api", fv.request, "GET", "/1.0/instances")]
    if lv is not None:
        ops.append(("list.lv_virsh", lv.virsh, "list", "--all"))
    if api:
        ops += [("list.lv_api", lambda: len(lv.conn.listAllDomains(0))),
                # what GET /1.0/instances also gives: each domain's state
                ("list_state.lv_api", lambda: [d.state() for d in lv.conn.listAllDomains(0)])]
    S.rounds(N, "list", ops)
    meta["foreign_activity"] = foreign.result()  # what is left running, the host's clean-up stops
    return {"meta": meta, "config": config, "samples_ms": S, "rss_kib": rss, "notes": notes}
