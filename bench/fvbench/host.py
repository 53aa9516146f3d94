"""The host side of every suite, in one place: processes (run, stop, reap),
the temporary directory and everything a run makes (network namespaces, veth
pairs, mounts, daemons), removed again on exit; the Ferrovirt binaries and
the test guest; libvirt (installed from Debian when missing, extra drivers
unpacked from their .debs for this run only) and private daemons: ferrovirtd
and libvirtd, each in a network namespace, libvirtd also in a private mount
namespace so that the host's libvirt files are never written to."""
from __future__ import annotations

import ctypes
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LV_DRIVERS = Path("/usr/lib/x86_64-linux-gnu/libvirt")
PR_SET_CHILD_SUBREAPER = 36


class Skip(Exception):
    """A part of the run (libvirt, a driver) cannot be measured; the reason."""


def log(msg: str) -> None:
    print(f"[fvbench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(argv: list[str], check: bool = True, timeout: float = 900,
        env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=env, cwd=cwd)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): "
                           f"{(p.stderr or p.stdout).decode(errors='replace').strip()[-600:]}")
    return p


def out(argv: list[str]) -> str:
    """stdout of a command that should not fail, or '' if it does."""
    try:
        return run(argv, check=False, timeout=60).stdout.decode(errors="replace").strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


# ------------------------------------------------------------------ processes

def proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z", "X")


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")


def wait_gone(pid: int, timeout: float = 30.0) -> None:
    """Returns once `pid` has exited: its pidfd becomes readable when the
    whole thread group is gone (not merely the main thread), no polling."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise TimeoutError(f"process {pid} is still alive after {timeout} s")
    finally:
        os.close(fd)


def stop_pid(pid: int | None, secs: float = 5) -> None:
    """TERM, then KILL after `secs` seconds."""
    if not pid or not alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid, secs)
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 10)
    except ProcessLookupError:
        pass


def mem_detail(pid: int) -> dict[str, int]:
    """VmRSS and its anonymous / file-backed parts, and PSS (KiB)."""
    res = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            res[k] = int(v.split()[0])
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                res["Pss"] = int(line.split()[1])
    except OSError:
        pass
    return res


def reaped(main) -> int:
    """Runs main() in a child while this process, a child subreaper, reaps
    every orphan: PID 1 in some containers (the machine these benchmarks
    were first run on) never reaps, and a daemonized QEMU left a zombie still
    answers kill(pid, 0), so libvirt would wait for its own timeout."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log("warning: prctl(PR_SET_CHILD_SUBREAPER) failed")
    child = os.fork()
    if child == 0:
        code = 1
        try:
            code = main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(s, forward)
    status = 0
    while True:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            status = os.waitstatus_to_exitcode(st)
            status = 128 - status if status < 0 else status
            break
    while True:  # zombies already there
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    return status


# ------------------------------------------------------------------ the run

def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


