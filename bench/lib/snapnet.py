#!/usr/bin/env python3
"""Ferrovirt vs libvirt: snapshots, save/restore and networks. The
measurements behind bench/snapnet.sh.

snapnet.sh installs what is missing, makes the network namespaces, starts a
private ferrovirtd and a private libvirtd (each in its own namespace) and
calls `snapnet.py measure ...`, which does every timed operation and writes
the raw samples as JSON; snapnet_report.py turns that into the tables.

Two helper modes run inside a network namespace (via `ip netns exec`):
`snapnet.py sink HOST PORT` receives one TCP stream and prints bytes and
seconds as JSON; `snapnet.py source HOST PORT BYTES` sends one.

Only the standard library is needed; Debian's python3-libvirt is used for the
"libvirt API" rows when importable.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

try:  # optional: API-level libvirt figures
    import libvirt  # type: ignore

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
except Exception:  # pragma: no cover - depends on the host
    libvirt = None

READY = b"FERROVIRT-GUEST-READY"
now = time.perf_counter
MIB = 1 << 20


def ms(t0: float, t1: float) -> float:
    return round((t1 - t0) * 1000.0, 3)


def log(msg: str) -> None:
    print(f"[snapnet {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(argv: list[str], check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): "
                           f"{(p.stderr or p.stdout).decode(errors='replace').strip()}")
    return p


def median(xs: list[float]) -> float | None:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return None
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def fsize(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def disk_usage(path: Path) -> int:
    """Bytes allocated on disk (sparse files count what they hold)."""
    try:
        return path.stat().st_blocks * 512
    except FileNotFoundError:
        return 0


def wait_ready(path: Path, offset: int, timeout: float = 120.0) -> None:
    """Polls a console log (every 10 ms) for the guest's ready marker
    written after `offset`."""
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
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {READY.decode()} in {path} after {timeout}s: {buf[-300:]!r}")
        time.sleep(0.01)


class ForeignLoad:
    """Samples, once a second, what else runs on the host: QEMUs this run did
    not start, cargo/rustc, and the load average (as bench/lib/fvbench.py)."""

    def __init__(self, ours: set[int]):
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

            def mine(pid: int) -> bool:
                for _ in range(64):
                    if pid in self.ours:
                        return True
                    if pid <= 1 or pid not in procs:
                        return False
                    pid = procs[pid][1]
                return False

            for pid, (comm, ppid) in procs.items():
                if comm.startswith("qemu-system") and not mine(ppid) and not mine(pid):
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


# --------------------------------------------------------------------------
# byte streams to a guest's serial console, and the command channel over them


class SockStream:
    """A plain stream socket (libvirt's serial chardev: a unix socket QEMU
    serves)."""

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
        data = self.sock.recv(65536)
        return data if data else None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class WsStream:
    """Ferrovirt's console: a websocket (binary frames both ways) on the API's
    unix socket. A minimal RFC 6455 client: masked frames out, unmasked in."""

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
                raise RuntimeError(f"console of {name}: connection closed during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise RuntimeError(f"console of {name}: {head.decode(errors='replace')[:300]}")
        self.sock.settimeout(None)
        self.closed = False

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return hdr + mask + body

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
            chunk = self.sock.recv(65536)
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
    host writes `@@FV <id> <base64 cmd>\\n`, the guest answers
    `@@FV-END <id> <rc> <base64 output>\\n`."""

    def __init__(self, stream, log_tail=None):
        self.s = stream
        self.log_tail = log_tail  # () -> bytes: the end of the console log, for errors
        self.buf = b""
        self.sent = 0  # bytes written to the console
        self.lost = 0  # commands sent again after no answer
        self.next_id = int(time.time() * 1000) % 1_000_000 * 1000

    def run(self, cmd: str, timeout: float = 30.0, check: bool = True,
            retries: int = 0) -> tuple[int, str]:
        """Runs `cmd` in the guest. With `retries`, a command that gets no
        answer within `timeout` is sent again (with a new id): the test
        guest's init now and then drops a command line it has received
        (see docs/benchmarks-snapshots-networks.md); only for commands that
        are harmless to run twice."""
        for attempt in range(retries + 1):
            self.next_id += 1
            cid = self.next_id
            line = f"@@FV {cid} {base64.b64encode(cmd.encode()).decode()}\n".encode()
            self.s.send(line)
            self.sent += len(line)
            try:
                return self._wait(cid, cmd, timeout, check)
            except TimeoutError as e:
                if attempt == retries:
                    raise
                self.lost += 1
                log(f"no answer, sending again: {str(e)[:200]}")
        raise AssertionError("unreachable")

    def _wait(self, cid: int, cmd: str, timeout: float, check: bool) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        while True:
            for m in RESULT_RE.finditer(self.buf):
                if int(m.group(1)) == cid:
                    self.buf = self.buf[m.end():]
                    rc = int(m.group(2))
                    out = base64.b64decode(m.group(3)).decode(errors="replace")
                    if check and rc != 0:
                        raise RuntimeError(f"guest command {cmd!r} exited {rc}: {out[-500:]}")
                    return rc, out
            left = deadline - time.monotonic()
            if left <= 0:
                logged = b""
                if self.log_tail is not None:
                    try:
                        logged = self.log_tail()
                    except Exception as e:  # noqa: BLE001
                        logged = f"(cannot read: {e})".encode()
                answered = f"@@FV-END {cid} ".encode() in logged
                raise TimeoutError(f"guest command {cmd!r} (id {cid}): no answer in {timeout}s; "
                                   f"received: {self.buf[-200:]!r}; the console log "
                                   f"{'HAS' if answered else 'has no'} answer; its end: "
                                   f"{logged[-300:]!r}")
            data = self.s.recv(min(left, 1.0))
            if data is None:
                raise RuntimeError(f"console closed while running {cmd!r}: {self.buf[-300:]!r}")
            self.buf = (self.buf + data)[-262144:]

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Probes with `true` every 0.5 s until one answers."""
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
# TCP sink and source (run inside a namespace by `ip netns exec`)


def sink_main(host: str, port: int, timeout: float) -> int:
    """Accepts one connection, reads to EOF, closes; prints JSON."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(1)
    print("listening", flush=True)
    ls.settimeout(timeout)
    c, peer = ls.accept()
    c.settimeout(timeout)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MIB)
    t_accept = now()
    n = 0
    t_first = None
    buf = bytearray(1 << 20)
    while True:
        k = c.recv_into(buf)
        if k == 0:
            break
        if t_first is None:
            t_first = now()
        n += k
    t_end = now()
    c.close()
    ls.close()
    print(json.dumps({"bytes": n, "seconds_from_accept": t_end - t_accept,
                      "seconds_from_first_byte": t_end - (t_first or t_end),
                      "peer": peer[0]}), flush=True)
    return 0


