#!/usr/bin/env python3
"""Ferrovirt vs libvirt on storage: linked clones, full clones, volume create
and list. The measurements behind bench/storage.sh, and its report.

storage.sh installs what is missing, makes the network namespaces (and a
loop-mounted XFS for the reflink figures), starts a private ferrovirtd and a
private libvirtd with its storage driver, then calls

    storage.py measure --out RAW.json ...   every timed operation, raw samples
    storage.py report RAW.json OUT.md       the tables (also printed)

Only the standard library is needed; Debian's python3-libvirt gives the
"libvirt API" rows when importable.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import struct
import subprocess
import sys
import time
from pathlib import Path

try:  # optional: API-level libvirt figures
    import libvirt  # type: ignore

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
except Exception:  # pragma: no cover - depends on the host
    libvirt = None

# Shared with the other benchmarks (bench/lib/fvbench.py).
from fvbench import ForeignLoad, UnixHTTPConnection  # noqa: E402

now = time.perf_counter
MIB = 1 << 20
GIB = 1 << 30


def log(msg: str) -> None:
    print(f"[storage {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(argv: list[str], check: bool = True, env: dict | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): "
                           f"{(p.stderr or p.stdout).decode(errors='replace').strip()[-600:]}")
    return p


def timed_run(argv: list[str], env: dict | None = None) -> tuple[float, str]:
    """Milliseconds from fork to exit, and stdout."""
    t0 = now()
    p = run(argv, env=env)
    return (now() - t0) * 1000.0, p.stdout.decode(errors="replace")


def median(xs: list[float]) -> float | None:
    s = sorted(x for x in xs if x is not None)
    n = len(s)
    if n == 0:
        return None
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


# --------------------------------------------------------------------------
# files: allocation, holes, shared extents, page cache

SEEK_DATA, SEEK_HOLE = 3, 4
FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_SHARED = 0x2000


def allocated(path: Path) -> int:
    """Bytes the file takes on disk (what du counts)."""
    return path.stat().st_blocks * 512


def data_bytes(path: Path) -> int:
    """Bytes in data segments (SEEK_DATA/SEEK_HOLE), i.e. not holes."""
    total = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            try:
                start = os.lseek(fd, off, SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, SEEK_HOLE)
            total += end - start
            off = end
    finally:
        os.close(fd)
    return total


def shared_bytes(path: Path) -> int | None:
    """Bytes in extents the filesystem marks shared (reflinked), by FIEMAP;
    None where FIEMAP is not supported."""
    total = 0
    start = 0
    count = 256
    with open(path, "rb") as f:
        while True:
            hdr = struct.pack("=QQIIII", start, (1 << 64) - 1 - start, FIEMAP_FLAG_SYNC, 0, count, 0)
            buf = bytearray(hdr + bytes(56 * count))
            try:
                fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, buf, True)
            except OSError:
                return None
            mapped = struct.unpack_from("=I", buf, 20)[0]
            if mapped == 0:
                return total
            last = False
            for i in range(mapped):
                logical, _phys, length, _r1, _r2, flags = struct.unpack_from("=QQQQQI", buf, 32 + 56 * i)
                if flags & FIEMAP_EXTENT_SHARED:
                    total += length
                start = logical + length
                last = bool(flags & FIEMAP_EXTENT_LAST)
            if last:
                return total


def evict(path: Path) -> None:
    """Writes the file out and drops it from the page cache, so that the
    next read of it comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def fsync_ms(path: Path) -> float:
    t0 = now()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return (now() - t0) * 1000.0


def same_content(a: Path, b: Path) -> bool:
    return run(["cmp", "-s", str(a), str(b)], check=False).returncode == 0


