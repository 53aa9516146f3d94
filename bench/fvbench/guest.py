"""The test guest as the host sees it: its ready marker on the serial log,
and its command channel (crates/testkit/src/channel.rs) over a console
stream: a unix socket QEMU serves (libvirt, the floor) or Ferrovirt's
websocket console."""
from __future__ import annotations

import base64
import os
import re
import select
import socket
import struct
import time
from pathlib import Path

from .host import log

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
    """Polls a console log (every 5 ms) for the guest's ready marker written
    after `offset`; returns ms since `t0`."""
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


class SockStream:
    """A serial chardev QEMU serves on a unix socket."""

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
        if not select.select([self.sock], [], [], timeout)[0]:
            return b""
        try:
            return self.sock.recv(65536) or None
        except OSError:
            return None

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
        self.sock.sendall((f"GET /1.0/instances/{name}/console HTTP/1.1\r\nHost: localhost\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
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
        opcode, n, i, masked = b[0] & 0x0F, b[1] & 0x7F, 2, b[1] & 0x80
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
        data = b""
        while True:
            f = self._parse()
            while f is not None:
                opcode, payload = f
                if opcode in (0x0, 0x1, 0x2):
                    data += payload
                elif opcode == 0x8:
                    self.closed = True
                    return data or None
                elif opcode == 0x9:
                    self.sock.sendall(self._frame(0xA, payload))
                f = self._parse()
            if data:
                return data
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
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
        for fn in (lambda: self.sock.sendall(self._frame(0x8, b"")), self.sock.close):
            try:
                fn()
            except OSError:
                pass


RESULT_RE = re.compile(rb"@@FV-END (\d+) (-?\d+) ([A-Za-z0-9+/=]*)\r?\n")


class Channel:
    """The test guest's command channel: the host writes `@@FV <id> <base64
    cmd>\\n`, the guest answers `@@FV-END <id> <rc> <base64 output>\\n`.
    `drop`: bytes never part of an answer, removed from what is read (the
    migration workload's heartbeat dots, which can fall inside an answer)."""

    def __init__(self, stream, log_tail=None, drop: bytes = b""):
        self.s = stream
        self.log_tail = log_tail  # () -> bytes: the end of the console log, for errors
        self.drop = drop
        self.buf = b""
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
            self.s.send(f"@@FV {cid} {base64.b64encode(cmd.encode()).decode()}\n".encode())
            try:
                return self._wait(cid, cmd, timeout, check)
            except TimeoutError as e:
                if attempt == retries:
                    raise
                self.lost += 1
                log(f"no answer, sending again: {str(e)[:200]}")
        raise AssertionError("unreachable")

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
                logged = b""
                if self.log_tail is not None:
                    try:
                        logged = self.log_tail()
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
        """Probes with `true` every 0.5 s until one answers (the guest may
        have printed its ready marker before we connected); the answer to an
        earlier probe counts too (on a loaded host the guest may take longer
        than 0.5 s for each)."""
        deadline = time.monotonic() + timeout
        sent: set[int] = set()
        while True:
            self.next_id += 1
            sent.add(self.next_id)
            self.s.send(f"@@FV {self.next_id} {base64.b64encode(b'true').decode()}\n".encode())
            try:
                self._wait(self.next_id, "true", 0.5, True, sent)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        self.s.close()
