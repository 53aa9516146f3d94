"""Samples, medians, ratios and figure formats; the machine, and what else
ran on it while measuring."""
from __future__ import annotations

import json
import math
import os
import platform
import threading
import time
from pathlib import Path

from .guest import MIB, ms, now
from .host import log, out, proc


def median(xs) -> float | None:
    s = sorted(x for x in xs if x is not None)
    n = len(s)
    if n == 0:
        return None
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def rotated(xs: list, i: int) -> list:
    """`xs` rotated by `i`: no system always goes first."""
    k = i % len(xs)
    return xs[k:] + xs[:k]


def timed(fn, *args) -> tuple[float, object]:
    """Milliseconds that fn(*args) took, and its result."""
    t0 = now()
    res = fn(*args)
    return ms(t0, now()), res


class Samples(dict):
    """The samples of each figure ("start.fv_api": [ms, ...]); `errors`: the
    first failure of each figure that failed."""

    def __init__(self):
        super().__init__()
        self.errors: dict[str, str] = {}

    def add(self, key: str, v: float) -> None:
        self.setdefault(key, []).append(v)

    def time(self, key: str, fn, *args):
        """fn(*args), the milliseconds it took added to `key`; its result."""
        took, res = timed(fn, *args)
        self.add(key, took)
        return res

    def rounds(self, n: int, what: str, steps: list) -> None:
        """`n` rounds of `steps`, in an order rotated by one each round: a step
        is (figure, fn, *args), timed, or a callable of the round's index."""
        for i in range(n):
            log(f"{what} run {i + 1}/{n}")
            for step in rotated(steps, i):
                if callable(step):
                    step(i)
                else:
                    self.time(*step)

    def attempt(self, key: str, fn, *args) -> bool:
        """time(), but a failure is recorded (once per key) and the run goes on."""
        try:
            self.time(key, fn, *args)
            return True
        except Exception as e:  # noqa: BLE001
            if key not in self.errors:
                self.errors[key] = str(e).strip().replace("\n", " ")[:600]
                log(f"FAILED {key}: {self.errors[key]}")
            return False


def ratio(a, b) -> float | None:
    return None if a is None or b in (None, 0) else a / b


def fmt_ms(v) -> str:
    if v is None:
        return "–"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    return f"{v:.0f} ms" if v >= 100 else f"{v:.1f} ms" if v >= 10 else f"{v:.2f} ms"


def fmt_kib(v) -> str:
    return "–" if v is None else f"{v / 1024:.1f} MiB"


def fmt_size(b, small: str = "B") -> str:
    """MiB, KiB, or bytes (small="KiB": KiB all the way down)."""
    if b is None:
        return "–"
    if b >= MIB:
        return f"{b / MIB:.1f} MiB"
    return f"{b / 1024:.0f} KiB" if b >= 1024 or small == "KiB" else f"{b} B"


def fmt_unit(unit: str):
    def f(v) -> str:
        if v is None:
            return "–"
        if unit == "ms" and v >= 1000:
            return f"{v / 1000:.2f} s"
        if v >= 100:
            return f"{v:.0f} {unit}"
        return f"{v:.1f} {unit}" if isinstance(v, float) else f"{v} {unit}"
    return f


def fmt_ratio(r) -> str:
    return "–" if r is None else f"{r:.2f}x"


def verdict(r, lower_is_better=True) -> str:
    if r is None:
        return "–"
    if 0.95 <= r <= 1.05:
        return "same (±5%)"
    if lower_is_better:
        return f"Ferrovirt, {1 / r:.1f}×" if r < 1 else f"libvirt, {r:.1f}×"
    return f"Ferrovirt, {r:.2f}×" if r > 1 else f"libvirt, {1 / r:.2f}×"