def make_sparse_source(path: Path, size: int, chunk: int = 4 * MIB) -> None:
    """`size` bytes: `chunk` of random data, then a hole of `chunk`, and so on
    (half data, half holes)."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        for off in range(0, size, 2 * chunk):
            os.pwrite(fd, os.urandom(min(chunk, size - off)), off)
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def make_qcow2_base(path: Path, size: int) -> None:
    """A sparse qcow2 of `size` with 12 MiB of data written by qemu-io: 4 MiB
    at the start, in the middle and at the end."""
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), str(size)])
    run(["qemu-io", "-f", "qcow2",
         "-c", "write -P 0x5a 0 4M",
         "-c", f"write -P 0xa5 {size // 2} 4M",
         "-c", f"write -P 0x3c {size - 4 * MIB} 4M", str(path)])


def sparse_copy(src: Path, dst: Path) -> None:
    run(["cp", "--sparse=always", "--reflink=never", str(src), str(dst)])


# --------------------------------------------------------------------------
# Ferrovirt


class Ferrovirt:
    def __init__(self, cli: str, sock: str):
        self.cli, self.sock = cli, sock
        self.env = dict(os.environ, FERROVIRT_SOCKET=sock)

    def api(self, method: str, path: str, body: dict | None = None,
            want=(200, 201, 202)) -> dict | list | None:
        """One request on a new connection, as a client would make it."""
        c = UnixHTTPConnection(self.sock, timeout=600.0)
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
            o = self.api("GET", f"/1.0/operations/{o['id']}/wait?timeout=600")
        if o["status"] != "success":
            raise RuntimeError(f"{method} {path}: operation {o['status']}: {o.get('error')}")
        return o

    def cli_ms(self, *args: str) -> tuple[float, str]:
        return timed_run([self.cli, *args], env=self.env)

    def pool_create(self, name: str, path: Path) -> None:
        run([self.cli, "pool", "create", name, "--type", "dir", "--path", str(path), "--build"],
            env=self.env)

    def vol_delete(self, pool: str, name: str) -> None:
        self.api("DELETE", f"/1.0/pools/{pool}/volumes/{name}", want=(200, 204))

    def vol_create(self, pool: str, name: str, size: int) -> None:
        self.api("POST", f"/1.0/pools/{pool}/volumes",
                 {"name": name, "size": size, "format": "qcow2"})

    def vol_list(self, pool: str) -> list:
        return self.api("GET", f"/1.0/pools/{pool}/volumes")


# --------------------------------------------------------------------------
# libvirt


def vol_xml(name: str, size: int, backing: Path | None = None) -> str:
    b = ""
    if backing is not None:
        b = (f"<backingStore><path>{backing}</path><format type='qcow2'/></backingStore>")
    return (f"<volume><name>{name}</name><capacity unit='bytes'>{size}</capacity>"
            f"<target><format type='qcow2'/></target>{b}</volume>")


class Libvirt:
    def __init__(self, uri: str):
        self.uri = uri
        self.conn = libvirt.open(uri) if libvirt is not None else None

    def virsh(self, *args: str) -> subprocess.CompletedProcess:
        return run(["virsh", "-q", "-c", self.uri, *args])

    def virsh_ms(self, *args: str) -> tuple[float, str]:
        return timed_run(["virsh", "-q", "-c", self.uri, *args])

    def pool_create(self, name: str, path: Path) -> None:
        self.virsh("pool-define-as", name, "dir", "--target", str(path))
        self.virsh("pool-build", name)
        self.virsh("pool-start", name)

    def refresh(self, pool: str) -> None:
        self.virsh("pool-refresh", pool)

    def vol_delete(self, pool: str, name: str) -> None:
        if self.conn is not None:
            self.conn.storagePoolLookupByName(pool).storageVolLookupByName(name).delete(0)
        else:
            self.virsh("vol-delete", name, "--pool", pool)

    def define(self, name: str, pool: str, vol: str) -> None:
        """A domain (defined, not started) with one disk on a pool volume."""
        xml = (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>128</memory>"
               "<vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>"
               "<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
               f"<source pool='{pool}' volume='{vol}'/><target dev='vda' bus='virtio'/></disk>"
               "</devices></domain>")
        if self.conn is not None:
            self.conn.defineXML(xml)
        else:
            with open(f"/tmp/storage-define-{os.getpid()}.xml", "w") as f:
                f.write(xml)
            try:
                self.virsh("define", f.name)
            finally:
                os.unlink(f.name)

    def vol_create(self, pool: str, name: str, size: int) -> None:
        if self.conn is not None:
            self.conn.storagePoolLookupByName(pool).createXML(vol_xml(name, size), 0)
        else:
            self.virsh("vol-create-as", pool, name, str(size), "--format", "qcow2")


# --------------------------------------------------------------------------
# the measurements


class Bench:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.tmp = Path(a.tmp)
        self.fv = Ferrovirt(a.fv_cli, a.fv_socket)
        self.lv = Libvirt(a.lv_uri) if a.lv_uri else None
        self.out: dict = {"meta": json.loads(a.meta) if a.meta else {}}
        self.out["meta"].update({
            "runs": a.runs, "clone_mib": a.clone_mib, "counts": a.counts,
            "linked_gib": a.linked_gib, "sections": a.sections, "instances": a.instances,
            "python_libvirt": libvirt is not None and self.lv is not None,
            "kernel": platform.release(), "cpus": os.cpu_count(),
            "tmp_filesystem": fstype(self.tmp),
            "xfs_dir": a.xfs or None,
        })
        self.save_path = Path(a.out)

    def setup(self) -> None:
        """The pools the linked and full-clone sections use, side by side on
        the same filesystem (the temporary directory's)."""
        self.fv.pool_create("bench", self.tmp / "fv-pool")
        if self.lv:
            self.lv.pool_create("bench", self.tmp / "lv-pool")

    def save(self) -> None:
        self.save_path.write_text(json.dumps(self.out, indent=1))

    def order(self, tools: list, r: int) -> list:
        """The tools of one run, rotated by run so that none always goes
        first (or always runs right after another's writeback)."""
        k = r % len(tools)
        return tools[k:] + tools[:k]

    # ---------------------------------------------------------- linked
    def linked(self) -> None:
        a, fv, lv = self.a, self.fv, self.lv
        res = self.out["linked"] = {"sizes": {}}
        fvdir, lvdir = self.tmp / "fv-pool", self.tmp / "lv-pool"
        for gib in a.linked_gib:
            size = gib * GIB
            base = f"base-{gib}g"
            master = self.tmp / f"{base}.qcow2"
            make_qcow2_base(master, size)
            sparse_copy(master, fvdir / base)
            if lv:
                sparse_copy(master, lvdir / base)
                lv.refresh("bench")
            entry = res["sizes"][str(gib)] = {
                "base_virtual_bytes": size, "base_allocated_bytes": allocated(master),
                "base_data_bytes": data_bytes(master), "samples": {}, "clone_allocated_bytes": {},
            }
            tools = ["fv_cli", "fv_api"]
            if lv:
                tools.append("virsh")
                if lv.conn is not None:
                    tools.append("lv_api")
            for t in tools:
                entry["samples"][t] = []
            for r in range(a.runs):
                for t in self.order(tools, r):
                    name = f"lc-{t.replace('_', '-')}-{r}"
                    if t == "fv_cli":
                        ms, out = fv.cli_ms("volume", "clone", f"bench/{base}", name, "--linked")
                        if "(linked)" not in out:
                            raise RuntimeError(f"ferrovirt volume clone --linked said: {out!r}")
                        path = fvdir / name
                    elif t == "fv_api":
                        t0 = now()
                        fv.op("POST", f"/1.0/pools/bench/volumes/{base}/clone",
                              {"name": name, "linked": True})
                        ms = (now() - t0) * 1000.0
                        path = fvdir / name
                    elif t == "virsh":
                        ms, _ = lv.virsh_ms("vol-create-as", "bench", name, f"{gib}G",
                                            "--format", "qcow2", "--backing-vol", base,
                                            "--backing-vol-format", "qcow2")
                        path = lvdir / name
                    else:
                        pool = lv.conn.storagePoolLookupByName("bench")
                        xml = vol_xml(name, size, lvdir / base)
                        t0 = now()
                        pool.createXML(xml, 0)
                        ms = (now() - t0) * 1000.0
                        path = lvdir / name
                    entry["samples"][t].append(round(ms, 3))
                    if r == 0:
                        check_overlay(path, base, size)
                        entry["clone_allocated_bytes"][t] = allocated(path)
                    if t.startswith("fv"):
                        fv.vol_delete("bench", name)
                    else:
                        lv.vol_delete("bench", name)
            log(f"linked clone of a {gib} GiB base: " + ", ".join(
                f"{t} {median(v):.1f} ms" for t, v in entry["samples"].items()))
            # the bases go, so that the next size's pool is the same
            fv.vol_delete("bench", base)
            if lv:
                lv.vol_delete("bench", base)
            master.unlink()
            self.save()

    # ---------------------------------------------------------- full
    def full(self) -> None:
        a = self.a
        res = self.out["full"] = {"filesystems": {}}
        size = a.clone_mib * MIB
        master = self.tmp / "src-master.raw"
        make_sparse_source(master, size)
        res["source"] = {"virtual_bytes": size, "allocated_bytes": allocated(master),
                         "data_bytes": data_bytes(master),
                         "layout": "4 MiB of random data, then a 4 MiB hole, repeated"}
        fss = [("tmp", self.tmp, "bench")]
        if a.xfs:
            fss.append(("xfs", Path(a.xfs), "benchx"))
        for label, root, pool in fss:
            res["filesystems"][label] = self.full_on(label, root, pool, master, size)
            self.save()
        master.unlink()

    def full_on(self, label: str, root: Path, pool: str, master: Path, size: int) -> dict:
        a, fv, lv = self.a, self.fv, self.lv
        fvdir, lvdir, cpdir = root / "fv-pool", root / "lv-pool", root / "cp"
        if label != "tmp":
            fv.pool_create(pool, fvdir)
            if lv:
                lv.pool_create(pool, lvdir)
        cpdir.mkdir(exist_ok=True)
        srcs = {"fv": fvdir / "src", "lv": lvdir / "src", "cp": cpdir / "src"}
        for k, p in srcs.items():
            if k == "lv" and not lv:
                continue
            sparse_copy(master, p)
        if lv:
            lv.refresh(pool)
        is_xfs = label == "xfs"
        tools = ["fv_cli", "fv_api", "cp_sparse"]
        if is_xfs:
            tools.append("cp_sparse_noreflink")
        if lv:
            tools.append("virsh")
            if is_xfs:
                tools.append("virsh_reflink")
        entry: dict = {"filesystem": fstype(root), "dir": str(root), "warmup_rounds": 1, "tools": {}}
        for t in tools:
            entry["tools"][t] = {"samples": []}
        # r = -1: one untimed warm-up round (the first copies after the
        # sources were written were the slowest in trial runs)
        for r in range(-1, a.runs):
            for t in self.order(tools, max(r, 0)):
                name = f"fc-{t.replace('_', '-')}-{r + 1}"
                side = "fv" if t.startswith("fv") else "lv" if t.startswith("virsh") else "cp"
                src = srcs[side]
                dst = {"fv": fvdir, "lv": lvdir, "cp": cpdir}[side] / name
                os.sync()
                evict(src)
                method = None
                if t == "fv_cli":
                    ms, out = fv.cli_ms("volume", "clone", f"{pool}/src", name)
                    method = ("reflink" if "(reflink)" in out else "copy" if "(copy)" in out
                              else out.strip())
                elif t == "fv_api":
                    t0 = now()
                    o = fv.op("POST", f"/1.0/pools/{pool}/volumes/src/clone", {"name": name})
                    ms = (now() - t0) * 1000.0
                    method = (o.get("result") or {}).get("method")
                elif t == "cp_sparse":
                    ms, _ = timed_run(["cp", "--sparse=always", str(src), str(dst)])
                elif t == "cp_sparse_noreflink":
                    ms, _ = timed_run(["cp", "--sparse=always", "--reflink=never", str(src), str(dst)])
                elif t == "virsh":
                    ms, _ = lv.virsh_ms("vol-clone", "src", name, "--pool", pool)
                else:
                    ms, _ = lv.virsh_ms("vol-clone", "src", name, "--pool", pool, "--reflink")
                sync_ms = fsync_ms(dst)
                st = os.stat(dst)
                s = {"ms": round(ms, 3), "fsync_ms": round(sync_ms, 3),
                     "allocated_bytes": st.st_blocks * 512, "size_bytes": st.st_size}
                if method:
                    s["method"] = method
                if r == 0:
                    s["data_bytes"] = data_bytes(dst)
                    s["shared_bytes"] = shared_bytes(dst)
                    s["same_content"] = same_content(src, dst)
                    if not s["same_content"] or st.st_size != size:
                        raise RuntimeError(f"{t}: {dst} differs from its source")
                if r >= 0:
                    entry["tools"][t]["samples"].append(s)
                if side == "fv":
                    fv.vol_delete(pool, name)
                elif side == "lv":
                    lv.vol_delete(pool, name)
                else:
                    dst.unlink()
        for t, v in entry["tools"].items():
            ms = median([s["ms"] for s in v["samples"]])
            tot = median([s["ms"] + s["fsync_ms"] for s in v["samples"]])
            v["median_ms"] = ms
            v["median_ms_with_fsync"] = tot
            v["mib_s"] = round(a.clone_mib / (ms / 1000.0), 1) if ms else None
            v["mib_s_with_fsync"] = round(a.clone_mib / (tot / 1000.0), 1) if tot else None
        log(f"full clone of {a.clone_mib} MiB on {label} ({entry['filesystem']}): " + ", ".join(
            f"{t} {v['median_ms']:.0f} ms (+fsync {v['median_ms_with_fsync']:.0f} ms)"
            for t, v in entry["tools"].items()))
        # leave the filesystem as found
        fv.vol_delete(pool, "src")
        if lv:
            lv.vol_delete(pool, "src")
        srcs["cp"].unlink()
        return entry

    # ---------------------------------------------------------- volumes
    def vols(self) -> None:
        a, fv, lv = self.a, self.fv, self.lv
        res = self.out["volumes"] = {"counts": {}}
        fv.pool_create("vols", self.tmp / "fv-vols")
        if lv:
            lv.pool_create("vols", self.tmp / "lv-vols")
        have = 0  # fillers in each pool
        sides = ["fv"] + (["lv"] if lv else [])
        for count in a.counts:
            fill = {}
            for side in sides:
                t0 = now()
                for i in range(have, count - 1):
                    name = f"fill-{i:05d}"
                    (fv if side == "fv" else lv).vol_create("vols", name, GIB)
                fill[side] = round((now() - t0) * 1000.0, 1)
            have = max(have, count - 1)
            entry = res["counts"][str(count)] = {"fill_ms": fill, "create": {}, "list": {}}
            self.vols_runs(entry, count, sides)
        if a.instances > 0 and a.counts[-1] > 1:
            # The same at the largest N, with M instances (domains) defined,
            # each with a disk on one of the pool's volumes.
            count = a.counts[-1]
            res["instances"] = a.instances
            fill = {}
            for side in sides:
                t0 = now()
                for i in range(a.instances):
                    vol = f"fill-{i % max(1, count - 1):05d}"
                    if side == "fv":
                        self.fv.api("POST", "/1.0/instances",
                                    {"name": f"vm{i:04d}", "disks": [{"volume": f"vols/{vol}"}]})
                    else:
                        self.lv.define(f"vm{i:04d}", "vols", vol)
                fill[side] = round((now() - t0) * 1000.0, 1)
            entry = res["counts"][f"{count}+{a.instances}vm"] = {"fill_ms": fill, "create": {}, "list": {}}
            self.vols_runs(entry, count, sides)

    def vols_runs(self, entry: dict, count: int, sides: list[str]) -> None:
        a, lv = self.a, self.lv
        creates = ["fv_cli", "fv_api"]
        lists = ["fv_cli", "fv_api"]
        if lv:
            creates.append("virsh")
            lists.append("virsh")
            if lv.conn is not None:
                creates.append("lv_api")
                lists.append("lv_api")
        for t in creates:
            entry["create"][t] = []
        for t in lists:
            entry["list"][t] = []
        for r in range(a.runs):
            for side in self.order(sides, r):
                if side == "fv":
                    self.vols_fv(entry, count, r)
                else:
                    self.vols_lv(entry, count, r)
        log(f"pool of {count} volume(s): create " + ", ".join(
            f"{t} {median(v):.1f}" for t, v in entry["create"].items()) + " ms; list " + ", ".join(
            f"{t} {median(v):.1f}" for t, v in entry["list"].items()) + " ms")
        self.save()

    def vols_fv(self, entry: dict, count: int, r: int) -> None:
        fv = self.fv
        name = f"probe-{r}"
        ms, _ = fv.cli_ms("volume", "create", f"vols/{name}", "1G", "--image-format", "qcow2")
        entry["create"]["fv_cli"].append(round(ms, 3))
        # the pool now holds `count` volumes
        ms, out = fv.cli_ms("volume", "list", "vols")
        rows = len([ln for ln in out.splitlines() if ln.strip()]) - 1
        if rows != count:
            raise RuntimeError(f"ferrovirt volume list vols: {rows} rows, expected {count}")
        entry["list"]["fv_cli"].append(round(ms, 3))
        t0 = now()
        got = fv.vol_list("vols")
        entry["list"]["fv_api"].append(round((now() - t0) * 1000.0, 3))
        if len(got) != count:
            raise RuntimeError(f"GET /1.0/pools/vols/volumes: {len(got)} volumes, expected {count}")
        fv.vol_delete("vols", name)
        t0 = now()
        fv.vol_create("vols", name, GIB)
        entry["create"]["fv_api"].append(round((now() - t0) * 1000.0, 3))
        fv.vol_delete("vols", name)

    def vols_lv(self, entry: dict, count: int, r: int) -> None:
        lv = self.lv
        name = f"probe-{r}"
        ms, _ = lv.virsh_ms("vol-create-as", "vols", name, "1G", "--format", "qcow2")
        entry["create"]["virsh"].append(round(ms, 3))
        ms, out = lv.virsh_ms("vol-list", "vols")
        rows = len([ln for ln in out.splitlines() if ln.strip()])
        if rows != count:
            raise RuntimeError(f"virsh vol-list vols: {rows} rows, expected {count}")
        entry["list"]["virsh"].append(round(ms, 3))
        if lv.conn is not None:
            pool = lv.conn.storagePoolLookupByName("vols")
            t0 = now()
            got = pool.listAllVolumes(0)
            entry["list"]["lv_api"].append(round((now() - t0) * 1000.0, 3))
            if len(got) != count:
                raise RuntimeError(f"listAllVolumes: {len(got)} volumes, expected {count}")
            lv.vol_delete("vols", name)
            xml = vol_xml(name, GIB)
            t0 = now()
            pool.createXML(xml, 0)
            entry["create"]["lv_api"].append(round((now() - t0) * 1000.0, 3))
        lv.vol_delete("vols", name)


def fstype(path: Path) -> str:
    p = run(["findmnt", "-n", "-o", "FSTYPE", "--target", str(path)], check=False)
    return p.stdout.decode().strip().splitlines()[0] if p.stdout.strip() else "?"


def check_overlay(path: Path, base: str, size: int) -> None:
    info = json.loads(run(["qemu-img", "info", "--output", "json", "-U", str(path)]).stdout)
    if info.get("format") != "qcow2" or info.get("virtual-size") != size \
            or not str(info.get("backing-filename", "")).endswith(base):
        raise RuntimeError(f"{path} is not a qcow2 overlay of {base} of {size} bytes: {info}")


def measure(a: argparse.Namespace) -> int:
    b = Bench(a)
    load = ForeignLoad(set())  # this benchmark starts no VM: every QEMU is foreign
    t0 = time.time()
    try:
        b.setup()
        for sec in a.sections:
            log(f"section {sec}")
            getattr(b, {"linked": "linked", "full": "full", "vols": "vols"}[sec])()
    finally:
        b.out["meta"]["foreign_load"] = load.result()
        b.out["meta"]["measure_seconds"] = round(time.time() - t0, 1)
        b.out["meta"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
        b.save()
    return 0


# --------------------------------------------------------------------------
# the report

NAMES = {
    "fv_cli": "Ferrovirt CLI", "fv_api": "Ferrovirt API", "virsh": "virsh",
    "lv_api": "libvirt API", "cp_sparse": "`cp --sparse=always`",
    "cp_sparse_noreflink": "`cp --sparse=always --reflink=never`",
    "virsh_reflink": "virsh `--reflink`",
}


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "–"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    return f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


def spread(xs: list[float]) -> str:
    m = median(xs)
    if m is None:
        return "–"
    if len(xs) < 3:
        return fmt_ms(m)
    return f"{fmt_ms(m)} ({fmt_ms(min(xs))}–{fmt_ms(max(xs))})"


def mib(b: int | None) -> str:
    return "–" if b is None else f"{b / MIB:.1f} MiB" if b >= MIB else f"{b / 1024:.0f} KiB"


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "–"
    return f"{b / a:.1f}×"


def report(raw: dict) -> str:
    m = raw["meta"]
    L: list[str] = []
    L.append("# Storage benchmark: Ferrovirt vs libvirt")
    L.append("")
    runs = m.get("runs") or 0
    L.append(f"{'Quick (smoke) run, not for quoting' if m.get('quick') else 'Full run'}: "
             f"{runs} run(s) per figure, "
             f"{'median (min–max)' if runs >= 3 else 'median' if runs > 1 else 'one sample'} each. "
             f"Ferrovirt {m.get('profile')} build {m.get('ferrovirt_commit')}, "
             f"libvirt {m.get('libvirt_version') or 'skipped: ' + str(m.get('libvirt_skipped'))}, "
             f"qemu-img {m.get('qemu_img_version')}, coreutils {m.get('coreutils_version')}, "
             f"kernel {m.get('kernel')}, {m.get('cpus')} CPUs. Date {m.get('date')}.")
    L.append("")
    if "linked" in raw:
        L.append("## Linked clone (qcow2 overlay on a qcow2 base)")
        L.append("")
        sizes = raw["linked"]["sizes"]
        tools = [t for t in NAMES if any(t in e["samples"] for e in sizes.values())]
        L.append("| base | " + " | ".join(NAMES[t] for t in tools) + " | virsh / Ferrovirt CLI |")
        L.append("|---|" + "---:|" * len(tools) + "---:|")
        for gib, e in sizes.items():
            s = e["samples"]
            row = [f"{gib} GiB ({mib(e['base_allocated_bytes'])} on disk)"]
            row += [spread(s[t]) for t in tools]
            row.append(ratio(median(s.get("fv_cli", [])), median(s.get("virsh", []))))
            L.append("| " + " | ".join(row) + " |")
        L.append("")
        alloc = {t: v for e in sizes.values() for t, v in e["clone_allocated_bytes"].items()}
        L.append("A new overlay takes " + ", ".join(
            f"{mib(v)} ({NAMES[t]})" for t, v in alloc.items()) + " on disk.")
        L.append("")
    if "full" in raw:
        f = raw["full"]
        src = f["source"]
        L.append(f"## Full clone of a raw file of {mib(src['virtual_bytes'])}"
                 f" ({mib(src['data_bytes'])} of random data, the rest holes)")
        L.append("")
        L.append("MiB/s = virtual size / time. \"Returned\": until the command exits; "
                 "\"+ fsync\": then fsync(2) of the copy, i.e. until it is on the disk. "
                 "The source is dropped from the page cache before each sample; one untimed "
                 "warm-up round of every tool comes first.")
        L.append("")
        for label, e in f["filesystems"].items():
            where = "the pools' filesystem" if label == "tmp" else "a loop-mounted XFS with reflink=1"
            L.append(f"### {e['filesystem']} ({where})")
            L.append("")
            L.append("| tool | method | returned | MiB/s | + fsync | MiB/s | copy on disk (du) | sparse | reflinked |")
            L.append("|---|---|---:|---:|---:|---:|---:|:---:|---:|")
            for t, v in e["tools"].items():
                first = v["samples"][0]
                meth = first.get("method") or ("reflink" if (first.get("shared_bytes") or 0) > 0 else "copy")
                du = max(s["allocated_bytes"] for s in v["samples"])
                sparse = "yes" if du <= src["allocated_bytes"] + MIB else "**no**"
                L.append(f"| {NAMES[t]} | {meth} | {spread([s['ms'] for s in v['samples']])} | "
                         f"{v['mib_s']:.0f} | {fmt_ms(v['median_ms_with_fsync'])} | {v['mib_s_with_fsync']:.0f} | "
                         f"{mib(du)} | {sparse} | {mib(first.get('shared_bytes'))} |")
            L.append("")
        L.append(f"The source takes {mib(src['allocated_bytes'])} on disk (du); \"sparse\": no "
                 "sample's copy took more than that (+1 MiB); \"reflinked\": bytes in extents the "
                 "filesystem marks shared (FIEMAP). Every copy was compared byte for byte with its "
                 "source (cmp) on the first run.")
        L.append("")
    if "volumes" in raw:
        L.append("## Volume create (qcow2, 1 GiB) and list")
        L.append("")
        L.append("Create: one more volume in a pool holding N−1; list: the pool holding N.")
        L.append("")
        counts = raw["volumes"]["counts"]
        first = next(iter(counts.values()))
        ct = [t for t in NAMES if t in first["create"]]
        lt = [t for t in NAMES if t in first["list"]]
        L.append("| N | " + " | ".join(f"create: {NAMES[t]}" for t in ct) + " | "
                 + " | ".join(f"list: {NAMES[t]}" for t in lt) + " |")
        L.append("|---:|" + "---:|" * (len(ct) + len(lt)))
        for n, e in counts.items():
            label = n.replace("+", " + ").replace("vm", " VMs defined")
            row = [label] + [spread(e["create"][t]) for t in ct] + [spread(e["list"][t]) for t in lt]
            L.append("| " + " | ".join(row) + " |")
        L.append("")
        fill = [f"{n}: " + ", ".join(f"{'Ferrovirt' if k == 'fv' else 'libvirt'} {fmt_ms(v)}"
                                       for k, v in e["fill_ms"].items())
                for n, e in counts.items() if n.isdigit() and int(n) > 1]
        if fill:
            L.append("Filling the pools through the APIs (one request per volume, from the "
                     "previous N): " + "; ".join(fill) + ".")
            L.append("")
        vm = [(n, e) for n, e in counts.items() if not n.isdigit()]
        if vm:
            n, e = vm[0]
            L.append(f"\"+ {raw['volumes'].get('instances')} VMs defined\": the same pool with that many "
                     "instances (Ferrovirt) and domains (libvirt, defined through the API) defined, "
                     "not running, each with a disk on one of the pool's volumes; defining them took "
                     + ", ".join(f"{'Ferrovirt' if k == 'fv' else 'libvirt'} {fmt_ms(v)}"
                                 for k, v in e["fill_ms"].items()) + ".")
            L.append("")
    fl = m.get("foreign_load") or {}
    L.append(f"Measured in {m.get('measure_seconds')} s; other load: {fl.get('with_cargo_or_rustc', 0)} of "
             f"{fl.get('samples', 0)} one-second samples saw cargo/rustc, {fl.get('with_foreign_qemu', fl.get('with_qemu', 0))} a QEMU; "
             f"max 1-min load average {fl.get('max_loadavg_1min')}.")
    L.append("")
    return "\n".join(L)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--out", required=True)
    m.add_argument("--tmp", required=True)
    m.add_argument("--runs", type=int, default=5)
    m.add_argument("--clone-mib", type=int, default=512)
    m.add_argument("--counts", type=lambda s: sorted({int(x) for x in s.split(",")}), default=[1, 100, 1000])
    m.add_argument("--instances", type=int, default=100)
    m.add_argument("--linked-gib", type=lambda s: [int(x) for x in s.split(",")], default=[1, 100])
    m.add_argument("--sections", type=lambda s: s.split(","), default=["linked", "full", "vols"])
    m.add_argument("--fv-cli", required=True)
    m.add_argument("--fv-socket", required=True)
    m.add_argument("--lv-uri", default="")
    m.add_argument("--xfs", default="")
    m.add_argument("--meta", default="")
    r = sub.add_parser("report")
    r.add_argument("raw")
    r.add_argument("md")
    a = p.parse_args()
    if a.cmd == "measure":
        if min(a.counts) < 1:
            p.error("--counts: at least 1")
        return measure(a)
    text = report(json.loads(Path(a.raw).read_text()))
    Path(a.md).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
