#!/usr/bin/env bash
# Live migration: Ferrovirt vs libvirt vs QEMU driven by hand, between two
# "hosts" (network namespaces joined by a veth pair), same QEMU, same guest,
# same memory-dirtying workload, in one run. See docs/benchmarks-migration.md.
#
#   bench/migration.sh            full run: 256 MiB and 1 GiB guests, N=3 each
#                                 (about 4 min)
#   bench/migration.sh --quick    CI smoke run: 256 MiB only, N=1, no capped
#                                 floor (under a minute once built)
#
# Options:
#   --runs N         migrations per guest size and manager (default 3)
#   --sizes LIST     guest sizes in MiB, comma-separated (default 256,1024)
#   --warmup S       seconds the workload runs before migrating (default 3)
#   --profile P      release (default when built and up to date) or debug
#   --build          cargo build --release -p ferrovirtd -p ferrovirt first
#   --no-libvirt     measure Ferrovirt and the floor only
#   --no-install     never run apt-get (libvirt is skipped if missing)
#   --no-capped-floor  skip the second floor, which keeps QEMU's default
#                    128 MiB/s migration bandwidth cap (the floor proper, like
#                    Ferrovirt and libvirt, sets no limit)
#   --results DIR    where migration-latest.md/.json go (default bench/results,
#                    bench/results/quick with --quick)
#   --logs DIR       copy the daemons' logs there at the end (default: none;
#                    on failure their tails are printed)
#
# Needs root (network namespaces, libvirt's qemu:///system driver, private
# mount namespaces). Installs libvirt from Debian (bookworm-backports when
# available) if absent. Everything it starts (namespaces, daemons, VMs,
# temp dirs) is removed on exit, including on failure or Ctrl-C.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

# Python 3.9+ drives the measurements (standard library only).
if ! command -v python3 >/dev/null && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null \
   && [[ " $* " != *" --no-install "* ]]; then
  echo "[migration.sh] installing python3" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null; }
fi
command -v python3 >/dev/null || { echo "migration.sh: python3 (3.9 or newer) is needed" >&2; exit 1; }
PY=python3
if [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3; fi

# Run under a child subreaper, so daemonized QEMUs that exit are reaped even
# where PID 1 does not reap orphans (see lib/reaper.py).
if [[ -z "${FV_MIG_REAPED:-}" ]]; then
  export FV_MIG_REAPED=1
  exec "$PY" "$HERE/lib/reaper.py" bash "$0" "$@"
fi

RUNS=3 SIZES=256,1024 WARMUP=3 PROFILE="" BUILD=0 LIBVIRT=1 INSTALL=1 QUICK=0 CAPPED=1
RESULTS="" LOGS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 RUNS=1 SIZES=256 CAPPED=0 ;;
    --runs) RUNS=$2; shift ;;
    --sizes) SIZES=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --profile) PROFILE=$2; shift ;;
    --build) BUILD=1 ;;
    --no-libvirt) LIBVIRT=0 ;;
    --no-install) INSTALL=0 ;;
    --no-capped-floor) CAPPED=0 ;;
    --results) RESULTS=$2; shift ;;
    --logs) LOGS=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "migration.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# A quick run never overwrites a full run's results.
[[ -n "$RESULTS" ]] || { [[ $QUICK -eq 1 ]] && RESULTS="$HERE/results/quick" || RESULTS="$HERE/results"; }

say() { printf '[migration.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (network namespaces, libvirt's system driver)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (scripts/install-deps.sh installs it)"
command -v ip >/dev/null || die "ip (iproute2) not found"
QEMU=$(command -v qemu-system-x86_64)
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "$PY is older than 3.9"
T0=$(date +%s)

# ---------------------------------------------------------------- binaries
if [[ $BUILD -eq 1 ]]; then
  say "cargo build --release -p ferrovirtd -p ferrovirt"
  (cd "$ROOT" && cargo build --release -p ferrovirtd -p ferrovirt)
fi
stale() {  # is $1 older than a source file of the workspace?
  [[ -n "$(find "$ROOT/crates" -name '*.rs' -newer "$1" -print -quit 2>/dev/null)" ]]
}
if [[ -z "$PROFILE" ]]; then
  for p in release debug; do
    if [[ -x "$ROOT/target/$p/ferrovirtd" && -x "$ROOT/target/$p/ferrovirt" ]] && ! stale "$ROOT/target/$p/ferrovirtd"; then
      PROFILE=$p; break
    fi
  done
  if [[ -z "$PROFILE" ]]; then
    for p in release debug; do
      [[ -x "$ROOT/target/$p/ferrovirtd" ]] && { PROFILE=$p; break; }
    done
    [[ -n "$PROFILE" ]] || die "no ferrovirtd built: cargo build --release -p ferrovirtd -p ferrovirt (or --build)"
    say "warning: target/$PROFILE/ferrovirtd is older than the sources (use --build)"
  fi
