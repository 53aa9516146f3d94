#!/usr/bin/env python3
"""Live migration, Ferrovirt vs libvirt vs QEMU by hand: the measurements
behind bench/migration.sh.

migration.sh makes two "hosts" (network namespaces A and B joined by a veth
pair), starts a ferrovirtd and (when it can) a libvirtd in each, and calls
this script, which for every guest size and run boots the same guest on A
with each of them, starts the same memory-dirtying workload in it, migrates
it live to B and records:

  total_ms     wall clock from the request to "done" (see each side below)
  downtime_ms  the downtime each reports: QEMU's own `downtime` (the
               source's query-migrate; Ferrovirt's result.downtime_ms is
               that figure) / libvirt's "Total downtime" of `virsh domjobinfo
               --completed` on B, which libvirt computes with its own clock
               (vCPUs stopped -> completion seen on the source)
  pause_ms     the guest writes a heartbeat byte to its serial port every
               10 ms; the host polls the console log files of both QEMUs
               every millisecond: the last growth of A's log -> the first of
               B's is how long the guest really stood still, including
               whatever the manager does between QEMU's switch-over and
               `cont` on the destination, and the guest getting going again

Only the standard library is needed. The raw samples go to --out as JSON;
migration_report.py makes the tables.
"""
from __future__ import annotations

import argparse
import base64
import calendar
import http.client
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import uuid as uuidlib
from pathlib import Path

READY = b"FERROVIRT-GUEST-READY"
# QMP max-bandwidth meaning "no limit": what ferrovirtd sets since c236360
# (qmp_jobs::UNLIMITED_BANDWIDTH, i64::MAX); libvirt sets i64::MAX rounded
# down to whole MiB. QEMU's own default is 128 MiB/s.
UNLIMITED_BANDWIDTH = (1 << 63) - 1
SHORT = {"floor": "floor", "ferrovirt": "fv", "libvirt": "lv", "floor_capped": "floorc"}
now = time.perf_counter

# The guest side, identical for the three: a tmpfs, a loop rewriting 64 MiB
# of it from /dev/urandom (the dirtying workload), and a heartbeat: one byte
# on the serial port every 10 ms.
WORKLOAD = (
    "mkdir -p /dev/shm && mount -t tmpfs -o size=80m tmpfs /dev/shm; "
    "( while :; do dd if=/dev/urandom of=/dev/shm/x bs=1M count=64 conv=notrunc 2>/dev/null; "
    "n=$(( $(cat /tmp/wl.n 2>/dev/null || echo 0) + 1 )); echo $n >/tmp/wl.n; done ) "
    "</dev/null >/dev/null 2>&1 & echo $! >/tmp/wl.pid; "
    "( while :; do printf .; usleep 10000; done ) </dev/null >/dev/ttyS0 2>/dev/null & "
    "echo $! >/tmp/hb.pid"
)
STOP_WORKLOAD = (
    "kill $(cat /tmp/hb.pid) $(cat /tmp/wl.pid) 2>/dev/null; killall dd 2>/dev/null; "
    "echo $(cat /tmp/counter) $(cut -d' ' -f1 /proc/uptime) $(cat /tmp/wl.n 2>/dev/null || echo 0)"
)
PROBE = "echo $(cat /tmp/counter) $(cut -d' ' -f1 /proc/uptime)"


def ms(t0: float, t1: float) -> float:
    return round((t1 - t0) * 1000.0, 3)


def log(msg: str) -> None:
    print(f"[migration {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(argv: list[str], check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): "
                           f"{p.stderr.decode(errors='replace').strip()[-600:]}")
    return p


def median(xs: list[float]) -> float | None:
    s = sorted(x for x in xs if x is not None)
    n = len(s)
    if n == 0:
        return None
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z", "X")


def wait_gone(pid: int, timeout: float = 30.0) -> None:
    """Returns once `pid` has exited (its pidfd turns readable when the whole
    thread group is gone)."""
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


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


class ForeignLoad:
    """Once a second: the load average, and whether QEMUs this run did not
    start or cargo/rustc/nextest run (on a shared 2-core machine the figures
    are only as good as that is quiet)."""

    def __init__(self, tmp: str):
        self.tmp = tmp
        self.samples = self.qemu = self.build = 0
        self.loads: list[float] = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self) -> None:
        while not self.stop.wait(1.0):
            q = b = 0
            for d in Path("/proc").iterdir():
                if not d.name.isdigit():
                    continue
                try:
                    comm = (d / "comm").read_text().strip()
                    if comm.startswith("qemu-system"):
                        if self.tmp not in (d / "cmdline").read_bytes().decode(errors="replace"):
                            q += 1
                    elif comm in ("cargo", "rustc", "cc1", "ld", "cargo-nextest") \
                            or comm.startswith("ferrovirt_e2e") or comm.startswith("migration-"):
                        b += 1
                except OSError:
                    continue
            self.samples += 1
            self.qemu += q > 0
            self.build += b > 0
            self.loads.append(loadavg()[0])

    def result(self) -> dict:
        self.stop.set()
        self.t.join(timeout=5)
        return {"samples": self.samples, "with_foreign_qemu": self.qemu,
                "with_cargo_rustc_or_tests": self.build,
                "loadavg_1min_max": max(self.loads, default=None),
                "loadavg_1min_median": median(self.loads)}


