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
from .guest import MIB, UPTIME, dhcp, fsize, listen, ms, now, rate, received
from .host import Skip, log, quietly, run
from .stats import ForeignLoad, Samples, rotated
from .systems import Ferrovirt, Libvirt, libvirt_or_skip

# figure, label, the ferrovirt command, the virsh command (Bench.op times these, VM, mN... filled in)
SNAP_ROWS = [
    ("snap_mem_create", "Internal snapshot **with memory**, running VM", "`snapshot create VM mN`",
     "`snapshot-create-as VM mN`"),
    ("snap_mem_revert", "Revert to it, running VM (memory restored)", "`snapshot revert VM mN`",
     "`snapshot-revert VM mN`"),
    ("snap_mem_delete", "Delete that snapshot (running VM)", "`snapshot delete VM mN`", "`snapshot-delete VM mN`"),
    ("snap_disk_create", "Internal disk-only snapshot, **stopped** VM", "`snapshot create VM dN`",
     "`snapshot-create-as VM dN`"),
    ("snap_disk_delete", "Delete it (stopped VM)", "`snapshot delete VM dN`", "`snapshot-delete VM dN`"),
    ("snap_ext_create", "**External** disk-only snapshot, running VM",
     "`snapshot create VM eN --external --no-memory`", "`snapshot-create-as VM eN --disk-only --atomic`"),
    ("snap_ext_delete", "Delete it (merge the overlay back, running VM)", "`snapshot delete VM eN`",
     "`snapshot-delete VM eN`"),
    ("managedsave", "Managed save (memory to the daemon's file, QEMU stops)", "`save VM`", "`managedsave VM`"),
    ("managedsave_start", "… start, resuming the managed save", "`start VM`", "`start VM`"),
    ("save_file", "Save to a file", "`save VM --file F`", "`save VM F`"),
    ("restore_file", "Restore from that file", "`restore F`", "`restore F`"),
]
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


def run_suite(a, h: host.Host, b: host.Binaries) -> dict:
    host.require(["qemu-img", "ip", "nft", "dnsmasq", "unshare"],
                 "apt-get install qemu-utils iproute2 nftables dnsmasq-base util-linux")
    a.sections = a.sections.split(",")
    if not set(a.sections) <= set(SECTIONS):
        raise SystemExit("fvbench: --sections: a comma-separated subset of snap,net,tput")
    meta: dict = {"libvirt_network_skipped": None, "libvirt_firewall_backend": None,
                  "vhost_net_present": os.path.exists("/dev/vhost-net")}
    links = h.links()
    netns = {"fv": h.netns("fv"), "lv": h.netns("lv")}
    fv = Ferrovirt(h, b, netns["fv"], "fv")
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
        lvd = host.start_libvirtd(h, netns["lv"], "lv", drivers=drivers, network=netroot, etc=etc)
        if netroot and run(["virsh", "-q", "-c", lvd.uri, "net-list", "--all"], check=False).returncode:
            net_note = "libvirtd did not load the network driver"
        return lvd
    lvd = libvirt_or_skip(h, a, meta, start_lv)
    if lvd and net_note:
        meta["libvirt_network_skipped"] = net_note
        log(f"libvirt networks SKIPPED: {net_note}")
    if h.links() != links:
        log(f"warning: host network interfaces changed meanwhile: [{links}] -> [{h.links()}]")
    lv = Libvirt(h, b, lvd) if lvd else None
    bench = Bench(a, h.tmp, fv, lv, netns, bool(net_note))
    meta["libvirt_python"] = lv is not None and lv.conn is not None
    foreign = ForeignLoad(h.tmp)
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
              "memory_mib": 256, "sections": ",".join(a.sections), "sides": list(bench.sys),
              "net_sides": bench.net_sides, "lv_throughput": not a.no_lv_throughput and "lv" in bench.net_sides}
    return {"meta": meta, "config": config, "samples": bench.S, "sizes": bench.sizes,
            "checks": bench.checks, "errors": bench.S.errors, "extra": bench.extra, "notes": []}