class Host:
    """One suite's run: a temporary directory, and an undo list for
    everything made on the host (LIFO), run on exit, also on failure or
    a signal. Whatever QEMU names the directory is killed at the end."""

    def __init__(self, suite: str, logs: Path | None = None):
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, _terminate)
        self.suite = suite
        self.tmp = Path(tempfile.mkdtemp(prefix=f"fvbench-{suite}."))
        self.logs = logs
        self.undo: list = []
        self.final: list = []  # after every QEMU of the run is gone
        self.namespaces: list[str] = []
        self.t0 = time.time()

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *_exc) -> None:
        self.cleanup()

    def later(self, fn, *args) -> None:
        self.undo.append((fn, args))

    def cleanup(self) -> None:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # (a second Ctrl-C must not cut it short)
            signal.signal(s, signal.SIG_IGN)
        log(f"{self.suite}: cleaning up")
        while self.undo:
            fn, args = self.undo.pop()
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001
                log(f"cleanup: {getattr(fn, '__name__', fn)}: {e}")
        pids = [int(p) for p in out(["pgrep", "^qemu-system"]).split()]
        ours = [p for p in pids if str(self.tmp) in " ".join(_safe_cmdline(p))]
        for pid in ours:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for ns in self.namespaces:
            for pid in out(["ip", "netns", "pids", ns]).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        for pid in ours:
            try:
                wait_gone(pid, 5)
            except TimeoutError:
                pass
        for ns in self.namespaces:
            run(["ip", "netns", "del", ns], check=False)
        for fn in self.final:
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                log(f"cleanup: {e}")
        if self.logs is not None:
            shutil.rmtree(self.logs, ignore_errors=True)
            self.logs.mkdir(parents=True, exist_ok=True)
            for f in list(self.tmp.glob("*/*.log")) + list(self.tmp.glob("*/libvirtd.out")) \
                    + list(self.tmp.glob("*.log")):
                if f.is_file() and f.stat().st_size:
                    shutil.copy(f, self.logs / (f.name if f.parent == self.tmp else f"{f.parent.name}-{f.name}"))
        shutil.rmtree(self.tmp, ignore_errors=True)
        log(f"{self.suite}: done, {time.time() - self.t0:.0f} s in all"
            + (f"; daemon logs in {self.logs}" if self.logs else ""))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, _terminate)

    def netns(self, tag: str) -> str:
        """A new network namespace with its loopback up."""
        name = f"fvb-{tag}-{os.getpid()}"
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def veth(self, ns_a: str, ip_a: str, ns_b: str, ip_b: str, prefix: str) -> None:
        """Joins two namespaces by a veth pair, addresses ip_a and ip_b /24."""
        a, b = f"{prefix}-a", f"{prefix}-b"
        run(["ip", "-n", ns_a, "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns_b])
        for ns, dev, ip in ((ns_a, a, ip_a), (ns_b, b, ip_b)):
            run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev])
            run(["ip", "-n", ns, "link", "set", dev, "up"])

    def spawn(self, argv: list[str], logfile: Path, ns: str | None = None,
              env: dict | None = None, secs: float = 5) -> subprocess.Popen:
        """A daemon (in network namespace `ns`), stopped on cleanup."""
        full = (["ip", "netns", "exec", ns] if ns else []) + argv
        with open(logfile, "ab") as f:
            p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                 env=env)
        self.later(stop_pid, p.pid, secs)
        return p

    def links(self) -> str:
        return " ".join(sorted(ln.split(": ")[1] for ln in out(["ip", "-o", "link", "show"])
                               .splitlines() if ": " in ln))


def _safe_cmdline(pid: int) -> list[str]:
    try:
        return cmdline(pid)
    except OSError:
        return []


def require(tools: list[str], hint: str = "") -> None:
    if os.geteuid() != 0:
        raise SystemExit("fvbench: run as root (network and mount namespaces, libvirt's system driver)")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"fvbench: {', '.join(missing)} not found"
                         + (f" ({hint})" if hint else ""))


# ------------------------------------------------------------------ binaries

def stale(binary: Path) -> bool:
    """Is a source file of the workspace newer than `binary`?"""
    t = binary.stat().st_mtime
    return any(p.stat().st_mtime > t for p in (ROOT / "crates").rglob("*.rs"))


@dataclass
class Binaries:
    dir: Path
    profile: str
    stale: bool
    guest: dict  # ferrovirt-test-guest's JSON: kernel, initrd, cmdline

    @property
    def ferrovirtd(self) -> Path:
        return self.dir / "ferrovirtd"

    @property
    def cli(self) -> Path:
        return self.dir / "ferrovirt"

    def meta(self) -> dict:
        commit = out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown"
        if out(["git", "-C", str(ROOT), "status", "--porcelain", "--", "crates"]):
            commit += "+dirty"
        mtime = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.ferrovirtd.stat().st_mtime))
        return {"profile": self.profile, "ferrovirt_commit": commit,
                "ferrovirtd_binary": str(self.ferrovirtd), "ferrovirtd_binary_mtime": mtime,
                "ferrovirtd_binary_stale": self.stale}