def cell(xs, fmt=fmt_ms, spread_from: int = 2) -> str:
    """The median, with min–max once there are `spread_from` samples."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    m = fmt(median(xs))
    return f"{m} ({fmt(min(xs))}–{fmt(max(xs))})" if len(xs) >= spread_from else m


def write(results: Path, stem: str, raw: dict, md: str) -> None:
    results.mkdir(parents=True, exist_ok=True)
    nan = lambda x: None if isinstance(x, float) and math.isnan(x) else x  # noqa: E731
    (results / f"{stem}.json").write_text(json.dumps(raw, indent=1, default=nan))
    (results / f"{stem}.md").write_text(md)


# ------------------------------------------------------------------ report pieces

def row(*cells) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def table(cols: list[str], rows: list[list], fmt=str, align: str = "") -> list[str]:
    """A Markdown table: header `cols` (`align`: l, r or c per column; by
    default l, then r), then `rows`, their figures (cells that are not
    text) formatted by `fmt`. A row without any figure (all None) is left out."""
    align = align or "l" + "r" * (len(cols) - 1)
    return [row(*cols), "|" + "".join({"l": "---|", "r": "---:|", "c": ":---:|"}[a] for a in align)] + [
        row(*(c if isinstance(c, str) else fmt(c) for c in r)) for r in rows if any(c is not None for c in r[1:])]


def machine_line(meta: dict, head: str = "") -> str:
    return (f"Machine: {meta.get('cpus')} × {meta.get('cpu_model')}, "
            f"{meta.get('mem_total_kib', 0) / 1048576:.1f} GiB, Linux {meta.get('kernel')}. "
            f"QEMU {meta.get('qemu_version', '?')}, libvirt {meta.get('libvirt_version') or 'skipped'}, "
            f"Ferrovirt {meta.get('ferrovirt_commit', '?')} ({head}{meta.get('profile', '?')} build of "
            f"{meta.get('ferrovirtd_binary_mtime', '?')}).")


def bin_line(meta: dict, lead: str = "", end: str = "\n") -> list[str]:
    """The binaries measured, when taken from --bin-dir (an older or newer build)."""
    if not meta.get("bin_dir"):
        return []
    return [f"{lead}Binaries from `--bin-dir {meta['bin_dir']}`: `{meta.get('ferrovirtd_version')}` built "
            f"{meta.get('ferrovirtd_binary_mtime')}, `{meta.get('ferrovirt_cli_version')}` built "
            f"{meta.get('ferrovirt_cli_binary_mtime')}.{end}"]


def not_quiet(fa: dict) -> str:
    if not fa or not (fa.get("with_foreign_qemu") or fa.get("with_cargo_or_rustc")):
        return ""
    return (f"**Warning: the host was not quiet.** Of {fa['samples']} one-second samples, "
            f"{fa['with_foreign_qemu']} saw QEMUs this run did not start and {fa['with_cargo_or_rustc']} "
            f"saw cargo/rustc running (max 1-min load {fa.get('max_loadavg_1min', 0):.2f}). "
            "Latencies are inflated; rerun on a quiet host.")


def counts(S: dict) -> str:
    return "Sample counts: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(S.items())) + "."


# ------------------------------------------------------------------ the machine

def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine() -> dict:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    mem = Path("/proc/meminfo").read_text().splitlines()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "kernel": platform.release(), "cpus": os.cpu_count(),
        "cpu_model": next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), "?"),
        "mem_total_kib": int(next(ln.split()[1] for ln in mem if ln.startswith("MemTotal"))),
        "python": platform.python_version(),
        "uptime_at_start": out(["uptime"]),
        "loadavg_at_start": loadavg(),
        "other_qemu_processes_at_start": len(out(["pgrep", "^qemu-system"]).split()),
    }


BUILDERS = ("cargo", "rustc", "cc1", "cc1plus", "ld", "cargo-nextest")


class ForeignLoad:
    """Samples, once a second, what else runs on the host: QEMUs this run did
    not start (their argv does not name the run's directory `tmp`, as every
    QEMU of the run does), cargo/rustc/tests, and the load average."""

    def __init__(self, tmp: Path):
        self.tmp = str(tmp)
        self.samples = self.qemu = self.build = 0
        self.loads: list[float] = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self) -> None:
        while not self.stop.wait(1.0):
            q = b = 0
            for pid in filter(str.isdigit, os.listdir("/proc")):
                comm = proc(pid, "comm").strip()
                if comm.startswith("qemu-system"):
                    q += self.tmp not in proc(pid, "cmdline")
                elif comm in BUILDERS or comm.startswith("ferrovirt_e2e"):
                    b += 1
            self.samples += 1
            self.qemu += q > 0
            self.build += b > 0
            self.loads.append(loadavg()[0])

    def result(self) -> dict:
        self.stop.set()
        self.t.join(timeout=5)
        return {"samples": self.samples, "with_foreign_qemu": self.qemu,
                "with_cargo_or_rustc": self.build, "max_loadavg_1min": max(self.loads, default=0.0),
                "loadavg_1min_median": median(self.loads)}
