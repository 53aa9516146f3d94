#!/usr/bin/env python3
"""Ferrovirt vs libvirt vs raw QEMU: the measurements behind bench/run.sh.

run.sh installs libvirt, starts the daemons (a private ferrovirtd, a private
libvirtd in its own mount namespace) and calls this script, which does every
timed operation and writes the raw samples (milliseconds) and memory figures
(KiB) as JSON. report.py turns that JSON into the tables.

Only the standard library is needed; the libvirt Python binding (Debian's
python3-libvirt) is used when importable, for the "libvirt API" rows.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import select
import signal
import socket
import subprocess
import sys
import time
import uuid as uuidlib
from pathlib import Path

try:  # optional: API-level libvirt figures
    import libvirt  # type: ignore

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
except Exception:  # pragma: no cover - depends on the host
    libvirt = None

READY = b"FERROVIRT-GUEST-READY"
now = time.perf_counter


def ms(t0: float, t1: float) -> float:
    return round((t1 - t0) * 1000.0, 3)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# processes and memory


def proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z", "X")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def mem_detail(pid: int) -> dict[str, int]:
    """VmRSS and its anonymous / file-backed parts, and PSS (KiB)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[k] = int(v.split()[0])
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1])
    except OSError:
        pass
    return out


def rss_settled(pid: int, settle: float = 1.0, samples: int = 5) -> dict[str, int]:
    """mem_detail() of the sample with the median VmRSS, over a few samples
    taken after `settle` seconds."""
    time.sleep(settle)
    vals = []
    for _ in range(samples):
        vals.append(mem_detail(pid))
        time.sleep(0.1)
    vals.sort(key=lambda d: d.get("VmRSS", 0))
    return vals[len(vals) // 2]


class ForeignLoad:
    """Samples, once a second, what else runs on the host: QEMUs this run did
    not start, cargo/rustc, and the load average. Benchmarks on a shared
    2-core machine are only as good as that is quiet."""

    def __init__(self, ours: set[int]):
        import threading
        self.ours = ours
        self.samples = self.qemu = self.build = 0
        self.max_load = 0.0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self) -> None:
        while not self.stop.wait(1.0):
            q = b = 0
            procs: dict[int, tuple[str, int]] = {}
            for d in Path("/proc").iterdir():
                if not d.name.isdigit():
                    continue
                try:
                    stat = (d / "stat").read_text()
                except OSError:
                    continue
                procs[int(d.name)] = (stat[stat.index("(") + 1:stat.rindex(")")],
                                      int(stat.rsplit(")", 1)[1].split()[1]))

            def mine(pid: int) -> bool:  # is one of our processes an ancestor?
                for _ in range(64):
                    if pid in self.ours:
                        return True
                    if pid <= 1 or pid not in procs:
                        return False
                    pid = procs[pid][1]
                return False

            for pid, (comm, ppid) in procs.items():
                if comm.startswith("qemu-system") and not mine(ppid):
                    q += 1
                elif comm in ("cargo", "rustc", "cc1", "cc1plus", "ld", "cargo-nextest"):
                    b += 1
            self.samples += 1
            self.qemu += q > 0
            self.build += b > 0
            self.max_load = max(self.max_load, float(Path("/proc/loadavg").read_text().split()[0]))

    def result(self) -> dict:
        self.stop.set()
        self.t.join(timeout=5)
        return {"samples": self.samples, "with_foreign_qemu": self.qemu,
                "with_cargo_or_rustc": self.build, "max_loadavg_1min": self.max_load}


