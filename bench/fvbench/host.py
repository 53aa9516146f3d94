"""The host side of every suite: processes, the temporary directory and all
a run makes (namespaces, veths, mounts, daemons; removed on exit), the
binaries and the test guest, libvirt (installed or unpacked when missing)
and private ferrovirtd and libvirtd daemons, each in a network namespace."""
from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import namedtuple
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LV_DRIVERS = Path("/usr/lib/x86_64-linux-gnu/libvirt")
QUIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Skip(Exception):
    """A part of the run (libvirt, a driver) cannot be measured; the reason."""


def log(msg: str) -> None:
    print(f"[fvbench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(argv: list[str], check: bool = True, timeout: float = 900, env: dict | None = None):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=env)
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


def quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001
        log(f"cleanup: {getattr(fn, '__name__', fn)}: {e}")


# ------------------------------------------------------------------ processes

def proc(pid: int, name: str) -> str:
    """/proc/PID/NAME, or '' once the process is gone."""
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    stat = proc(pid, "stat").rsplit(")", 1)
    return len(stat) == 2 and stat[1].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    argv = proc(pid, "cmdline").rstrip("\0")
    return argv.split("\0") if argv else []


def kill(pid, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(int(pid), sig)
    except (ProcessLookupError, ValueError):
        pass


def wait_gone(pid: int, timeout: float = 30.0) -> None:
    """Once `pid` has exited: its pidfd is readable when all its threads are."""
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
    if pid and alive(pid):
        kill(pid, signal.SIGTERM)
        try:
            wait_gone(pid, secs)
        except TimeoutError:
            kill(pid)
            wait_gone(pid, 10)


def reaped(main) -> int:
    """main() in a child while this process, a subreaper (prctl 36), reaps orphans: PID 1
    in some containers never does, and libvirt waits on a zombie QEMU."""
    if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:
        log("warning: prctl(PR_SET_CHILD_SUBREAPER) failed")
    child = os.fork()
    if child == 0:
        code = 1
        try:
            code = main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - shown, then the exit code says it
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    for s in (signal.SIGINT, signal.SIGQUIT, *QUIT_SIGNALS):
        signal.signal(s, lambda signum, _f: kill(child, signum))
    while True:  # every orphan reaped, until the child exits
        pid, st = os.wait()
        if pid == child:
            code = os.waitstatus_to_exitcode(st)
            break
    try:
        while os.waitpid(-1, os.WNOHANG)[0] != 0:  # zombies already there
            pass
    except ChildProcessError:
        pass
    return 128 - code if code < 0 else code


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


class Host:
    """One suite's run: a temporary directory, and an undo list for
    everything made on the host (LIFO), run on exit, also on failure or a
    signal. Whatever QEMU names the directory is killed at the end."""

    def __init__(self, suite: str, logs: Path | None = None):
        for s in QUIT_SIGNALS:
            signal.signal(s, _terminate)
        self.suite, self.logs = suite, logs
        self.tmp = Path(tempfile.mkdtemp(prefix=f"fvbench-{suite}."))
        self.undo: list = []
        self.final: list = []  # after every QEMU of the run is gone
        self.namespaces: list[str] = []
        self.t0 = time.time()

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *_exc) -> None:
        for s in (signal.SIGINT, *QUIT_SIGNALS):  # a second Ctrl-C must not cut the clean-up short
            signal.signal(s, signal.SIG_IGN)
        log(f"{self.suite}: cleaning up")
        while self.undo:
            quietly(*self.undo.pop())
        ours = [p for p in map(int, out(["pgrep", "^qemu-system"]).split()) if str(self.tmp) in " ".join(cmdline(p))]
        for pid in ours + [p for ns in self.namespaces for p in out(["ip", "netns", "pids", ns]).split()]:
            kill(pid)
        for pid in ours:
            try:
                wait_gone(pid, 5)
            except TimeoutError:
                pass
        for ns in self.namespaces:
            run(["ip", "netns", "del", ns], check=False)
        for fn in self.final:
            quietly(fn)
        if self.logs is not None:
            shutil.rmtree(self.logs, ignore_errors=True)
            self.logs.mkdir(parents=True, exist_ok=True)
            for f in [*self.tmp.glob("*/*.log"), *self.tmp.glob("*/libvirtd.out"), *self.tmp.glob("*.log")]:
                if f.is_file() and f.stat().st_size:
                    shutil.copy(f, self.logs / (f.name if f.parent == self.tmp else f"{f.parent.name}-{f.name}"))
        shutil.rmtree(self.tmp, ignore_errors=True)
        log(f"{self.suite}: done, {time.time() - self.t0:.0f} s in all"
            + (f"; daemon logs in {self.logs}" if self.logs else ""))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for s in QUIT_SIGNALS:
            signal.signal(s, _terminate)

    def later(self, fn, *args) -> None:
        self.undo.append((fn, *args))

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

    def spawn(self, argv: list[str], logfile: Path, ns: str | None = None, secs: float = 5) -> subprocess.Popen:
        """A daemon (in network namespace `ns`), stopped on cleanup."""
        with open(logfile, "ab") as f:
            p = subprocess.Popen((["ip", "netns", "exec", ns] if ns else []) + argv, stdin=subprocess.DEVNULL,
                                 stdout=f, stderr=subprocess.STDOUT)
        self.later(stop_pid, p.pid, secs)
        return p

    def links(self) -> str:
        return " ".join(sorted(ln.split(": ")[1] for ln in out(["ip", "-o", "link", "show"]).splitlines()
                               if ": " in ln))


def require(tools: list[str], hint: str = "") -> None:
    if os.geteuid() != 0:
        raise SystemExit("fvbench: run as root (network and mount namespaces, libvirt's system driver)")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"fvbench: {', '.join(missing)} not found" + (f" ({hint})" if hint else ""))