def binaries(profile: str | None, build: bool) -> Binaries:
    """The ferrovirtd and ferrovirt to measure: `profile`, else release when
    built and up to date, else debug; and the test guest."""
    if build:
        log("cargo build --release -p ferrovirtd -p ferrovirt")
        subprocess.run(["cargo", "build", "--release", "-p", "ferrovirtd", "-p", "ferrovirt"],
                       cwd=ROOT, check=True)
    built = [p for p in ([profile] if profile else ["release", "debug"])
             if (ROOT / "target" / p / "ferrovirtd").exists() and (ROOT / "target" / p / "ferrovirt").exists()]
    if not built:
        raise SystemExit(f"fvbench: no ferrovirtd and ferrovirt in target/{profile or 'release or debug'}:"
                         " cargo build -p ferrovirtd -p ferrovirt (--release for figures to quote)")
    fresh = [p for p in built if not stale(ROOT / "target" / p / "ferrovirtd")]
    chosen = (fresh or built)[0]
    d = ROOT / "target" / chosen
    if not fresh:
        log(f"warning: target/{chosen}/ferrovirtd is older than the sources (--build to rebuild)")
    if chosen != "release":
        log("warning: measuring the debug build (--build for release figures)")
    guest_bin = next((ROOT / "target" / p / "ferrovirt-test-guest" for p in ("debug", "release")
                      if (ROOT / "target" / p / "ferrovirt-test-guest").exists()), None)
    if guest_bin is None:
        log("building ferrovirt-test-guest")
        subprocess.run(["cargo", "build", "-p", "ferrovirt-testkit", "--bin", "ferrovirt-test-guest"],
                       cwd=ROOT, check=True)
        guest_bin = ROOT / "target" / "debug" / "ferrovirt-test-guest"
    guest = json.loads(run([str(guest_bin)]).stdout)
    if not Path(guest["kernel"]).exists():
        raise SystemExit(f"fvbench: the test guest's kernel {guest['kernel']} is missing")
    return Binaries(d, chosen, not fresh, guest)


def qemu_binary() -> str:
    q = shutil.which("qemu-system-x86_64")
    if q is None:
        raise SystemExit("fvbench: qemu-system-x86_64 not found (scripts/install-deps.sh installs it)")
    return q


def prewarm(*files: str) -> None:
    """Reads binaries and their libraries, so that every daemon starts from
    the same, warm page cache (the file-backed part of VmRSS depends on it)."""
    for f in files:
        if not Path(f).exists():
            continue
        Path(f).read_bytes()
        for m in re.finditer(r"=> (/\S+)", out(["ldd", f])):
            try:
                Path(m.group(1)).read_bytes()
            except OSError:
                pass


# ------------------------------------------------------------------ ferrovirtd

@dataclass
class Ferrovirtd:
    pid: int
    sock: str
    state: Path
    run_dir: Path
    log: Path


def api_up(sock: str) -> bool:
    import socket
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(sock)
        s.sendall(b"GET /1.0 HTTP/1.0\r\nHost: x\r\n\r\n")
        ok = s.recv(64).split()[1:2] == [b"200"]
        s.close()
        return ok
    except (OSError, IndexError):
        return False


def start_ferrovirtd(h: Host, b: Binaries, qemu: str, ns: str, tag: str,
                     extra: list[str] = ()) -> Ferrovirtd:
    """A private ferrovirtd in network namespace `ns` (no default network),
    its files under TMP/TAG; waits until GET /1.0 answers 200."""
    d = h.tmp / tag
    (d / "state").mkdir(parents=True)
    (d / "run").mkdir()
    sock = str(d / "api.sock")
    logf = d / "ferrovirtd.log"
    argv = [str(b.ferrovirtd), "--socket", sock, "--state-dir", str(d / "state"),
            "--runtime-dir", str(d / "run"), "--qemu", qemu, "--no-default-network", *extra]
    p = h.spawn(argv, logf, ns)
    for _ in range(300):
        if api_up(sock):
            break
        if p.poll() is not None:
            raise RuntimeError(f"ferrovirtd {tag} exited: {logf.read_text()[-500:]}")
        time.sleep(0.1)
    else:
        raise RuntimeError(f"ferrovirtd {tag} did not answer on {sock} within 30 s")
    return Ferrovirtd(p.pid, sock, d / "state", d / "run", logf)


# ------------------------------------------------------------------ libvirt

def lv_installed() -> bool:
    return bool(shutil.which("libvirtd") and shutil.which("virsh")) \
        and (LV_DRIVERS / "connection-driver" / "libvirt_driver_qemu.so").exists()


def lv_version() -> str:
    return out(["libvirtd", "--version"]).split()[-1] if shutil.which("libvirtd") else ""


def apt(h: Host, *args: str) -> bool:
    with open(h.tmp / "apt.log", "ab") as f:
        return subprocess.run(["apt-get", *args], stdin=subprocess.DEVNULL, stdout=f,
                              stderr=subprocess.STDOUT, cwd=h.tmp,
                              env=dict(os.environ, DEBIAN_FRONTEND="noninteractive")).returncode == 0


