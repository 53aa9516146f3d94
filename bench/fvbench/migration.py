"""Live migration, Ferrovirt vs libvirt vs QEMU by hand, between two
"hosts": network namespaces A and B joined by a veth pair, a ferrovirtd and
a libvirtd in each. Each boots the same guest on A, starts the same
memory-dirtying workload, migrates it live to B and records total_ms,
downtime_ms (as each reports it) and pause_ms (the guest's heartbeat on the
serial logs: A's last beat -> B's first); see docs/benchmarks-migration.md."""
from __future__ import annotations

import base64
import calendar
import contextlib
import json
import re
import socket
import subprocess
import threading
import time
import traceback
import uuid as uuidlib
from pathlib import Path

from . import host
from .guest import Channel, Heartbeat, ms, now
from .host import log, quietly
from .stats import ForeignLoad, loadavg, rotated
from .floor import Floor
from .systems import Ferrovirt, Libvirt, libvirt_or_skip

STEM = "migration-latest"
IP_A, IP_B = "10.98.0.1", "10.98.0.2"
# QMP max-bandwidth meaning "no limit": what ferrovirtd sets; libvirt sets
# i64::MAX rounded down to whole MiB. QEMU's own default is 128 MiB/s.
UNLIMITED_BANDWIDTH = (1 << 63) - 1
SHORT = {"floor": "floor", "ferrovirt": "fv", "libvirt": "lv", "floor_capped": "floorc"}
# The guest side: a loop rewriting 64 MiB of a tmpfs, and a heartbeat byte on the serial port every 10 ms.
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


OPTIONS = {"runs": (3, 1, "migrations per size and manager"), "sizes": ("256,1024", "256", "guest sizes in MiB"),
           "warmup": (3.0, None, "seconds of workload before migrating"),
           "no-capped-floor": ("flag", True, "skip the floor that keeps QEMU's default 128 MiB/s cap")}


