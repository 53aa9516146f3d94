"""Ferrovirt vs libvirt on snapshots, save/restore, virtual networks and
throughput through TAP + bridge (docs/benchmarks-snapshots-networks.md).
`python3 -m fvbench.snapnet sink|source ...`: the host ends of the throughput
figures, run in a namespace."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import host
from .guest import UPTIME, dhcp, fsize, listen, ms, now, rate, received, wait_ready
from .host import Skip, log, quietly, run
from .report import SNAP_ROWS
from .stats import MIB, ForeignLoad, rotated
from .systems import Ferrovirt, Libvirt, libvirt_or_skip

STEM = "snapnet-latest"
SECTIONS = ("snap", "net", "tput")


OPTIONS = {"runs": (5, 1, "runs per snapshot / save figure"), "net-runs": (10, 2, "network create/delete runs"),
           "tput-runs": (3, 1, "runs per throughput figure"), "tput-mib": (16, 4, "MiB per throughput sample"),
           "sections": (",".join(SECTIONS), None, "a subset of snap,net,tput"),
           "no-lv-throughput": ("flag", None, "skip libvirt's throughput side")}


def firewall_backend(h: host.Host, install: bool) -> tuple[str, str]:
    """libvirt's nftables backend fixes DHCP checksums with a tc `csum`
    action (CONFIG_NET_ACT_CSUM); without it its networks cannot start, and
    the iptables backend is used. (backend, why networks are skipped or '')."""
    cfg = host.out(["sh", "-c", "zcat /proc/config.gz 2>/dev/null"])
    if re.search(r"^CONFIG_NET_ACT_CSUM=[ym]", cfg, re.M) or Path("/sys/module/act_csum").is_dir():
        return "nftables", ""
    if shutil.which("iptables"):
        return "iptables", ""
    if install and shutil.which("apt-get"):
        log("installing iptables (libvirt's firewall backend on this kernel, which lacks act_csum)")
        return "iptables", "" if host.apt(h, "install", "-y", "-qq", "--no-install-recommends",
                                          "iptables") else "apt-get install iptables failed"
    return "iptables", "the kernel has no act_csum (libvirt's nftables backend fails) and iptables is not installed"


def run_suite(a, h: host.Host, b: host.Binaries, qemu: str) -> dict:
    host.require(["qemu-img", "ip", "nft", "dnsmasq", "unshare"],
                 "apt-get install qemu-utils iproute2 nftables dnsmasq-base util-linux")
    a.sections = a.sections.split(",")
    if not set(a.sections) <= set(SECTIONS):
        raise SystemExit("fvbench: --sections: a comma-separated subset of snap,net,tput")
    meta: dict = {"libvirt_network_skipped": None, "libvirt_firewall_backend": None,
                  "vhost_net_present": os.path.exists("/dev/vhost-net")}
    links = h.links()
    fv_ns, lv_ns = h.netns("fv"), h.netns("lv")
    fvd = host.start_ferrovirtd(h, b, qemu, fv_ns, "fv")
    net_note = ""

    def start_lv() -> host.Libvirtd:
        nonlocal net_note
        drivers, etc, netroot = {}, {}, None
        if {"net", "tput"} & set(a.sections):
            try:
                netroot = host.lv_unpack(h, "libvirt-daemon-driver-network", a.install)
                fw, net_note = firewall_backend(h, a.install)
                meta["libvirt_firewall_backend"] = fw
                if net_note:  # its networks could not start: libvirtd without them
                    netroot = None
                else:
                    drivers, etc = {"network": netroot}, {"network.conf": f'firewall_backend = "{fw}"\n'}
            except Skip as e:
                net_note, netroot = str(e), None
        lvd = host.start_libvirtd(h, lv_ns, "lv", drivers=drivers, network=netroot, etc=etc)
        if netroot and run(["virsh", "-q", "-c", lvd.uri, "net-list", "--all"], check=False).returncode:
            net_note = "libvirtd did not load the network driver"
        return lvd
    lvd = libvirt_or_skip(h, a, meta, start_lv)
    if lvd and net_note:
        meta["libvirt_network_skipped"] = net_note
        log(f"libvirt networks SKIPPED: {net_note}")
    if h.links() != links:
        log(f"warning: host network interfaces changed meanwhile: [{links}] -> [{h.links()}]")
    fv = Ferrovirt(str(b.cli), fvd.sock, fvd.state, b.guest)
    lv = Libvirt(lvd.uri, h.tmp / "lvdata", b.guest, qemu, lvd.dir) if lvd else None
    bench = Bench(a, h.tmp, fv, lv, {"fv": fv_ns, "lv": lv_ns}, bool(net_note))
    meta["libvirt_python"] = lv is not None and lv.conn is not None
    foreign = ForeignLoad({os.getppid(), os.getpid(), fvd.pid} | ({lvd.pid} if lvd else set()), str(h.tmp))
    times = {}
    for section in a.sections:
        t0 = now()
        log(f"section {section}")
        {"snap": bench.snapshots, "net": bench.networks, "tput": bench.throughput}[section]()
        times[section] = round(now() - t0, 1)
    meta.update(section_seconds=times, foreign_activity=foreign.result(),
                loadavg_at_end=Path("/proc/loadavg").read_text().split()[:3])
    bench.extra["guest_commands_sent_again"] = bench.lost
    config = {"runs": a.runs, "net_runs": a.net_runs, "tput_runs": a.tput_runs, "tput_mib": a.tput_mib,
              "memory_mib": 256, "sections": ",".join(a.sections), "sides": bench.sides,
              "net_sides": bench.net_sides, "lv_throughput": not a.no_lv_throughput and "lv" in bench.net_sides}
    return {"meta": meta, "config": config, "samples": bench.samples, "sizes": bench.sizes,
            "checks": bench.checks, "errors": bench.errors, "extra": bench.extra, "notes": []}


class Bench:
    def __init__(self, a, tmp: Path, fv: Ferrovirt, lv: Libvirt | None, netns: dict, lv_no_net: bool):
        self.a, self.T, self.fv, self.lv, self.netns = a, tmp, fv, lv, netns
        self.samples: dict[str, list[float]] = {}
        self.sizes: dict[str, int] = {}
        self.errors: dict[str, str] = {}
        self.checks: dict[str, str] = {}
        self.lost: dict[str, int] = {}  # guest commands sent again (see Channel.run)
        self.extra: dict = {}
        self.sides = ["fv"] + (["lv"] if lv is not None else [])
        self.net_sides = ["fv"] + (["lv"] if lv is not None and not lv_no_net else [])

    def m(self, side: str) -> Ferrovirt | Libvirt:
        return self.fv if side == "fv" else self.lv

    def add(self, key: str, v: float) -> None:
        self.samples.setdefault(key, []).append(v)

    def attempt(self, key: str, fn, *args) -> bool:
        """Times fn; a failure is recorded (once per key), the run goes on."""
        try:
            t0 = now()
            fn(*args)
            self.add(key, ms(t0, now()))
            return True
        except Exception as e:  # noqa: BLE001
            if key not in self.errors:
                self.errors[key] = str(e).strip().replace("\n", " ")[:600]
                log(f"FAILED {key}: {self.errors[key]}")
            return False

    def boot(self, side: str, name: str) -> None:
        m = self.m(side)
        off = fsize(m.console_log(name))
        m.start(name)
        wait_ready(m.console_log(name), off)

    def halt(self, side: str, name: str) -> None:
        if not self.m(side).is_off(name):
            self.m(side).stop(name)

    def guest_check(self, side: str, name: str, cmd: str) -> str:
        ch = self.m(side).channel(name)
        try:
            ch.wait_ready(30)
            return ch.run(cmd, timeout=15, check=False, retries=2)[1]
        finally:
            self.lost[side] = self.lost.get(side, 0) + ch.lost
            ch.close()

    # ---------------------------------------------------------- snapshots
    def disk(self, name: str) -> Path:
        p = self.T / "disks" / name / "data.qcow2"
        p.parent.mkdir(parents=True)
        run(["qemu-img", "create", "-q", "-f", "qcow2", str(p), "256M"])
        return p

    def op(self, side: str, key: str, snap: str = "") -> bool:
        """Times the command report.SNAP_ROWS gives for `key` (the ferrovirt
        or virsh column), with VM, the snapshot (mN, dN, eN) and F filled in."""
        row = next(r for r in SNAP_ROWS if r[0] == key)
        vm = self.names[side][1 if key.startswith("snap_ext") else 0]
        fill = {"VM": vm, "F": str(self.T / "save" / f"{side}.state"), "mN": snap, "dN": snap, "eN": snap}
        words = [fill.get(w, w) for w in row[2 if side == "fv" else 3].strip("`").split()]
        return self.attempt(f"{key}.{side}", self.fv.cli_run if side == "fv" else self.lv.virsh, *words)

    def snapshots(self) -> None:
        self.names = {"fv": ("sn-int", "sn-ext"), "lv": ("lv-int", "lv-ext")}
        self.disks = {s: (self.disk(f"{s}-int"), self.disk(f"{s}-ext")) for s in self.sides}
        for s in self.sides:
            for vm, d in zip(self.names[s], self.disks[s]):
                self.fv.create(vm, disk=d) if s == "fv" else self.lv.define(vm, disk=d)
        (self.T / "save").mkdir(exist_ok=True)
        for i in range(self.a.runs):
            for side in rotated(self.sides, i):
                log(f"snapshots run {i + 1}/{self.a.runs}: {side}")
                for kind, block in (("int", self.block_int), ("ext", self.block_ext)):
                    vm = self.names[side][0 if kind == "int" else 1]
                    try:
                        block(side, i)
                    except Exception as e:  # noqa: BLE001
                        self.errors.setdefault(f"snapshot_block_{kind}.{side}", str(e)[:600])
                        log(f"snapshot block ({kind}) {side} failed: {e}")
                    finally:
                        quietly(self.halt, (side, vm))

    def block_int(self, side: str, i: int) -> None:
        vm, disk = self.names[side][0], self.disks[side][0]
        save = self.T / "save" / f"{side}.state"
        key = lambda k: f"{k}.{side}"  # noqa: E731
        first = i == 0
        self.boot(side, vm)
        if first:  # a file only this boot has, and one made after the snapshot
            self.guest_check(side, vm, "echo x > /tmp/snapnet-before")
        size0 = fsize(disk)
        ok = self.op(side, "snap_mem_create", f"m{i}")
        if ok and first:
            self.sizes[key("qcow2_growth_mem_snapshot")] = fsize(disk) - size0
            snaps = qcow2_snapshots(disk)
            if snaps:
                self.sizes[key("vm_state_size")] = int(snaps[-1].get("vm-state-size", 0))
            self.guest_check(side, vm, "echo y > /tmp/snapnet-after")
        if ok:
            if self.op(side, "snap_mem_revert", f"m{i}") and first:
                got = self.guest_check(side, vm, "ls /tmp/snapnet-before /tmp/snapnet-after")
                good = "snapnet-before" in got and "No such file" in got
                self.checks[key("revert_restores_memory")] = "ok" if good else f"unexpected: {got.strip()[:200]}"
            self.op(side, "snap_mem_delete", f"m{i}")
        # managed save, then start resumes it
        if self.op(side, "managedsave"):
            if first:
                self.sizes[key("managedsave_file")] = fsize(self.m(side).managed_save_file(vm))
            if self.op(side, "managedsave_start") and first:
                self.same_boot(side, vm, "managedsave_resumes_same_boot")
        # save to a file, restore from it (after a failed resume: boot again first)
        try:
            if self.m(side).is_off(vm):
                self.boot(side, vm)
        except Exception as e:  # noqa: BLE001
            log(f"cannot restart {vm}: {e}")
        if self.op(side, "save_file"):
            if first:
                self.sizes[key("save_file")] = fsize(save)
            if self.op(side, "restore_file") and first:
                self.same_boot(side, vm, "restore_resumes_same_boot")
        save.unlink(missing_ok=True)
        # disk-only internal snapshot of the stopped VM
        self.halt(side, vm)
        if self.op(side, "snap_disk_create", f"d{i}"):
            self.op(side, "snap_disk_delete", f"d{i}")

    def same_boot(self, side: str, vm: str, check: str) -> None:
        got = self.guest_check(side, vm, "cat /tmp/snapnet-before").strip()
        self.checks[f"{check}.{side}"] = "ok" if got == "x" else f"unexpected: {got[:200]}"

    def block_ext(self, side: str, i: int) -> None:
        vm, d = self.names[side][1], self.disks[side][1].parent
        self.boot(side, vm)
        before = set(os.listdir(d))
        if self.op(side, "snap_ext_create", f"e{i}"):
            if i == 0:
                self.extra[f"ext_overlay_files.{side}"] = sorted(set(os.listdir(d)) - before)
            self.op(side, "snap_ext_delete", f"e{i}")
            if i == 0:
                self.extra[f"ext_files_after_delete.{side}"] = sorted(os.listdir(d))
        self.halt(side, vm)

    # ---------------------------------------------------------- networks
    def networks(self) -> None:
        fv, lv = self.fv, self.lv

        def fv_cli(i: int) -> None:
            name = f"fvc{i}"
            self.attempt("net_create.fv_cli", fv.cli_run, "network", "create", name, "--type", "nat",
                         "--ipv4", f"10.123.{10 + i}.1/24")
            if i == 0:
                self.net_check("fv", f"fvbr-{name}", f"10.123.{10 + i}.1")
            self.attempt("net_delete.fv_cli", fv.cli_run, "network", "delete", name)

        def fv_api(i: int) -> None:
            name = f"fva{i}"
            self.attempt("net_create.fv_api", fv.api, "POST", "/1.0/networks",
                         {"name": name, "type": "nat", "ipv4": {"address": f"10.123.{100 + i}.1/24"}})
            self.attempt("net_delete.fv_api", fv.api, "DELETE", f"/1.0/networks/{name}")

        def lv_virsh(i: int) -> None:
            name = f"lvc{i}"
            f = lv.net_xml_file(name, f"lvbrc{i}", f"10.124.{10 + i}")
            t0 = now()
            if self.attempt("net_define.lv_virsh", lv.virsh, "net-define", f) and \
                    self.attempt("net_start.lv_virsh", lv.virsh, "net-start", name):
                self.add("net_create.lv_virsh", ms(t0, now()))
            if i == 0:
                self.net_check("lv", f"lvbrc{i}", f"10.124.{10 + i}.1")
            t0 = now()
            ok = self.attempt("net_destroy.lv_virsh", lv.virsh, "net-destroy", name)
            if self.attempt("net_undefine.lv_virsh", lv.virsh, "net-undefine", name) and ok:
                self.add("net_delete.lv_virsh", ms(t0, now()))

        def lv_api(i: int) -> None:
            xml = lv.net_xml(f"lva{i}", f"lvbra{i}", f"10.124.{100 + i}")
            try:
                t0 = now()
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
        for i in range(self.a.net_runs):
            log(f"networks run {i + 1}/{self.a.net_runs}")
            for side in rotated(self.net_sides, i):
                for fn in seqs[side]:
                    fn(i)

    def net_check(self, side: str, bridge: str, addr: str) -> None:
        """Once: the bridge has its address, dnsmasq runs in the namespace."""
        ns = self.netns[side]
        has_addr = addr in host.out(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", bridge])
        dnsmasq = any(host.comm(int(p)) == "dnsmasq" for p in host.out(["ip", "netns", "pids", ns]).split())
        self.checks[f"network_up.{side}"] = "ok" if has_addr and dnsmasq else \
            f"bridge address {has_addr}, dnsmasq {dnsmasq}"

    # ---------------------------------------------------------- throughput
    def throughput(self) -> None:
        """Both sides' guest pairs are set up first, then the runs alternate,
        so that a change in the host's load hits both alike."""
        sides = ["fv"] + (["lv"] if "lv" in self.net_sides and not self.a.no_lv_throughput else [])
        ctx: dict[str, dict] = {}
        try:
            for side in sides:
                ctx[side] = {"names": [f"{side}-tp-a", f"{side}-tp-b"], "chans": []}
                try:
                    self.tput_setup(side, ctx[side])
                except Exception as e:  # noqa: BLE001
                    self.errors.setdefault(f"throughput.{side}", str(e)[:600])
                    log(f"throughput set-up {side} failed: {e}")
                    ctx[side]["failed"] = True
            live = [s for s in sides if not ctx[s].get("failed")]
            for r in range(self.a.tput_runs):
                for side in rotated(live, r) if live else []:
                    log(f"{side}: throughput run {r + 1}/{self.a.tput_runs} ({self.a.tput_mib} MiB each)")
                    try:
                        self.tput_run(side, ctx[side])
                    except Exception as e:  # noqa: BLE001 - recorded; the next run goes on
                        k = f"throughput.{side}"
                        self.errors[k] = (self.errors[k] + " | " if k in self.errors else "") + \
                            f"run {r + 1}: {str(e)[:500]}"
                        log(f"throughput {side} run {r + 1} failed: {e}")
        finally:
            for side, c in ctx.items():
                self.lost[side] = self.lost.get(side, 0) + sum(ch.lost for ch in c.get("chans", []))
                self.tput_teardown(side, c)

    def tput_setup(self, side: str, c: dict) -> None:
        prefix = "10.123.250" if side == "fv" else "10.124.250"
        c["gw"] = gw = f"{prefix}.1"
        if side == "fv":
            self.fv.api("POST", "/1.0/networks", {"name": "tput", "type": "nat", "ipv4": {"address": f"{gw}/24"}})
            for n in c["names"]:
                self.fv.create(n, nics=[{"network": "tput", "model": "virtio"}])
        else:
            self.lv.virsh("net-define", self.lv.net_xml_file("tput", "lvbrtput", prefix))
            self.lv.virsh("net-start", "tput")
            for n in c["names"]:
                self.lv.define(n, network="tput")
        for n in c["names"]:
            self.boot(side, n)
        m = self.m(side)
        self.extra[f"qemu_nic_args.{side}"] = net_args(host.cmdline(m.pid(c["names"][0])))
        c["chans"] = [m.channel(n) for n in c["names"]]
        c["ips"] = []
        for n, ch in zip(c["names"], c["chans"]):
            ch.wait_ready(60)
            t0 = now()
            c["ips"].append(dhcp(ch, "eth0", n))
            self.add(f"dhcp_lease.{side}", ms(t0, now()))
            # a FIFO opened read-write: a stdin that never ends (see listen());
            # and the loopback, which the guest's init leaves down
            ch.run("mkfifo /tmp/never 2>/dev/null; ip link set lo up", timeout=15, retries=2)
        log(f"{side}: guests {c['ips'][0]} and {c['ips'][1]} on {prefix}.0/24")

    def helper(self, side: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns[side], sys.executable, "-m", "fvbench.snapnet", *args]

    def tput_run(self, side: str, c: dict) -> None:
        nbytes = self.a.tput_mib * MIB
        count = nbytes // 65536
        send = f"dd if=/dev/zero bs=64k count={count} 2>/dev/null | nc"
        a, b = c["chans"]
        gw, ips = c["gw"], c["ips"]
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        # the guest's own ceiling, without virtio-net: a pipe, then TCP on its loopback
        got = a.run(f"{UPTIME}; dd if=/dev/zero bs=64k count={count} 2>/dev/null | cat >/dev/null; {UPTIME}",
                    timeout=120)[1]
        self.add(f"tput_pipe.{side}", rate(nbytes, got))
        listen(a, 5004)
        got = a.run(f"{UPTIME}; {send} 127.0.0.1 5004; {UPTIME}", timeout=120)[1]
        received(a, 5004, nbytes)
        self.add(f"tput_loopback.{side}", rate(nbytes, got))
        # guest -> host: busybox nc in the guest, a Python sink on the host side
        sink = subprocess.Popen(self.helper(side, "sink", gw, "5001", "120"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
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
        res = json.loads(run(self.helper(side, "source", ips[0], "5002", "120", str(nbytes)),
                             timeout=150, env=env).stdout)
        received(a, 5002, nbytes)
        self.add(f"tput_h2g.{side}", nbytes / MIB / res["seconds"])
        # guest -> guest: nc -l in b, dd | nc in a, timed in a
        listen(b, 5003)
        got = a.run(f"{UPTIME}; {send} {ips[1]} 5003; {UPTIME}", timeout=120)[1]
        received(b, 5003, nbytes)
        self.add(f"tput_g2g.{side}", rate(nbytes, got))

    def tput_teardown(self, side: str, c: dict) -> None:
        for ch in c.get("chans", []):
            ch.close()
        for n in c["names"]:
            quietly(self.halt, (side, n))
        if side == "fv":
            for n in c["names"]:
                quietly(self.fv.delete, (n,))
            quietly(self.fv.api, ("DELETE", "/1.0/networks/tput"))
        else:
            self.lv.virsh("net-destroy", "tput", check=False)


def net_args(argv: list[str]) -> list[str]:
    """The NIC-related options of a QEMU argv (for the record)."""
    res = []
    for i, x in enumerate(argv[:-1]):
        if x in ("-netdev", "-device") and ("net" in argv[i + 1] or "tap" in argv[i + 1]):
            res += [x, argv[i + 1]]
    return res


def qcow2_snapshots(path: Path) -> list[dict]:
    p = run(["qemu-img", "info", "-U", "--output=json", str(path)], check=False, timeout=60)
    return json.loads(p.stdout).get("snapshots", []) if p.returncode == 0 else []


# ------------------------------------------------------------------ TCP ends

def sink(host_: str, port: int, timeout: float) -> dict:
    """Accepts one connection, reads to EOF, closes."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host_, port))
    ls.listen(1)
    print("listening", flush=True)
    ls.settimeout(timeout)
    c, peer = ls.accept()
    c.settimeout(timeout)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MIB)
    t_accept, n, t_first, buf = now(), 0, None, bytearray(MIB)
    while (k := c.recv_into(buf)) != 0:
        t_first = t_first or now()
        n += k
    t_end = now()
    c.close()
    ls.close()
    return {"bytes": n, "seconds_from_accept": t_end - t_accept,
            "seconds_from_first_byte": t_end - (t_first or t_end), "peer": peer[0]}


def source(host_: str, port: int, nbytes: int, timeout: float) -> dict:
    """Sends `nbytes` zeros, half-closes, waits for the peer to close."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = socket.create_connection((host_, port), timeout)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    t0, chunk, left = now(), bytes(MIB), nbytes
    while left > 0:
        c.sendall(chunk[:min(left, MIB)])
        left -= min(left, MIB)
    c.shutdown(socket.SHUT_WR)
    while c.recv(65536):
        pass
    t1 = now()
    c.close()
    return {"bytes": nbytes, "seconds": t1 - t0}


if __name__ == "__main__":  # sink HOST PORT TIMEOUT, or source HOST PORT TIMEOUT BYTES
    mode, addr, port, secs, *nbytes = sys.argv[1:]
    print(json.dumps(sink(addr, int(port), float(secs)) if mode == "sink" else
                     source(addr, int(port), int(nbytes[0]), float(secs))), flush=True)