def apt_tail(h: Host) -> str:
    try:
        return " ".join((h.tmp / "apt.log").read_text(errors="replace").splitlines()[-3:])
    except OSError:
        return ""


def ensure_libvirt(h: Host, install: bool) -> None:
    """libvirtd, its QEMU driver and virsh (and, optionally, python3-libvirt)
    from Debian, bookworm-backports when available. Raises Skip."""
    if lv_installed():
        return
    if not install:
        raise Skip("libvirt is not installed (--no-install)")
    if shutil.which("apt-get") is None:
        raise Skip("libvirt is not installed and there is no apt-get")
    log("installing libvirt (Debian packages)")
    apt(h, "update", "-qq")
    target = ["-t", "bookworm-backports"] if "bookworm-backports" in out(
        ["apt-cache", "policy", "libvirt-daemon"]) else []
    if not apt(h, "install", "-y", "-qq", "--no-install-recommends", *target,
               "libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients"):
        raise Skip(f"apt-get install of libvirt failed: {apt_tail(h)}")
    apt(h, "install", "-y", "-qq", "--no-install-recommends", "python3-libvirt")
    if not lv_installed():
        raise Skip("libvirtd not found after installing")


def lv_unpack(h: Host, pkg: str, install: bool) -> Path:
    """The root of PACKAGE's files for this run's libvirtd only: / when it is
    installed, else its .deb of the installed libvirt's version, downloaded
    (not installed) and unpacked under TMP/pkg. Raises Skip."""
    if "install ok installed" in out(["dpkg-query", "-W", "-f=${Status}", pkg]):
        return Path("/")
    if not install:
        raise Skip(f"{pkg} is not installed (--no-install)")
    ver = out(["dpkg-query", "-W", "-f=${Version}", "libvirt-daemon"])
    if not ver:
        raise Skip("cannot tell the installed libvirt's version")
    d = h.tmp / "pkg" / pkg
    d.mkdir(parents=True, exist_ok=True)
    if not apt(h, "download", f"{pkg}={ver}"):
        apt(h, "update", "-qq")
        if not apt(h, "download", f"{pkg}={ver}"):
            raise Skip(f"apt-get download {pkg}={ver} failed: {apt_tail(h)}")
    deb = next(h.tmp.glob(f"{pkg}_*.deb"))
    run(["dpkg-deb", "-x", str(deb), str(d)])
    return d


# Runs inside `ip netns exec NS unshare --mount --propagation private`: gives
# libvirtd its own /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt,
# /var/log/libvirt and /run/libvirt (bind mounts of LVDIR's, seen only in
# this mount namespace, by libvirtd and what it starts), LVDIR/drivers,
# storage-backend and libexec when present, then becomes libvirtd. When the
# host has no /run/libvirt, the namespace gets a /run of its own (a tmpfs):
# creating it on the host would race with other runs that remove it.
LIBVIRTD_NS = r"""
set -euo pipefail
LV=$1
mount --bind "$LV/etc" /etc/libvirt
mount --bind "$LV/lib" /var/lib/libvirt
mount --bind "$LV/cache" /var/cache/libvirt
mount --bind "$LV/log" /var/log/libvirt
if [[ ! -d /run/libvirt ]]; then
  mount -t tmpfs -o mode=0755 fvbench-run /run
  mkdir /run/libvirt
fi
mount --bind "$LV/run" /run/libvirt
if [[ -d "$LV/libexec" ]]; then
  mkdir -p /usr/lib/libvirt 2>/dev/null || true
  mount --bind "$LV/libexec" /usr/lib/libvirt
fi
[[ -d "$LV/drivers" ]] && export LIBVIRT_DRIVER_DIR="$LV/drivers"
[[ -d "$LV/storage-backend" ]] && export LIBVIRT_STORAGE_BACKEND_DIR="$LV/storage-backend"
exec /usr/sbin/libvirtd -f /etc/libvirt/libvirtd.conf -p "$LV/libvirtd.pid"
"""


@dataclass
class Libvirtd:
    pid: int
    uri: str
    dir: Path


