"""The systems measured: Ferrovirt (its REST API on the unix socket, and its
CLI), libvirt (virsh, and the Python binding when importable) and the
floor (floor.py). The suites drive the three alike: start, stop, boot
(start, then the guest's ready marker), console_log, channel."""
from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
import uuid as uuidlib
from pathlib import Path

from . import host
from .guest import Channel, CliStream, SockStream, fsize, ms, now, wait_ready
from .host import Skip, log, run


def binding():
    """The libvirt Python binding (python3-libvirt), or None: no "libvirt API" rows."""
    try:
        import libvirt  # type: ignore
    except Exception:  # noqa: BLE001 - depends on the host
        return None
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def libvirt_or_skip(h: host.Host, a, meta: dict, start):
    """start()'s libvirtd(s), libvirt installed first when missing; or None,
    meta["libvirt_skipped"] saying why (--no-libvirt, a Skip)."""
    meta.update(libvirt_version=None, libvirt_skipped=None)
    try:
        if a.no_libvirt:
            raise Skip("--no-libvirt")
        host.ensure_libvirt(h, a.install)
        res = start()
        meta["libvirt_version"] = host.out(["libvirtd", "--version"]).split()[-1]
        return res
    except Skip as e:
        meta["libvirt_skipped"] = str(e)
        log(f"libvirt SKIPPED: {e}")
        return None


class System:
    """What Ferrovirt, libvirt and the floor share."""

    def boot(self, name: str, timeout: float = 120.0) -> tuple[float, float]:
        """Starts `name` and waits for the guest's ready marker on its serial
        log: (ms the start took, ms from the start request until ready)."""
        off = fsize(self.console_log(name))
        t0 = now()
        self.start(name)
        took = ms(t0, now())
        return took, wait_ready(self.console_log(name), off, t0, timeout)

    def halt(self, name: str) -> None:
        if not self.is_off(name):
            self.stop(name)