def wait_gone(pid: int, timeout: float = 30.0) -> None:
    """Returns once `pid` has exited: its pidfd becomes readable when the
    whole thread group is gone (not merely the main thread), no polling."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            raise TimeoutError(f"process {pid} still alive after {timeout}s")
    finally:
        os.close(fd)


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): "
                           f"{p.stderr.decode(errors='replace').strip()}")
    return p


def timed(fn, *a, **kw) -> float:
    t0 = now()
    fn(*a, **kw)
    return ms(t0, now())


def wait_ready(path: Path, offset: int, t0: float, timeout: float = 120.0) -> float:
    """Polls a console log (every 5 ms) for the guest's ready marker written
    after `offset`; returns ms since `t0`."""
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                buf = f.read()
        except FileNotFoundError:
            pass
        if READY in buf:
            return ms(t0, now())
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {READY.decode()} in {path} after {timeout}s: {buf[-300:]!r}")
        time.sleep(0.005)


def fsize(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# --------------------------------------------------------------------------
# QMP, for the floor


class Qmp:
    def __init__(self, path: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.001)
        self.sock.settimeout(timeout)
        self.f = self.sock.makefile("rwb", buffering=0)
        self.events: list[dict] = []
        greeting = self._read()
        assert "QMP" in greeting, greeting
        self.cmd("qmp_capabilities")

    def _read(self) -> dict:
        line = self.f.readline()
        if not line:
            raise EOFError("QMP closed")
        return json.loads(line)

    def cmd(self, name: str, args: dict | None = None) -> dict:
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        while True:
            m = self._read()
            if "event" in m:
                self.events.append(m)
                continue
            if "error" in m:
                raise RuntimeError(f"QMP {name}: {m['error']}")
            return m["return"]

    def wait_event(self, name: str) -> dict:
        for e in self.events:
            if e["event"] == name:
                self.events.remove(e)
                return e
        while True:
            m = self._read()
            if m.get("event") == name:
                return m

    def close(self) -> None:
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass


class Floor:
    """Raw QEMU, with the argv Ferrovirt builds (see
    crates/qemu/tests/golden/direct_kernel_boot_tcg.argv), doing the minimum
    any manager must: spawn with -daemonize (returns once QEMU is
    initialized), connect QMP, negotiate, `cont`."""

    def __init__(self, qemu: str, root: Path, guest: dict, memory: int):
        self.qemu, self.root, self.guest, self.memory = qemu, root, guest, memory
        self.vms: dict[str, tuple[int, Qmp]] = {}

    def dir(self, name: str) -> Path:
        return self.root / name

    def console_log(self, name: str) -> Path:
        return self.dir(name) / "console.log"

    template: list[str] | None = None

    def use_argv_of(self, argv: list[str], name: str, dirs: list[str]) -> None:
        """Takes the argv of a QEMU that Ferrovirt launched as the floor's,
        with its instance directories, name and UUID made placeholders, so the
        floor follows whatever Ferrovirt builds (the golden file may lag)."""
        out, uuid_next = [], False
        for x in argv:
            if uuid_next:
                out.append("{UUID}")
                uuid_next = False
                continue
            uuid_next = x == "-uuid"
            for d in dirs:
                x = x.replace(d, "{DIR}")
            out.append(x.replace(f"guest={name},", "guest={NAME},"))
        self.template = out

    def argv(self, name: str) -> list[str]:
        d = self.dir(name)
        if self.template is not None:
            uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, name))
            return [x.replace("{DIR}", str(d)).replace("{NAME}", name).replace("{UUID}", uuid)
                    for x in self.template]
        # The golden argv (crates/qemu/tests/golden/direct_kernel_boot_tcg.argv).
        return [
            self.qemu,
            "-name", f"guest={name},debug-threads=on",
            "-uuid", str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, name)),
            "-nodefaults", "-no-user-config", "-S", "-no-shutdown",
            "-action", "panic=pause", "-msg", "timestamp=on",
            "-machine", "q35", "-accel", "tcg", "-cpu", "max",
            "-smp", "1", "-m", f"{self.memory}M",
            "-chardev", f"socket,id=qmp,path={d}/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-chardev", f"socket,id=serial0,path={d}/console.sock,server=on,wait=off,"
                        f"logfile={d}/console.log,logappend=on",
            "-serial", "chardev:serial0",
            "-device", '{"driver":"pvpanic","id":"pvpanic0"}',
            "-kernel", self.guest["kernel"], "-initrd", self.guest["initrd"],
            "-append", self.guest["cmdline"],
            "-display", "none",
            "-D", f"{d}/qemu.log", "-pidfile", f"{d}/qemu.pid", "-daemonize",
        ]

    def start(self, name: str) -> None:
        d = self.dir(name)
        d.mkdir(parents=True, exist_ok=True)
        for stale in ("qmp.sock", "console.sock", "qemu.pid"):
            try:
                (d / stale).unlink()
            except FileNotFoundError:
                pass
        with open(d / "qemu.log", "wb") as logf:
            p = subprocess.run(self.argv(name), stdin=subprocess.DEVNULL, stdout=logf,
                               stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise RuntimeError(f"floor QEMU failed: {(d / 'qemu.log').read_text()[-500:]}")
        pid = int((d / "qemu.pid").read_text().strip())
        q = Qmp(str(d / "qmp.sock"))
        q.cmd("cont")
        self.vms[name] = (pid, q)

    def pid(self, name: str) -> int:
        return self.vms[name][0]

    def stop_force(self, name: str) -> None:
        pid, q = self.vms.pop(name)
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
        q.close()

    def stop_graceful(self, name: str) -> None:
        pid, q = self.vms.pop(name)
        q.cmd("system_powerdown")
        q.wait_event("SHUTDOWN")
        try:
            q.cmd("quit")
        except (EOFError, OSError):
            pass
        wait_gone(pid)
        q.close()

    def stop_all(self) -> None:
        for name in list(self.vms):
            try:
                self.stop_force(name)
            except Exception as e:  # noqa: BLE001
                log(f"floor: cannot stop {name}: {e}")


# --------------------------------------------------------------------------
# Ferrovirt


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 120.0):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Ferrovirt:
    def __init__(self, cli: str, sock: str, state_dir: Path, guest: dict, memory: int):
        self.cli, self.sock, self.state_dir = cli, sock, state_dir
        self.guest, self.memory = guest, memory

    # REST, one connection per call (as curl would)
    def api(self, method: str, path: str, body: dict | None = None, want=(200, 201)) -> bytes:
        c = UnixHTTPConnection(self.sock)
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        out = r.read()
        c.close()
        if r.status not in want:
            raise RuntimeError(f"{method} {path} -> {r.status}: {out[:300]!r}")
        return out

    def spec(self, name: str) -> dict:
        return {"name": name, "cpus": 1, "memory": self.memory, "machine": "q35", "accel": "tcg",
                "boot": {"kernel": self.guest["kernel"], "initrd": self.guest["initrd"],
                         "cmdline": self.guest["cmdline"]}}

    def cli_run(self, *args: str) -> None:
        run([self.cli, "--socket", self.sock, *args])

    def create_api(self, name: str) -> None:
        self.api("POST", "/1.0/instances", self.spec(name))

    def create_cli(self, name: str) -> None:
        self.cli_run("create", name, "--kernel", self.guest["kernel"], "--initrd",
                     self.guest["initrd"], "--cmdline", self.guest["cmdline"], "--memory",
                     str(self.memory), "--cpus", "1", "--machine", "q35", "--accel", "tcg")

    def start_api(self, name: str) -> None:
        self.api("PUT", f"/1.0/instances/{name}/state", {"action": "start"})

    def start_cli(self, name: str) -> None:
        self.cli_run("start", name)

    def stop_force_api(self, name: str) -> None:
        self.api("PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})

    def stop_force_cli(self, name: str) -> None:
        self.cli_run("stop", name, "--force")

    def stop_graceful_api(self, name: str) -> None:
        self.api("PUT", f"/1.0/instances/{name}/state", {"action": "stop", "timeout": 60})

    def list_api(self) -> bytes:
        return self.api("GET", "/1.0/instances")

    def list_cli(self) -> None:
        self.cli_run("list")

    def show(self, name: str) -> dict:
        return json.loads(self.api("GET", f"/1.0/instances/{name}"))

    def pid(self, name: str) -> int:
        return int(self.show(name)["state"]["pid"])

    def console_log(self, name: str) -> Path:
        return self.state_dir / "logs" / name / "console.log"

    def running(self) -> list[str]:
        return [i["spec"]["name"] for i in json.loads(self.list_api())
                if i["state"]["status"] not in ("shutoff", "crashed")]


# --------------------------------------------------------------------------
# libvirt


class Libvirt:
    def __init__(self, uri: str, root: Path, guest: dict, memory: int, qemu: str, run_dir: Path):
        self.uri, self.root, self.guest, self.memory = uri, root, guest, memory
        self.qemu, self.run_dir = qemu, run_dir
        (root / "xml").mkdir(parents=True, exist_ok=True)
        (root / "con").mkdir(parents=True, exist_ok=True)
        self.conn = None

    def open_api(self) -> None:
        if libvirt is not None:
            self.conn = libvirt.open(self.uri)

    def console_log(self, name: str) -> Path:
        return self.root / "con" / f"{name}.log"

    def xml(self, name: str) -> str:
        esc = lambda s: (s.replace("&", "&amp;").replace("<", "&lt;")  # noqa: E731
                         .replace(">", "&gt;").replace("'", "&apos;"))
        return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{self.memory}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{esc(self.guest['kernel'])}</kernel>
    <initrd>{esc(self.guest['initrd'])}</initrd>
    <cmdline>{esc(self.guest['cmdline'])}</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='maximum' check='none'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{esc(self.qemu)}</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <serial type='unix'>
      <source mode='bind' path='{self.root}/con/{name}.sock'/>
      <log file='{self.console_log(name)}' append='on'/>
    </serial>
    <panic model='pvpanic'/>
  </devices>
</domain>
"""

    def xml_file(self, name: str) -> str:
        p = self.root / "xml" / f"{name}.xml"
        if not p.exists():
            p.write_text(self.xml(name))
        return str(p)

    def virsh(self, *args: str) -> subprocess.CompletedProcess:
        return run(["virsh", "-q", "-c", self.uri, *args])

    def define_virsh(self, name: str) -> None:
        self.virsh("define", self.xml_file(name))

    def define_api(self, name: str) -> None:
        self.conn.defineXML(self.xml(name))

    def start_virsh(self, name: str) -> None:
        self.virsh("start", name)

    def start_api(self, name: str) -> None:
        self.conn.lookupByName(name).create()

    def destroy_virsh(self, name: str) -> None:
        self.virsh("destroy", name)

    def destroy_api(self, name: str) -> None:
        self.conn.lookupByName(name).destroy()

    def shutdown_wait(self, name: str) -> None:
        """`virsh shutdown` returns at once: poll (5 ms) until shut off."""
        if self.conn is not None:
            dom = self.conn.lookupByName(name)
            dom.shutdown()
            deadline = time.monotonic() + 60
            while dom.isActive():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"libvirt: {name} did not shut down")
                time.sleep(0.005)
        else:
            self.virsh("shutdown", name)
            deadline = time.monotonic() + 60
            while self.virsh("domstate", name).stdout.strip() != b"shut off":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"libvirt: {name} did not shut down")
                time.sleep(0.005)

    def list_virsh(self) -> None:
        self.virsh("list", "--all")

    def list_api(self) -> int:
        return len(self.conn.listAllDomains(0))

    def list_api_state(self) -> list:
        """What GET /1.0/instances also gives: each domain's state."""
        return [d.state() for d in self.conn.listAllDomains(0)]

    def pid(self, name: str) -> int:
        return int((self.run_dir / "qemu" / f"{name}.pid").read_text().strip())

    def running(self) -> list[str]:
        out = self.virsh("list", "--name").stdout.decode()
        return [line.strip() for line in out.splitlines() if line.strip()]