def start_libvirtd(h: Host, ns: str, tag: str, conf: str = "", qemu_conf: str = "",
                   drivers: dict[str, Path] | None = None, network: Path | None = None,
                   storage: Path | None = None, etc: dict[str, str] | None = None) -> Libvirtd:
    """A private libvirtd in network namespace `ns` and a private mount
    namespace, its files under TMP/TAG: sockets without authentication
    (0700, root only), QEMU as root like Ferrovirt's and its stdio to a file
    (no virtlogd). `drivers`: connection drivers NAME -> unpacked package
    root, loaded next to the system's QEMU driver; `network`: the package
    root of the network driver's helpers; `storage`: that of the dir/fs
    storage backend; `etc`: more files for /etc/libvirt. Waits until virsh
    answers; raises Skip."""
    lv = h.tmp / tag
    for d in ("etc/qemu", "lib", "cache", "log", "run", "sock"):
        (lv / d).mkdir(parents=True, exist_ok=True)
    (lv / "etc" / "libvirtd.conf").write_text(
        f'unix_sock_dir = "{lv}/sock"\nunix_sock_rw_perms = "0700"\nunix_sock_ro_perms = "0700"\n'
        f'auth_unix_ro = "none"\nauth_unix_rw = "none"\nlog_outputs = "3:file:{lv}/libvirtd.log"\n'
        + conf)
    (lv / "etc" / "qemu.conf").write_text(
        'user = "root"\ngroup = "root"\nstdio_handler = "file"\n' + qemu_conf)
    for name, text in (etc or {}).items():
        (lv / "etc" / name).write_text(text)
    if drivers:
        (lv / "drivers").mkdir()
        (lv / "drivers" / "libvirt_driver_qemu.so").symlink_to(
            LV_DRIVERS / "connection-driver" / "libvirt_driver_qemu.so")
        for name, root in drivers.items():
            so = f"libvirt_driver_{name}.so"
            (lv / "drivers" / so).symlink_to(root / str(LV_DRIVERS / "connection-driver" / so)[1:])
    if network is not None:
        shutil.copytree("/usr/lib/libvirt", lv / "libexec", symlinks=True, dirs_exist_ok=True) \
            if Path("/usr/lib/libvirt").is_dir() else (lv / "libexec").mkdir()
        shutil.copy(network / "usr/lib/libvirt/libvirt_leaseshelper", lv / "libexec")
    if storage is not None:
        (lv / "storage-backend").mkdir()
        so = "libvirt_storage_backend_fs.so"
        (lv / "storage-backend" / so).symlink_to(storage / str(LV_DRIVERS / "storage-backend" / so)[1:])
    uri = f"qemu:///system?socket={lv}/sock/libvirt-sock"
    p = h.spawn(["unshare", "--mount", "--propagation", "private", "bash", "-c", LIBVIRTD_NS,
                 "libvirtd-ns", str(lv)], lv / "libvirtd.out", ns, secs=10)

    def destroy_all() -> None:
        for what, lst, kill in (("domains", "list", "destroy"), ("networks", "net-list", "net-destroy")):
            for name in out(["timeout", "20", "virsh", "-q", "-c", uri, lst, "--name"]).split():
                out(["timeout", "20", "virsh", "-q", "-c", uri, kill, name])
    h.later(destroy_all)
    had = set(Path("/sys/fs/cgroup").glob("machine")) | \
        set(Path("/sys/fs/cgroup").glob("*/machine"))

    def cgroups() -> None:  # libvirt's cgroups of this run's domains (empty ones only)
        for m in list(Path("/sys/fs/cgroup").glob("machine")) + list(Path("/sys/fs/cgroup").glob("*/machine")):
            for d in sorted(m.rglob("*libvirt-qemu*"), key=lambda x: -len(str(x))):
                try:
                    d.rmdir()
                except OSError:
                    pass
            if m not in had:
                try:
                    m.rmdir()
                except OSError:
                    pass
    h.final.append(cgroups)
    for _ in range(600):
        if run(["virsh", "-q", "-c", uri, "version"], check=False).returncode == 0:
            break
        if p.poll() is not None:
            tail = " ".join(f.read_text(errors="replace")[-300:] for f in
                            (lv / "libvirtd.out", lv / "libvirtd.log") if f.exists())
            raise Skip(f"libvirtd exited at start-up: {tail}")
        time.sleep(0.1)
    else:
        raise Skip("libvirtd did not answer within 60 s")
    if comm(p.pid) != "libvirtd":
        raise Skip("unexpected process behind libvirtd's PID")
    return Libvirtd(p.pid, uri, lv)