class Watcher:
    """(arrival time, line) of B's event stream, read in a thread: GET
    /1.0/events of a ferrovirtd (ndjson, HTTP/1.0) or `virsh event --loop`."""

    def __init__(self, system):
        self.lines: list[tuple[float, str]] = []
        if isinstance(system, Ferrovirt):
            self.sock, self.proc = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), None
            self.sock.connect(system.sock)
            self.sock.sendall(b"GET /1.0/events HTTP/1.0\r\nHost: localhost\r\n\r\n")
            stream, settle = self.sock.makefile("rb"), 0.05
        else:
            self.proc = subprocess.Popen(["virsh", "-q", "-c", system.uri, "event", "--loop", "--event", "lifecycle"],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            stream, settle = self.proc.stdout, 0.2
        self.t = threading.Thread(target=self.loop, args=(stream,), daemon=True)
        self.t.start()
        time.sleep(settle)  # let the subscription start before anything happens

    def loop(self, lines) -> None:
        try:
            for raw in lines:
                self.lines.append((now(), raw.decode(errors="replace").strip()))
        except (OSError, ValueError):
            pass

    def finish(self) -> None:
        try:
            if self.proc is not None:
                self.proc.terminate()
                self.proc.wait(timeout=5)
            else:
                self.sock.shutdown(socket.SHUT_RDWR)
                self.sock.close()
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.t.join(timeout=5)


# ------------------------------------------------------------------ the sides

class Side:
    """One manager's pair: `a` on host A, where the guest boots, `b` on host B."""

    def channel(self, name: str, host_: str) -> Channel:
        return getattr(self, host_).channel(name, b".")

    def logs(self, name: str) -> list[Path]:
        return [self.a.console_log(name), self.b.console_log(name)]

    def check_source_gone(self, name: str) -> None:
        pass


class FloorSide(Side):
    """QEMU by hand with the golden argv, source in A, destination in B
    (`-incoming`): QMP `migrate`, poll `query-migrate` (5 ms) until done and
    the destination's status (1 ms), `cont` it, `quit` the source. No
    bandwidth limit, as Ferrovirt; `capped` keeps QEMU's 128 MiB/s."""

    def __init__(self, b: host.Binaries, tmp: Path, ns: dict, capped: bool = False):
        self.a, self.b = (Floor(b, tmp / "floor" / k, netns=ns[k]) for k in ("a", "b"))
        self.capped = capped
        self.key = "floor_capped" if capped else "floor"
        self.label = "floor, QEMU's default 128 MiB/s cap" if capped else "floor"

    def boot(self, name: str, mem: int) -> None:
        self.a.start(name, mem)

    def migrate(self, name: str, mem: int) -> dict:
        pid_a, qa = self.a.vms[name]
        t0 = now()
        pid_b, qb = self.b.vms[name] = self.b.spawn(name, mem, ["-incoming", f"tcp:{IP_B}:4444"])
        t_dest = now()
        if not self.capped:
            qa.cmd("migrate-set-parameters", {"max-bandwidth": UNLIMITED_BANDWIDTH})
        qa.cmd("migrate", {"uri": f"tcp:{IP_B}:4444"})
        polls = peak_dirty = 0
        while True:
            m = qa.cmd("query-migrate")
            polls += 1
            peak_dirty = max(peak_dirty, (m.get("ram") or {}).get("dirty-pages-rate", 0))
            if m.get("status") == "completed":
                break
            if m.get("status") in ("failed", "cancelled"):
                raise RuntimeError(f"floor migration {m['status']}: {m.get('error-desc')}")
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
        host.wait_gone(pid_a)
        t1 = now()
        qa.close()
        del self.a.vms[name]
        return {"total_ms": ms(t0, t1), "downtime_ms": m.get("downtime"), "_resumed_at": t_cont, "_t0": t0,
                "dest_spawn_ms": ms(t0, t_dest), "migrate_ms": ms(t_dest, t_done),
                "cont_after_completed_ms": ms(t_done, t_cont), "source_gone_after_cont_ms": ms(t_cont, t1),
                "qemu_total_time_ms": m.get("total-time"), "setup_time_ms": m.get("setup-time"),
                "ram": m.get("ram"), "query_migrate_polls": polls, "peak_dirty_pages_rate": peak_dirty}

    def destroy(self, name: str) -> None:
        for f in (self.a, self.b):
            if name in f.vms:
                f.stop(name)


class FerrovirtSide(Side):
    """POST /1.0/instances/NAME/migrate on A until its operation succeeded.
    B trusts A once, before the first run (join token, offline migration)."""

    key, label = "ferrovirt", "Ferrovirt"

    def __init__(self, fa: Ferrovirt, fb: Ferrovirt):
        self.a, self.b = fa, fb
        self.target: dict | None = None
        self.trust_ms: float | None = None
        self.argv_seen: tuple[int, list[str]] | None = None
        self.src_pid = None

    def trust(self) -> None:
        tok = self.b.api("POST", "/1.0/host/tokens", {"name": "bench-a"})["token"]
        t = json.loads(base64.urlsafe_b64decode(tok.strip() + "=" * (-len(tok.strip()) % 4)))
        target = {"address": t["addresses"][0], "fingerprint": t["fingerprint"]}
        self.a.create("trust-probe")
        t0 = now()
        self.a.op("POST", "/1.0/instances/trust-probe/migrate", {"target": {**target, "token": tok}, "offline": True})
        self.trust_ms = ms(t0, now())
        self.b.delete("trust-probe")
        self.target = target

    def boot(self, name: str, mem: int) -> None:
        if self.target is None:
            self.trust()
        self.a.create(name, memory=mem)
        self.a.start(name)
        pid = self.a.show(name).get("state", {}).get("pid")
        if self.argv_seen is None and pid:
            self.argv_seen = (mem, host.cmdline(pid))

    def migrate(self, name: str, mem: int) -> dict:
        self.src_pid = self.a.show(name).get("state", {}).get("pid")
        stages: list[tuple[float, str]] = []
        ev = Watcher(self.b)
        clock_offset = time.time() - now()  # wall clock - perf_counter
        t0 = now()
        op = self.a.api("POST", f"/1.0/instances/{name}/migrate", {"target": self.target})
        t_posted = now()
        stop = threading.Event()

        def watch() -> None:
            """Every 20 ms: A's operation stage and B's instance state, as transitions."""
            last = last_b = None
            while not stop.wait(0.02):
                try:
                    o = self.a.api("GET", f"/1.0/operations/{op['id']}")
                except Exception:  # noqa: BLE001
                    continue
                st = ((o.get("progress") or {}).get("stage") or "").split(":")[0]
                if st != last:
                    stages.append((ms(t0, now()), st))
                    last = st
                try:
                    i = self.b.show(name)["state"]
                    sb = f"B: {i['status']}, {i['reason']}"
                except Exception:  # noqa: BLE001
                    sb = "B: absent"
                if sb != last_b:
                    stages.append((ms(t0, now()), sb))
                    last_b = sb
                if o["status"] != "running":
                    return
        w = threading.Thread(target=watch, daemon=True)
        w.start()
        try:
            op = self.a.wait(op, "Ferrovirt migration")
        finally:
            t1 = now()
            stop.set()
            w.join(timeout=5)
            ev.finish()
        started = None
        for t_arr, line in ev.lines:
            if f'"instance":"{name}"' in line and ('"kind":"resumed"' in line or '"kind":"started"' in line):
                # the event's own timestamp (when ferrovirtd saw QEMU resume), in this clock
                m = re.search(r'"timestamp":"(\d+-\d+-\d+T\d+:\d+:\d+)(\.\d+)?Z"', line)
                started = t_arr if not m else calendar.timegm(
                    time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) + float(m.group(2) or 0) - clock_offset
                break
        return {"total_ms": ms(t0, t1), "downtime_ms": (op.get("result") or {}).get("downtime_ms"),
                "_resumed_at": started, "_t0": t0, "post_ms": ms(t0, t_posted), "stages": stages}

    def check_source_gone(self, name: str) -> None:
        self.a.request("GET", f"/1.0/instances/{name}", want=(404,))  # A no longer has it
        if self.src_pid and host.alive(self.src_pid):
            raise RuntimeError("A's QEMU still runs after the operation succeeded")

    def destroy(self, name: str) -> None:
        for f in (self.b, self.a):
            with contextlib.suppress(Exception):
                f.delete(name)


class LibvirtSide(Side):
    """`virsh migrate --live --p2p --xml B.xml` from A (the source libvirtd
    drives; --xml moves the serial socket and log to B's paths); downtime:
    `virsh domjobinfo --completed` on B."""

    key, label = "libvirt", "libvirt"

    def __init__(self, la: Libvirt, lb: Libvirt):
        self.a, self.b = la, lb

    def boot(self, name: str, mem: int) -> None:
        self.a.virsh("create", self.a.file(name, self.a.xml(name, memory=mem, uuid=True)))

    def migrate(self, name: str, mem: int) -> dict:
        dest = "qemu+unix:///system?socket=" + self.b.uri.split("socket=", 1)[1]
        xml = self.b.file(name, self.b.xml(name, memory=mem, uuid=True))  # B's serial socket and log
        ev = Watcher(self.b)
        t0 = now()
        try:
            self.a.virsh("migrate", "--live", "--p2p", "--xml", xml, name, dest, "--migrateuri", f"tcp:{IP_B}")
            t1 = now()
        finally:
            time.sleep(0.1)
            ev.finish()
        resumed = next((t for t, ln in ev.lines if f"'{name}'" in ln and "Resumed" in ln), None)
        info = {}
        for line in self.b.virsh("domjobinfo", "--completed", name, check=False).stdout.decode(
                errors="replace").splitlines():
            k, _, v = line.partition(":")
            if v:
                info[k.strip()] = v.strip()
        dt = info.get("Total downtime", "").split()
        return {"total_ms": ms(t0, t1), "downtime_ms": int(dt[0]) if dt else None,
                "_resumed_at": resumed, "_t0": t0, "domjobinfo": info}

    def check_source_gone(self, name: str) -> None:
        if name in self.a.virsh("list", "--all", "--name").stdout.decode().split():
            raise RuntimeError(f"libvirt A still lists {name} after the migration")

    def destroy(self, name: str) -> None:
        for lv in (self.b, self.a):
            lv.virsh("destroy", name, check=False)


# ------------------------------------------------------------------ one run

def one(side, name: str, mem: int, warmup: float) -> dict:
    rec: dict = {"side": side.key, "memory_mib": mem, "name": name}
    t_boot = now()
    side.boot(name, mem)
    ch = side.channel(name, "a")
    try:
        ch.wait_ready(120)
        rec["boot_to_channel_ms"] = ms(t_boot, now())
        c0, up0 = ch.run(PROBE)[1].split()
        hb = Heartbeat(side.logs(name))
        ch.run(WORKLOAD)
        t_wl = now()
        time.sleep(warmup)
        t0 = now()
        try:
            res = side.migrate(name, mem)
        finally:
            t1 = now()
            deadline = time.monotonic() + 30  # until a few beats came from B (or 30 s)
            while time.monotonic() < deadline and (1 not in hb.first or hb.beats_after(t1) < 5):
                time.sleep(0.05)
            hb.finish()
    finally:
        ch.close()
    resumed_at = res.pop("_resumed_at", None)
    t0 = res.pop("_t0", t0)  # the side's own start (after its event watcher is up)
    rec.update(res)
    base, during = hb.gaps(t_wl + 1.0, t0), hb.gaps(t0, t1)
    if 0 not in hb.lastg or 1 not in hb.first:
        raise RuntimeError(f"no heartbeat from the guest on B after the migration ({len(hb.times)} beats seen)")
    # the switch-over as the guest lives it: A's last beat -> B's first
    rec.update(a_last_beat_ms=ms(t0, hb.lastg[0]), b_first_beat_ms=ms(t0, hb.first[1]),
               pause_ms=ms(hb.lastg[0], hb.first[1]), max_gap_ms=during[0][0] if during else None,
               max_gap_at_ms=during[0][1] if during else None, next_gaps_ms=[g for g, _ in during[1:4]],
               baseline_max_gap_ms=base[0][0] if base else None, beats_after_end=hb.beats_after(t1),
               resumed_ms=ms(t0, resumed_at) if resumed_at else None)
    # the pause split: A's last beat -> B resumed (floor: `cont` returns;
    # Ferrovirt: its `resumed` event's stamp; libvirt: virsh's `Resumed`
    # event arrives), then resumed -> B's first beat
    if resumed_at:
        rec.update(stop_to_resume_ms=ms(hb.lastg[0], resumed_at), resume_to_first_beat_ms=ms(resumed_at, hb.first[1]))
    side.check_source_gone(name)
    chb = side.channel(name, "b")
    try:
        c1, up1, loops = chb.run(STOP_WORKLOAD, timeout=60)[1].split()
    finally:
        chb.close()
    if int(c1) < int(c0) or float(up1) < float(up0):
        raise RuntimeError(f"the guest restarted: counter {c0}->{c1}, uptime {up0}->{up1}")
    rec.update(guest_uptime_s=[float(up0), float(up1)], workload_loops=int(loops), loadavg_after=loadavg())
    return rec


VARYING = {"-name", "-uuid", "-chardev", "-D", "-pidfile", "-kernel", "-initrd", "-append"}


def argv_key(argv: list[str]) -> list[str]:
    res, i = [], 1
    while i < len(argv):
        x = argv[i]
        if x.startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            res.append(x if x in VARYING else f"{x} {argv[i + 1]}")
            i += 2
        else:
            res.append(x)
            i += 1
    return res


def argv_diff(fv: list[str], floor: list[str]) -> list[str]:
    """What differs between Ferrovirt's and the floor's QEMU argv, paths
    and names aside (empty: the same options and values)."""
    a, b = argv_key(fv), argv_key(floor)
    return [f"ferrovirt only: {x}" for x in a if x not in b] + [f"floor only: {x}" for x in b if x not in a]


def run_suite(a, h: host.Host, b: host.Binaries) -> dict:
    host.require(["ip", "unshare"], "apt-get install iproute2 util-linux")
    ns = {"a": h.netns("mig-a"), "b": h.netns("mig-b")}
    h.veth(ns["a"], IP_A, ns["b"], IP_B, "fvmig")
    log(f"namespaces {ns['a']} ({IP_A}) and {ns['b']} ({IP_B})")
    fvs = FerrovirtSide(*(Ferrovirt(h, b, ns[k], f"fv{k}", ["--listen", f"{ip}:8443"])
                          for k, ip in (("a", IP_A), ("b", IP_B))))
    meta: dict = {}
    # each libvirtd a host UUID of its own (libvirt refuses to migrate to "the same host"), and no
    # cgroups: both would create machine/qemu-1-NAME for the same domain on the one real host
    lvd = libvirt_or_skip(h, a, meta, lambda: {k: host.start_libvirtd(
        h, ns[k], f"lv{k}", conf=f'host_uuid = "{uuidlib.uuid4()}"\n', qemu_conf="cgroup_controllers = [ ]\n")
        for k in ("a", "b")}) or {}
    sides = [FloorSide(b, h.tmp, ns), fvs]
    if lvd:
        sides.append(LibvirtSide(Libvirt(h, b, lvd["a"], connect=False), Libvirt(h, b, lvd["b"], connect=False)))
    if not a.no_capped_floor:
        sides.append(FloorSide(b, h.tmp, ns, capped=True))
    sizes = [int(s) for s in a.sizes.split(",") if s]
    foreign = ForeignLoad(h.tmp)
    res: dict = {"meta": meta, "samples": [], "errors": [], "sides": [s.key for s in sides], "sizes": sizes,
                 "runs": a.runs, "warmup_s": a.warmup, "workload": WORKLOAD}
    t_start = time.time()
    log(f"measuring: sizes={a.sizes} MiB, runs={a.runs}, warm-up {a.warmup} s")
    for mem in sizes:
        for i in range(a.runs):
            for side in rotated(sides, i + sizes.index(mem)):
                name = f"m{mem}-{SHORT[side.key]}-{i + 1}"
                log(f"{side.label}: {mem} MiB, run {i + 1}/{a.runs} ({name})")
                try:
                    rec = one(side, name, mem, a.warmup)
                    rec["run"] = i + 1
                    res["samples"].append(rec)
                    log(f"  total {rec['total_ms']:.0f} ms, QEMU downtime {rec['downtime_ms']} ms, guest pause "
                        f"{rec['pause_ms']} ms (baseline gap {rec['baseline_max_gap_ms']} ms)")
                except Exception as e:  # noqa: BLE001
                    log(f"  FAILED: {e}")
                    res["errors"].append({"side": side.key, "memory_mib": mem, "run": i + 1,
                                          "error": str(e)[-1500:], "trace": traceback.format_exc()[-3000:]})
                finally:
                    quietly(side.destroy, name)
    res["ferrovirt_trust_ms"] = fvs.trust_ms
    if fvs.argv_seen:
        mem, fv_argv = fvs.argv_seen
        fl_argv = sides[0].a.argv("X", mem)
        res.update(ferrovirt_argv=fv_argv, floor_argv=fl_argv, floor_argv_differences=argv_diff(fv_argv, fl_argv))
    res["foreign_load"] = foreign.result()
    meta.update(loadavg_at_end=loadavg(), duration_s=round(time.time() - t_start, 1),
                uptime_at_end=host.out(["uptime"]))
    return res


def failed(raw: dict) -> str:
    """Why the run counts as failed ('' if it does not)."""
    n = len(raw.get("errors", []))
    return f"{n} migration(s) failed (see the report)" if n else ""