# ------------------------------------------------------------------ Ferrovirt

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 900.0):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Ferrovirt(System):
    """A private ferrovirtd in network namespace `ns` (no default network),
    its files under TMP/TAG: REST, one connection per call (as curl would),
    and the CLI (`ferrovirt --socket SOCK ...`)."""

    def __init__(self, h: host.Host, b: host.Binaries, ns: str, tag: str, extra: list[str] = (), memory: int = 256):
        d = h.tmp / tag
        self.cli, self.sock, self.state_dir, self.run_dir = str(b.cli), str(d / "api.sock"), d / "state", d / "run"
        self.guest, self.memory = b.guest, memory
        self.state_dir.mkdir(parents=True)
        self.run_dir.mkdir()
        p = h.spawn([str(b.ferrovirtd), "--socket", self.sock, "--state-dir", str(self.state_dir), "--runtime-dir",
                     str(self.run_dir), "--qemu", b.qemu, "--no-default-network", *extra], d / "ferrovirtd.log", ns)
        self.daemon_pid = p.pid
        for _ in range(300):  # until GET /1.0 answers 200
            try:
                self.request("GET", "/1.0", want=(200,), timeout=5)
                return
            except (OSError, RuntimeError, http.client.HTTPException):
                pass
            if p.poll() is not None:
                raise RuntimeError(f"ferrovirtd {tag} exited: {(d / 'ferrovirtd.log').read_text()[-500:]}")
            time.sleep(0.1)
        raise RuntimeError(f"ferrovirtd {tag} did not answer on {self.sock} within 30 s")

    def request(self, method: str, path: str, body: dict | None = None, want=(200, 201, 202, 204),
                timeout: float = 900) -> bytes:
        c = UnixHTTPConnection(self.sock, timeout)
        c.request(method, path, body=None if body is None else json.dumps(body).encode(),
                  headers={} if body is None else {"Content-Type": "application/json"})
        r = c.getresponse()
        raw = r.read()
        c.close()
        if r.status not in want:
            raise RuntimeError(f"{method} {path} -> {r.status}: {raw[:400]!r}")
        return raw

    def api(self, method: str, path: str, body: dict | None = None):
        raw = self.request(method, path, body)
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

    def create(self, name: str, memory: int | None = None, disk: Path | None = None,
               network: str | None = None) -> None:
        s = {"name": name, "cpus": 1, "memory": memory or self.memory, "machine": "q35",
             "accel": "tcg", "boot": {k: self.guest[k] for k in ("kernel", "initrd", "cmdline")}}
        if disk is not None:
            s["disks"] = [{"path": str(disk), "format": "qcow2", "bus": "virtio"}]
        if network is not None:
            s["nics"] = [{"network": network, "model": "virtio"}]
        self.api("POST", "/1.0/instances", s)

    define = create  # as libvirt's

    def create_cli(self, name: str) -> None:
        g = self.guest
        self.cli_run("create", name, "--kernel", g["kernel"], "--initrd", g["initrd"], "--cmdline",
                     g["cmdline"], "--memory", str(self.memory), "--cpus", "1", "--machine", "q35",
                     "--accel", "tcg")

    def delete(self, name: str) -> None:
        self.api("DELETE", f"/1.0/instances/{name}?force=true")

    def state(self, name: str, action: str, **how) -> None:
        self.api("PUT", f"/1.0/instances/{name}/state", {"action": action, **how})

    def start(self, name: str) -> None:
        self.state(name, "start")

    def stop(self, name: str) -> None:
        self.state(name, "stop", force=True)

    def stop_graceful(self, name: str) -> None:
        self.state(name, "stop", timeout=60)

    def show(self, name: str) -> dict:
        return self.api("GET", f"/1.0/instances/{name}")

    def is_off(self, name: str) -> bool:
        return self.show(name)["state"]["status"] == "shutoff"

    def pid(self, name: str) -> int:
        return int(self.show(name)["state"]["pid"])

    def managed_save_file(self, name: str) -> Path:
        return self.state_dir / "save" / f"{name}.sav"

    def console_log(self, name: str) -> Path:
        return self.state_dir / "logs" / name / "console.log"

    def channel(self, name: str, drop: bytes = b"") -> Channel:
        logf = self.console_log(name)
        return Channel(CliStream([self.cli, "--socket", self.sock, "console", name]),
                       lambda: logf.read_bytes()[-4000:], drop)

    def pool_create(self, name: str, path: Path) -> None:
        self.cli_run("pool", "create", name, "--type", "dir", "--path", str(path), "--build")

    def vol_create(self, pool: str, name: str, size: int) -> None:
        self.api("POST", f"/1.0/pools/{pool}/volumes", {"name": name, "size": size, "format": "qcow2"})

    def vol_delete(self, pool: str, name: str) -> None:
        self.api("DELETE", f"/1.0/pools/{pool}/volumes/{name}")

    def net_create(self, name: str, prefix: str) -> None:
        self.api("POST", "/1.0/networks", {"name": name, "type": "nat", "ipv4": {"address": f"{prefix}.1/24"}})

    def net_delete(self, name: str) -> None:
        self.api("DELETE", f"/1.0/networks/{name}")


# ------------------------------------------------------------------ libvirt

def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")


def vol_xml(name: str, size: int, backing: Path | None = None) -> str:
    b = f"<backingStore><path>{backing}</path><format type='qcow2'/></backingStore>" if backing else ""
    return (f"<volume><name>{name}</name><capacity unit='bytes'>{size}</capacity>"
            f"<target><format type='qcow2'/></target>{b}</volume>")


class Libvirt(System):
    """One libvirtd: virsh, and the Python binding (`conn`) when importable.
    Domains boot the test guest directly (type='qemu', q35, TCG, no USB, no
    balloon, serial on a unix socket with a log file, pvpanic)."""

    def __init__(self, h: host.Host, b: host.Binaries, d: host.Libvirtd, memory: int = 256, connect: bool = True):
        self.uri, self.root, self.guest, self.qemu = d.uri, h.tmp / f"{d.dir.name}data", b.guest, b.qemu
        self.lv_dir, self.memory = d.dir, memory
        (self.root / "con").mkdir(parents=True, exist_ok=True)
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

    def channel(self, name: str, drop: bytes = b"") -> Channel:
        logf = self.console_log(name)
        return Channel(SockStream(str(self.root / "con" / f"{name}.sock")), lambda: logf.read_bytes()[-4000:], drop)

    def xml(self, name: str, memory: int | None = None, disk: Path | None = None,
            network: str | None = None, uuid: bool = False) -> str:
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
      <source mode='bind' path='{esc(str(self.root / "con" / f"{name}.sock"))}'/>
      <log file='{esc(str(self.console_log(name)))}' append='on'/>
    </serial>
    <panic model='pvpanic'/>
  </devices>