fi
BIN="$ROOT/target/$PROFILE"
[[ -x "$BIN/ferrovirtd" ]] || die "$BIN/ferrovirtd missing"
[[ $PROFILE == release ]] || say "warning: measuring the debug build (--build for release figures)"
GUEST_BIN=""
for p in debug release; do
  [[ -x "$ROOT/target/$p/ferrovirt-test-guest" ]] && { GUEST_BIN="$ROOT/target/$p/ferrovirt-test-guest"; break; }
done
if [[ -z "$GUEST_BIN" ]]; then
  say "building ferrovirt-test-guest"
  (cd "$ROOT" && cargo build -p ferrovirt-testkit --bin ferrovirt-test-guest)
  GUEST_BIN="$ROOT/target/debug/ferrovirt-test-guest"
fi
GOLDEN="$ROOT/crates/qemu/tests/golden/direct_kernel_boot_tcg.argv"
[[ -r "$GOLDEN" ]] || die "$GOLDEN missing"

# ---------------------------------------------------------------- cleanup
T=$(mktemp -d /tmp/fvmig.XXXXXX)
NS_A="fvmig-a-$$" NS_B="fvmig-b-$$" IP_A=10.98.0.1 IP_B=10.98.0.2
FV_A_PID="" FV_B_PID="" LV_A_PID="" LV_B_PID="" LV_A_URI="" LV_B_URI="" BENCH_PID=""
CREATED_RUN_LIBVIRT=0 FAILED=1

qemu_pids() {  # QEMUs this run started: every one names a path under $T
  local pid
  for pid in $(pgrep '^qemu-system' 2>/dev/null); do
    tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | grep -qF "$T" && echo "$pid"
  done
  return 0
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

daemon_logs() { echo "$T/fva/ferrovirtd.log $T/fvb/ferrovirtd.log $T/lva/libvirtd.log $T/lvb/libvirtd.log $T/lva/libvirtd.out $T/lvb/libvirtd.out"; }

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM HUP
  say "cleaning up"
  stop_pid "$BENCH_PID" 5
  local uri dom
  for uri in "$LV_A_URI" "$LV_B_URI"; do
    [[ -n "$uri" ]] || continue
    for dom in $(timeout 20 virsh -q -c "$uri" list --name 2>/dev/null); do
      timeout 20 virsh -q -c "$uri" destroy "$dom" >/dev/null 2>&1
    done
  done
  local pids
  pids=$(qemu_pids | sort -u)
  [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null
  stop_pid "$FV_A_PID" 5
  stop_pid "$FV_B_PID" 5
  stop_pid "$LV_A_PID" 10
  stop_pid "$LV_B_PID" 10
  local ns pid
  for ns in "$NS_A" "$NS_B"; do
    ip netns list 2>/dev/null | grep -qw "^$ns" || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    for _ in $(seq 50); do [[ -z "$(ip netns pids "$ns" 2>/dev/null)" ]] && break; sleep 0.1; done
    ip netns del "$ns" 2>/dev/null
  done
  for pid in $pids; do
    for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
  done
  # (not while another libvirtd runs: removing the directory would detach
  # the bind mount a concurrent private libvirtd has on it)
  [[ $CREATED_RUN_LIBVIRT -eq 1 ]] && ! pgrep -x libvirtd >/dev/null && rmdir /run/libvirt 2>/dev/null
  local f
  if [[ -n "$LOGS" ]]; then
    mkdir -p "$LOGS"
    for f in $(daemon_logs); do
      [[ -s "$f" ]] && cp "$f" "$LOGS/$(basename "$(dirname "$f")")-$(basename "$f")"
    done
  elif [[ $rc -ne 0 || $FAILED -ne 0 ]]; then
    for f in $(daemon_logs); do
      [[ -s "$f" ]] && { say "--- tail of $f"; tail -n 15 "$f" >&2; }
    done
  fi
  rm -rf "$T"
  say "done (exit $rc, $(($(date +%s) - T0)) s in all)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- guest
say "ferrovirtd: $BIN/ferrovirtd ($PROFILE); test guest: $GUEST_BIN"
"$GUEST_BIN" >"$T/guest.json"
GUEST_KERNEL=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["kernel"])' "$T/guest.json")
[[ -r "$GUEST_KERNEL" ]] || die "the test guest's kernel is missing"

# ---------------------------------------------------------------- two hosts
# Two network namespaces joined by a veth pair: A = 10.98.0.1, B = 10.98.0.2.
# Nothing of this run touches the host's own network.
say "namespaces $NS_A ($IP_A) and $NS_B ($IP_B)"
ip netns add "$NS_A"
ip netns add "$NS_B"
ip -n "$NS_A" link set lo up
ip -n "$NS_B" link set lo up
ip -n "$NS_A" link add fvmig-a type veth peer name fvmig-b netns "$NS_B"
ip -n "$NS_A" addr add "$IP_A/24" dev fvmig-a
ip -n "$NS_B" addr add "$IP_B/24" dev fvmig-b
ip -n "$NS_A" link set fvmig-a up
ip -n "$NS_B" link set fvmig-b up

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
  if ! apt-get install -y -qq --no-install-recommends "${target[@]}" \
      libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients >"$T/apt.log" 2>&1; then
    LV_SKIP_REASON="apt-get install of libvirt failed: $(tail -n 3 "$T/apt.log" | tr '\n' ' ')"
  fi
}
if [[ $LIBVIRT -eq 1 ]]; then
  if ! command -v libvirtd >/dev/null || ! command -v virsh >/dev/null \
     || [[ ! -e /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so ]]; then
    if [[ $INSTALL -eq 1 ]]; then install_libvirt; else LV_SKIP_REASON="libvirt is not installed (--no-install)"; fi
  fi
  [[ -z "$LV_SKIP_REASON" ]] && ! command -v libvirtd >/dev/null && LV_SKIP_REASON="libvirtd not found after installing"