# --------------------------------------------------------------------------
# the benchmark


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")


def lv_smoke(uri: str, guest_json: str, qemu: str, tmp: str, run_dir: str) -> int:
    """Defines, starts, destroys and undefines one domain with the XML the
    benchmark uses; run.sh skips libvirt when this fails."""
    guest = json.loads(Path(guest_json).read_text())
    lv = Libvirt(uri, Path(tmp) / "lvdata", guest, 256, qemu, Path(run_dir))
    name = "bench-smoke"
    lv.define_virsh(name)
    try:
        lv.start_virsh(name)
        lv.destroy_virsh(name)
    finally:
        lv.virsh("undefine", name)
    print("libvirt smoke test passed")
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "lv-smoke":
        return lv_smoke(*sys.argv[2:7])
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--running", type=int, default=10)
    ap.add_argument("--rss-defined", type=int, default=50)
    ap.add_argument("--memory", type=int, default=256)
    ap.add_argument("--no-graceful", action="store_true")
    ap.add_argument("--qemu", default="/usr/bin/qemu-system-x86_64")
    ap.add_argument("--guest", required=True, help="JSON of ferrovirt-test-guest")
    ap.add_argument("--fv-cli", required=True)
    ap.add_argument("--fv-socket", required=True)
    ap.add_argument("--fv-state-dir", required=True)
    ap.add_argument("--fv-pid", type=int, required=True)
    ap.add_argument("--lv-uri")
    ap.add_argument("--lv-pid", type=int)
    ap.add_argument("--lv-run-dir")
    ap.add_argument("--meta", default="{}", help="JSON merged into meta")
    ap.add_argument("--reaper-pid", type=int, default=0,
                    help="the subreaper the daemonized QEMUs of this run are re-parented to")
    a = ap.parse_args()

    T = Path(a.tmp)
    guest = json.loads(Path(a.guest).read_text())
    N = a.runs
    samples: dict[str, list[float]] = {}
    rss: dict[str, dict[str, int]] = {}
    notes: list[str] = []

    def add(key: str, v: float) -> None:
        samples.setdefault(key, []).append(v)

    fv = Ferrovirt(a.fv_cli, a.fv_socket, Path(a.fv_state_dir), guest, a.memory)
    fl = Floor(a.qemu, T / "floor", guest, a.memory)
    lv = None
    if a.lv_uri:
        lv = Libvirt(a.lv_uri, T / "lvdata", guest, a.memory, a.qemu, Path(a.lv_run_dir))
    have_lv_api = lv is not None and libvirt is not None
    if lv is not None and libvirt is None:
        notes.append("The libvirt Python binding is not importable: no 'libvirt API' rows.")

    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cpu_model": next((l.split(":", 1)[1].strip() for l in
                           Path("/proc/cpuinfo").read_text().splitlines()
                           if l.startswith("model name")), "?"),
        "mem_total_kib": int(next(l.split()[1] for l in
                                  Path("/proc/meminfo").read_text().splitlines()
                                  if l.startswith("MemTotal"))),
        "python": platform.python_version(),
        "libvirt_python": have_lv_api,
    }
    meta.update(json.loads(a.meta))
    config = {"runs": N, "instances": a.instances, "running": a.running,
              "rss_defined": a.rss_defined, "memory_mib": a.memory,
              "graceful": not a.no_graceful}

    ours = {a.reaper_pid, a.fv_pid, os.getpid()} | ({a.lv_pid} if a.lv_pid else set())
    foreign = ForeignLoad(ours)

    def daemon_rss(key: str) -> None:
        rss[key] = {"ferrovirtd": rss_settled(a.fv_pid)}
        if lv is not None:
            rss[key]["libvirtd"] = rss_settled(a.lv_pid, settle=0)
        log(f"RSS {key}: " + ", ".join(f"{k} {v['VmRSS']} KiB" for k, v in rss[key].items()))

    # ---- idle memory (before the bench opens its own libvirt connection)
    daemon_rss("idle")
    if lv is not None:
        lv.open_api()

    # ---- process start-up cost of the two CLIs (context for the CLI rows)
    for _ in range(N):
        add("noop.fv_cli", timed(run, [a.fv_cli, "--version"]))
        if lv is not None:
            add("noop.lv_virsh", timed(run, ["virsh", "--version"]))

    # ---- start / ready / stop
    fv.create_api("bench-fv")
    if lv is not None:
        lv.define_virsh("bench-lv")

    # Warm-up (untimed): one start and stop each. Ferrovirt's QEMU argv
    # becomes the floor's.
    fv.start_api("bench-fv")
    fv_qemu_argv = cmdline(fv.pid("bench-fv"))
    fv.stop_force_api("bench-fv")
    meta["ferrovirt_argv"] = fv_qemu_argv
    golden = fl.argv("bench-floor")
    Tdir = str(Path(a.fv_state_dir).parent)
    fl.use_argv_of(fv_qemu_argv, "bench-fv",
                   [f"{Tdir}/run/instances/bench-fv", f"{Tdir}/state/logs/bench-fv"])
    meta["floor_argv"] = fl.argv("bench-floor")
    meta["floor_argv_is_golden"] = meta["floor_argv"] == golden
    for f in ("qmp.sock", "console.sock", "console.log", "qemu.log", "qemu.pid"):
        if not any(f"{{DIR}}/{f}" in x for x in fl.template):
            raise RuntimeError(f"cannot derive the floor's argv: no {f} in {fv_qemu_argv}")
    fl.start("bench-floor")
    fl.stop_force("bench-floor")
    if lv is not None:
        lv.start_virsh("bench-lv")
        meta["libvirt_argv"] = cmdline(lv.pid("bench-lv"))
        lv.destroy_virsh("bench-lv")

    def cycle_floor(i: int) -> None:
        name = "bench-floor"
        off = fsize(fl.console_log(name))
        t0 = now()
        fl.start(name)
        add("start.floor", ms(t0, now()))
        add("ready.floor", wait_ready(fl.console_log(name), off, t0))
        add("stop_force.floor", timed(fl.stop_force, name))

    def cycle_fv(i: int) -> None:
        name = "bench-fv"
        off = fsize(fv.console_log(name))
        t0 = now()
        fv.start_api(name)
        add("start.fv_api", ms(t0, now()))
        add("ready.fv_api", wait_ready(fv.console_log(name), off, t0))
        add("stop_force.fv_api", timed(fv.stop_force_api, name))
        add("start.fv_cli", timed(fv.start_cli, name))
        add("stop_force.fv_cli", timed(fv.stop_force_cli, name))

    def cycle_lv(i: int) -> None:
        name = "bench-lv"
        off = fsize(lv.console_log(name))
        t0 = now()
        lv.start_virsh(name)
        add("start.lv_virsh", ms(t0, now()))
        add("ready.lv_virsh", wait_ready(lv.console_log(name), off, t0))
        add("stop_force.lv_virsh", timed(lv.destroy_virsh, name))
        if have_lv_api:
            add("start.lv_api", timed(lv.start_api, name))
            add("stop_force.lv_api", timed(lv.destroy_api, name))

    cycles = [cycle_floor, cycle_fv] + ([cycle_lv] if lv is not None else [])
    for i in range(N):
        log(f"start/stop run {i + 1}/{N}")
        k = i % len(cycles)
        for c in cycles[k:] + cycles[:k]:  # rotate the order: no system always goes first
            c(i)

    # ---- graceful stop (ACPI power button; the guest powers off)
    if not a.no_graceful:
        def g_floor() -> None:
            name = "bench-floor"
            off = fsize(fl.console_log(name))
            t0 = now()
            fl.start(name)
            wait_ready(fl.console_log(name), off, t0)
            add("stop_graceful.floor", timed(fl.stop_graceful, name))

        def g_fv() -> None:
            name = "bench-fv"
            off = fsize(fv.console_log(name))
            t0 = now()
            fv.start_api(name)
            wait_ready(fv.console_log(name), off, t0)
            add("stop_graceful.fv_api", timed(fv.stop_graceful_api, name))

        def g_lv() -> None:
            name = "bench-lv"
            off = fsize(lv.console_log(name))
            t0 = now()
            lv.start_virsh(name)
            wait_ready(lv.console_log(name), off, t0)
            key = "stop_graceful.lv_api" if have_lv_api else "stop_graceful.lv_virsh"
            add(key, timed(lv.shutdown_wait, name))

        gs = [g_floor, g_fv] + ([g_lv] if lv is not None else [])
        for i in range(N):
            log(f"graceful stop run {i + 1}/{N}")
            k = i % len(gs)
            for g in gs[k:] + gs[:k]:
                g()

    # ---- define many; memory with R defined and R running; list
    M = a.instances
    width = max(4, len(str(M)))
    fv_names = [f"fv-{k:0{width}d}" for k in range(1, M + 1)]
    lv_names = [f"lv-{k:0{width}d}" for k in range(1, M + 1)]
    log(f"defining {M} instances on each side")
    t_pop = now()
    for k in range(M):
        # Odd: the CLIs; even: the APIs. Ferrovirt and libvirt alternate.
        if k % 2 == 0:
            add("create.fv_cli", timed(fv.create_cli, fv_names[k]))
            if lv is not None:
                add("create.lv_virsh", timed(lv.define_virsh, lv_names[k]))
        else:
            add("create.fv_api", timed(fv.create_api, fv_names[k]))
            if lv is not None:
                if have_lv_api:
                    add("create.lv_api", timed(lv.define_api, lv_names[k]))
                else:
                    add("create.lv_virsh", timed(lv.define_virsh, lv_names[k]))
        if k + 1 == min(a.rss_defined, M):
            daemon_rss(f"defined_{k + 1}")
            # R running instances, one manager at a time (they share 2 CPUs)
            R = min(a.running, k + 1)
            for side in ("fv", "lv"):
                if side == "lv" and lv is None:
                    continue
                names = (fv_names if side == "fv" else lv_names)[:R]
                log(f"{side}: starting {R} instances")
                t0 = now()
                offs = {}
                for n in names:
                    m = fv if side == "fv" else lv
                    offs[n] = fsize(m.console_log(n))
                    if side == "fv":
                        fv.start_api(n)
                    else:
                        lv.start_virsh(n)
                add(f"start_{R}_serial.{side}", ms(t0, now()))
                m = fv if side == "fv" else lv
                for n in names:
                    wait_ready(m.console_log(n), offs[n], t0, timeout=600)
                add(f"ready_{R}_all.{side}", ms(t0, now()))
                key = f"running_{R}"
                dpid = a.fv_pid if side == "fv" else a.lv_pid
                dname = "ferrovirtd" if side == "fv" else "libvirtd"
                rss.setdefault(key, {})[dname] = rss_settled(dpid)
                rss[key][f"qemu_total_{side}"] = {"VmRSS": sum(rss_kib(m.pid(n)) for n in names)}
                log(f"RSS {key}: {dname} {rss[key][dname]['VmRSS']} KiB")
                for n in names:
                    if side == "fv":
                        fv.stop_force_api(n)
                    else:
                        lv.destroy_virsh(n)
    create_total = ms(t_pop, now())
    log(f"defined {M} on each side in {create_total / 1000:.1f}s")
    daemon_rss(f"defined_{M}")

    # the per-instance create latency as the store fills: first and last 10%
    tenth = max(1, len(samples.get("create.fv_api", [])) // 10)
    for key in [k for k in list(samples) if k.startswith("create.")]:
        xs = samples[key]
        meta.setdefault("create_first_last_10pct_median_ms", {})[key] = [
            median(xs[:tenth]), median(xs[-tenth:])]

    # ---- list with M (+1) defined
    expect = M + 1
    n_fv = len(json.loads(fv.list_api()))
    if n_fv != expect:
        notes.append(f"GET /1.0/instances returned {n_fv} instances, expected {expect}")
    if have_lv_api and lv.list_api() != expect:
        notes.append(f"libvirt lists {lv.list_api()} domains, expected {expect}")
    for i in range(N):
        log(f"list run {i + 1}/{N}")
        ops = [("list.fv_cli", fv.list_cli), ("list.fv_api", fv.list_api)]
        if lv is not None:
            ops.append(("list.lv_virsh", lv.list_virsh))
            if have_lv_api:
                ops.append(("list.lv_api", lv.list_api))
                ops.append(("list_state.lv_api", lv.list_api_state))
        k = i % len(ops)
        for key, fn in ops[k:] + ops[:k]:
            add(key, timed(fn))

    # ---- leave nothing running (run.sh also kills whatever is left)
    fl.stop_all()
    for n in fv.running():
        fv.stop_force_api(n)
    if lv is not None:
        for n in lv.running():
            lv.destroy_virsh(n)

    meta["foreign_activity"] = foreign.result()
    out = {"meta": meta, "config": config, "samples_ms": samples, "rss_kib": rss,
           "notes": notes}
    Path(a.out).write_text(json.dumps(out, indent=1))
    log(f"raw results in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
