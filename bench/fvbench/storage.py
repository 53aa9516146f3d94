"""Ferrovirt vs libvirt on storage: linked clones, full clones (next to cp,
also on a loop-mounted XFS with reflink=1) and volume create/list in pools
of growing size (docs/benchmarks-storage.md)."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import struct
import time
from pathlib import Path

from . import host
from .guest import now
from .host import Skip, log, run
from .stats import ForeignLoad, median, rotated, timed
from .systems import Ferrovirt, Libvirt, libvirt_or_skip, vol_xml

STEM = "storage-latest"
SECTIONS = ("linked", "full", "vols")
MIB, GIB = 1 << 20, 1 << 30
OPTIONS = {"runs": (10, 1, "runs per figure"), "clone-mib": (512, 64, "full-clone source size"),
           "counts": ("1,100,1000", "1,50", "pool sizes for create/list"),
           "vms": (100, 10, "then the largest pool again with this many VMs defined (0: no)"),
           "linked-gib": ("1,100", None, "base sizes for linked clones, GiB"),
           "sections": (",".join(SECTIONS), None, "a subset of linked,full,vols"),
           "no-xfs": ("flag", None, "no loop-mounted XFS for the full clones")}


# ------------------------------------------------------------------ files

SEEK_DATA, SEEK_HOLE = 3, 4
FS_IOC_FIEMAP, FIEMAP_FLAG_SYNC, FIEMAP_EXTENT_LAST, FIEMAP_EXTENT_SHARED = 0xC020660B, 0x1, 0x1, 0x2000


def allocated(path: Path) -> int:
    """Bytes the file takes on disk (what du counts)."""
    return path.stat().st_blocks * 512


def data_bytes(path: Path) -> int:
    """Bytes in data segments (SEEK_DATA/SEEK_HOLE), i.e. not holes."""
    total, fd = 0, os.open(path, os.O_RDONLY)
    try:
        size, off = os.fstat(fd).st_size, 0
        while off < size:
            try:
                start = os.lseek(fd, off, SEEK_DATA)
            except OSError:
                break
            off = os.lseek(fd, start, SEEK_HOLE)
            total += off - start
    finally:
        os.close(fd)
    return total


def shared_bytes(path: Path) -> int | None:
    """Bytes in extents marked shared (reflinked), by FIEMAP; None without FIEMAP."""
    total, start, count = 0, 0, 256
    with open(path, "rb") as f:
        while True:
            buf = bytearray(struct.pack("=QQIIII", start, (1 << 64) - 1 - start, FIEMAP_FLAG_SYNC, 0, count, 0)
                            + bytes(56 * count))
            try:
                fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, buf, True)
            except OSError:
                return None
            mapped = struct.unpack_from("=I", buf, 20)[0]
            if mapped == 0:
                return total
            last = False
            for i in range(mapped):
                logical, _p, length, _r1, _r2, flags = struct.unpack_from("=QQQQQI", buf, 32 + 56 * i)
                total += length if flags & FIEMAP_EXTENT_SHARED else 0
                start, last = logical + length, bool(flags & FIEMAP_EXTENT_LAST)
            if last:
                return total


def evict(path: Path) -> None:
    """Writes the file out and drops it from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def fsync_ms(path: Path) -> float:
    t0, fd = now(), os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return (now() - t0) * 1000.0


