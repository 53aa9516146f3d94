#!/usr/bin/env bash
# Ferrovirt vs libvirt vs raw QEMU, on the same QEMU and the same guest, in one
# run. See docs/benchmarks.md for what each figure means.
#
#   bench/run.sh            full run: N=10, 1000 defined instances, 10 running
#   bench/run.sh --quick    CI smoke run: N=2, 50 defined instances, 3 running
#
# Options:
#   --runs N         runs per latency figure (default 10)
#   --instances M    instances defined for the list test (default 1000)
#   --running R      instances running for the memory figure (default 10)
#   --profile P      release (default when built) or debug
#   --build          cargo build --release -p ferrovirtd -p ferrovirt first
#   --no-libvirt     measure Ferrovirt and the floor only
#   --no-graceful    skip the graceful-stop figures
#   --no-install     never run apt-get (libvirt is skipped if missing)
#   --results DIR    where latest.md / latest.json go (default bench/results,
#                    bench/results/quick for --quick, which git ignores)
#
# Needs root (libvirt's qemu:///system driver, a private mount namespace).
# Installs libvirt from Debian (bookworm-backports when available) if absent.
# Everything it starts (daemons, VMs, temp dirs, libvirt's cgroups) is removed
# on exit, including on failure or Ctrl-C.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

# System Python first: Debian's python3-libvirt is importable there.
PY=python3
if [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3; fi

# Run under a child subreaper, so daemonized QEMUs that exit are reaped even
# where PID 1 does not reap orphans (see lib/reaper.py).
if [[ -z "${FV_BENCH_REAPED:-}" ]]; then
  export FV_BENCH_REAPED=1
  exec "$PY" "$HERE/lib/reaper.py" bash "$0" "$@"
fi

RUNS=10 INSTANCES=1000 RUNNING=10 PROFILE="" BUILD=0 LIBVIRT=1 GRACEFUL=1 INSTALL=1 QUICK=0
RESULTS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 RUNS=2 INSTANCES=50 RUNNING=3 ;;
    --runs) RUNS=$2; shift ;;
    --instances) INSTANCES=$2; shift ;;
    --running) RUNNING=$2; shift ;;
    --profile) PROFILE=$2; shift ;;
    --build) BUILD=1 ;;
    --no-libvirt) LIBVIRT=0 ;;
    --no-graceful) GRACEFUL=0 ;;
    --no-install) INSTALL=0 ;;
    --results) RESULTS=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# A --quick run (CI) must not overwrite the figures of the last full run.
if [[ -z "$RESULTS" ]]; then
  if [[ $QUICK -eq 1 ]]; then RESULTS="$HERE/results/quick"; else RESULTS="$HERE/results"; fi
fi

say() { printf '[run.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (libvirt's system driver and a mount namespace need it)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (scripts/install-deps.sh installs it)"
QEMU=$(command -v qemu-system-x86_64)
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "$PY is older than 3.9"
BENCH_T0=$(date +%s)

# ---------------------------------------------------------------- binaries
if [[ $BUILD -eq 1 ]]; then
  say "cargo build --release -p ferrovirtd -p ferrovirt"
  (cd "$ROOT" && cargo build --release -p ferrovirtd -p ferrovirt)
fi
if [[ -z "$PROFILE" ]]; then
  if [[ -x "$ROOT/target/release/ferrovirtd" && -x "$ROOT/target/release/ferrovirt" ]]; then
    PROFILE=release
  else
    PROFILE=debug
    say "warning: no release build, measuring the debug build (use --build for release figures)"
  fi
fi
BIN="$ROOT/target/$PROFILE"
for b in ferrovirtd ferrovirt; do
  [[ -x "$BIN/$b" ]] || die "$BIN/$b missing: cargo build $([[ $PROFILE == release ]] && echo --release) -p ferrovirtd -p ferrovirt"
done
GUEST_BIN=""
for p in debug release; do
  [[ -x "$ROOT/target/$p/ferrovirt-test-guest" ]] && { GUEST_BIN="$ROOT/target/$p/ferrovirt-test-guest"; break; }
done
if [[ -z "$GUEST_BIN" ]]; then
  say "building ferrovirt-test-guest"
  (cd "$ROOT" && cargo build -p ferrovirt-testkit --bin ferrovirt-test-guest)
  GUEST_BIN="$ROOT/target/debug/ferrovirt-test-guest"