def source_main(host: str, port: int, nbytes: int, timeout: float) -> int:
    """Connects, sends `nbytes` zeros, half-closes, waits for the peer to
    close (it has read everything); prints JSON."""
    deadline = time.monotonic() + timeout
    while True:
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(timeout)
        try:
            c.connect((host, port))
            break
        except OSError:
            c.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    t0 = now()
    chunk = bytes(1 << 20)
    left = nbytes
    while left > 0:
        k = min(left, len(chunk))
        c.sendall(chunk[:k])
        left -= k
    c.shutdown(socket.SHUT_WR)
    while c.recv(65536):
        pass
    t1 = now()
    c.close()
    print(json.dumps({"bytes": nbytes, "seconds": t1 - t0}), flush=True)
    return 0


# --------------------------------------------------------------------------
# Ferrovirt


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 300.0):
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

    def api(self, method: str, path: str, body: dict | None = None,
            want=(200, 201, 202)) -> dict | list | None:
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
            raise RuntimeError(f"{method} {path} -> {r.status}: {out[:400]!r}")
        return json.loads(out) if out.strip() else None

    def op(self, method: str, path: str, body: dict | None = None) -> dict:
        """An operation (202), waited for with GET /1.0/operations/ID/wait."""
        o = self.api(method, path, body)
        while o["status"] == "running":
            o = self.api("GET", f"/1.0/operations/{o['id']}/wait?timeout=300")
        if o["status"] != "success":
            raise RuntimeError(f"{method} {path}: operation {o['status']}: {o.get('error')}")
        return o

    def cli_run(self, *args: str) -> str:
        return run([self.cli, "--socket", self.sock, *args]).stdout.decode()

    def spec(self, name: str, disk: Path | None = None, nics: list | None = None) -> dict:
        s = {"name": name, "cpus": 1, "memory": self.memory, "machine": "q35", "accel": "tcg",
             "boot": {"kernel": self.guest["kernel"], "initrd": self.guest["initrd"],
                      "cmdline": self.guest["cmdline"]}}
        if disk is not None:
            s["disks"] = [{"path": str(disk), "format": "qcow2", "bus": "virtio"}]
        if nics:
            s["nics"] = nics
        return s

    def create(self, name: str, disk: Path | None = None, nics: list | None = None) -> None:
        self.api("POST", "/1.0/instances", self.spec(name, disk, nics))

    def delete(self, name: str) -> None:
        self.api("DELETE", f"/1.0/instances/{name}?force=true", want=(200, 202, 204))

    def start(self, name: str) -> None:
        self.api("PUT", f"/1.0/instances/{name}/state", {"action": "start"})

    def stop(self, name: str) -> None:
        self.api("PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True})

    def show(self, name: str) -> dict:
        return self.api("GET", f"/1.0/instances/{name}")

    def status(self, name: str) -> str:
        return self.show(name)["state"]["status"]

    def pid(self, name: str) -> int:
        return int(self.show(name)["state"]["pid"])

    def console_log(self, name: str) -> Path:
        return self.state_dir / "logs" / name / "console.log"

    def channel(self, name: str) -> Channel:
        log = self.console_log(name)
        return Channel(WsStream(self.sock, name), lambda: log.read_bytes()[-4000:])

    def managed_save_file(self, name: str) -> Path:
        return self.state_dir / "save" / f"{name}.sav"

    def snapshot_mem_file(self, name: str, snap: str) -> Path:
        return self.state_dir / "snapshots" / name / f"{snap}.mem"


# --------------------------------------------------------------------------
# libvirt


def esc(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;"))


class Libvirt:
    def __init__(self, uri: str, root: Path, guest: dict, memory: int, qemu: str,
                 lv_dir: Path):
        self.uri, self.root, self.guest, self.memory = uri, root, guest, memory
        self.qemu, self.lv_dir = qemu, lv_dir
        for d in ("xml", "con"):
            (root / d).mkdir(parents=True, exist_ok=True)
        self.conn = None
        if libvirt is not None:
            self.conn = libvirt.open(uri)

    def virsh(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(["virsh", "-q", "-c", self.uri, *args], check=check)

    def console_log(self, name: str) -> Path:
        return self.root / "con" / f"{name}.log"

    def console_sock(self, name: str) -> Path:
        return self.root / "con" / f"{name}.sock"

    def channel(self, name: str) -> Channel:
        log = self.console_log(name)
        return Channel(SockStream(str(self.console_sock(name))), lambda: log.read_bytes()[-4000:])

    def xml(self, name: str, disk: Path | None = None, network: str | None = None) -> str:
        devs = ""
        if disk is not None:
            devs += f"""    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{esc(str(disk))}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
"""
        if network is not None:
            devs += f"""    <interface type='network'>
      <source network='{esc(network)}'/>
      <model type='virtio'/>
    </interface>
"""
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
{devs}    <serial type='unix'>
      <source mode='bind' path='{esc(str(self.console_sock(name)))}'/>
      <log file='{esc(str(self.console_log(name)))}' append='on'/>
    </serial>
    <panic model='pvpanic'/>
  </devices>
</domain>
"""

    def define(self, name: str, disk: Path | None = None, network: str | None = None) -> None:
        p = self.root / "xml" / f"{name}.xml"
        p.write_text(self.xml(name, disk, network))
        self.virsh("define", str(p))

    def net_xml(self, name: str, bridge: str, prefix: str) -> str:
        """A NAT network like Ferrovirt's `--type nat --ipv4 PREFIX.1/24`:
        bridge, gateway address, DHCP on .2-.254 (dnsmasq, also DNS), NAT."""
        return f"""<network>
  <name>{name}</name>
  <forward mode='nat'/>
  <bridge name='{bridge}' stp='off' delay='0'/>
  <ip address='{prefix}.1' netmask='255.255.255.0'>
    <dhcp><range start='{prefix}.2' end='{prefix}.254'/></dhcp>
  </ip>
</network>
"""

    def net_xml_file(self, name: str, bridge: str, prefix: str) -> str:
        p = self.root / "xml" / f"net-{name}.xml"
        p.write_text(self.net_xml(name, bridge, prefix))
        return str(p)

    def pid(self, name: str) -> int:
        return int((self.lv_dir / "run" / "qemu" / f"{name}.pid").read_text().strip())

    def state(self, name: str) -> str:
        return self.virsh("domstate", name).stdout.decode().strip()

    def managed_save_file(self, name: str) -> Path:
        return self.lv_dir / "lib" / "qemu" / "save" / f"{name}.save"


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")


def net_args(argv: list[str]) -> list[str]:
    """The NIC-related options of a QEMU argv (for the record)."""
    out = []
    for i, a in enumerate(argv[:-1]):
        if a in ("-netdev", "-device") and ("net" in argv[i + 1] or "tap" in argv[i + 1]):
            out += [a, argv[i + 1]]
    return out


def qcow2_snapshots(path: Path) -> list[dict]:
    try:
        p = run(["qemu-img", "info", "-U", "--output=json", str(path)], timeout=60)
        return json.loads(p.stdout).get("snapshots", [])
    except Exception:  # noqa: BLE001
        return []


# --------------------------------------------------------------------------
# the benchmark


class Bench:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.T = Path(a.tmp)
        self.guest = json.loads(Path(a.guest).read_text())
        self.samples: dict[str, list[float]] = {}
        self.sizes: dict[str, int] = {}
        self.notes: list[str] = []
        self.errors: dict[str, str] = {}
        self.checks: dict[str, str] = {}
        self.lost: dict[str, int] = {}  # guest commands sent again (see Channel.run)
        self.extra: dict = {}
        self.fv = Ferrovirt(a.fv_cli, a.fv_socket, Path(a.fv_state_dir), self.guest, a.memory)
        self.lv = None
        if a.lv_uri:
            self.lv = Libvirt(a.lv_uri, self.T / "lvdata", self.guest, a.memory, a.qemu,
                              Path(a.lv_dir))
        self.sides = ["fv"] + (["lv"] if self.lv is not None else [])
        self.net_sides = ["fv"] + (["lv"] if self.lv is not None and not a.lv_no_net else [])

    def add(self, key: str, v: float) -> None:
        self.samples.setdefault(key, []).append(v)

    def timed(self, key: str, fn, *args) -> float:
        t0 = now()
        fn(*args)
        v = ms(t0, now())
        self.add(key, v)
        return v

    def attempt(self, key: str, fn, *args) -> bool:
        """timed(), but a failure is recorded (once per key) instead of
        raised: the run goes on."""
        try:
            self.timed(key, fn, *args)
            return True
        except Exception as e:  # noqa: BLE001
            msg = str(e).strip().replace("\n", " ")[:600]
            if key not in self.errors:
                log(f"FAILED {key}: {msg}")
                self.errors[key] = msg
            return False

    def rotate(self, i: int, sides: list[str] | None = None) -> list[str]:
        sides = self.sides if sides is None else sides
        k = i % len(sides)
        return sides[k:] + sides[:k]

    # ---------------------------------------------------------- snapshots

    def disk(self, name: str) -> Path:
        d = self.T / "disks" / name
        d.mkdir(parents=True, exist_ok=True)
        p = d / "data.qcow2"
        if not p.exists():
            run(["qemu-img", "create", "-q", "-f", "qcow2", str(p), "256M"])
        return p

    def boot(self, side: str, name: str) -> None:
        m = self.fv if side == "fv" else self.lv
        off = fsize(m.console_log(name))
        if side == "fv":
            self.fv.start(name)
        else:
            self.lv.virsh("start", name)
        wait_ready(m.console_log(name), off)

    def halt(self, side: str, name: str) -> None:
        if side == "fv":
            if self.fv.status(name) != "shutoff":
                self.fv.stop(name)
        else:
            if self.lv.state(name) != "shut off":
                self.lv.virsh("destroy", name)

    def guest_check(self, side: str, name: str, cmd: str) -> str:
        m = self.fv if side == "fv" else self.lv
        ch = m.channel(name)
        try:
            ch.wait_ready(30)
            return ch.run(cmd, timeout=15, check=False, retries=2)[1]
        finally:
            self.lost[side] = self.lost.get(side, 0) + ch.lost
            ch.close()

    def snapshots(self) -> None:
        N = self.a.runs
        fv, lv = self.fv, self.lv
        names = {"fv": ("sn-int", "sn-ext"), "lv": ("lv-int", "lv-ext")}
        disks = {s: (self.disk(f"{s}-int"), self.disk(f"{s}-ext")) for s in self.sides}
        fv.create("sn-int", disks["fv"][0])
        fv.create("sn-ext", disks["fv"][1])
        if lv is not None:
            lv.define("lv-int", disks["lv"][0])
            lv.define("lv-ext", disks["lv"][1])
        savefile = {s: self.T / "save" / f"{s}.state" for s in self.sides}
        (self.T / "save").mkdir(exist_ok=True)

        def ops(side: str):
            """name -> callable, for each measured operation of `side`."""
            vm, ext = names[side]
            if side == "fv":
                c = fv.cli_run
                return {
                    "snap_mem_create": lambda s: c("snapshot", "create", vm, s),
                    "snap_mem_revert": lambda s: c("snapshot", "revert", vm, s),
                    "snap_mem_delete": lambda s: c("snapshot", "delete", vm, s),
                    "managedsave": lambda: c("save", vm),
                    "managedsave_start": lambda: c("start", vm),
                    "save_file": lambda: c("save", vm, "--file", str(savefile[side])),
                    "restore_file": lambda: c("restore", str(savefile[side])),
                    "snap_disk_create": lambda s: c("snapshot", "create", vm, s),
                    "snap_disk_delete": lambda s: c("snapshot", "delete", vm, s),
                    "snap_ext_create": lambda s: c("snapshot", "create", ext, s, "--external",
                                                   "--no-memory"),
                    "snap_ext_delete": lambda s: c("snapshot", "delete", ext, s),
                }
            v = lv.virsh
            return {
                "snap_mem_create": lambda s: v("snapshot-create-as", vm, s),
                "snap_mem_revert": lambda s: v("snapshot-revert", vm, s),
                "snap_mem_delete": lambda s: v("snapshot-delete", vm, s),
                "managedsave": lambda: v("managedsave", vm),
                "managedsave_start": lambda: v("start", vm),
                "save_file": lambda: v("save", vm, str(savefile[side])),
                "restore_file": lambda: v("restore", str(savefile[side])),
                "snap_disk_create": lambda s: v("snapshot-create-as", vm, s),
                "snap_disk_delete": lambda s: v("snapshot-delete", vm, s),
                "snap_ext_create": lambda s: v("snapshot-create-as", ext, s, "--disk-only",
                                               "--atomic"),
                "snap_ext_delete": lambda s: v("snapshot-delete", ext, s),
            }

        table = {s: ops(s) for s in self.sides}

        def block_int(side: str, i: int) -> None:
            vm = names[side][0]
            o = table[side]
            key = lambda k: f"{k}.{side}"  # noqa: E731
            self.boot(side, vm)
            first = i == 0
            if first:  # a file only this boot has, and one made after the snapshot
                self.guest_check(side, vm, "echo x > /tmp/snapnet-before")
            size0 = fsize(disks[side][0])
            ok = self.attempt(key("snap_mem_create"), o["snap_mem_create"], f"m{i}")
            if ok and first:
                self.sizes[f"qcow2_growth_mem_snapshot.{side}"] = fsize(disks[side][0]) - size0
                snaps = qcow2_snapshots(disks[side][0])
                if snaps:
                    self.sizes[f"vm_state_size.{side}"] = int(snaps[-1].get("vm-state-size", 0))
                self.guest_check(side, vm, "echo y > /tmp/snapnet-after")
            if ok:
                if self.attempt(key("snap_mem_revert"), o["snap_mem_revert"], f"m{i}") and first:
                    out = self.guest_check(side, vm, "ls /tmp/snapnet-before /tmp/snapnet-after")
                    good = "snapnet-before" in out and "No such file" in out
                    self.checks[f"revert_restores_memory.{side}"] = (
                        "ok" if good else f"unexpected: {out.strip()[:200]}")
                self.attempt(key("snap_mem_delete"), o["snap_mem_delete"], f"m{i}")
            # managed save, then start resumes it
            if self.attempt(key("managedsave"), o["managedsave"]):
                if first:
                    m = fv if side == "fv" else lv
                    self.sizes[f"managedsave_file.{side}"] = fsize(m.managed_save_file(vm))
                if self.attempt(key("managedsave_start"), o["managedsave_start"]) and first:
                    out = self.guest_check(side, vm, "cat /tmp/snapnet-before")
                    self.checks[f"managedsave_resumes_same_boot.{side}"] = (
                        "ok" if out.strip() == "x" else f"unexpected: {out.strip()[:200]}")
            # save to a file, restore from it
            self.halt_if_not_running(side, vm)
            if self.attempt(key("save_file"), o["save_file"]):
                if first:
                    self.sizes[f"save_file.{side}"] = fsize(savefile[side])
                if self.attempt(key("restore_file"), o["restore_file"]) and first:
                    out = self.guest_check(side, vm, "cat /tmp/snapnet-before")
                    self.checks[f"restore_resumes_same_boot.{side}"] = (
                        "ok" if out.strip() == "x" else f"unexpected: {out.strip()[:200]}")
            try:
                savefile[side].unlink()
            except FileNotFoundError:
                pass
            # disk-only internal snapshot of the stopped VM
            self.halt(side, vm)
            if self.attempt(key("snap_disk_create"), o["snap_disk_create"], f"d{i}"):
                self.attempt(key("snap_disk_delete"), o["snap_disk_delete"], f"d{i}")

        def block_ext(side: str, i: int) -> None:
            vm = names[side][1]
            o = table[side]
            key = lambda k: f"{k}.{side}"  # noqa: E731
            self.boot(side, vm)
            d = disks[side][1].parent
            before = set(os.listdir(d))
            if self.attempt(key("snap_ext_create"), o["snap_ext_create"], f"e{i}"):
                if i == 0:
                    self.extra[f"ext_overlay_files.{side}"] = sorted(set(os.listdir(d)) - before)
                self.attempt(key("snap_ext_delete"), o["snap_ext_delete"], f"e{i}")
                if i == 0:
                    self.extra[f"ext_files_after_delete.{side}"] = sorted(os.listdir(d))
            self.halt(side, vm)

        for i in range(N):
            for side in self.rotate(i):
                log(f"snapshots run {i + 1}/{N}: {side}")
                try:
                    block_int(side, i)
                except Exception as e:  # noqa: BLE001
                    self.errors.setdefault(f"snapshot_block_int.{side}", str(e)[:600])
                    log(f"snapshot block (internal) {side} failed: {e}")
                finally:
                    self.safe_halt(side, names[side][0])
                try:
                    block_ext(side, i)
                except Exception as e:  # noqa: BLE001
                    self.errors.setdefault(f"snapshot_block_ext.{side}", str(e)[:600])
                    log(f"snapshot block (external) {side} failed: {e}")
                finally:
                    self.safe_halt(side, names[side][1])

    def halt_if_not_running(self, side: str, vm: str) -> None:
        """After a failed resume, start the VM again (so save/restore can be
        measured on a running VM)."""
        try:
            if side == "fv":
                st = self.fv.status(vm)
                if st == "shutoff":
                    self.boot("fv", vm)
            else:
                if self.lv.state(vm) == "shut off":
                    self.boot("lv", vm)
        except Exception as e:  # noqa: BLE001
            log(f"cannot restart {vm}: {e}")

    def safe_halt(self, side: str, vm: str) -> None:
        try:
            self.halt(side, vm)
        except Exception as e:  # noqa: BLE001
            log(f"cannot stop {vm}: {e}")

    # ---------------------------------------------------------- networks

    def networks(self) -> None:
        N = self.a.net_runs
        fv, lv = self.fv, self.lv

        def fv_cli(i: int) -> None:
            name = f"fvc{i}"
            self.attempt("net_create.fv_cli", fv.cli_run, "network", "create", name, "--type",
                         "nat", "--ipv4", f"10.123.{10 + i}.1/24")
            if i == 0:
                self.net_check("fv", f"fvbr-{name}", f"10.123.{10 + i}.1")
            self.attempt("net_delete.fv_cli", fv.cli_run, "network", "delete", name)

        def fv_api(i: int) -> None:
            name = f"fva{i}"
            body = {"name": name, "type": "nat", "ipv4": {"address": f"10.123.{100 + i}.1/24"}}
            self.attempt("net_create.fv_api", fv.api, "POST", "/1.0/networks", body)
            self.attempt("net_delete.fv_api", fv.api, "DELETE", f"/1.0/networks/{name}",
                         None, (200, 202, 204))

        def lv_virsh(i: int) -> None:
            name = f"lvc{i}"
            f = lv.net_xml_file(name, f"lvbrc{i}", f"10.124.{10 + i}")
            t0 = now()
            ok = self.attempt("net_define.lv_virsh", lv.virsh, "net-define", f)
            ok = ok and self.attempt("net_start.lv_virsh", lv.virsh, "net-start", name)
            if ok:
                self.add("net_create.lv_virsh", ms(t0, now()))
            if i == 0:
                self.net_check("lv", f"lvbrc{i}", f"10.124.{10 + i}.1")
            t0 = now()
            ok = self.attempt("net_destroy.lv_virsh", lv.virsh, "net-destroy", name)
            ok = self.attempt("net_undefine.lv_virsh", lv.virsh, "net-undefine", name) and ok
            if ok:
                self.add("net_delete.lv_virsh", ms(t0, now()))

        def lv_api(i: int) -> None:
            name = f"lva{i}"
            xml = lv.net_xml(name, f"lvbra{i}", f"10.124.{100 + i}")
            t0 = now()
            try:
                n = lv.conn.networkDefineXML(xml)
                n.create()
                self.add("net_create.lv_api", ms(t0, now()))
                t0 = now()
                n.destroy()
                n.undefine()
                self.add("net_delete.lv_api", ms(t0, now()))
            except Exception as e:  # noqa: BLE001
                self.errors.setdefault("net_lv_api", str(e)[:600])

        seqs = {"fv": [fv_cli, fv_api], "lv": [lv_virsh] + ([lv_api] if lv and lv.conn else [])}
        for i in range(N):
            log(f"networks run {i + 1}/{N}")
            for side in self.rotate(i, self.net_sides):
                for fn in seqs[side]:
                    fn(i)

    def net_check(self, side: str, bridge: str, addr: str) -> None:
        """Once: the network is really up (bridge with its address, dnsmasq
        running in the namespace)."""
        ns = self.a.fv_netns if side == "fv" else self.a.lv_netns
        p = run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", bridge], check=False)
        has_addr = addr in p.stdout.decode()
        pids = run(["ip", "netns", "pids", ns], check=False).stdout.decode().split()
        dnsmasq = any(Path(f"/proc/{p}/comm").read_text().strip() == "dnsmasq"
                      for p in pids if Path(f"/proc/{p}/comm").exists())
        self.checks[f"network_up.{side}"] = ("ok" if has_addr and dnsmasq else
                                             f"bridge address {has_addr}, dnsmasq {dnsmasq}")

    # ---------------------------------------------------------- throughput

    def in_ns(self, side: str) -> list[str]:
        ns = self.a.fv_netns if side == "fv" else self.a.lv_netns
        return ["ip", "netns", "exec", ns]

    def throughput(self) -> None:
        """Both sides' guest pairs are set up first; the runs then alternate
        between the sides (rotating who goes first), so that a change in the
        host's load hits both alike. The idle pair costs a little CPU."""
        sides = ["fv"] + (["lv"] if "lv" in self.net_sides and self.a.lv_throughput else [])
        ctx: dict[str, dict] = {}
        try:
            for side in sides:
                try:
                    ctx[side] = {"names": [f"{side}-tp-a", f"{side}-tp-b"], "chans": []}
                    self.tput_setup(side, ctx[side])
                except Exception as e:  # noqa: BLE001
                    self.errors.setdefault(f"throughput.{side}", str(e)[:600])
                    log(f"throughput set-up {side} failed: {e}")
                    ctx[side]["failed"] = True
            live = [s for s in sides if not ctx[s].get("failed")]
            for r in range(self.a.tput_runs):
                for side in (live[r % len(live):] + live[:r % len(live)]) if live else []:
                    if ctx[side].get("failed"):
                        continue
                    log(f"{side}: throughput run {r + 1}/{self.a.tput_runs} "
                        f"({self.a.tput_mib} MiB each)")
                    try:
                        self.tput_run(side, ctx[side])
                    except Exception as e:  # noqa: BLE001
                        # recorded; the next run goes on (a closed console fails it at once)
                        k = f"throughput.{side}"
                        self.errors[k] = (self.errors[k] + " | " if k in self.errors else "") + \
                            f"run {r + 1}: {str(e)[:500]}"
                        log(f"throughput {side} run {r + 1} failed: {e}")
        finally:
            for side in ctx:
                self.lost[side] = self.lost.get(side, 0) + sum(
                    ch.lost for ch in ctx[side].get("chans", []))
                self.tput_teardown(side, ctx[side])

    def tput_setup(self, side: str, c: dict) -> None:
        prefix = "10.123.250" if side == "fv" else "10.124.250"
        c["gw"] = gw = f"{prefix}.1"
        names = c["names"]
        if side == "fv":
            self.fv.api("POST", "/1.0/networks",
                        {"name": "tput", "type": "nat", "ipv4": {"address": f"{gw}/24"}})
            for n in names:
                self.fv.create(n, nics=[{"network": "tput", "model": "virtio"}])
        else:
            f = self.lv.net_xml_file("tput", "lvbrtput", prefix)
            self.lv.virsh("net-define", f)
            self.lv.virsh("net-start", "tput")
            for n in names:
                self.lv.define(n, network="tput")
        for n in names:
            self.boot(side, n)
        m = self.fv if side == "fv" else self.lv
        self.extra[f"qemu_nic_args.{side}"] = net_args(cmdline(m.pid(names[0])))
        c["chans"] = [m.channel(n) for n in names]
        c["ips"] = []
        for n, ch in zip(names, c["chans"]):
            ch.wait_ready(60)
            t0 = now()
            c["ips"].append(dhcp(ch, "eth0", n))
            self.add(f"dhcp_lease.{side}", ms(t0, now()))
            # a FIFO opened read-write: a stdin that never ends (see listen());
            # and the loopback, which the guest's init leaves down
            ch.run("mkfifo /tmp/never 2>/dev/null; ip link set lo up", timeout=15, retries=2)
        log(f"{side}: guests {c['ips'][0]} and {c['ips'][1]} on {prefix}.0/24")

    def tput_run(self, side: str, c: dict) -> None:
        nbytes = self.a.tput_mib * MIB
        count = nbytes // 65536
        send = f"dd if=/dev/zero bs=64k count={count} 2>/dev/null | nc"
        a, b = c["chans"]
        gw, ips = c["gw"], c["ips"]
        # the guest's own ceiling, without virtio-net: a pipe, then TCP on its loopback
        out = a.run(f"{UPTIME}; dd if=/dev/zero bs=64k count={count} 2>/dev/null"
                    f" | cat >/dev/null; {UPTIME}", timeout=120)[1]
        self.add(f"tput_pipe.{side}", rate(nbytes, out))
        listen(a, 5004)
        out = a.run(f"{UPTIME}; {send} 127.0.0.1 5004; {UPTIME}", timeout=120)[1]
        received(a, 5004, nbytes)
        self.add(f"tput_loopback.{side}", rate(nbytes, out))
        # guest -> host: busybox nc in the guest, a Python sink on the host side
        sink = subprocess.Popen(self.in_ns(side) + [
            sys.executable, __file__, "sink", gw, "5001", "--timeout", "120"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = sink.stdout.readline().strip()
            if line != b"listening":
                raise RuntimeError(f"sink: {line!r} {sink.stderr.read()[-300:]!r}")
            a.run(f"{send} {gw} 5001", timeout=120)
            res = json.loads(sink.communicate(timeout=60)[0])
        finally:
            if sink.poll() is None:
                sink.kill()
                sink.wait()
        if res["bytes"] != nbytes:
            raise RuntimeError(f"guest->host: the sink got {res['bytes']} of {nbytes} bytes")
        self.add(f"tput_g2h.{side}", nbytes / MIB / res["seconds_from_accept"])
        # host -> guest: a Python source on the host side, busybox nc -l in the guest
        listen(a, 5002)
        src = run(self.in_ns(side) + [sys.executable, __file__, "source", ips[0], "5002",
                                      str(nbytes), "--timeout", "120"], timeout=150)
        res = json.loads(src.stdout)
        received(a, 5002, nbytes)
        self.add(f"tput_h2g.{side}", nbytes / MIB / res["seconds"])
        # guest -> guest: nc -l in b, dd | nc in a, timed in a
        listen(b, 5003)
        out = a.run(f"{UPTIME}; {send} {ips[1]} 5003; {UPTIME}", timeout=120)[1]
        received(b, 5003, nbytes)
        self.add(f"tput_g2g.{side}", rate(nbytes, out))

    def tput_teardown(self, side: str, c: dict) -> None:
        for ch in c.get("chans", []):
            ch.close()
        for n in c["names"]:
            self.safe_halt(side, n)
        if side == "fv":
            for n in c["names"]:
                try:
                    self.fv.delete(n)
                except Exception:  # noqa: BLE001
                    pass
            try:
                self.fv.api("DELETE", "/1.0/networks/tput", want=(200, 202, 204))
            except Exception as e:  # noqa: BLE001
                log(f"cannot delete network tput: {e}")
        else:
            self.lv.virsh("net-destroy", "tput", check=False)

    # ---------------------------------------------------------- main

    def main(self) -> dict:
        a = self.a
        meta = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "cpu_model": next((ln.split(":", 1)[1].strip() for ln in
                               Path("/proc/cpuinfo").read_text().splitlines()
                               if ln.startswith("model name")), "?"),
            "mem_total_kib": int(next(ln.split()[1] for ln in
                                      Path("/proc/meminfo").read_text().splitlines()
                                      if ln.startswith("MemTotal"))),
            "python": platform.python_version(),
            "libvirt_python": self.lv is not None and self.lv.conn is not None,
            "vhost_net_present": os.path.exists("/dev/vhost-net"),
            "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        }
        meta.update(json.loads(a.meta))
        config = {"runs": a.runs, "net_runs": a.net_runs, "tput_runs": a.tput_runs,
                  "tput_mib": a.tput_mib, "memory_mib": a.memory,
                  "sections": a.sections, "sides": self.sides, "net_sides": self.net_sides,
                  "lv_throughput": bool(a.lv_throughput) and "lv" in self.net_sides}
        ours = {a.reaper_pid, a.fv_pid, os.getpid()} | ({a.lv_pid} if a.lv_pid else set())
        foreign = ForeignLoad(ours)
        times = {}
        for section in a.sections.split(","):
            t0 = now()
            log(f"section {section}")
            {"snap": self.snapshots, "net": self.networks, "tput": self.throughput}[section]()
            times[section] = round(now() - t0, 1)
        meta["section_seconds"] = times
        meta["foreign_activity"] = foreign.result()
        meta["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
        self.extra["guest_commands_sent_again"] = self.lost
        return {"meta": meta, "config": config, "samples": self.samples, "sizes": self.sizes,
                "checks": self.checks, "errors": self.errors, "extra": self.extra,
                "notes": self.notes}


UPTIME = "cut -d' ' -f1 /proc/uptime"


def listen(ch: Channel, port: int) -> None:
    """Starts busybox `nc -l` in the guest, counting what it receives into
    /tmp/rx.PORT. Its stdin is a FIFO opened read-write, which never ends:
    on EOF of its stdin busybox nc half-closes the connection, and a sender
    nc exits as soon as its peer half-closes."""
    ch.run(f"netstat -ltn | grep -q ':{port} ' && exit 0; rm -f /tmp/rx.{port};"
           f" (nc -l -p {port} 0<>/tmp/never | wc -c >/tmp/rx.{port}.tmp;"
           f" mv /tmp/rx.{port}.tmp /tmp/rx.{port}) >/dev/null 2>&1 &"
           f" i=0; until netstat -ltn | grep -q ':{port} '; do usleep 20000; i=$((i+1));"
           f" [ $i -lt 250 ] || exit 1; done", timeout=15, retries=2)


def received(ch: Channel, port: int, nbytes: int) -> None:
    """Checks that the guest's `nc -l` on `port` got `nbytes` and exited."""
    out = ch.run(f"i=0; until [ -e /tmp/rx.{port} ]; do usleep 20000; i=$((i+1));"
                 f" [ $i -lt 250 ] || exit 1; done; cat /tmp/rx.{port}", timeout=15, check=False,
                 retries=2)
    if out[0] != 0 or out[1].strip() != str(nbytes):
        raise RuntimeError(f"the guest's nc -l on port {port} received {out[1].strip()!r} "
                           f"bytes, not {nbytes}")


def rate(nbytes: int, out: str) -> float:
    """MiB/s from the two /proc/uptime readings a guest command printed."""
    nums = [float(x) for x in out.split() if re.fullmatch(r"\d+\.\d+", x)]
    if len(nums) < 2 or nums[-1] <= nums[0]:
        raise RuntimeError(f"cannot time the transfer from {out!r}")
    return nbytes / MIB / (nums[-1] - nums[0])


# The udhcpc script of tests/src/lib.rs (DHCP_SCRIPT).
DHCP_SCRIPT = r"""#!/bin/sh
case "$1" in
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/$mask" dev "$interface"
	[ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
	: >/etc/resolv.conf
	for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
	[ -n "$domain" ] && echo "search $domain" >>/etc/resolv.conf
	;;
deconfig)
	ip addr flush dev "$interface"
	ip link set "$interface" up
	;;
esac
exit 0
"""


def dhcp(ch: Channel, iface: str, hostname: str) -> str:
    script = DHCP_SCRIPT.replace("'", "'\\''")
    ch.run(f"mkdir -p /etc && printf '%s' '{script}' > /tmp/dhcp.sh && chmod +x /tmp/dhcp.sh"
           f" && ip link set {iface} up", timeout=15, retries=2)
    _, out = ch.run(f"udhcpc -i {iface} -n -q -t 15 -T 1 -s /tmp/dhcp.sh -x hostname:{hostname}"
                    f" 2>&1; ip -4 -o addr show {iface}", timeout=60, retries=1)
    words = out.split()
    if "inet" not in words:
        raise RuntimeError(f"no address after DHCP: {out}")
    return words[words.index("inet") + 1].split("/")[0]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("sink", "source"):
        ap = argparse.ArgumentParser()
        ap.add_argument("mode")
        ap.add_argument("host")
        ap.add_argument("port", type=int)
        ap.add_argument("nbytes", type=int, nargs="?", default=0)
        ap.add_argument("--timeout", type=float, default=300)
        a = ap.parse_args()
        if a.mode == "sink":
            return sink_main(a.host, a.port, a.timeout)
        return source_main(a.host, a.port, a.nbytes, a.timeout)
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["measure"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--net-runs", type=int, default=10)
    ap.add_argument("--tput-runs", type=int, default=5)
    ap.add_argument("--tput-mib", type=int, default=64)
    ap.add_argument("--memory", type=int, default=256)
    ap.add_argument("--sections", default="snap,net,tput")
    ap.add_argument("--qemu", default="/usr/bin/qemu-system-x86_64")
    ap.add_argument("--guest", required=True, help="JSON of ferrovirt-test-guest")
    ap.add_argument("--fv-cli", required=True)
    ap.add_argument("--fv-socket", required=True)
    ap.add_argument("--fv-state-dir", required=True)
    ap.add_argument("--fv-pid", type=int, required=True)
    ap.add_argument("--fv-netns", required=True)
    ap.add_argument("--lv-uri")
    ap.add_argument("--lv-pid", type=int)
    ap.add_argument("--lv-dir")
    ap.add_argument("--lv-netns")
    ap.add_argument("--lv-throughput", type=int, default=1)
    ap.add_argument("--lv-no-net", action="store_true",
                    help="libvirt has no usable network driver: Ferrovirt only for networks")
    ap.add_argument("--meta", default="{}")
    ap.add_argument("--reaper-pid", type=int, default=0)
    a = ap.parse_args()
    out = Bench(a).main()
    Path(a.out).write_text(json.dumps(out, indent=1))
    log(f"raw results in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