def make_sparse_source(path: Path, size: int, chunk: int = 4 * MIB) -> None:
    """`chunk` of random data, then a hole of `chunk`, and so on."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        for off in range(0, size, 2 * chunk):
            os.pwrite(fd, os.urandom(min(chunk, size - off)), off)
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def make_qcow2_base(path: Path, size: int) -> None:
    """A sparse qcow2 with 12 MiB written by qemu-io: 4 MiB at the start, in
    the middle and at the end."""
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), str(size)])
    run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 4M", "-c", f"write -P 0xa5 {size // 2} 4M",
         "-c", f"write -P 0x3c {size - 4 * MIB} 4M", str(path)])


def sparse_copy(src: Path, dst: Path) -> None:
    run(["cp", "--sparse=always", "--reflink=never", str(src), str(dst)])


def fstype(path: Path) -> str:
    return (host.out(["findmnt", "-n", "-o", "FSTYPE", "--target", str(path)]).splitlines() or ["?"])[0]


def check_overlay(path: Path, base: str, size: int) -> None:
    info = json.loads(run(["qemu-img", "info", "--output", "json", "-U", str(path)]).stdout)
    if info.get("format") != "qcow2" or info.get("virtual-size") != size \
            or not str(info.get("backing-filename", "")).endswith(base):
        raise RuntimeError(f"{path} is not a qcow2 overlay of {base} of {size} bytes: {info}")


def xfs(h: host.Host, mib: int) -> tuple[Path | None, str]:
    """A sparse image on a loop device (direct I/O: an fsync on the XFS puts
    the data on the disk, not in the image file's page cache), mkfs.xfs -m
    reflink=1, mounted under TMP/xfs; unmounted and detached on cleanup."""
    if not (shutil.which("mkfs.xfs") and shutil.which("losetup")):
        return None, "no XFS: mkfs.xfs (xfsprogs) or losetup missing"
    img = h.tmp / "xfs.img"
    img.touch()
    os.truncate(img, max(mib * 4 + 256, 320) * MIB)  # room for three sources and a copy per tool
    try:
        loop = run(["losetup", "-f", "--show", "--direct-io=on", str(img)]).stdout.decode().strip()
    except RuntimeError as e:
        return None, f"no XFS: {e}"
    h.later(run, ["losetup", "-d", loop], False)
    d = h.tmp / "xfs"
    d.mkdir()
    try:
        run(["mkfs.xfs", "-q", "-m", "reflink=1", loop])
        run(["mount", loop, str(d)])
    except RuntimeError as e:
        return None, f"no XFS: {e}"

    def umount() -> None:
        for _ in range(50):
            if run(["umount", str(d)], check=False).returncode == 0:
                return
            time.sleep(0.1)
        log(f"warning: {d} still busy, lazy unmount")
        run(["umount", "-l", str(d)], check=False)
    h.later(umount)
    log(f"XFS (reflink=1) on {loop} at {d}")
    return d, ""


def run_suite(a, h: host.Host, b: host.Binaries) -> dict:
    host.require(["qemu-img", "qemu-io", "ip", "unshare", "cp", "cmp"],
                 "scripts/install-deps.sh installs QEMU's tools; apt-get install iproute2 util-linux")
    a.sections = a.sections.split(",")
    a.counts = sorted({int(x) for x in a.counts.split(",")})
    a.linked_gib = [int(x) for x in a.linked_gib.split(",")]
    if not set(a.sections) <= set(SECTIONS) or min(a.counts) < 1 or a.runs < 1:
        raise SystemExit("fvbench: --sections of linked,full,vols; --counts and --runs at least 1")
    meta: dict = {"xfs_skipped": None}
    xfs_dir = None
    if "full" in a.sections and not a.no_xfs:  # before the daemons, so that their mount namespaces have it
        xfs_dir, meta["xfs_skipped"] = xfs(h, a.clone_mib)
    elif a.no_xfs:
        meta["xfs_skipped"] = "--no-xfs"
    fv = Ferrovirt(h, b, h.netns("fv"), "fv")

    def start_lv() -> Libvirt:
        root = host.lv_unpack(h, "libvirt-daemon-driver-storage", a.install)
        lvd = host.start_libvirtd(h, h.netns("lv"), "lv", drivers={"storage": root}, storage=root)
        if run(["virsh", "-q", "-c", lvd.uri, "pool-list", "--all"], check=False).returncode:
            raise Skip("libvirtd did not load its storage driver")
        return Libvirt(h, b, lvd)
    lv = libvirt_or_skip(h, a, meta, start_lv)
    meta.update(qemu_img_version=host.out(["qemu-img", "--version"]).splitlines()[0].replace("qemu-img version ", ""),
                coreutils_version=host.out(["cp", "--version"]).splitlines()[0].split()[-1],
                runs=a.runs, clone_mib=a.clone_mib, counts=a.counts, linked_gib=a.linked_gib,
                sections=a.sections, instances=a.vms, python_libvirt=bool(lv and lv.conn),
                tmp_filesystem=fstype(h.tmp), xfs_dir=str(xfs_dir) if xfs_dir else None)
    bench = Bench(a, h.tmp, fv, lv, xfs_dir, meta)
    load = ForeignLoad(h.tmp)
    t0 = time.time()
    try:
        for side, p in bench.sys.items():
            p.pool_create("bench", h.tmp / f"{side}-pool")
        for sec in a.sections:
            log(f"section {sec}")
            getattr(bench, sec)()
    finally:
        meta.update(foreign_load=load.result(), measure_seconds=round(time.time() - t0, 1),
                    loadavg_at_end=Path("/proc/loadavg").read_text().split()[:3])
    return bench.out


class Bench:
    def __init__(self, a, tmp: Path, fv: Ferrovirt, lv: Libvirt | None, xfs_dir: Path | None, meta: dict):
        self.a, self.tmp, self.fv, self.lv, self.xfs = a, tmp, fv, lv, xfs_dir
        self.sys = {"fv": fv, **({"lv": lv} if lv else {})}
        self.out: dict = {"meta": meta}
        # the tools of the linked-clone and volume figures
        self.tools = ["fv_cli", "fv_api"] + (["virsh"] if lv else []) + (["lv_api"] if lv and lv.conn else [])

    def cli(self, tool: str, *args: str) -> tuple[float, str]:
        """Milliseconds `ferrovirt ARGS` (tool fv_cli) or `virsh ARGS` took, from fork to exit; stdout."""
        took, p = timed(run, [self.fv.cli, "--socket", self.fv.sock, *args] if tool == "fv_cli"
                        else ["virsh", "-q", "-c", self.lv.uri, *args])
        return round(took, 3), p.stdout.decode(errors="replace")

    # ---------------------------------------------------------- linked
    def linked(self) -> None:
        fv, lv = self.fv, self.lv
        res = self.out["linked"] = {"sizes": {}}
        fvdir, lvdir = self.tmp / "fv-pool", self.tmp / "lv-pool"
        for gib in self.a.linked_gib:
            size, base = gib * GIB, f"base-{gib}g"
            master = self.tmp / f"{base}.qcow2"
            make_qcow2_base(master, size)
            # Imported, not copied in: Ferrovirt takes a file it did not
            # make as raw (formats are recorded, never guessed).
            fv.cli_run("volume", "import", f"bench/{base}", str(master),
                       "--source-format", "qcow2", "--image-format", "qcow2")
            if lv:
                sparse_copy(master, lvdir / base)
                lv.virsh("pool-refresh", "bench")
            e = res["sizes"][str(gib)] = {
                "base_virtual_bytes": size, "base_allocated_bytes": allocated(master),
                "base_data_bytes": data_bytes(master), "samples": {t: [] for t in self.tools},
                "clone_allocated_bytes": {}}
            for r in range(self.a.runs):
                for t in rotated(self.tools, r):
                    name = f"lc-{t.replace('_', '-')}-{r}"
                    if t == "fv_cli":
                        took, said = self.cli(t, "volume", "clone", f"bench/{base}", name, "--linked")
                        if "(linked)" not in said:
                            raise RuntimeError(f"ferrovirt volume clone --linked said: {said!r}")
                    elif t == "fv_api":
                        took = timed(fv.op, "POST", f"/1.0/pools/bench/volumes/{base}/clone",
                                     {"name": name, "linked": True})[0]
                    elif t == "virsh":
                        took, _ = self.cli(t, "vol-create-as", "bench", name, f"{gib}G", "--format", "qcow2",
                                           "--backing-vol", base, "--backing-vol-format", "qcow2")
                    else:
                        pool, xml = lv.conn.storagePoolLookupByName("bench"), vol_xml(name, size, lvdir / base)
                        took = timed(pool.createXML, xml, 0)[0]
                    path = (fvdir if t.startswith("fv") else lvdir) / name
                    e["samples"][t].append(round(took, 3))
                    if r == 0:
                        check_overlay(path, base, size)
                        e["clone_allocated_bytes"][t] = allocated(path)
                    (fv if t.startswith("fv") else lv).vol_delete("bench", name)
            log(f"linked clone of a {gib} GiB base: " + ", ".join(
                f"{t} {median(v):.1f} ms" for t, v in e["samples"].items()))
            for p in self.sys.values():  # the bases go, so that the next size's pool is the same
                p.vol_delete("bench", base)
            master.unlink()

    # ---------------------------------------------------------- full
    def full(self) -> None:
        res = self.out["full"] = {"filesystems": {}}
        size = self.a.clone_mib * MIB
        master = self.tmp / "src-master.raw"
        make_sparse_source(master, size)
        res["source"] = {"virtual_bytes": size, "allocated_bytes": allocated(master),
                         "data_bytes": data_bytes(master),
                         "layout": "4 MiB of random data, then a 4 MiB hole, repeated"}
        for label, root, pool in [("tmp", self.tmp, "bench")] + ([("xfs", self.xfs, "benchx")] if self.xfs else []):
            res["filesystems"][label] = self.full_on(label, root, pool, master, size)
        master.unlink()

    def full_on(self, label: str, root: Path, pool: str, master: Path, size: int) -> dict:
        fv, lv = self.fv, self.lv
        dirs = {"fv": root / "fv-pool", "lv": root / "lv-pool", "cp": root / "cp"}
        if label != "tmp":
            for side, p in self.sys.items():
                p.pool_create(pool, dirs[side])
        dirs["cp"].mkdir(exist_ok=True)
        srcs = {k: d / "src" for k, d in dirs.items() if k != "lv" or lv}
        for p in srcs.values():
            sparse_copy(master, p)
        if lv:
            lv.virsh("pool-refresh", pool)
        xfs_ = label == "xfs"
        tools = ["fv_cli", "fv_api", "cp_sparse"] + (["cp_sparse_noreflink"] if xfs_ else []) + \
            ((["virsh"] + (["virsh_reflink"] if xfs_ else [])) if lv else [])
        entry: dict = {"filesystem": fstype(root), "dir": str(root), "warmup_rounds": 1,
                       "tools": {t: {"samples": []} for t in tools}}
        # r = -1: one untimed warm-up round (the first copies after the
        # sources were written were the slowest in trial runs)
        for r in range(-1, self.a.runs):
            for t in rotated(tools, max(r, 0)):
                name = f"fc-{t.replace('_', '-')}-{r + 1}"
                side = "fv" if t.startswith("fv") else "lv" if t.startswith("virsh") else "cp"
                src, dst = srcs[side], dirs[side] / name
                os.sync()
                evict(src)
                method = None
                if t == "fv_cli":
                    took, said = self.cli(t, "volume", "clone", f"{pool}/src", name)
                    method = "reflink" if "(reflink)" in said else "copy" if "(copy)" in said else said.strip()
                elif t == "fv_api":
                    took, o = timed(fv.op, "POST", f"/1.0/pools/{pool}/volumes/src/clone", {"name": name})
                    method = (o.get("result") or {}).get("method")
                elif t.startswith("cp"):
                    took = timed(run, ["cp", "--sparse=always", *(["--reflink=never"] if "noreflink" in t else []),
                                       str(src), str(dst)])[0]
                else:
                    took, _ = self.cli("virsh", "vol-clone", "src", name, "--pool", pool,
                                       *(["--reflink"] if t == "virsh_reflink" else []))
                sync = fsync_ms(dst)
                st = os.stat(dst)
                s = {"ms": round(took, 3), "fsync_ms": round(sync, 3), "allocated_bytes": st.st_blocks * 512,
                     "size_bytes": st.st_size, **({"method": method} if method else {})}
                if r == 0:
                    s.update(data_bytes=data_bytes(dst), shared_bytes=shared_bytes(dst),
                             same_content=run(["cmp", "-s", str(src), str(dst)], check=False).returncode == 0)
                    if not s["same_content"] or st.st_size != size:
                        raise RuntimeError(f"{t}: {dst} differs from its source")
                if r >= 0:
                    entry["tools"][t]["samples"].append(s)
                if side == "cp":
                    dst.unlink()
                else:
                    self.sys[side].vol_delete(pool, name)
        for t, v in entry["tools"].items():
            v["median_ms"] = m = median([s["ms"] for s in v["samples"]])
            v["median_ms_with_fsync"] = tot = median([s["ms"] + s["fsync_ms"] for s in v["samples"]])
            v["mib_s"] = round(self.a.clone_mib / (m / 1000.0), 1) if m else None
            v["mib_s_with_fsync"] = round(self.a.clone_mib / (tot / 1000.0), 1) if tot else None
        log(f"full clone of {self.a.clone_mib} MiB on {label} ({entry['filesystem']}): " + ", ".join(
            f"{t} {v['median_ms']:.0f} ms (+fsync {v['median_ms_with_fsync']:.0f} ms)"
            for t, v in entry["tools"].items()))
        for p in self.sys.values():  # leave the filesystem as found
            p.vol_delete(pool, "src")
        srcs["cp"].unlink()
        return entry

    # ---------------------------------------------------------- volumes
    def vols(self) -> None:
        a, fv, lv = self.a, self.fv, self.lv
        res = self.out["volumes"] = {"counts": {}}
        for side, p in self.sys.items():
            p.pool_create("vols", self.tmp / f"{side}-vols")
        have = 0  # fillers in each pool
        for count in a.counts:
            fill = {}
            for side, p in self.sys.items():
                t0 = now()
                for i in range(have, count - 1):
                    p.vol_create("vols", f"fill-{i:05d}", GIB)
                fill[side] = round((now() - t0) * 1000.0, 1)
            have = max(have, count - 1)
            res["counts"][str(count)] = self.vols_runs(count, fill)
        if a.vms > 0 and a.counts[-1] > 1:
            # the largest N again, with VMs (domains) defined, each with a disk on one of the pool's volumes
            count, fill = a.counts[-1], {}
            res["instances"] = a.vms
            for side in self.sys:
                t0 = now()
                for i in range(a.vms):
                    vol = f"fill-{i % max(1, count - 1):05d}"
                    if side == "fv":
                        fv.api("POST", "/1.0/instances", {"name": f"vm{i:04d}", "disks": [{"volume": f"vols/{vol}"}]})
                    else:
                        lv.define_on(f"vm{i:04d}", "vols", vol)
                fill[side] = round((now() - t0) * 1000.0, 1)
            res["counts"][f"{count}+{a.vms}vm"] = self.vols_runs(count, fill)

    def vols_runs(self, count: int, fill: dict) -> dict:
        """Create: one more volume in the pool of count - 1 volumes; list: the pool of `count`."""
        e = {"fill_ms": fill, "create": {t: [] for t in self.tools}, "list": {t: [] for t in self.tools}}

        def listed(t: str, what: str, took: float, got: int) -> None:
            if got != count:
                raise RuntimeError(f"{what}: {got} rows, expected {count}")
            e["list"][t].append(took)

        def lines(said: str) -> int:
            return len([ln for ln in said.splitlines() if ln.strip()])

        def fv_side(r: int) -> None:
            name = f"probe-{r}"
            e["create"]["fv_cli"].append(self.cli("fv_cli", "volume", "create", f"vols/{name}", "1G",
                                                  "--image-format", "qcow2")[0])
            took, said = self.cli("fv_cli", "volume", "list", "vols")
            listed("fv_cli", "ferrovirt volume list vols", took, lines(said) - 1)  # and a heading
            took, got = timed(self.fv.api, "GET", "/1.0/pools/vols/volumes")
            listed("fv_api", "GET /1.0/pools/vols/volumes", took, len(got))
            self.fv.vol_delete("vols", name)
            e["create"]["fv_api"].append(timed(self.fv.vol_create, "vols", name, GIB)[0])
            self.fv.vol_delete("vols", name)

        def lv_side(r: int) -> None:
            name = f"probe-{r}"
            e["create"]["virsh"].append(self.cli("virsh", "vol-create-as", "vols", name, "1G", "--format", "qcow2")[0])
            took, said = self.cli("virsh", "vol-list", "vols")
            listed("virsh", "virsh vol-list vols", took, lines(said))
            if self.lv.conn is not None:
                pool = self.lv.conn.storagePoolLookupByName("vols")
                took, got = timed(pool.listAllVolumes, 0)
                listed("lv_api", "listAllVolumes", took, len(got))
                self.lv.vol_delete("vols", name)
                e["create"]["lv_api"].append(timed(pool.createXML, vol_xml(name, GIB), 0)[0])
            self.lv.vol_delete("vols", name)
        for r in range(self.a.runs):
            for side in rotated(list(self.sys), r):
                (fv_side if side == "fv" else lv_side)(r)
        log(f"pool of {count} volume(s): create " + ", ".join(f"{t} {median(v):.1f}" for t, v in e["create"].items())
            + " ms; list " + ", ".join(f"{t} {median(v):.1f}" for t, v in e["list"].items()) + " ms")
        return e
