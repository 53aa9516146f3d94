"""The systems measured, behind one `System` protocol: Ferrovirt (its REST
API on the unix socket, and its CLI), libvirt (virsh, and the Python binding
when importable) and the floor: QEMU driven by hand over QMP with the argv
Ferrovirt builds, the minimum any manager must do."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
import uuid as uuidlib
from pathlib import Path
from typing import Protocol

from . import host
from .guest import Channel, SockStream, WsStream, connect_unix
from .host import Skip, log, run, wait_gone

_binding = None


def binding():
    """The libvirt Python binding (python3-libvirt), or None: no "libvirt API" rows."""
    global _binding
    if _binding is None:
        try:
            import libvirt  # type: ignore

            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            _binding = libvirt
        except Exception:  # noqa: BLE001 - depends on the host
            return None
    return _binding


class System(Protocol):
    """What every suite needs of a manager for one guest `vm`."""

    def console_log(self, vm: str) -> Path: ...
    def start(self, vm: str) -> None: ...
    def stop(self, vm: str) -> None: ...  # forced, until QEMU is gone
    def pid(self, vm: str) -> int: ...
    def channel(self, vm: str) -> Channel: ...


def libvirt_or_skip(h: host.Host, a, meta: dict, start):
    """start()'s libvirtd(s), libvirt installed first when missing; or None,
    meta["libvirt_skipped"] saying why (--no-libvirt, a Skip)."""
    meta.update(libvirt_version=None, libvirt_skipped=None)
    try:
        if a.no_libvirt:
            raise Skip("--no-libvirt")
        host.ensure_libvirt(h, a.install)
        res = start()
        meta["libvirt_version"] = host.lv_version()
        return res
    except Skip as e:
        meta["libvirt_skipped"] = str(e)
        log(f"libvirt SKIPPED: {e}")
        return None


# ------------------------------------------------------------------ Ferrovirt

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 900.0):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Ferrovirt:
    """One ferrovirtd: REST, one connection per call (as curl would), and
    the CLI (`ferrovirt --socket SOCK ...`)."""

    def __init__(self, cli: str, sock: str, state_dir: Path, guest: dict, memory: int = 256):
        self.cli, self.sock, self.state_dir = cli, sock, state_dir
        self.guest, self.memory = guest, memory

    def request(self, method: str, path: str, body: dict | None = None,
                want=(200, 201, 202, 204)) -> bytes:
        c = UnixHTTPConnection(self.sock)
        headers, data = {}, None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        raw = r.read()
        c.close()
        if r.status not in want:
            raise RuntimeError(f"{method} {path} -> {r.status}: {raw[:400]!r}")
        return raw

    def api(self, method: str, path: str, body: dict | None = None, want=(200, 201, 202, 204)):
        raw = self.request(method, path, body, want)
        return json.loads(raw) if raw.strip() else None

    def op(self, method: str, path: str, body: dict | None = None) -> dict:
        """An operation (202), waited for; raises unless it succeeded."""
        return self.wait(self.api(method, path, body), f"{method} {path}")

    def wait(self, o: dict, what: str = "") -> dict:
        while o["status"] == "running":
            o = self.api("GET", f"/1.0/operations/{o['id']}/wait?timeout=600")
        if o["status"] != "success":
            raise RuntimeError(f"{what or o['id']}: operation {o['status']}: {o.get('error')}")
        return o

    def cli_run(self, *args: str) -> str:
        return run([self.cli, "--socket", self.sock, *args]).stdout.decode(errors="replace")

    def spec(self, name: str, memory: int | None = None, disk: Path | None = None,
             nics: list | None = None) -> dict:
        s = {"name": name, "cpus": 1, "memory": memory or self.memory, "machine": "q35",
             "accel": "tcg", "boot": {k: self.guest[k] for k in ("kernel", "initrd", "cmdline")}}
        if disk is not None:
            s["disks"] = [{"path": str(disk), "format": "qcow2", "bus": "virtio"}]
        if nics:
            s["nics"] = nics
        return s

    def create(self, name: str, **kw) -> None:
        self.api("POST", "/1.0/instances", self.spec(name, **kw))

    def create_cli(self, name: str) -> None:
        g = self.guest
        self.cli_run("create", name, "--kernel", g["kernel"], "--initrd", g["initrd"], "--cmdline",
                     g["cmdline"], "--memory", str(self.memory), "--cpus", "1", "--machine", "q35",
                     "--accel", "tcg")

    def delete(self, name: str) -> None:
        self.api("DELETE", f"/1.0/instances/{name}?force=true")

    def state(self, name: str, body: dict) -> None:
        self.api("PUT", f"/1.0/instances/{name}/state", body)

    def start(self, name: str) -> None:
        self.state(name, {"action": "start"})

    def stop(self, name: str) -> None:
        self.state(name, {"action": "stop", "force": True})

    def stop_graceful(self, name: str) -> None:
        self.state(name, {"action": "stop", "timeout": 60})

    def list_raw(self) -> bytes:
        return self.request("GET", "/1.0/instances")

    def show(self, name: str) -> dict:
        return self.api("GET", f"/1.0/instances/{name}")

    def status(self, name: str) -> str:
        return self.show(name)["state"]["status"]

    def is_off(self, name: str) -> bool:
        return self.status(name) == "shutoff"

    def managed_save_file(self, name: str) -> Path:
        return self.state_dir / "save" / f"{name}.sav"

    def pid(self, name: str) -> int:
        return int(self.show(name)["state"]["pid"])

    def running(self) -> list[str]:
        return [i["spec"]["name"] for i in json.loads(self.list_raw())
                if i["state"]["status"] not in ("shutoff", "crashed")]

    def console_log(self, name: str) -> Path:
        return self.state_dir / "logs" / name / "console.log"

    def channel(self, name: str, drop: bytes = b"") -> Channel:
        logf = self.console_log(name)
        return Channel(WsStream(self.sock, name), lambda: logf.read_bytes()[-4000:], drop)


# ------------------------------------------------------------------ libvirt

def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")


class Libvirt:
    """One libvirtd: virsh, and the Python binding (`conn`) when importable.
    Domains boot the test guest directly (type='qemu', q35, TCG, no USB, no
    balloon, serial on a unix socket with a log file, pvpanic)."""

    def __init__(self, uri: str, root: Path, guest: dict, qemu: str, lv_dir: Path,
                 memory: int = 256, connect: bool = True):
        self.uri, self.root, self.guest, self.qemu = uri, root, guest, qemu
        self.lv_dir, self.memory = lv_dir, memory
        for d in ("xml", "con"):
            (root / d).mkdir(parents=True, exist_ok=True)
        self.conn = None
        if connect:
            self.open_api()

    def open_api(self) -> None:
        if binding() is not None:
            self.conn = binding().open(self.uri)

    def virsh(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(["virsh", "-q", "-c", self.uri, *args], check=check)

    def console_log(self, name: str) -> Path:
        return self.root / "con" / f"{name}.log"

    def console_sock(self, name: str) -> Path:
        return self.root / "con" / f"{name}.sock"

    def channel(self, name: str, drop: bytes = b"") -> Channel:
        logf = self.console_log(name)
        return Channel(SockStream(str(self.console_sock(name))), lambda: logf.read_bytes()[-4000:], drop)

    def xml(self, name: str, memory: int | None = None, disk: Path | None = None,
            network: str | None = None, uuid: bool = False, serial: Path | None = None,
            serial_log: Path | None = None) -> str:
        devs = ""
        if disk is not None:
            devs += (f"    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n"
                     f"      <source file='{esc(str(disk))}'/>\n      <target dev='vda' bus='virtio'/>\n"
                     "    </disk>\n")
        if network is not None:
            devs += (f"    <interface type='network'>\n      <source network='{esc(network)}'/>\n"
                     "      <model type='virtio'/>\n    </interface>\n")
        u = f"  <uuid>{uuidlib.uuid5(uuidlib.NAMESPACE_URL, name)}</uuid>\n" if uuid else ""
        g = self.guest
        return f"""<domain type='qemu'>
  <name>{name}</name>
{u}  <memory unit='MiB'>{memory or self.memory}</memory>
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
    <emulator>{esc(self.qemu)}</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
{devs}    <serial type='unix'>
      <source mode='bind' path='{esc(str(serial or self.console_sock(name)))}'/>
      <log file='{esc(str(serial_log or self.console_log(name)))}' append='on'/>
    </serial>
    <panic model='pvpanic'/>
  </devices>