</domain>
"""

    def file(self, name: str, text: str) -> str:
        """`text` in ROOT/xml/NAME.xml, for virsh."""
        p = self.root / "xml" / f"{name}.xml"
        p.parent.mkdir(exist_ok=True)
        p.write_text(text)
        return str(p)

    def define(self, name: str, **kw) -> None:
        self.virsh("define", self.file(name, self.xml(name, **kw)))

    def start(self, name: str) -> None:
        self.virsh("start", name)

    def stop(self, name: str) -> None:
        self.virsh("destroy", name)

    def shutdown_wait(self, name: str) -> None:
        """`virsh shutdown` returns at once: poll (5 ms) until shut off."""
        deadline = time.monotonic() + 60
        if self.conn is not None:
            dom = self.conn.lookupByName(name)
            dom.shutdown()
            done = lambda: not dom.isActive()  # noqa: E731
        else:
            self.virsh("shutdown", name)
            done = lambda: self.is_off(name)  # noqa: E731
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"libvirt: {name} did not shut down within 60 s")
            time.sleep(0.005)

    def is_off(self, name: str) -> bool:
        return self.virsh("domstate", name).stdout.decode().strip() == "shut off"

    def managed_save_file(self, name: str) -> Path:
        return self.lv_dir / "lib" / "qemu" / "save" / f"{name}.save"

    def pid(self, name: str) -> int:
        return int((self.lv_dir / "run" / "qemu" / f"{name}.pid").read_text().strip())

    def pool_create(self, name: str, path: Path) -> None:
        self.virsh("pool-define-as", name, "dir", "--target", str(path))
        self.virsh("pool-build", name)
        self.virsh("pool-start", name)

    def vol_create(self, pool: str, name: str, size: int) -> None:
        if self.conn is not None:
            self.conn.storagePoolLookupByName(pool).createXML(vol_xml(name, size), 0)
        else:
            self.virsh("vol-create-as", pool, name, str(size), "--format", "qcow2")

    def vol_delete(self, pool: str, name: str) -> None:
        if self.conn is not None:
            self.conn.storagePoolLookupByName(pool).storageVolLookupByName(name).delete(0)
        else:
            self.virsh("vol-delete", name, "--pool", pool)

    def define_on(self, name: str, pool: str, vol: str) -> None:
        """A domain (defined, not started) with one disk on a pool volume."""
        xml = (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>128</memory>"
               "<vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>"
               "<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
               f"<source pool='{pool}' volume='{vol}'/><target dev='vda' bus='virtio'/></disk>"
               "</devices></domain>")
        if self.conn is not None:
            self.conn.defineXML(xml)
        else:
            self.virsh("define", self.file(name, xml))

    def net_xml(self, name: str, bridge: str, prefix: str) -> str:
        """A NAT network like Ferrovirt's `--type nat --ipv4 PREFIX.1/24`:
        bridge, gateway address, DHCP on .2-.254 (dnsmasq, also DNS), NAT."""
        return (f"<network>\n  <name>{name}</name>\n  <forward mode='nat'/>\n"
                f"  <bridge name='{bridge}' stp='off' delay='0'/>\n"
                f"  <ip address='{prefix}.1' netmask='255.255.255.0'>\n"
                f"    <dhcp><range start='{prefix}.2' end='{prefix}.254'/></dhcp>\n  </ip>\n</network>\n")

    def net_create(self, name: str, prefix: str, bridge: str = "") -> None:
        self.virsh("net-define", self.file(f"net-{name}", self.net_xml(name, bridge or f"lvbr{name}", prefix)))
        self.virsh("net-start", name)

    def net_delete(self, name: str) -> None:
        self.virsh("net-destroy", name, check=False)