# ------------------------------------------------------------------ binaries

class Binaries:
    """ferrovirtd, ferrovirt, QEMU and the test guest's boot files; `meta`:
    what the report says of them (stale None: --bin-dir)."""

    def __init__(self, d: Path, profile: str, stale: bool | None, guest: dict, qemu: str):
        self.ferrovirtd, self.cli, self.guest, self.qemu = d / "ferrovirtd", d / "ferrovirt", guest, qemu
        commit = out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown"
        if out(["git", "-C", str(ROOT), "status", "--porcelain", "--", "crates"]):
            commit += "+dirty"
        self.meta = {"profile": profile, "ferrovirt_commit": commit, "bin_dir": None if stale is not None else str(d),
                     "ferrovirtd_binary_stale": stale}
        for key, p in (("ferrovirtd", self.ferrovirtd), ("ferrovirt_cli", self.cli)):
            self.meta[f"{key}_binary"] = str(p)
            self.meta[f"{key}_binary_mtime"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(p.stat().st_mtime))
            self.meta[f"{key}_version"] = out([str(p), "--version"])


def binaries(profile: str | None, build: bool, bin_dir: str | None = None) -> Binaries:
    """The ferrovirtd and ferrovirt to measure: from `bin_dir`, else of
    `profile`, else release when built and up to date, else debug; QEMU; and
    the test guest (FVBENCH_GUEST_BIN, else target/{debug,release})."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise SystemExit("fvbench: qemu-system-x86_64 not found (scripts/install-deps.sh installs it)")
    if build:
        log("cargo build --release -p ferrovirtd -p ferrovirt")
        subprocess.run(["cargo", "build", "--release", "-p", "ferrovirtd", "-p", "ferrovirt"], cwd=ROOT, check=True)
    has = lambda d: (d / "ferrovirtd").is_file() and (d / "ferrovirt").is_file()  # noqa: E731
    if bin_dir:
        d = Path(bin_dir).resolve()
        if not has(d):
            raise SystemExit(f"fvbench: --bin-dir {bin_dir}: no ferrovirtd and ferrovirt there")
        chosen, stale = d.name if d.name in ("release", "debug") else "custom", None
    else:
        built = [p for p in ([profile] if profile else ["release", "debug"]) if has(ROOT / "target" / p)]
        if not built:
            raise SystemExit(f"fvbench: no ferrovirtd and ferrovirt in target/{profile or 'release or debug'}:"
                             " cargo build -p ferrovirtd -p ferrovirt (--release for figures to quote), or --bin-dir")
        srcs = max((p.stat().st_mtime for p in (ROOT / "crates").rglob("*.rs")), default=0)
        fresh = [p for p in built if (ROOT / "target" / p / "ferrovirtd").stat().st_mtime >= srcs]
        chosen, stale = (fresh or built)[0], not fresh
        d = ROOT / "target" / chosen
        if stale:
            log(f"warning: target/{chosen}/ferrovirtd is older than the sources (--build to rebuild)")
    if chosen != "release":
        log(f"warning: measuring a {chosen} build (--build for release figures)")
    guest_bin = os.environ.get("FVBENCH_GUEST_BIN") or next(
        (str(ROOT / "target" / p / "ferrovirt-test-guest") for p in ("debug", "release")
         if (ROOT / "target" / p / "ferrovirt-test-guest").exists()), None)
    if guest_bin is None:
        log("building ferrovirt-test-guest")
        subprocess.run(["cargo", "build", "-p", "ferrovirt-testkit", "--bin", "ferrovirt-test-guest"],
                       cwd=ROOT, check=True)
        guest_bin = str(ROOT / "target" / "debug" / "ferrovirt-test-guest")
    guest = json.loads(run([guest_bin]).stdout)
    if not Path(guest["kernel"]).exists():
        raise SystemExit(f"fvbench: the test guest's kernel {guest['kernel']} is missing")
    return Binaries(d, chosen, stale, guest, qemu)


# ------------------------------------------------------------------ libvirt

def lv_installed() -> bool:
    return bool(shutil.which("libvirtd") and shutil.which("virsh")) \
        and (LV_DRIVERS / "connection-driver" / "libvirt_driver_qemu.so").exists()


def apt(h: Host, *args: str, skip: str = "") -> bool:
    """apt-get ARGS; on failure, with `skip`, raises Skip(skip: log's end)."""
    with open(h.tmp / "apt.log", "ab") as f:
        ok = subprocess.run(["apt-get", *args], stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                            cwd=h.tmp, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive")).returncode == 0
    if not ok and skip:
        raise Skip(f"{skip}: {' '.join((h.tmp / 'apt.log').read_text(errors='replace').splitlines()[-3:])}")
    return ok


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
    apt(h, "install", "-y", "-qq", "--no-install-recommends", *target, "libvirt-daemon",
        "libvirt-daemon-driver-qemu", "libvirt-clients", skip="apt-get install of libvirt failed")
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
        apt(h, "download", f"{pkg}={ver}", skip=f"apt-get download {pkg}={ver} failed")
    run(["dpkg-deb", "-x", str(next(h.tmp.glob(f"{pkg}_*.deb"))), str(d)])
    return d


# Run in `unshare --mount`: libvirtd's own /etc/libvirt, /var/{lib,cache,log}/libvirt,
# /run/libvirt (a private /run when the host has none), drivers and helpers.
LIBVIRTD_NS = r"""
set -euo pipefail
LV=$1
for d in etc:/etc/libvirt lib:/var/lib/libvirt cache:/var/cache/libvirt log:/var/log/libvirt; do
  mount --bind "$LV/${d%%:*}" "${d#*:}"
done
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


Libvirtd = namedtuple("Libvirtd", "pid uri dir")


def machine_cgroups() -> list[Path]:
    return [*Path("/sys/fs/cgroup").glob("machine"), *Path("/sys/fs/cgroup").glob("*/machine")]


def start_libvirtd(h: Host, ns: str, tag: str, conf: str = "", qemu_conf: str = "",
                   drivers: dict[str, Path] | None = None, network: Path | None = None,
                   storage: Path | None = None, etc: dict[str, str] | None = None) -> Libvirtd:
    """A private libvirtd in network namespace `ns` and a mount namespace,
    files under TMP/TAG, root-only sockets without auth, QEMU as root with
    stdio to a file. `drivers` (NAME -> package root), `network`, `storage`:
    unpacked drivers to load; `etc`: more /etc/libvirt files. Raises Skip."""
    lv = h.tmp / tag
    for d in ("etc/qemu", "lib", "cache", "log", "run", "sock"):
        (lv / d).mkdir(parents=True, exist_ok=True)
    (lv / "etc" / "libvirtd.conf").write_text(
        f'unix_sock_dir = "{lv}/sock"\nunix_sock_rw_perms = "0700"\nunix_sock_ro_perms = "0700"\n'
        f'auth_unix_ro = "none"\nauth_unix_rw = "none"\nlog_outputs = "3:file:{lv}/libvirtd.log"\n' + conf)
    (lv / "etc" / "qemu.conf").write_text('user = "root"\ngroup = "root"\nstdio_handler = "file"\n' + qemu_conf)
    for name, text in (etc or {}).items():
        (lv / "etc" / name).write_text(text)
    so_of = lambda root, kind, so: root / str(LV_DRIVERS / kind / so)[1:]  # noqa: E731
    if drivers:
        (lv / "drivers").mkdir()
        for name, root in {"qemu": Path("/"), **drivers}.items():
            so = f"libvirt_driver_{name}.so"
            (lv / "drivers" / so).symlink_to(so_of(root, "connection-driver", so))
    if network is not None:
        if Path("/usr/lib/libvirt").is_dir():
            shutil.copytree("/usr/lib/libvirt", lv / "libexec", symlinks=True, dirs_exist_ok=True)
        else:
            (lv / "libexec").mkdir()
        shutil.copy(network / "usr/lib/libvirt/libvirt_leaseshelper", lv / "libexec")
    if storage is not None:
        (lv / "storage-backend").mkdir()
        so = "libvirt_storage_backend_fs.so"
        (lv / "storage-backend" / so).symlink_to(so_of(storage, "storage-backend", so))
    uri = f"qemu:///system?socket={lv}/sock/libvirt-sock"
    p = h.spawn(["unshare", "--mount", "--propagation", "private", "bash", "-c", LIBVIRTD_NS,
                 "libvirtd-ns", str(lv)], lv / "libvirtd.out", ns, secs=10)

    def destroy_all() -> None:
        for lst, kill in (("list", "destroy"), ("net-list", "net-destroy")):
            for name in out(["timeout", "20", "virsh", "-q", "-c", uri, lst, "--name"]).split():
                out(["timeout", "20", "virsh", "-q", "-c", uri, kill, name])
    h.later(destroy_all)
    had = set(machine_cgroups())

    def cgroups() -> None:  # libvirt's cgroups of this run's domains (empty ones only)
        for m in machine_cgroups():
            for d in [*sorted(m.rglob("*libvirt-qemu*"), key=lambda x: -len(str(x))), *([m] if m not in had else [])]:
                try:
                    d.rmdir()
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
    if proc(p.pid, "comm").strip() != "libvirtd":
        raise Skip("unexpected process behind libvirtd's PID")
    return Libvirtd(p.pid, uri, lv)