else
  LV_SKIP_REASON="--no-libvirt"
fi

# ---------------------------------------------------------------- ferrovirtd ×2
start_fv() {  # $1 = a|b, $2 = netns, $3 = listen IP
  local d="$T/fv$1"
  mkdir -p "$d/state" "$d/run"
  ip netns exec "$2" "$BIN/ferrovirtd" --socket "$d/api.sock" --state-dir "$d/state" \
    --runtime-dir "$d/run" --qemu "$QEMU" --listen "$3:8443" --no-default-network \
    </dev/null >"$d/ferrovirtd.log" 2>&1 &
  echo $!
}
say "starting two ferrovirtd ($PROFILE), --listen $IP_A:8443 and $IP_B:8443"
FV_A_PID=$(start_fv a "$NS_A" "$IP_A")
FV_B_PID=$(start_fv b "$NS_B" "$IP_B")
fv_answers() {  # GET /1.0 on the unix socket $1 answers 200
  "$PY" - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"GET /1.0 HTTP/1.0\r\nHost: x\r\n\r\n")
sys.exit(0 if s.recv(64).split(b" ")[1] == b"200" else 1)
EOF
}
for h in a b; do
  pid_var="FV_${h^^}_PID"
  for _ in $(seq 300); do
    fv_answers "$T/fv$h/api.sock" && break
    kill -0 "${!pid_var}" 2>/dev/null || die "ferrovirtd $h exited: $(tail -n 5 "$T/fv$h/ferrovirtd.log")"
    sleep 0.1
  done
  fv_answers "$T/fv$h/api.sock" || die "ferrovirtd $h did not come up"
  [[ "$(cat /proc/"${!pid_var}"/comm)" == ferrovirtd ]] || die "unexpected process behind ferrovirtd $h's PID"
done

# ---------------------------------------------------------------- libvirtd ×2
start_lv() {  # $1 = a|b, $2 = netns; sets LV_x_PID and LV_x_URI or LV_SKIP_REASON
  local h=$1 ns=$2 lv="$T/lv$1"
  mkdir -p "$lv"/{etc/qemu,lib,cache,log,run,sock}
  # Private sockets, no authentication (root only: the socket is 0700), and
  # a host UUID of its own (libvirt refuses to migrate to "the same host").
  cat >"$lv/etc/libvirtd.conf" <<EOF
unix_sock_dir = "$lv/sock"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
host_uuid = "$(cat /proc/sys/kernel/random/uuid)"
log_outputs = "3:file:$lv/libvirtd.log"
EOF
  # QEMU as root like Ferrovirt's, its stdout to a file (no virtlogd), and
  # no cgroups: the two daemons would both create machine/qemu-1-NAME for
  # the same domain on the one real host (and nothing of the host's cgroup
  # tree is touched).
  cat >"$lv/etc/qemu.conf" <<EOF
user = "root"
group = "root"
stdio_handler = "file"
cgroup_controllers = [ ]
EOF
  ip netns exec "$ns" unshare --mount --propagation private \
    bash "$HERE/lib/migration-libvirtd-ns.sh" "$lv" </dev/null >"$lv/libvirtd.out" 2>&1 &
  local pid=$! uri="qemu:///system?socket=$lv/sock/libvirt-sock" i
  for ((i = 0; i < 600; i++)); do
    virsh -q -c "$uri" version >/dev/null 2>&1 && break
    if ! kill -0 "$pid" 2>/dev/null; then
      LV_SKIP_REASON="libvirtd $h exited at start-up: $(tail -n 3 "$lv/libvirtd.out" "$lv/libvirtd.log" 2>/dev/null | tr '\n' ' ')"
      return
    fi
    sleep 0.1
  done
  printf -v "LV_${h^^}_PID" %s "$pid"
  virsh -q -c "$uri" version >/dev/null 2>&1 || { LV_SKIP_REASON="libvirtd $h did not answer within 60 s"; return; }
  printf -v "LV_${h^^}_URI" %s "$uri"
}
if [[ -z "$LV_SKIP_REASON" ]]; then
  if [[ ! -d /run/libvirt ]]; then mkdir -p /run/libvirt; CREATED_RUN_LIBVIRT=1; fi
  say "starting two libvirtd $(libvirtd --version | awk '{print $NF}'), one per namespace"
  start_lv a "$NS_A"
  [[ -z "$LV_SKIP_REASON" ]] && start_lv b "$NS_B"
