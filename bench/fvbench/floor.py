"""The floor: QEMU driven by hand over QMP with the argv Ferrovirt builds,
the minimum any manager must do."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid as uuidlib
from pathlib import Path

from . import host
from .guest import Channel, SockStream, connect_unix
from .host import wait_gone
from .systems import System


class Qmp:
    def __init__(self, path: str, timeout: float = 30.0):
        self.sock = connect_unix(path, timeout, 0.001)
        self.sock.settimeout(timeout)
        self.f = self.sock.makefile("rwb", buffering=0)
        self.events: list[dict] = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise RuntimeError(f"QMP at {path}: unexpected greeting {greeting}")
        self.cmd("qmp_capabilities")

    def _read(self) -> dict:
        line = self.f.readline()
        if not line:
            raise EOFError("QMP closed")
        return json.loads(line)

    def cmd(self, name: str, args: dict | None = None):
        self.f.write(json.dumps({"execute": name, **({"arguments": args} if args else {})}).encode() + b"\n")
        while True:
            m = self._read()
            if "event" in m:
                self.events.append(m)
            elif "error" in m:
                raise RuntimeError(f"QMP {name}: {m['error']}")
            else:
                return m["return"]

    def wait_event(self, name: str) -> None:
        while not any(e["event"] == name for e in self.events):
            m = self._read()
            if "event" in m:
                self.events.append(m)
        self.events = [e for e in self.events if e["event"] != name]

    def close(self) -> None:
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass


GOLDEN = host.ROOT / "crates/qemu/tests/golden/direct_kernel_boot_tcg.argv"
GOLDEN_VALUES = {"-uuid": "{UUID}", "-smp": "1", "-m": "{MEM}M", "-kernel": "{KERNEL}",
                 "-initrd": "{INITRD}", "-append": "{CMDLINE}"}


def template(argv: list[str] | None = None, name: str = "vm1",
             dirs: tuple[str, ...] = ("/run/fv/instances/vm1", "/var/lib/fv/logs/vm1")) -> list[str]:
    """A QEMU argv as the floor's template (see Floor.argv): by default
    crates/qemu/tests/golden/direct_kernel_boot_tcg.argv with 1 vCPU; else
    `argv`, that of a QEMU Ferrovirt launched for `name`, so that the floor
    follows whatever Ferrovirt builds (the golden file may lag). Instance
    directories `dirs`, name and UUID become placeholders. ferrovirtd logs
    the guest console itself (capped); the floor, a bare QEMU, has QEMU
    write it, as a hand-run QEMU would."""
    values = {"-uuid": "{UUID}"} if argv else GOLDEN_VALUES
    argv = argv or [x for x in GOLDEN.read_text().splitlines() if x]
    res = []
    for prev, x in zip([""] + argv, argv):
        for d in dirs:
            x = x.replace(d, "{DIR}")
        x = x.replace(f"guest={name},", "guest={NAME},")
        if x.startswith("socket,id=serial0,") and "logfile=" not in x:
            x += ",logfile={DIR}/console.log,logappend=on"
        res.append(values.get(prev, x))
    return res


class Floor(System):
    """Raw QEMU: spawn with -daemonize (returns once QEMU is initialized),
    connect QMP, negotiate, `cont`. Its files under ROOT/NAME; in network
    namespace `netns` when given."""

    def __init__(self, b: host.Binaries, root: Path, memory: int = 256, netns: str | None = None):
        self.qemu, self.root, self.guest, self.template = b.qemu, root, b.guest, template()
        self.memory, self.netns = memory, netns
        self.vms: dict[str, tuple[int, Qmp]] = {}

    def console_log(self, name: str) -> Path:
        return self.root / name / "console.log"

    def argv(self, name: str, memory: int | None = None) -> list[str]:
        sub = {"{DIR}": str(self.root / name), "{NAME}": name, "{MEM}": str(memory or self.memory),
               "{UUID}": str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, name)),
               "{KERNEL}": self.guest["kernel"], "{INITRD}": self.guest["initrd"],
               "{CMDLINE}": self.guest["cmdline"]}
        res = [self.qemu]
        for x in self.template[1:]:
            for k, v in sub.items():
                x = x.replace(k, v)
            res.append(x)
        return res

    def spawn(self, name: str, memory: int | None = None, extra: list[str] = ()) -> tuple[int, Qmp]:
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        for stale in ("qmp.sock", "console.sock", "qemu.pid"):
            (d / stale).unlink(missing_ok=True)
        ns = ["ip", "netns", "exec", self.netns] if self.netns else []
        with open(d / "qemu.out", "wb") as f:
            p = subprocess.run([*ns, *self.argv(name, memory), *extra], stdin=subprocess.DEVNULL,
                               stdout=f, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise RuntimeError(f"floor QEMU {name} failed: "
                               f"{(d / 'qemu.out').read_text(errors='replace')[-500:]}")
        return int((d / "qemu.pid").read_text().strip()), Qmp(str(d / "qmp.sock"))

    def start(self, name: str, memory: int | None = None) -> None:
        pid, q = self.spawn(name, memory)
        q.cmd("cont")
        self.vms[name] = (pid, q)

    def channel(self, name: str, drop: bytes = b"") -> Channel:
        return Channel(SockStream(str(self.root / name / "console.sock")), None, drop)

    def stop(self, name: str) -> None:
        pid, q = self.vms.pop(name)
        try:
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid)
        except ProcessLookupError:
            pass
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