class Bench:
    def __init__(self, a, tmp: Path, fv: Ferrovirt, lv: Libvirt | None, netns: dict, lv_no_net: bool):
        self.a, self.T, self.fv, self.lv, self.netns = a, tmp, fv, lv, netns
        self.sys = {"fv": fv, **({"lv": lv} if lv is not None else {})}
        self.net_sides = ["fv"] + (["lv"] if lv is not None and not lv_no_net else [])
        self.S = Samples()
        self.sizes: dict[str, int] = {}
        self.checks: dict[str, str] = {}
        self.lost: dict[str, int] = {}  # guest commands sent again (see Channel.run)
        self.extra: dict = {}

    def guest_check(self, side: str, name: str, cmd: str) -> str:
        ch = self.sys[side].channel(name)
        try:
            ch.wait_ready(30)
            return ch.run(cmd, timeout=15, check=False, retries=2)[1]
        finally:
            self.lost[side] = self.lost.get(side, 0) + ch.lost
            ch.close()

    # ---------------------------------------------------------- snapshots
    def op(self, side: str, key: str, snap: str = "") -> bool:
        """Times the command SNAP_ROWS gives for `key` (the ferrovirt
        or virsh column), with VM, the snapshot (mN, dN, eN) and F filled in."""
        row = next(r for r in SNAP_ROWS if r[0] == key)
        vm = self.names[side][1 if key.startswith("snap_ext") else 0]
        fill = {"VM": vm, "F": str(self.T / "save" / f"{side}.state"), "mN": snap, "dN": snap, "eN": snap}
        words = [fill.get(w, w) for w in row[2 if side == "fv" else 3].strip("`").split()]
        return self.S.attempt(f"{key}.{side}", self.fv.cli_run if side == "fv" else self.lv.virsh, *words)

    def snapshots(self) -> None:
        self.names = {"fv": ("sn-int", "sn-ext"), "lv": ("lv-int", "lv-ext")}
        self.disks = {}
        for s, m in self.sys.items():
            self.disks[s] = []
            for vm in self.names[s]:
                p = self.T / "disks" / f"{s}-{vm[-3:]}" / "data.qcow2"
                p.parent.mkdir(parents=True)
                run(["qemu-img", "create", "-q", "-f", "qcow2", str(p), "256M"])
                self.disks[s].append(p)
                m.define(vm, disk=p)
        (self.T / "save").mkdir(exist_ok=True)
        for i in range(self.a.runs):
            for side in rotated(list(self.sys), i):
                log(f"snapshots run {i + 1}/{self.a.runs}: {side}")
                for kind, block in (("int", self.block_int), ("ext", self.block_ext)):
                    vm = self.names[side][0 if kind == "int" else 1]
                    try:
                        block(side, i)
                    except Exception as e:  # noqa: BLE001
                        self.S.errors.setdefault(f"snapshot_block_{kind}.{side}", str(e)[:600])
                        log(f"snapshot block ({kind}) {side} failed: {e}")
                    finally:
                        quietly(self.sys[side].halt, vm)

    def block_int(self, side: str, i: int) -> None:
        m, vm, disk = self.sys[side], self.names[side][0], self.disks[side][0]
        save = self.T / "save" / f"{side}.state"
        key = lambda k: f"{k}.{side}"  # noqa: E731
        first = i == 0
        m.boot(vm)
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
                self.sizes[key("managedsave_file")] = fsize(m.managed_save_file(vm))
            if self.op(side, "managedsave_start") and first:
                self.same_boot(side, vm, "managedsave_resumes_same_boot")
        # save to a file, restore from it (after a failed resume: boot again first)
        try:
            if m.is_off(vm):
                m.boot(vm)
        except Exception as e:  # noqa: BLE001
            log(f"cannot restart {vm}: {e}")
        if self.op(side, "save_file"):
            if first:
                self.sizes[key("save_file")] = fsize(save)
            if self.op(side, "restore_file") and first:
                self.same_boot(side, vm, "restore_resumes_same_boot")
        save.unlink(missing_ok=True)
        # disk-only internal snapshot of the stopped VM
        m.halt(vm)
        if self.op(side, "snap_disk_create", f"d{i}"):
            self.op(side, "snap_disk_delete", f"d{i}")

    def same_boot(self, side: str, vm: str, check: str) -> None:
        got = self.guest_check(side, vm, "cat /tmp/snapnet-before").strip()
        self.checks[f"{check}.{side}"] = "ok" if got == "x" else f"unexpected: {got[:200]}"

    def block_ext(self, side: str, i: int) -> None:
        vm, d = self.names[side][1], self.disks[side][1].parent
        self.sys[side].boot(vm)
        before = set(os.listdir(d))
        if self.op(side, "snap_ext_create", f"e{i}"):
            if i == 0:
                self.extra[f"ext_overlay_files.{side}"] = sorted(set(os.listdir(d)) - before)
            self.op(side, "snap_ext_delete", f"e{i}")
            if i == 0:
                self.extra[f"ext_files_after_delete.{side}"] = sorted(os.listdir(d))
        self.sys[side].halt(vm)

    # ---------------------------------------------------------- networks
    def networks(self) -> None:
        fv, lv, S = self.fv, self.lv, self.S

        def fv_step(i: int) -> None:  # the CLI, then the API
            S.attempt("net_create.fv_cli", fv.cli_run, "network", "create", f"fvc{i}", "--type", "nat",
                      "--ipv4", f"10.123.{10 + i}.1/24")
            if i == 0:
                self.net_check("fv", f"fvbr-fvc{i}", f"10.123.{10 + i}.1")
            S.attempt("net_delete.fv_cli", fv.cli_run, "network", "delete", f"fvc{i}")
            S.attempt("net_create.fv_api", fv.net_create, f"fva{i}", f"10.123.{100 + i}")
            S.attempt("net_delete.fv_api", fv.net_delete, f"fva{i}")

        def lv_step(i: int) -> None:  # virsh (define + start, destroy + undefine), then the API
            name = f"lvc{i}"
            f = lv.file(f"net-{name}", lv.net_xml(name, f"lvbrc{i}", f"10.124.{10 + i}"))
            t0 = now()
            if S.attempt("net_define.lv_virsh", lv.virsh, "net-define", f) and \
                    S.attempt("net_start.lv_virsh", lv.virsh, "net-start", name):
                S.add("net_create.lv_virsh", ms(t0, now()))
            if i == 0:
                self.net_check("lv", f"lvbrc{i}", f"10.124.{10 + i}.1")
            t0 = now()
            ok = S.attempt("net_destroy.lv_virsh", lv.virsh, "net-destroy", name)
            if S.attempt("net_undefine.lv_virsh", lv.virsh, "net-undefine", name) and ok:
                S.add("net_delete.lv_virsh", ms(t0, now()))
            if lv.conn is None:
                return
            xml = lv.net_xml(f"lva{i}", f"lvbra{i}", f"10.124.{100 + i}")
            try:
                t0 = now()
                n = lv.conn.networkDefineXML(xml)
                n.create()
                S.add("net_create.lv_api", ms(t0, now()))
                t0 = now()
                n.destroy()
                n.undefine()
                S.add("net_delete.lv_api", ms(t0, now()))
            except Exception as e:  # noqa: BLE001
                S.errors.setdefault("net_lv_api", str(e)[:600])
        S.rounds(self.a.net_runs, "networks", [{"fv": fv_step, "lv": lv_step}[s] for s in self.net_sides])

    def net_check(self, side: str, bridge: str, addr: str) -> None:
        """Once: the bridge has its address, dnsmasq runs in the namespace."""
        ns = self.netns[side]
        has_addr = addr in host.out(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", bridge])
        dnsmasq = any(host.proc(p, "comm").strip() == "dnsmasq" for p in host.out(["ip", "netns", "pids", ns]).split())
        self.checks[f"network_up.{side}"] = "ok" if has_addr and dnsmasq else \
            f"bridge address {has_addr}, dnsmasq {dnsmasq}"

    # ---------------------------------------------------------- throughput
    def throughput(self) -> None:
        """Both sides' guest pairs are set up first, then the runs alternate,
        so that a change in the host's load hits both alike."""
        sides = ["fv"] + (["lv"] if "lv" in self.net_sides and not self.a.no_lv_throughput else [])
        ctx: dict[str, dict] = {}
        live = []  # the sides set up
        try:
            for side in sides:
                ctx[side] = {"names": [f"{side}-tp-a", f"{side}-tp-b"], "chans": []}
                try:
                    self.tput_setup(side, ctx[side])
                    live.append(side)
                except Exception as e:  # noqa: BLE001
                    self.S.errors.setdefault(f"throughput.{side}", str(e)[:600])
                    log(f"throughput set-up {side} failed: {e}")
            for r in range(self.a.tput_runs if live else 0):
                for side in rotated(live, r):
                    log(f"{side}: throughput run {r + 1}/{self.a.tput_runs} ({self.a.tput_mib} MiB each)")
                    try:
                        self.tput_run(side, ctx[side])
                    except Exception as e:  # noqa: BLE001 - recorded; the next run goes on
                        k, errors = f"throughput.{side}", self.S.errors
                        errors[k] = (errors[k] + " | " if k in errors else "") + f"run {r + 1}: {str(e)[:500]}"
                        log(f"throughput {side} run {r + 1} failed: {e}")
        finally:
            for side, c in ctx.items():
                self.lost[side] = self.lost.get(side, 0) + sum(ch.lost for ch in c["chans"])
                for ch in c["chans"]:
                    ch.close()
                for n in c["names"]:
                    quietly(self.sys[side].halt, n)
                    if side == "fv":
                        quietly(self.fv.delete, n)
                quietly(self.sys[side].net_delete, "tput")

    def tput_setup(self, side: str, c: dict) -> None:
        m, prefix = self.sys[side], "10.123.250" if side == "fv" else "10.124.250"
        c["gw"] = f"{prefix}.1"
        m.net_create("tput", prefix)
        for n in c["names"]:
            m.define(n, network="tput")
        for n in c["names"]:
            m.boot(n)
        self.extra[f"qemu_nic_args.{side}"] = net_args(host.cmdline(m.pid(c["names"][0])))
        c["chans"] = [m.channel(n) for n in c["names"]]
        c["ips"] = []
        for n, ch in zip(c["names"], c["chans"]):
            ch.wait_ready(60)
            t0 = now()
            c["ips"].append(dhcp(ch, "eth0", n))
            self.S.add(f"dhcp_lease.{side}", ms(t0, now()))
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
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        helper = ["ip", "netns", "exec", self.netns[side], sys.executable, "-m", "fvbench.snapnet"]
        # the guest's own ceiling, without virtio-net: a pipe, then TCP on its loopback
        got = a.run(f"{UPTIME}; dd if=/dev/zero bs=64k count={count} 2>/dev/null | cat >/dev/null; {UPTIME}",
                    timeout=120)[1]
        self.S.add(f"tput_pipe.{side}", rate(nbytes, got))
        listen(a, 5004)
        got = a.run(f"{UPTIME}; {send} 127.0.0.1 5004; {UPTIME}", timeout=120)[1]
        received(a, 5004, nbytes)
        self.S.add(f"tput_loopback.{side}", rate(nbytes, got))
        # guest -> host: busybox nc in the guest, a Python sink on the host side
        sink = subprocess.Popen([*helper, "sink", gw, "5001", "120"],
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
        self.S.add(f"tput_g2h.{side}", nbytes / MIB / res["seconds_from_accept"])
        # host -> guest: a Python source on the host side, busybox nc -l in the guest
        listen(a, 5002)
        res = json.loads(run([*helper, "source", ips[0], "5002", "120", str(nbytes)], timeout=150, env=env).stdout)
        received(a, 5002, nbytes)
        self.S.add(f"tput_h2g.{side}", nbytes / MIB / res["seconds"])
        # guest -> guest: nc -l in b, dd | nc in a, timed in a
        listen(b, 5003)
        got = a.run(f"{UPTIME}; {send} {ips[1]} 5003; {UPTIME}", timeout=120)[1]
        received(b, 5003, nbytes)
        self.S.add(f"tput_g2g.{side}", rate(nbytes, got))


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
    with socket.create_server((host_, port)) as ls:
        print("listening", flush=True)
        ls.settimeout(timeout)
        c, _peer = ls.accept()
    with c:
        c.settimeout(timeout)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MIB)
        t_accept, n, buf = now(), 0, bytearray(MIB)
        while (k := c.recv_into(buf)) != 0:
            n += k
        return {"bytes": n, "seconds_from_accept": now() - t_accept}


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