# --------------------------------------------------------------------------
# console streams and the guest's command channel


class SockStream:
    """A QEMU serial chardev served on a unix socket (the floor, libvirt)."""

    def __init__(self, path: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout: float) -> bytes | None:
        """Bytes, b"" on timeout, None once closed."""
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return b""
        try:
            data = self.sock.recv(65536)
        except OSError:
            return None
        return data if data else None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class WsStream:
    """Ferrovirt's console, GET /1.0/instances/NAME/console: a websocket with
    binary frames both ways on the API's unix socket (a minimal RFC 6455
    client: masked frames out, unmasked in)."""

    def __init__(self, api_sock: str, name: str, timeout: float = 30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(api_sock)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET /1.0/instances/{name}/console HTTP/1.1\r\nHost: localhost\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError(f"console of {name}: closed during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0] + b" ":
            raise RuntimeError(f"console of {name}: {head.decode(errors='replace')[:300]}")
        self.sock.settimeout(None)
        self.closed = False

    @staticmethod
    def _frame(opcode: int, payload: bytes) -> bytes:
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        return hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def send(self, data: bytes) -> None:
        self.sock.sendall(self._frame(0x2, data))

    def _parse(self) -> tuple[int, bytes] | None:
        b = self.buf
        if len(b) < 2:
            return None
        opcode, n, i = b[0] & 0x0F, b[1] & 0x7F, 2
        masked = b[1] & 0x80
        if n == 126:
            if len(b) < 4:
                return None
            n, i = struct.unpack(">H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, i = struct.unpack(">Q", b[2:10])[0], 10
        mask = b""
        if masked:
            mask, i = b[i:i + 4], i + 4
        if len(b) < i + n:
            return None
        payload = b[i:i + n]
        if masked:
            payload = bytes(x ^ mask[k % 4] for k, x in enumerate(payload))
        self.buf = b[i + n:]
        return opcode, payload

    def recv(self, timeout: float) -> bytes | None:
        if self.closed:
            return None
        deadline = time.monotonic() + timeout
        out = b""
        while True:
            f = self._parse()
            while f is not None:
                opcode, payload = f
                if opcode in (0x0, 0x1, 0x2):
                    out += payload
                elif opcode == 0x8:
                    self.closed = True
                    return out or None
                elif opcode == 0x9:
                    self.sock.sendall(self._frame(0xA, payload))
                f = self._parse()
            if out:
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                return b""
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return b""
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return None
            self.buf += chunk

    def close(self) -> None:
        try:
            self.sock.sendall(self._frame(0x8, b""))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


RESULT_RE = re.compile(rb"@@FV-END (\d+) (-?\d+) ([A-Za-z0-9+/=]*)\r?\n")


class Channel:
    """The test guest's command channel (crates/testkit/src/channel.rs):
    the host writes `@@FV <id> <base64 cmd>\\n`, the guest answers
    `@@FV-END <id> <rc> <base64 output>\\n`."""

    def __init__(self, stream):
        self.s = stream
        self.buf = b""
        self.next_id = int(time.time() * 1000) % 1_000_000 * 1000

    def run(self, cmd: str, timeout: float = 30.0) -> str:
        self.next_id += 1
        cid = self.next_id
        self.s.send(f"@@FV {cid} {base64.b64encode(cmd.encode()).decode()}\n".encode())
        deadline = time.monotonic() + timeout
        while True:
            for m in RESULT_RE.finditer(self.buf):
                if int(m.group(1)) == cid:
                    self.buf = self.buf[m.end():]
                    rc = int(m.group(2))
                    out = base64.b64decode(m.group(3)).decode(errors="replace")
                    if rc != 0:
                        raise RuntimeError(f"guest command {cmd!r} exited {rc}: {out[-500:]}")
                    return out
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"guest command {cmd!r}: no answer in {timeout}s; "
                                   f"console: {self.buf[-300:]!r}")
            data = self.s.recv(min(left, 1.0))
            if data is None:
                raise RuntimeError(f"console closed while running {cmd!r}: {self.buf[-300:]!r}")
            # The heartbeat's dots can fall between the guest's writes of
            # one answer line; a dot is never part of an answer.
            self.buf = (self.buf + data.replace(b".", b""))[-262144:]

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Probes with `true` every 0.5 s until one answers (the guest may
        have printed its ready marker before we connected)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.run("true", timeout=0.5)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        self.s.close()


# --------------------------------------------------------------------------
# the heartbeat watcher


class Heartbeat:
    """Polls the sizes of console log files every millisecond and keeps the
    times at which any of them grew. The guest writes one byte every 10 ms,
    so the longest interval between two growths is how long the guest (or
    its serial output) stood still."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self.last: dict[Path, int] = {}
        for p in paths:
            try:
                self.last[p] = p.stat().st_size
            except OSError:
                self.last[p] = 0  # appears later: its first bytes count
        self.times: list[float] = []
        self.first: dict[int, float] = {}  # file index -> its first growth
        self.lastg: dict[int, float] = {}  # file index -> its last growth
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self) -> None:
        while not self.stop.is_set():
            t = now()
            grew = False
            for i, p in enumerate(self.paths):
                try:
                    size = os.stat(p).st_size
                except OSError:
                    continue
                if size > self.last[p]:
                    grew = True
                    self.first.setdefault(i, t)
                    self.lastg[i] = t
                self.last[p] = size
            if grew:
                self.times.append(t)
            time.sleep(0.001)

    def finish(self) -> None:
        self.stop.set()
        self.t.join(timeout=5)

    def gaps(self, t0: float, t1: float) -> list[tuple[float, float]]:
        """(gap ms, start of the gap relative to t0 in ms) of consecutive
        growths overlapping [t0, t1], longest first."""
        ts = self.times
        out = []
        for a, b in zip(ts, ts[1:]):
            if b > t0 and a < t1:
                out.append((ms(a, b), ms(t0, a)))
        out.sort(reverse=True)
        return out

    def beats_after(self, t: float) -> int:
        return sum(1 for x in self.times if x > t)


class Watcher:
    """Collects (arrival time, line) of a line-oriented event stream in a
    thread: Ferrovirt's GET /1.0/events (ndjson), or `virsh event --loop`."""

    def __init__(self, lines_fn, close_fn):
        self.lines: list[tuple[float, str]] = []
        self.close_fn = close_fn
        self.t = threading.Thread(target=self.loop, args=(lines_fn,), daemon=True)
        self.t.start()

    def loop(self, lines_fn) -> None:
        try:
            for line in lines_fn():
                self.lines.append((now(), line))
        except (OSError, ValueError):
            pass

    def first(self, *needles: str) -> tuple[float, str] | None:
        for t, line in self.lines:
            if all(n in line for n in needles):
                return t, line
        return None

    def finish(self) -> None:
        try:
            self.close_fn()
        except OSError:
            pass
        self.t.join(timeout=5)


def fv_events(sock: str) -> Watcher:
    """Ferrovirt's event stream (HTTP/1.0: the body simply runs until the
    connection closes, no chunking)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(b"GET /1.0/events HTTP/1.0\r\nHost: localhost\r\n\r\n")
    f = s.makefile("rb")

    def lines():
        for raw in f:
            yield raw.decode(errors="replace").strip()

    def close():
        s.shutdown(socket.SHUT_RDWR)
        s.close()

    w = Watcher(lines, close)
    time.sleep(0.05)  # let the subscription start before anything happens
    return w


def virsh_events(uri: str) -> Watcher:
    p = subprocess.Popen(["virsh", "-q", "-c", uri, "event", "--loop", "--event", "lifecycle"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)

    def lines():
        for raw in p.stdout:
            yield raw.decode(errors="replace").strip()

    def close():
        p.terminate()
        p.wait(timeout=5)

    w = Watcher(lines, close)
    time.sleep(0.2)  # virsh connects and registers
    return w


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
        greeting = self._read()
        assert "QMP" in greeting, greeting
        self.cmd("qmp_capabilities")

    def _read(self) -> dict:
        line = self.f.readline()
        if not line:
            raise EOFError("QMP closed")
        return json.loads(line)

    def cmd(self, name: str, args: dict | None = None):
        msg: dict = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        while True:
            m = self._read()
            if "event" in m:
                continue
            if "error" in m:
                raise RuntimeError(f"QMP {name}: {m['error']}")
            return m["return"]

    def close(self) -> None:
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------
# the three sides


class Side:
    key = ""
    label = ""

    def boot(self, name: str, mem: int) -> None: ...
    def channel_a(self, name: str) -> Channel: ...
    def channel_b(self, name: str) -> Channel: ...
    def logs(self, name: str) -> list[Path]: ...
    def migrate(self, name: str, mem: int) -> dict: ...
    def check_source_gone(self, name: str) -> None: ...
    def destroy(self, name: str) -> None: ...


def golden_argv(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line != ""]


class Floor(Side):
    """QEMU driven by hand, with the argv Ferrovirt builds (the golden file
    crates/qemu/tests/golden/direct_kernel_boot_tcg.argv, with the guest's
    kernel, 1 vCPU and the size measured; checked against the QEMU
    ferrovirtd actually runs). The source runs in A's namespace, the
    destination in B's with `-incoming tcp:B:4444`. The minimum any manager
    must do: spawn the destination (-daemonize returns once it listens),
    QMP `migrate` on the source, poll `query-migrate` (every 5 ms) until
    completed, poll the destination's `query-status` (every ms) until it
    has left `inmigrate`, `cont` it, `quit` the source and wait for it to
    exit. The migration parameters are Ferrovirt's: no bandwidth limit
    (max-bandwidth i64::MAX), QEMU's defaults otherwise. `capped` keeps
    QEMU's default 128 MiB/s limit instead (what Ferrovirt did before
    c236360)."""

    def __init__(self, a: argparse.Namespace, guest: dict, capped: bool = False):
        self.qemu, self.guest, self.a = a.qemu, guest, a
        self.root = Path(a.tmp) / "floor"
        self.golden = golden_argv(Path(a.golden))
        self.capped = capped
        self.key = "floor_capped" if capped else "floor"
        self.label = "floor, QEMU's default 128 MiB/s cap" if capped else "floor"
        self.vms: dict[str, dict] = {}

    def dir(self, name: str, host: str) -> Path:
        return self.root / f"{name}-{host}"

    def argv(self, name: str, host: str, mem: int) -> list[str]:
        d = self.dir(name, host)
        out = []
        g = self.golden
        i = 0
        while i < len(g):
            x = g[i]
            if i == 0:
                out.append(self.qemu)
            elif x == "-name":
                out += [x, f"guest={name},debug-threads=on"]
                i += 1
            elif x == "-uuid":
                out += [x, str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, name))]
                i += 1
            elif x == "-smp":
                out += [x, "1"]
                i += 1
            elif x == "-m":
                out += [x, f"{mem}M"]
                i += 1
            elif x == "-kernel":
                out += [x, self.guest["kernel"]]
                i += 1
            elif x == "-initrd":
                out += [x, self.guest["initrd"]]
                i += 1
            elif x == "-append":
                out += [x, self.guest["cmdline"]]
                i += 1
            else:
                out.append(x.replace("/run/fv/instances/vm1", str(d))
                           .replace("/var/lib/fv/logs/vm1", str(d)))
            i += 1
        return out

    def spawn(self, name: str, host: str, mem: int, extra: list[str]) -> tuple[int, Qmp]:
        d = self.dir(name, host)
        d.mkdir(parents=True, exist_ok=True)
        for stale in ("qmp.sock", "console.sock", "qemu.pid"):
            try:
                (d / stale).unlink()
            except FileNotFoundError:
                pass
        ns = self.a.netns_a if host == "a" else self.a.netns_b
        with open(d / "qemu.out", "wb") as f:
            p = subprocess.run(["ip", "netns", "exec", ns, *self.argv(name, host, mem), *extra],
                               stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise RuntimeError(f"floor QEMU ({host}) failed: "
                               f"{(d / 'qemu.out').read_text(errors='replace')[-500:]}")
        pid = int((d / "qemu.pid").read_text().strip())
        return pid, Qmp(str(d / "qmp.sock"))

    def boot(self, name: str, mem: int) -> None:
        pid, q = self.spawn(name, "a", mem, [])
        q.cmd("cont")
        self.vms[name] = {"a": (pid, q)}

    def channel_a(self, name: str) -> Channel:
        return Channel(SockStream(str(self.dir(name, "a") / "console.sock")))

    def channel_b(self, name: str) -> Channel:
        return Channel(SockStream(str(self.dir(name, "b") / "console.sock")))

    def logs(self, name: str) -> list[Path]:
        return [self.dir(name, "a") / "console.log", self.dir(name, "b") / "console.log"]

    def migrate(self, name: str, mem: int) -> dict:
        pid_a, qa = self.vms[name]["a"]
        port = 4444
        t0 = now()
        pid_b, qb = self.spawn(name, "b", mem, ["-incoming", f"tcp:{self.a.ip_b}:{port}"])
        self.vms[name]["b"] = (pid_b, qb)
        t_dest = now()
        if not self.capped:
            qa.cmd("migrate-set-parameters", {"max-bandwidth": UNLIMITED_BANDWIDTH})
        qa.cmd("migrate", {"uri": f"tcp:{self.a.ip_b}:{port}"})
        polls = 0
        peak_dirty = 0
        while True:
            m = qa.cmd("query-migrate")
            polls += 1
            peak_dirty = max(peak_dirty, (m.get("ram") or {}).get("dirty-pages-rate", 0))
            st = m.get("status")
            if st == "completed":
                break
            if st in ("failed", "cancelled"):
                raise RuntimeError(f"floor migration {st}: {m.get('error-desc')}")
            time.sleep(0.005)
        t_done = now()
        while qb.cmd("query-status")["status"] == "inmigrate":
            time.sleep(0.001)
        qb.cmd("cont")
        t_cont = now()
        try:
            qa.cmd("quit")
        except (EOFError, OSError):
            pass
        wait_gone(pid_a)
        t1 = now()
        qa.close()
        del self.vms[name]["a"]
        return {"total_ms": ms(t0, t1), "downtime_ms": m.get("downtime"),
                "_resumed_at": t_cont, "_t0": t0,
                "dest_spawn_ms": ms(t0, t_dest), "migrate_ms": ms(t_dest, t_done),
                "cont_after_completed_ms": ms(t_done, t_cont),
                "source_gone_after_cont_ms": ms(t_cont, t1),
                "qemu_total_time_ms": m.get("total-time"), "setup_time_ms": m.get("setup-time"),
                "ram": m.get("ram"), "query_migrate_polls": polls,
                "peak_dirty_pages_rate": peak_dirty}

    def check_source_gone(self, name: str) -> None:
        pass

    def destroy(self, name: str) -> None:
        for host, (pid, q) in list(self.vms.pop(name, {}).items()):
            try:
                os.kill(pid, signal.SIGKILL)
                wait_gone(pid)
            except ProcessLookupError:
                pass
            q.close()


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 900.0):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


def api(sock: str, method: str, path: str, body: dict | None = None, want=(200, 201, 202)):
    c = UnixHTTPConnection(sock)
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
        raise RuntimeError(f"{method} {path} -> {r.status}: {out[:400]!r}")
    return json.loads(out) if out else None


def decode_token(token: str) -> dict:
    t = token.strip()
    return json.loads(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)))


class Ferrovirt(Side):
    """Two ferrovirtd, one per namespace, each with `--listen IP:8443`.
    total: `POST /1.0/instances/NAME/migrate` on A → `GET
    /1.0/operations/ID/wait` says success (by then the guest runs on B and
    A's QEMU has exited). The source is trusted by B once, before the first
    measured run (an offline migration of a stopped instance, with a join
    token), as after `ferrovirt remote add`."""

    target: dict | None = None  # B, once trusted
    trust_ms: float | None = None

    key = "ferrovirt"
    label = "Ferrovirt"

    def __init__(self, a: argparse.Namespace, guest: dict):
        self.a, self.guest = a, guest
        self.sa, self.sb = a.fv_a_sock, a.fv_b_sock
        self.state_a, self.state_b = Path(a.fv_a_state), Path(a.fv_b_state)
        self.clock_offset = time.time() - now()  # wall clock - perf_counter
        self.argv_seen: tuple[int, list[str]] | None = None

    def spec(self, name: str, mem: int) -> dict:
        return {"name": name, "cpus": 1, "memory": mem, "machine": "q35", "accel": "tcg",
                "boot": {"kernel": self.guest["kernel"], "initrd": self.guest["initrd"],
                         "cmdline": self.guest["cmdline"]}}

    def wait_op(self, sock: str, op: dict, timeout: float = 900) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            op = api(sock, "GET", f"/1.0/operations/{op['id']}/wait?timeout=60")
            if op["status"] != "running":
                return op
            if time.monotonic() > deadline:
                raise TimeoutError(f"operation {op['id']} still running: {op.get('progress')}")

    def trust(self) -> None:
        """Before the first run: B trusts A (join token, spent by an offline
        migration of a stopped instance, which moves only its definition)."""
        tok = api(self.sb, "POST", "/1.0/host/tokens", {"name": "bench-a"})["token"]
        t = decode_token(tok)
        target = {"address": t["addresses"][0], "fingerprint": t["fingerprint"]}
        api(self.sa, "POST", "/1.0/instances", self.spec("trust-probe", 256))
        t0 = now()
        op = api(self.sa, "POST", "/1.0/instances/trust-probe/migrate",
                 {"target": {**target, "token": tok}, "offline": True})
        op = self.wait_op(self.sa, op)
        Ferrovirt.trust_ms = ms(t0, now())
        if op["status"] != "success":
            raise RuntimeError(f"first (offline) migration to B failed: {op.get('error')}")
        api(self.sb, "DELETE", "/1.0/instances/trust-probe?force=true")
        Ferrovirt.target = target

    def boot(self, name: str, mem: int) -> None:
        if self.target is None:
            self.trust()
        api(self.sa, "POST", "/1.0/instances", self.spec(name, mem))
        api(self.sa, "PUT", f"/1.0/instances/{name}/state", {"action": "start"})
        pid = self.pid(self.sa, name)
        if self.argv_seen is None and pid:
            self.argv_seen = (mem, cmdline(pid))

    def pid(self, sock: str, name: str) -> int | None:
        inst = api(sock, "GET", f"/1.0/instances/{name}")
        return inst.get("state", {}).get("pid")

    def channel_a(self, name: str) -> Channel:
        return Channel(WsStream(self.sa, name))

    def channel_b(self, name: str) -> Channel:
        return Channel(WsStream(self.sb, name))

    def logs(self, name: str) -> list[Path]:
        return [self.state_a / "logs" / name / "console.log",
                self.state_b / "logs" / name / "console.log"]

    def migrate(self, name: str, mem: int) -> dict:
        self.src_pid = self.pid(self.sa, name)
        stages: list[tuple[float, str]] = []
        ev = fv_events(self.sb)
        self.clock_offset = time.time() - now()  # wall clock - perf_counter, now
        t0 = now()
        op = api(self.sa, "POST", f"/1.0/instances/{name}/migrate", {"target": self.target})
        t_posted = now()
        stop = threading.Event()

        def watch() -> None:
            """Every 20 ms: the operation's stage on A, and the instance's
            state on B (404 → shutoff "incoming migration" → paused, once
            B's QEMU listens → running), as transitions."""
            last = last_b = None
            while not stop.wait(0.02):
                try:
                    o = api(self.sa, "GET", f"/1.0/operations/{op['id']}")
                except Exception:  # noqa: BLE001
                    continue
                st = ((o.get("progress") or {}).get("stage") or "").split(":")[0]
                if st != last:
                    stages.append((ms(t0, now()), st))
                    last = st
                try:
                    inst = api(self.sb, "GET", f"/1.0/instances/{name}")
                    sb = "B: " + inst["state"]["status"] + ", " + inst["state"]["reason"]
                except Exception:  # noqa: BLE001
                    sb = "B: absent"
                if sb != last_b:
                    stages.append((ms(t0, now()), sb))
                    last_b = sb
                if o["status"] != "running":
                    return

        w = threading.Thread(target=watch, daemon=True)
        w.start()
        op = self.wait_op(self.sa, op)
        t1 = now()
        stop.set()
        w.join(timeout=5)
        ev.finish()
        if op["status"] != "success":
            raise RuntimeError(f"Ferrovirt migration {op['status']}: {op.get('error')}")
        started = None
        for t_arr, line in ev.lines:
            if f'"instance":"{name}"' in line and ('"kind":"resumed"' in line
                                                    or '"kind":"started"' in line):
                # the event's own timestamp (when ferrovirtd saw QEMU
                # resume), in this clock
                m = re.search(r'"timestamp":"(\d+-\d+-\d+T\d+:\d+:\d+)(\.\d+)?Z"', line)
                if m:
                    epoch = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) \
                        + float(m.group(2) or 0)
                    started = (epoch - self.clock_offset, line)
                else:
                    started = (t_arr, line)
                break
        return {"total_ms": ms(t0, t1), "downtime_ms": (op.get("result") or {}).get("downtime_ms"),
                "_resumed_at": started[0] if started else None, "_t0": t0,
                "post_ms": ms(t0, t_posted), "stages": stages}

    def check_source_gone(self, name: str) -> None:
        try:
            api(self.sa, "GET", f"/1.0/instances/{name}")
            raise RuntimeError(f"A still has {name} after the migration")
        except RuntimeError as e:
            if "-> 404" not in str(e):
                raise
        if self.src_pid and alive(self.src_pid):
            raise RuntimeError("A's QEMU still runs after the operation succeeded")

    def destroy(self, name: str) -> None:
        for sock in (self.sb, self.sa):
            try:
                api(sock, "DELETE", f"/1.0/instances/{name}?force=true")
            except Exception:  # noqa: BLE001
                pass


def esc(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;"))


class Libvirt(Side):
    """Two private libvirtd, one per namespace. total: `virsh -c A migrate
    --live --p2p --xml B.xml NAME qemu+unix:///system?socket=B
    --migrateuri tcp:B-IP` (the source libvirtd drives, as Ferrovirt's
    does; --xml only moves the serial socket and its log to B's paths),
    timed around the whole virsh command. downtime: `virsh domjobinfo
    --completed NAME` on B, "Total downtime"."""

    key = "libvirt"
    label = "libvirt"

    def __init__(self, a: argparse.Namespace, guest: dict):
        self.a, self.guest = a, guest
        self.ua, self.ub = a.lv_a_uri, a.lv_b_uri
        self.root = Path(a.tmp) / "lvdata"
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str, host: str, ext: str) -> Path:
        return self.root / f"{name}-{host}.{ext}"

    def xml(self, name: str, mem: int, host: str) -> str:
        g = self.guest
        return f"""<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuidlib.uuid5(uuidlib.NAMESPACE_URL, name)}</uuid>
  <memory unit='MiB'>{mem}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{esc(g['kernel'])}</kernel>
    <initrd>{esc(g['initrd'])}</initrd>
    <cmdline>{esc(g['cmdline'])}</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='maximum' check='none'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{esc(self.a.qemu)}</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <serial type='unix'>
      <source mode='bind' path='{self.path(name, host, "sock")}'/>
      <log file='{self.path(name, host, "log")}' append='on'/>
    </serial>
    <panic model='pvpanic'/>
  </devices>
</domain>
"""

    def virsh(self, uri: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(["virsh", "-q", "-c", uri, *args], check=check)

    def boot(self, name: str, mem: int) -> None:
        for host in ("a", "b"):
            self.path(name, host, "xml").write_text(self.xml(name, mem, host))
        self.virsh(self.ua, "create", str(self.path(name, "a", "xml")))

    def channel_a(self, name: str) -> Channel:
        return Channel(SockStream(str(self.path(name, "a", "sock"))))

    def channel_b(self, name: str) -> Channel:
        return Channel(SockStream(str(self.path(name, "b", "sock"))))

    def logs(self, name: str) -> list[Path]:
        return [self.path(name, "a", "log"), self.path(name, "b", "log")]

    def migrate(self, name: str, mem: int) -> dict:
        dest = "qemu+unix:///system?socket=" + self.ub.split("socket=", 1)[1]
        ev = virsh_events(self.ub)
        t0 = now()
        try:
            self.virsh(self.ua, "migrate", "--live", "--p2p", "--xml",
                       str(self.path(name, "b", "xml")), name, dest,
                       "--migrateuri", f"tcp:{self.a.ip_b}")
            t1 = now()
        finally:
            time.sleep(0.1)
            ev.finish()
        resumed = ev.first(f"'{name}'", "Resumed")
        info = {}
        out = self.virsh(self.ub, "domjobinfo", "--completed", name, check=False)
        for line in out.stdout.decode(errors="replace").splitlines():
            k, _, v = line.partition(":")
            if v:
                info[k.strip()] = v.strip()
        dt = info.get("Total downtime", "").split()
        return {"total_ms": ms(t0, t1), "downtime_ms": int(dt[0]) if dt else None,
                "_resumed_at": resumed[0] if resumed else None, "_t0": t0,
                "domjobinfo": info}

    def check_source_gone(self, name: str) -> None:
        out = self.virsh(self.ua, "list", "--all", "--name").stdout.decode()
        if name in out.split():
            raise RuntimeError(f"libvirt A still lists {name} after the migration")

    def destroy(self, name: str) -> None:
        for uri in (self.ub, self.ua):
            self.virsh(uri, "destroy", name, check=False)


# --------------------------------------------------------------------------
# one measured migration


def one(side: Side, name: str, mem: int, warmup: float) -> dict:
    rec: dict = {"side": side.key, "memory_mib": mem, "name": name}
    t_boot = now()
    side.boot(name, mem)
    ch = side.channel_a(name)
    try:
        ch.wait_ready()
        rec["boot_to_channel_ms"] = ms(t_boot, now())
        c0, up0 = ch.run(PROBE).split()
        hb = Heartbeat(side.logs(name))
        ch.run(WORKLOAD)
        t_wl = now()
        time.sleep(warmup)
        t0 = now()
        try:
            res = side.migrate(name, mem)
        finally:
            t1 = now()
            # until a few beats came from B (or 30 s)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (1 not in hb.first or hb.beats_after(t1) < 5):
                time.sleep(0.05)
            hb.finish()
    finally:
        ch.close()
    resumed_at = res.pop("_resumed_at", None)
    t0 = res.pop("_t0", t0)  # the side's own start (after its event watcher is up)
    rec.update(res)
    base = hb.gaps(t_wl + 1.0, t0)
    during = hb.gaps(t0, t1)
    if 0 not in hb.lastg or 1 not in hb.first:
        raise RuntimeError(f"no heartbeat from the guest on B after the migration "
                           f"({len(hb.times)} beats seen)")
    # The switch-over as the guest lives it: the last beat in A's console
    # log -> the first in B's (times relative to the side's own start).
    rec["a_last_beat_ms"] = ms(t0, hb.lastg[0])
    rec["b_first_beat_ms"] = ms(t0, hb.first[1])
    rec["pause_ms"] = ms(hb.lastg[0], hb.first[1])
    # any other stall while migrating (the longest gap in [t0, t1]; the
    # switch-over itself is normally the longest)
    rec["max_gap_ms"] = during[0][0] if during else None
    rec["max_gap_at_ms"] = during[0][1] if during else None
    rec["next_gaps_ms"] = [g for g, _ in during[1:4]]
    rec["baseline_max_gap_ms"] = base[0][0] if base else None
    rec["beats_after_end"] = hb.beats_after(t1)
    # Split of the pause: A's last beat -> B resumed, as the floor's `cont`
    # returns / ferrovirtd's `resumed` event is stamped (when its monitor
    # handles QEMU's RESUME) / virsh's `Resumed` lifecycle event arrives;
    # then resumed -> B's first beat (the guest getting going again).
    rec["resumed_ms"] = ms(t0, resumed_at) if resumed_at else None
    if resumed_at:
        rec["stop_to_resume_ms"] = ms(hb.lastg[0], resumed_at)
        rec["resume_to_first_beat_ms"] = ms(resumed_at, hb.first[1])
    side.check_source_gone(name)
    chb = side.channel_b(name)
    try:
        c1, up1, loops = chb.run(STOP_WORKLOAD, timeout=60).split()
    finally:
        chb.close()
    if int(c1) < int(c0) or float(up1) < float(up0):
        raise RuntimeError(f"the guest restarted: counter {c0}->{c1}, uptime {up0}->{up1}")
    rec["guest_uptime_s"] = [float(up0), float(up1)]
    rec["workload_loops"] = int(loops)
    rec["loadavg_after"] = loadavg()
    return rec


# options whose values name the instance or its files
VARYING = {"-name", "-uuid", "-chardev", "-D", "-pidfile", "-kernel", "-initrd", "-append"}


def argv_key(argv: list[str]) -> list[str]:
    out, i = [], 1
    while i < len(argv):
        x = argv[i]
        if x.startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            out.append(x if x in VARYING else f"{x} {argv[i + 1]}")
            i += 2
        else:
            out.append(x)
            i += 1
    return out


def argv_diff(fv: list[str], floor: list[str]) -> list[str]:
    """What differs between Ferrovirt's and the floor's QEMU argv, paths
    and names aside (empty: the same options and values)."""
    a, b = argv_key(fv), argv_key(floor)
    return [f"ferrovirt only: {x}" for x in a if x not in b] + \
        [f"floor only: {x}" for x in b if x not in a]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="256,1024")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--netns-a", required=True)
    ap.add_argument("--netns-b", required=True)
    ap.add_argument("--ip-a", required=True)
    ap.add_argument("--ip-b", required=True)
    ap.add_argument("--fv-a-sock", required=True)
    ap.add_argument("--fv-b-sock", required=True)
    ap.add_argument("--fv-a-state", required=True)
    ap.add_argument("--fv-b-state", required=True)
    ap.add_argument("--lv-a-uri")
    ap.add_argument("--lv-b-uri")
    ap.add_argument("--capped-floor", action="store_true",
                    help="also a floor with QEMU's default 128 MiB/s bandwidth cap")
    ap.add_argument("--meta", default="{}")
    a = ap.parse_args()

    guest = json.loads(Path(a.guest).read_text())
    sizes = [int(s) for s in a.sizes.split(",") if s]
    sides: list[Side] = [Floor(a, guest), Ferrovirt(a, guest)]
    if a.lv_a_uri:
        sides.append(Libvirt(a, guest))
    if a.capped_floor:
        sides.append(Floor(a, guest, capped=True))
    fl = ForeignLoad(a.tmp)
    out: dict = {"meta": json.loads(a.meta), "samples": [], "errors": [],
                 "sides": [s.key for s in sides], "sizes": sizes, "runs": a.runs,
                 "warmup_s": a.warmup, "workload": WORKLOAD}
    out["meta"]["loadavg_at_start"] = loadavg()
    t_start = time.time()

    def save() -> None:
        Path(a.out).write_text(json.dumps(out, indent=1))

    for mem in sizes:
        for i in range(a.runs):
            k = (i + sizes.index(mem)) % len(sides)
            for side in sides[k:] + sides[:k]:  # rotate who goes first
                name = f"m{mem}-{SHORT[side.key]}-{i + 1}"
                log(f"{side.label}: {mem} MiB, run {i + 1}/{a.runs} ({name})")
                try:
                    rec = one(side, name, mem, a.warmup)
                    rec["run"] = i + 1
                    out["samples"].append(rec)
                    log(f"  total {rec['total_ms']:.0f} ms, QEMU downtime {rec['downtime_ms']} ms, "
                        f"guest pause {rec['pause_ms']} ms (baseline gap "
                        f"{rec['baseline_max_gap_ms']} ms), load {rec['loadavg_after'][0]}")
                except Exception as e:  # noqa: BLE001
                    log(f"  FAILED: {e}")
                    out["errors"].append({"side": side.key, "memory_mib": mem, "run": i + 1,
                                          "error": str(e)[-1500:],
                                          "trace": traceback.format_exc()[-3000:]})
                finally:
                    try:
                        side.destroy(name)
                    except Exception as e:  # noqa: BLE001
                        log(f"  cleanup of {name}: {e}")
                save()
    fv = next(s for s in sides if isinstance(s, Ferrovirt))
    out["ferrovirt_trust_ms"] = Ferrovirt.trust_ms
    if fv.argv_seen:
        mem, fv_argv = fv.argv_seen
        fl_argv = sides[0].argv("X", "a", mem)  # type: ignore[attr-defined]
        out["ferrovirt_argv"] = fv_argv
        out["floor_argv"] = fl_argv
        out["floor_argv_differences"] = argv_diff(fv_argv, fl_argv)
    out["foreign_load"] = fl.result()
    out["meta"]["loadavg_at_end"] = loadavg()
    out["meta"]["duration_s"] = round(time.time() - t_start, 1)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