</domain>
"""

    def xml_file(self, name: str, **kw) -> str:
        p = self.root / "xml" / f"{name}.xml"
        if kw or not p.exists():
            p.write_text(self.xml(name, **kw))
        return str(p)

    def define(self, name: str, **kw) -> None:
        self.virsh("define", self.xml_file(name, **kw))

    def define_api(self, name: str) -> None:
        self.conn.defineXML(self.xml(name))

    def start(self, name: str) -> None:
        self.virsh("start", name)

    def start_api(self, name: str) -> None:
        self.conn.lookupByName(name).create()

    def stop(self, name: str) -> None:
        self.virsh("destroy", name)

    def stop_api(self, name: str) -> None:
        self.conn.lookupByName(name).destroy()

    def shutdown_wait(self, name: str) -> None:
        """`virsh shutdown` returns at once: poll (5 ms) until shut off."""
        deadline = time.monotonic() + 60
        if self.conn is not None:
            dom = self.conn.lookupByName(name)
            dom.shutdown()
            done = lambda: not dom.isActive()  # noqa: E731
        else:
            self.virsh("shutdown", name)
            done = lambda: self.state(name) == "shut off"  # noqa: E731
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"libvirt: {name} did not shut down within 60 s")
            time.sleep(0.005)

    def state(self, name: str) -> str:
        return self.virsh("domstate", name).stdout.decode().strip()

    def is_off(self, name: str) -> bool:
        return self.state(name) == "shut off"

    def managed_save_file(self, name: str) -> Path:
        return self.lv_dir / "lib" / "qemu" / "save" / f"{name}.save"

    def pid(self, name: str) -> int:
        return int((self.lv_dir / "run" / "qemu" / f"{name}.pid").read_text().strip())

    def running(self) -> list[str]:
        return self.virsh("list", "--name").stdout.decode().split()

    def net_xml(self, name: str, bridge: str, prefix: str) -> str:
        """A NAT network like Ferrovirt's `--type nat --ipv4 PREFIX.1/24`:
        bridge, gateway address, DHCP on .2-.254 (dnsmasq, also DNS), NAT."""
        return (f"<network>\n  <name>{name}</name>\n  <forward mode='nat'/>\n"
                f"  <bridge name='{bridge}' stp='off' delay='0'/>\n"
                f"  <ip address='{prefix}.1' netmask='255.255.255.0'>\n"
                f"    <dhcp><range start='{prefix}.2' end='{prefix}.254'/></dhcp>\n  </ip>\n</network>\n")

    def net_xml_file(self, name: str, bridge: str, prefix: str) -> str:
        p = self.root / "xml" / f"net-{name}.xml"
        p.write_text(self.net_xml(name, bridge, prefix))
        return str(p)


# ------------------------------------------------------------------ the floor

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


def golden_template(path: Path) -> list[str]:
    """crates/qemu/tests/golden/direct_kernel_boot_tcg.argv as a template
    (see Floor.argv), with 1 vCPU."""
    g = [x for x in path.read_text().splitlines() if x]
    out = []
    for i, x in enumerate(g):
        prev = g[i - 1] if i else ""
        x = (x.replace("/run/fv/instances/vm1", "{DIR}").replace("/var/lib/fv/logs/vm1", "{DIR}")
             .replace("guest=vm1,", "guest={NAME},"))
        out.append({"-uuid": "{UUID}", "-smp": "1", "-m": "{MEM}M", "-kernel": "{KERNEL}",
                    "-initrd": "{INITRD}", "-append": "{CMDLINE}"}.get(prev, x))
    return with_console_log(out)


def with_console_log(template: list[str]) -> list[str]:
    """ferrovirtd logs the guest console itself (capped); the floor, a bare
    QEMU, has QEMU write it, as a hand-run QEMU would."""
    return [x + ",logfile={DIR}/console.log,logappend=on"
            if x.startswith("socket,id=serial0,") and "logfile=" not in x else x
            for x in template]


def template_of(argv: list[str], name: str, dirs: list[str]) -> list[str]:
    """The argv of a QEMU that Ferrovirt launched as a template: its instance
    directories, name and UUID made placeholders, so that the floor follows
    whatever Ferrovirt builds (the golden file may lag)."""
    out = []
    for i, x in enumerate(argv):
        if i and argv[i - 1] == "-uuid":
            out.append("{UUID}")
            continue
        for d in dirs:
            x = x.replace(d, "{DIR}")
        out.append(x.replace(f"guest={name},", "guest={NAME},"))
    return with_console_log(out)


class Floor:
    """Raw QEMU: spawn with -daemonize (returns once QEMU is initialized),
    connect QMP, negotiate, `cont`. Its files under ROOT/NAME; in network
    namespace `netns` when given."""

    def __init__(self, qemu: str, root: Path, guest: dict, template: list[str],
                 memory: int = 256, netns: str | None = None):
        self.qemu, self.root, self.guest, self.template = qemu, root, guest, template
        self.memory, self.netns = memory, netns
        self.vms: dict[str, tuple[int, Qmp]] = {}

    def dir(self, name: str) -> Path:
        return self.root / name

    def console_log(self, name: str) -> Path:
        return self.dir(name) / "console.log"

    def argv(self, name: str, memory: int | None = None) -> list[str]:
        sub = {"{DIR}": str(self.dir(name)), "{NAME}": name, "{MEM}": str(memory or self.memory),
               "{UUID}": str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, name)),
               "{KERNEL}": self.guest["kernel"], "{INITRD}": self.guest["initrd"],
               "{CMDLINE}": self.guest["cmdline"]}
        res = []
        for i, x in enumerate(self.template):
            for k, v in sub.items():
                x = x.replace(k, v)
            res.append(self.qemu if i == 0 else x)
        return res

    def spawn(self, name: str, memory: int | None = None, extra: list[str] = ()) -> tuple[int, Qmp]:
        d = self.dir(name)
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
        pid = int((d / "qemu.pid").read_text().strip())
        return pid, Qmp(str(d / "qmp.sock"))

    def start(self, name: str, memory: int | None = None) -> None:
        pid, q = self.spawn(name, memory)
        q.cmd("cont")
        self.vms[name] = (pid, q)

    def pid(self, name: str) -> int:
        return self.vms[name][0]

    def channel(self, name: str, drop: bytes = b"") -> Channel:
        return Channel(SockStream(str(self.dir(name) / "console.sock")), None, drop)

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

    def stop_all(self) -> None:
        for name in list(self.vms):
            try:
                self.stop(name)
            except Exception as e:  # noqa: BLE001
                log(f"floor: cannot stop {name}: {e}")
