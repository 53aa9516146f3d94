"""python3 -m fvbench SUITE [--quick] [options]

  lifecycle  start, stop, create, list, daemon memory    (docs/benchmarks.md)
  snapnet    snapshots, save/restore, networks           (docs/benchmarks-snapshots-networks.md)
  migration  live migration between two namespaces       (docs/benchmarks-migration.md)
  storage    linked and full clones, volume create/list  (docs/benchmarks-storage.md)
  all        the four, one after the other (common options only)

Needs root. Installs libvirt from Debian (bookworm-backports when available)
when it is missing, unless --no-install. Results go to RESULTS/STEM.md and
.json (bench/results; bench/results/quick with --quick, which git ignores,
so that a quick run never overwrites a full run's figures), the daemons'
logs of the last run to RESULTS/logs/SUITE/. Everything a run starts or
makes is removed on exit, also on failure or Ctrl-C."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from . import host, lifecycle, migration, report, snapnet, stats, storage

SUITES = {"lifecycle": lifecycle, "snapnet": snapnet, "migration": migration, "storage": storage}
HELP = {"lifecycle": "start, stop, create, list, daemon memory",
        "snapnet": "snapshots, save/restore, networks, throughput",
        "migration": "live migration between two namespaces", "storage": "clones, volume create and list"}
BENCH = Path(__file__).resolve().parents[1]


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quick", action="store_true", help="the CI smoke run: few samples, small sizes")
    common.add_argument("--results", help="where the results go (bench/results, or bench/results/quick)")
    common.add_argument("--profile", choices=["release", "debug"],
                        help="the build to measure (release when built and up to date)")
    common.add_argument("--build", action="store_true", help="cargo build --release -p ferrovirtd -p ferrovirt first")
    common.add_argument("--bin-dir", metavar="DIR",
                        help="ferrovirtd and ferrovirt from DIR (e.g. an older build), not target/{release,debug}")
    common.add_argument("--no-libvirt", action="store_true", help="measure Ferrovirt (and the floor) only")
    common.add_argument("--no-install", dest="install", action="store_false",
                        help="never run apt-get (libvirt is skipped if missing)")
    ap = argparse.ArgumentParser(prog="python3 -m fvbench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="suite", required=True)
    for name, mod in SUITES.items():
        p = sub.add_parser(name, parents=[common], help=HELP[name])
        for opt, (default, quick, text) in mod.OPTIONS.items():
            if default == "flag":
                p.add_argument(f"--{opt}", action="store_true", help=text + (" (on with --quick)" if quick else ""))
            else:
                p.add_argument(f"--{opt}", type=type(default), default=default,
                               help=f"{text} ({default}" + (f"; quick {quick})" if quick is not None else ")"))
    sub.add_parser("all", parents=[common], help="the four suites, one after the other")
    return ap


def run(a: argparse.Namespace) -> int:
    mod = SUITES[a.suite]
    for opt, (default, quick, _) in mod.OPTIONS.items() if a.quick else ():
        k = opt.replace("-", "_")
        if quick is not None and getattr(a, k) == (False if default == "flag" else default):
            setattr(a, k, quick)
    results = Path(a.results) if a.results else BENCH / "results" / ("quick" if a.quick else "")
    t0 = time.time()
    b = host.binaries(a.profile, a.build, a.bin_dir)
    meta = {**stats.machine(), **b.meta, "quick": a.quick,
            "qemu_version": host.out([b.qemu, "--version"]).splitlines()[0].replace("QEMU emulator version ", "")}
    if meta["other_qemu_processes_at_start"]:
        host.log(f"warning: {meta['other_qemu_processes_at_start']} other QEMU process(es) on this host: "
                 "figures will be noisier")
    host.log(f"{a.suite}: ferrovirtd {b.ferrovirtd} ({b.meta['profile']}), results to {results}")
    with host.Host(a.suite, results / "logs" / a.suite) as h:
        raw = mod.run_suite(a, h, b)
    raw["meta"] = {**meta, **raw["meta"], "script_seconds": int(time.time() - t0)}
    md = report.REPORTS[a.suite](raw)
    stats.write(results, mod.STEM, raw, md)
    print(md)
    host.log(f"results: {results / mod.STEM}.md and .json")
    why = getattr(mod, "failed", lambda _raw: "")(raw)
    if why:
        host.log(f"{a.suite}: {why}")
    return 1 if why else 0


def main(argv: list[str]) -> int:
    ap = parser()
    a = ap.parse_args(argv)
    if a.suite != "all":
        return run(a)
    rest = [x for x in argv if x != "all"]
    failed = []
    for name in SUITES:
        try:
            if run(ap.parse_args([name, *rest])) != 0:
                failed.append(name)
        except Exception as e:  # noqa: BLE001 - the next suite still runs
            host.log(f"{name} failed: {e}")
            failed.append(name)
    if failed:
        host.log(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    # The system's Python first: Debian's python3-libvirt is importable there.
    system = shutil.which("python3", path="/usr/bin")
    if system and os.path.realpath(system) != os.path.realpath(sys.executable) and not os.environ.get("FVBENCH_PY"):
        env = dict(os.environ, FVBENCH_PY="1", PYTHONPATH=str(BENCH))
        os.execve(system, [system, "-m", "fvbench", *sys.argv[1:]], env)
    sys.exit(host.reaped(lambda: main(sys.argv[1:])))
