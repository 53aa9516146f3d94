"""The test guest as the host sees it: its ready marker on the serial log,
and its command channel (crates/testkit/src/channel.rs) over a console
stream: a unix socket QEMU serves (libvirt, the floor) or Ferrovirt's
console."""
from __future__ import annotations

import base64
import os
import re
import select
import socket
import subprocess
import threading
import time
from pathlib import Path

from .host import log

MIB = 1 << 20

READY = b"FERROVIRT-GUEST-READY"
now = time.perf_counter


def ms(t0: float, t1: float) -> float:
    return round((t1 - t0) * 1000.0, 3)


def fsize(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def wait_ready(path: Path, offset: int, t0: float | None = None, timeout: float = 120.0) -> float:
    """ms since `t0` until the ready marker is in a console log after `offset` (polled every 5 ms)."""
    t0 = now() if t0 is None else t0
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
            raise TimeoutError(f"no {READY.decode()} in {path} after {timeout} s: {buf[-300:]!r}")
        time.sleep(0.005)


def connect_unix(path: str, timeout: float = 30.0, pause: float = 0.05) -> socket.socket:
    """A unix socket connected to `path`, retried until `timeout` (QEMU may not listen yet)."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(pause)


class SockStream:
    """A serial chardev QEMU serves on a unix socket."""

    def __init__(self, path: str):
        self.sock = connect_unix(path)
        self.fd = self.sock.fileno()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout: float) -> bytes | None:  # b"" on timeout, None once closed
        if not select.select([self.fd], [], [], timeout)[0]:
            return b""
        try:
            return os.read(self.fd, 65536) or None
        except OSError:
            return None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class CliStream(SockStream):
    """Ferrovirt's console (its websocket, GET /1.0/instances/NAME/console)
    through the stdin and stdout of `ferrovirt console NAME`."""

    def __init__(self, argv: list[str]):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.fd = self.p.stdout.fileno()

    def send(self, data: bytes) -> None:
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def close(self) -> None:
        self.p.kill()
        self.p.wait()


RESULT_RE = re.compile(rb"@@FV-END (\d+) (-?\d+) ([A-Za-z0-9+/=]*)\r?\n")


class Channel:
    """The test guest's command channel: `@@FV <id> <base64 cmd>` in, `@@FV-END
    <id> <rc> <base64 output>` out. `drop`: bytes removed from what is read
    (the migration workload's heartbeat dots)."""

    def __init__(self, stream, log_tail=None, drop: bytes = b""):
        self.s = stream
        self.log_tail = log_tail  # () -> bytes: the end of the console log, for errors
        self.drop = drop
        self.buf = b""
        self.lost = 0  # commands sent again after no answer
        self.next_id = int(time.time() * 1000) % 1_000_000 * 1000

    def run(self, cmd: str, timeout: float = 30.0, check: bool = True,
            retries: int = 0) -> tuple[int, str]:
        """Runs `cmd` in the guest; with `retries`, sent again (new id) after no
        answer within `timeout`: the test guest's init now and then drops a
        command line (see docs/benchmarks-snapshots-networks.md)."""
        for attempt in range(retries + 1):
            try:
                return self._wait(self._send(cmd), cmd, timeout, check)
            except TimeoutError as e:
                if attempt == retries:
                    raise
                self.lost += 1
                log(f"no answer, sending again: {str(e)[:200]}")
        raise AssertionError("unreachable")

    def _send(self, cmd: str) -> int:
        self.next_id += 1
        self.s.send(f"@@FV {self.next_id} {base64.b64encode(cmd.encode()).decode()}\n".encode())
        return self.next_id

    def _wait(self, cid: int, cmd: str, timeout: float, check: bool,
              also: set[int] = frozenset()) -> tuple[int, str]:
        """The answer to `cid` (or to one of the ids `also`)."""
        deadline = time.monotonic() + timeout
        while True:
            for m in RESULT_RE.finditer(self.buf):
                if int(m.group(1)) == cid or int(m.group(1)) in also:
                    self.buf = self.buf[m.end():]
                    rc, text = int(m.group(2)), base64.b64decode(m.group(3)).decode(errors="replace")
                    if check and rc != 0:
                        raise RuntimeError(f"guest command {cmd!r} exited {rc}: {text[-500:]}")
                    return rc, text
            left = deadline - time.monotonic()
            if left <= 0:
                try:
                    logged = self.log_tail() if self.log_tail else b""
                except OSError as e:
                    logged = f"(cannot read: {e})".encode()
                answered = f"@@FV-END {cid} ".encode() in logged
                raise TimeoutError(f"guest command {cmd!r} (id {cid}): no answer in {timeout} s; "
                                   f"received: {self.buf[-200:]!r}; the console log "
                                   f"{'HAS' if answered else 'has no'} answer; its end: "
                                   f"{logged[-300:]!r}")
            data = self.s.recv(min(left, 1.0))
            if data is None:
                raise RuntimeError(f"console closed while running {cmd!r}: {self.buf[-300:]!r}")
            if self.drop:
                data = data.replace(self.drop, b"")
            self.buf = (self.buf + data)[-262144:]

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Probes with `true` every 0.5 s until one answers (also a late answer
        to an earlier probe)."""
        deadline = time.monotonic() + timeout
        sent: set[int] = set()
        while True:
            sent.add(self._send("true"))
            try:
                self._wait(self.next_id, "true", 0.5, True, sent)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        self.s.close()


class Heartbeat:
    """Polls console logs' sizes every millisecond and keeps when any grew:
    the longest interval between growths is how long the guest stood still."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self.last = {p: p.stat().st_size if p.exists() else 0 for p in paths}
        self.times: list[float] = []
        self.first: dict[int, float] = {}  # file index -> its first growth
        self.lastg: dict[int, float] = {}  # file index -> its last growth
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self) -> None:
        while not self.stop.is_set():
            t, grew = now(), False
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
        """(gap ms, its start relative to t0 in ms) of consecutive growths
        overlapping [t0, t1], longest first."""
        return sorted(((ms(a, b), ms(t0, a)) for a, b in zip(self.times, self.times[1:])
                       if b > t0 and a < t1), reverse=True)

    def beats_after(self, t: float) -> int:
        return sum(1 for x in self.times if x > t)


# ------------------------------------------------------------------ network commands

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
    rc, got = ch.run(f"i=0; until [ -e /tmp/rx.{port} ]; do usleep 20000; i=$((i+1));"
                     f" [ $i -lt 250 ] || exit 1; done; cat /tmp/rx.{port}", timeout=15, check=False, retries=2)
    if rc != 0 or got.strip() != str(nbytes):
        raise RuntimeError(f"the guest's nc -l on port {port} received {got.strip()!r} bytes, not {nbytes}")


def rate(nbytes: int, text: str) -> float:
    """MiB/s from the two /proc/uptime readings a guest command printed."""
    nums = [float(x) for x in text.split() if re.fullmatch(r"\d+\.\d+", x)]
    if len(nums) < 2 or nums[-1] <= nums[0]:
        raise RuntimeError(f"cannot time the transfer from {text!r}")
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
    _, got = ch.run(f"udhcpc -i {iface} -n -q -t 15 -T 1 -s /tmp/dhcp.sh -x hostname:{hostname}"
                    f" 2>&1; ip -4 -o addr show {iface}", timeout=60, retries=1)
    words = got.split()
    if "inet" not in words:
        raise RuntimeError(f"no address after DHCP: {got}")
    return words[words.index("inet") + 1].split("/")[0]