fi

# ---------------------------------------------------------------- libvirt
LV_SKIP_REASON=""
install_libvirt() {
  command -v apt-get >/dev/null || { LV_SKIP_REASON="libvirt is not installed and there is no apt-get"; return; }
  say "installing libvirt (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  local target=()
  if apt-cache policy libvirt-daemon 2>/dev/null | grep -q bookworm-backports; then
    target=(-t bookworm-backports)
  fi
  # The monolithic libvirtd, its QEMU driver and virsh: no network, storage
  # or nodedev drivers, no systemd units needed.
  if ! apt-get install -y -qq --no-install-recommends "${target[@]}" \
      libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients >"$T/apt.log" 2>&1; then
    LV_SKIP_REASON="apt-get install of libvirt failed: $(tail -n 3 "$T/apt.log" | tr '\n' ' ')"
    return
  fi
  # Optional: the Python binding, for the API-level rows.
  apt-get install -y -qq --no-install-recommends python3-libvirt >>"$T/apt.log" 2>&1 || true
}

# ---------------------------------------------------------------- cleanup
T=$(mktemp -d /tmp/fvbench.XXXXXX)
FV_PID="" LV_PID="" LV_URI="" BENCH_PID="" CREATED_RUN_LIBVIRT=0
declare -A CG_HAD=()
for d in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
  [[ -d "$d/machine" ]] && CG_HAD["$d"]=1
done

qemu_pids() {  # QEMUs this run started: from their pidfiles, and any QEMU naming $T
  local f pid
  while IFS= read -r -d '' f; do
    pid=$(cat "$f" 2>/dev/null) || continue
    [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cat /proc/"$pid"/comm 2>/dev/null)" == qemu-system* ]] && echo "$pid"
  done < <(find "$T" -name '*.pid' -print0 2>/dev/null)
  for pid in $(pgrep '^qemu-system' 2>/dev/null); do
    tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | grep -qF "$T" && echo "$pid"
  done
}