fi
[[ -n "$LV_SKIP_REASON" ]] && say "libvirt SKIPPED: $LV_SKIP_REASON"

# ---------------------------------------------------------------- measure
others=$(pgrep -c '^qemu-system' || true)
[[ "$others" -gt 0 ]] && say "warning: $others other QEMU process(es) running on this host: figures will be noisier"
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n "$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null)" ]] && COMMIT="$COMMIT+dirty"
json_str() { "$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
META=$(cat <<EOF
{"quick": $([[ $QUICK -eq 1 ]] && echo true || echo false),
 "profile": "$PROFILE",
 "ferrovirt_commit": "$COMMIT",
 "ferrovirtd_binary": $(json_str "$BIN/ferrovirtd"),
 "ferrovirtd_binary_mtime": "$(date -u -r "$BIN/ferrovirtd" '+%Y-%m-%d %H:%M:%S UTC')",
 "ferrovirtd_binary_stale": $(stale "$BIN/ferrovirtd" && echo true || echo false),
 "qemu_version": $(json_str "$("$QEMU" --version | head -n1 | sed 's/QEMU emulator version //')"),
 "libvirt_version": $([[ -z "$LV_SKIP_REASON" ]] && json_str "$(libvirtd --version | awk '{print $NF}')" || echo null),
 "libvirt_skipped": $([[ -n "$LV_SKIP_REASON" ]] && json_str "$LV_SKIP_REASON" || echo null),
 "kernel": $(json_str "$(uname -r)"),
 "cpus": $(nproc),
 "cpu_model": $(json_str "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"),
 "mem_total_kib": $(awk '/^MemTotal/ {print $2}' /proc/meminfo),
 "uptime_at_start": $(json_str "$(uptime)"),
 "other_qemu_processes_at_start": $others,
 "date_utc": "$(date -u '+%Y-%m-%d %H:%M UTC')"}
EOF
)
args=(--out "$T/raw.json" --tmp "$T" --runs "$RUNS" --sizes "$SIZES" --warmup "$WARMUP"
      --qemu "$QEMU" --guest "$T/guest.json" --golden "$GOLDEN"
      --netns-a "$NS_A" --netns-b "$NS_B" --ip-a "$IP_A" --ip-b "$IP_B"
      --fv-a-sock "$T/fva/api.sock" --fv-b-sock "$T/fvb/api.sock"
      --fv-a-state "$T/fva/state" --fv-b-state "$T/fvb/state" --meta "$META")
[[ -z "$LV_SKIP_REASON" ]] && args+=(--lv-a-uri "$LV_A_URI" --lv-b-uri "$LV_B_URI")
[[ $CAPPED -eq 1 ]] && args+=(--capped-floor)
say "measuring: sizes=$SIZES MiB, runs=$RUNS, warm-up ${WARMUP}s; $(uptime | sed 's/^ *//')"
# In the background, so that a TERM reaches the trap at once.
"$PY" "$HERE/lib/migration.py" "${args[@]}" &
BENCH_PID=$!
wait "$BENCH_PID"
BENCH_PID=""
say "measured; $(uptime | sed 's/^ *//')"

mkdir -p "$RESULTS"
"$PY" - "$T/raw.json" "$(($(date +%s) - T0))" "$(uptime | sed 's/^ *//')" <<'EOF'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["meta"]["script_seconds"] = int(sys.argv[2])
d["meta"]["uptime_at_end"] = sys.argv[3]
json.dump(d, open(p, "w"), indent=1)
EOF
cp "$T/raw.json" "$RESULTS/migration-latest.json"
"$PY" "$HERE/lib/migration_report.py" "$RESULTS/migration-latest.json" "$RESULTS/migration-latest.md"
cat "$RESULTS/migration-latest.md"
say "results: $RESULTS/migration-latest.md and $RESULTS/migration-latest.json"
errors=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["errors"]))' "$RESULTS/migration-latest.json")
if [[ "$errors" -gt 0 ]]; then
  say "$errors migration(s) failed (see the report)"
  exit 1
fi
FAILED=0