stop_pid() {  # TERM, then KILL after $2 seconds
  local pid=$1 secs=${2:-5} i
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    [[ -d /proc/$pid ]] && [[ "$(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null)" != Z ]] || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM HUP
  say "cleaning up"
  stop_pid "$BENCH_PID" 5
  if [[ -n "$LV_PID" ]] && kill -0 "$LV_PID" 2>/dev/null; then
    for dom in $(timeout 20 virsh -q -c "$LV_URI" list --name 2>/dev/null); do
      timeout 20 virsh -q -c "$LV_URI" destroy "$dom" >/dev/null 2>&1
    done
  fi
  # ferrovirtd first: its VMs outlive it by design (and it cannot restart
  # them once gone), then every QEMU of this run, then libvirtd.
  stop_pid "$FV_PID" 5
  local pids
  pids=$(qemu_pids | sort -u)
  [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null
  stop_pid "$LV_PID" 10
  for pid in $pids; do
    for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
  done
  # libvirt's cgroups (cgroup v1 controllers and/or v2), if this run made them
  for d in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    [[ -d "$d/machine" && -z "${CG_HAD[$d]:-}" ]] || continue
    find "$d/machine" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  [[ $CREATED_RUN_LIBVIRT -eq 1 ]] && rmdir /run/libvirt 2>/dev/null
  # keep the daemons' logs of the last run (bench/results/logs is git-ignored)
  mkdir -p "$RESULTS/logs" && rm -f "$RESULTS/logs/"*
  for f in ferrovirtd.log lv/libvirtd.log lv/libvirtd.out lv-smoke.log apt.log; do
    [[ -s "$T/$f" ]] && cp "$T/$f" "$RESULTS/logs/${f//\//-}"
  done
  # the bind mounts lived in libvirtd's mount namespace, gone with it
  rm -rf "$T"
  say "done (exit $rc, $(($(date +%s) - BENCH_T0)) s in all)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- guest
say "test guest: $GUEST_BIN"
"$GUEST_BIN" >"$T/guest.json"
GUEST_KERNEL=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["kernel"])' "$T/guest.json")
[[ -r "$GUEST_KERNEL" ]] || die "the test guest's kernel is missing"

if [[ $LIBVIRT -eq 1 ]]; then
  if ! command -v libvirtd >/dev/null || ! command -v virsh >/dev/null \
     || [[ ! -e /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so ]]; then
    if [[ $INSTALL -eq 1 ]]; then install_libvirt; else LV_SKIP_REASON="libvirt is not installed (--no-install)"; fi
  fi
  if [[ -z "$LV_SKIP_REASON" ]] && ! command -v libvirtd >/dev/null; then
    LV_SKIP_REASON="libvirtd not found after installing"
  fi
else
  LV_SKIP_REASON="--no-libvirt"
fi

# ---------------------------------------------------------------- page cache
# The file-backed part of a daemon's VmRSS depends on how much of its binary
# and libraries the page cache holds when it starts (this host's DAMON reclaim
# pages out file pages unused for a minute). Read them all first, so both
# daemons start from the same, warm state.
prewarm() {
  local f
  for f in "$@"; do
    [[ -e "$f" ]] || continue
    cat "$f" >/dev/null 2>&1
    ldd "$f" 2>/dev/null | awk '/=> \// {print $3}' | while read -r lib; do cat "$lib" >/dev/null 2>&1; done
  done
}
prewarm "$BIN/ferrovirtd" "$BIN/ferrovirt" "$QEMU"
if [[ -z "$LV_SKIP_REASON" ]]; then
  prewarm /usr/sbin/libvirtd "$(command -v virsh)" /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/*.so
fi

# ---------------------------------------------------------------- ferrovirtd
# Both daemons run in a private network namespace (only a loopback, down):
# the benchmark's VMs have no NIC, and whatever a daemon does with networks at
# start-up (a default NAT network, a firewall table) stays out of the host.
links_before=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sort | tr '\n' ' ')
say "starting ferrovirtd ($PROFILE)"
mkdir -p "$T/state" "$T/run"
fv_args=(--socket "$T/api.sock" --state-dir "$T/state" --runtime-dir "$T/run" --qemu "$QEMU")
# Newer ferrovirtd versions create a `default` NAT network on first start.
if "$BIN/ferrovirtd" --help 2>/dev/null | grep -q -- --no-default-network; then
  fv_args+=(--no-default-network)
fi
FERROVIRT_NO_DEFAULT_NETWORK=1 unshare --net "$BIN/ferrovirtd" "${fv_args[@]}" >"$T/ferrovirtd.log" 2>&1 &
FV_PID=$!
for _ in $(seq 300); do
  curl -sf --unix-socket "$T/api.sock" http://x/1.0/instances >/dev/null 2>&1 && break
  kill -0 "$FV_PID" 2>/dev/null || die "ferrovirtd exited: $(tail -n 5 "$T/ferrovirtd.log")"
  sleep 0.1
done
curl -sf --unix-socket "$T/api.sock" http://x/1.0/instances >/dev/null || die "ferrovirtd did not come up"
[[ "$(cat /proc/$FV_PID/comm)" == ferrovirtd ]] || die "unexpected process behind ferrovirtd's PID"

# ---------------------------------------------------------------- libvirtd
start_libvirtd() {
  local lv="$T/lv"
  mkdir -p "$lv"/{etc/qemu,lib,cache,log,run,sock}
  # Private sockets, no authentication (root only: the socket is 0700).
  cat >"$lv/etc/libvirtd.conf" <<EOF
unix_sock_dir = "$lv/sock"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:$lv/libvirtd.log"
EOF
  # Defaults, except: QEMU runs as root like Ferrovirt's (Debian's default
  # user would have libvirt chown the guest's kernel), and QEMU's stdout goes
  # to a file instead of virtlogd (one daemon to start and weigh, not two).
  cat >"$lv/etc/qemu.conf" <<EOF
user = "root"
group = "root"
stdio_handler = "file"
EOF
  if [[ ! -d /run/libvirt ]]; then mkdir /run/libvirt; CREATED_RUN_LIBVIRT=1; fi
  LV_URI="qemu:///system?socket=$lv/sock/libvirt-sock"
  unshare --mount --propagation private --net bash "$HERE/lib/libvirtd-ns.sh" "$lv" >"$lv/libvirtd.out" 2>&1 &
  LV_PID=$!
  local i
  for ((i = 0; i < 600; i++)); do
    virsh -q -c "$LV_URI" version >/dev/null 2>&1 && break
    if ! kill -0 "$LV_PID" 2>/dev/null; then
      LV_SKIP_REASON="libvirtd exited at start-up: $(tail -n 3 "$lv/libvirtd.out" "$lv/libvirtd.log" 2>/dev/null | tr '\n' ' ')"
      LV_PID=""
      return
    fi
    sleep 0.1
  done
  if ! virsh -q -c "$LV_URI" version >/dev/null 2>&1; then
    LV_SKIP_REASON="libvirtd did not answer within 60 s"
    return
  fi
  [[ "$(cat /proc/$LV_PID/comm)" == libvirtd ]] || { LV_SKIP_REASON="unexpected process behind libvirtd's PID"; return; }
  # A smoke test: the domain XML the benchmark uses must define, start, stop.
  if ! "$PY" "$HERE/lib/fvbench.py" lv-smoke "$LV_URI" "$T/guest.json" "$QEMU" "$T" "$lv/run" \
       >"$T/lv-smoke.log" 2>&1; then
    LV_SKIP_REASON="libvirt could not start the benchmark's domain: $(tail -n 3 "$T/lv-smoke.log" | tr '\n' ' ')"
    stop_pid "$LV_PID" 10
  fi
}
if [[ -z "$LV_SKIP_REASON" ]]; then
  say "starting libvirtd $(libvirtd --version | awk '{print $NF}') in private mount and network namespaces"
  start_libvirtd
fi
if [[ -n "$LV_SKIP_REASON" ]]; then
  say "libvirt SKIPPED: $LV_SKIP_REASON"
fi

# ---------------------------------------------------------------- measure
links_after=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sort | tr '\n' ' ')
# (cannot be the daemons' doing, they are in their own network namespaces)
[[ "$links_before" == "$links_after" ]] || say "warning: host network interfaces changed meanwhile: [$links_before] -> [$links_after]"
others=$(pgrep -c '^qemu-system' || true)
[[ "$others" -gt 0 ]] && say "warning: $others other QEMU process(es) running on this host: figures will be noisier"
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n "$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null)" ]] && COMMIT="$COMMIT+dirty"
META=$("$PY" - <<EOF
import json
print(json.dumps({
  "quick": $QUICK == 1,
  "runs": $RUNS,
  "profile": "$PROFILE",
  "ferrovirt_commit": "$COMMIT",
  "ferrovirtd_binary": "$BIN/ferrovirtd",
  "ferrovirtd_binary_mtime": "$(date -u -r "$BIN/ferrovirtd" '+%Y-%m-%d %H:%M:%S UTC')",
  "qemu_version": "$("$QEMU" --version | head -n1 | sed 's/QEMU emulator version //')",
  "libvirt_version": $( [[ -z "$LV_SKIP_REASON" ]] && echo "\"$(libvirtd --version | awk '{print $NF}')\"" || echo None ),
  "libvirt_skipped": $( [[ -n "$LV_SKIP_REASON" ]] && printf '%s' "$LV_SKIP_REASON" | "$PY" -c 'import json,sys; print(json.dumps(sys.stdin.read()))' || echo None ),
  "other_qemu_processes_at_start": $others,
  "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
}))
EOF
)
args=(--out "$T/raw.json" --tmp "$T" --runs "$RUNS" --instances "$INSTANCES" --running "$RUNNING"
      --qemu "$QEMU" --guest "$T/guest.json" --fv-cli "$BIN/ferrovirt" --fv-socket "$T/api.sock"
      --fv-state-dir "$T/state" --fv-pid "$FV_PID" --meta "$META" --reaper-pid "$PPID")
[[ $GRACEFUL -eq 0 ]] && args+=(--no-graceful)
if [[ -z "$LV_SKIP_REASON" ]]; then
  args+=(--lv-uri "$LV_URI" --lv-pid "$LV_PID" --lv-run-dir "$T/lv/run")
fi
say "measuring: runs=$RUNS instances=$INSTANCES running=$RUNNING"
# In the background, so that a TERM reaches the trap at once.
"$PY" "$HERE/lib/fvbench.py" "${args[@]}" &
BENCH_PID=$!
wait "$BENCH_PID"
BENCH_PID=""

mkdir -p "$RESULTS"
cp "$T/raw.json" "$RESULTS/latest.json"
"$PY" "$HERE/lib/report.py" "$RESULTS/latest.json" "$RESULTS/latest.md"
say "results: $RESULTS/latest.md and $RESULTS/latest.json"
