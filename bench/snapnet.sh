#!/usr/bin/env bash
# Ferrovirt vs libvirt on snapshots, save/restore and virtual networks, on the
# same QEMU and the same guest, in one run. See
# docs/benchmarks-snapshots-networks.md for what each figure means.
#
#   bench/snapnet.sh            full run: N=5 per snapshot figure, 10 network
#                               create/delete, 3 x 16 MiB per throughput figure
#   bench/snapnet.sh --quick    CI smoke run: N=1, 2 network create/delete,
#                               1 x 4 MiB per throughput figure
#
# Options:
#   --runs N           runs per snapshot / save figure (default 5)
#   --net-runs N       network create/delete runs (default 10)
#   --tput-runs N      runs per throughput figure (default 3)
#   --tput-mib M       MiB sent per throughput sample (default 16)
#   --sections LIST    comma-separated subset of snap,net,tput (default all)
#   --profile P        release (default when built) or debug
#   --build            cargo build --release -p ferrovirtd -p ferrovirt first
#   --no-libvirt       measure Ferrovirt only
#   --no-lv-throughput skip libvirt's side of the throughput figures
#   --no-install       never run apt-get (libvirt is skipped if missing)
#   --results DIR      where snapnet-latest.md / .json go (default bench/results)
#
# Needs root. Everything touching networking runs in two network namespaces
# this script creates (snapnet-fv-PID for ferrovirtd, snapnet-lv-PID for
# libvirtd); libvirtd also gets a private mount namespace. Installs libvirt
# from Debian if absent, and iptables (libvirt's firewall backend here, see
# the docs); libvirt's network driver is unpacked from its .deb into the
# temporary directory and loaded by this run's libvirtd only, so the host's
# libvirt stays as it was. Everything the run starts (daemons, VMs, dnsmasq,
# namespaces, temp dirs) is removed on exit, including on failure or Ctrl-C.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

PY=python3
if [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3; fi

# Under a child subreaper (bench/lib/reaper.py), so that daemonized QEMUs and
# dnsmasqs that exit are reaped even where PID 1 does not reap orphans.
if [[ -z "${FV_SNAPNET_REAPED:-}" ]]; then
  export FV_SNAPNET_REAPED=1
  exec "$PY" "$HERE/lib/reaper.py" bash "$0" "$@"
fi

RUNS=5 NET_RUNS=10 TPUT_RUNS=3 TPUT_MIB=16 SECTIONS=snap,net,tput PROFILE="" BUILD=0
LIBVIRT=1 LV_TPUT=1 INSTALL=1 QUICK=0
RESULTS="$HERE/results"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 RUNS=1 NET_RUNS=2 TPUT_RUNS=1 TPUT_MIB=4 ;;
    --runs) RUNS=$2; shift ;;
    --net-runs) NET_RUNS=$2; shift ;;
    --tput-runs) TPUT_RUNS=$2; shift ;;
    --tput-mib) TPUT_MIB=$2; shift ;;
    --sections) SECTIONS=$2; shift ;;
    --profile) PROFILE=$2; shift ;;
    --build) BUILD=1 ;;
    --no-libvirt) LIBVIRT=0 ;;
    --no-lv-throughput) LV_TPUT=0 ;;
    --no-install) INSTALL=0 ;;
    --results) RESULTS=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "snapnet.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '[snapnet.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (network namespaces, libvirt's system driver)"
for tool in qemu-system-x86_64 qemu-img ip nft dnsmasq unshare; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh installs QEMU; apt-get install iproute2 nftables dnsmasq-base util-linux)"
done
QEMU=$(command -v qemu-system-x86_64)
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "$PY is older than 3.9"
[[ "$SECTIONS" =~ ^(snap|net|tput)(,(snap|net|tput))*$ ]] || die "--sections: a comma-separated subset of snap,net,tput"
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
stale=$(find "$ROOT/crates" -name '*.rs' -newer "$BIN/ferrovirtd" 2>/dev/null | head -n 3 | tr '\n' ' ')
[[ -n "$stale" ]] && say "warning: sources newer than $BIN/ferrovirtd ($stale...): rebuild for current figures (--build)"
GUEST_BIN=""
for p in debug release; do
  [[ -x "$ROOT/target/$p/ferrovirt-test-guest" ]] && { GUEST_BIN="$ROOT/target/$p/ferrovirt-test-guest"; break; }
done
if [[ -z "$GUEST_BIN" ]]; then
  say "building ferrovirt-test-guest"
  (cd "$ROOT" && cargo build -p ferrovirt-testkit --bin ferrovirt-test-guest)
  GUEST_BIN="$ROOT/target/debug/ferrovirt-test-guest"
fi

# ---------------------------------------------------------------- cleanup
T=$(mktemp -d /tmp/snapnet.XXXXXX)
FVNS="snapnet-fv-$$" LVNS="snapnet-lv-$$"
FV_PID="" LV_PID="" LV_URI="" BENCH_PID="" NS_MADE=()
LOGS=/tmp/snapnet-logs
declare -A CG_HAD=()
for d in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
  [[ -d "$d/machine" ]] && CG_HAD["$d"]=1
done

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

qemu_pids() {  # QEMUs of this run: any QEMU whose argv names $T
  local pid
  for pid in $(pgrep '^qemu-system' 2>/dev/null); do
    tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | grep -qF "$T" && echo "$pid"
  done
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
    for net in $(timeout 20 virsh -q -c "$LV_URI" net-list --name 2>/dev/null); do
      timeout 20 virsh -q -c "$LV_URI" net-destroy "$net" >/dev/null 2>&1
    done
  fi
  local pids
  pids=$(qemu_pids | sort -u)
  [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null
  stop_pid "$FV_PID" 5
  stop_pid "$LV_PID" 10
  # whatever else still runs in the namespaces (dnsmasq, a sink)
  local ns pid
  for ns in "${NS_MADE[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
  for pid in $pids; do
    for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
  done
  for ns in "${NS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null; done
  # libvirt's cgroups for this run's domains (and machine/ if this run made it)
  for d in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    [[ -d "$d/machine" ]] || continue
    find "$d/machine" -depth -type d -regex '.*qemu-[0-9]+-lv-\(int\|ext\|tp-a\|tp-b\)\.libvirt-qemu.*' \
      -exec rmdir {} \; 2>/dev/null
    [[ -z "${CG_HAD[$d]:-}" ]] && rmdir "$d/machine" 2>/dev/null
  done
  # keep the daemons' logs of the last run, outside the repository
  rm -rf "$LOGS" && mkdir -p "$LOGS"
  for f in ferrovirtd.log lv/libvirtd.log lv/libvirtd.out apt.log; do
    [[ -s "$T/$f" ]] && cp "$T/$f" "$LOGS/${f//\//-}"
  done
  rm -rf "$T"
  say "done (exit $rc, $(($(date +%s) - BENCH_T0)) s in all; daemon logs in $LOGS)"
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

# ---------------------------------------------------------------- libvirt
LV_SKIP_REASON="" LV_NET_NOTE=""
lv_installed() {
  command -v libvirtd >/dev/null && command -v virsh >/dev/null \
    && [[ -e /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so ]]
}
install_libvirt() {  # as bench/run.sh does
  command -v apt-get >/dev/null || { LV_SKIP_REASON="libvirt is not installed and there is no apt-get"; return; }
  say "installing libvirt (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  local target=()
  if apt-cache policy libvirt-daemon 2>/dev/null | grep -q bookworm-backports; then
    target=(-t bookworm-backports)
  fi
  if ! apt-get install -y -qq --no-install-recommends "${target[@]}" \
      libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients >>"$T/apt.log" 2>&1; then
    LV_SKIP_REASON="apt-get install of libvirt failed: $(tail -n 3 "$T/apt.log" | tr '\n' ' ')"
    return
  fi
  apt-get install -y -qq --no-install-recommends python3-libvirt >>"$T/apt.log" 2>&1 || true
}
# libvirt's network driver, for this run's libvirtd only: the installed one
# if there is one, else unpacked from the .deb matching the installed libvirt.
LV_NET_DRIVER="" LV_LEASESHELPER=""
network_driver() {
  local sysdrv=/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_network.so
  if [[ -e "$sysdrv" ]]; then
    LV_NET_DRIVER=$sysdrv LV_LEASESHELPER=/usr/lib/libvirt/libvirt_leaseshelper
    return
  fi
  [[ $INSTALL -eq 1 ]] || { LV_NET_NOTE="libvirt's network driver is not installed (--no-install)"; return; }
  local ver
  ver=$(dpkg-query -W -f='${Version}' libvirt-daemon 2>/dev/null) || true
  [[ -n "$ver" ]] || { LV_NET_NOTE="cannot tell the installed libvirt's version"; return; }
  mkdir -p "$T/pkg"
  if ! (cd "$T/pkg" && apt-get download "libvirt-daemon-driver-network=$ver" >>"$T/apt.log" 2>&1); then
    apt-get update -qq >>"$T/apt.log" 2>&1 || true
    (cd "$T/pkg" && apt-get download "libvirt-daemon-driver-network=$ver" >>"$T/apt.log" 2>&1) \
      || { LV_NET_NOTE="apt-get download libvirt-daemon-driver-network=$ver failed: $(tail -n 2 "$T/apt.log" | tr '\n' ' ')"; return; }
  fi
  dpkg-deb -x "$T"/pkg/libvirt-daemon-driver-network_*.deb "$T/pkg/root"
  LV_NET_DRIVER="$T/pkg/root$sysdrv"
  LV_LEASESHELPER="$T/pkg/root/usr/lib/libvirt/libvirt_leaseshelper"
  [[ -e "$LV_NET_DRIVER" && -e "$LV_LEASESHELPER" ]] || { LV_NET_NOTE="the .deb has no network driver"; LV_NET_DRIVER=""; }
}
# libvirt's nftables firewall backend fixes DHCP checksums with a tc `csum`
# action, which needs CONFIG_NET_ACT_CSUM; without it its networks cannot
# start, and the iptables backend (iptables-nft) is used instead.
LV_FW_BACKEND=nftables
firewall_backend() {
  if zcat /proc/config.gz 2>/dev/null | grep -q '^CONFIG_NET_ACT_CSUM=[ym]' \
     || [[ -d /sys/module/act_csum ]]; then
    return
  fi
  LV_FW_BACKEND=iptables
  if ! command -v iptables >/dev/null; then
    if [[ $INSTALL -eq 1 ]] && command -v apt-get >/dev/null; then
      say "installing iptables (libvirt's firewall backend on this kernel, which lacks act_csum)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables >>"$T/apt.log" 2>&1 \
        || LV_NET_NOTE="apt-get install iptables failed"
    else
      LV_NET_NOTE="the kernel has no act_csum (libvirt's nftables backend fails) and iptables is not installed"
    fi
  fi
}
if [[ $LIBVIRT -eq 1 ]]; then
  if ! lv_installed; then
    if [[ $INSTALL -eq 1 ]]; then install_libvirt; else LV_SKIP_REASON="libvirt is not installed (--no-install)"; fi
  fi
  [[ -z "$LV_SKIP_REASON" ]] && ! lv_installed && LV_SKIP_REASON="libvirtd not found after installing"
  if [[ -z "$LV_SKIP_REASON" && ",$SECTIONS," =~ ,(net|tput), ]]; then
    network_driver
    [[ -n "$LV_NET_DRIVER" ]] && firewall_backend
  fi
else
  LV_SKIP_REASON="--no-libvirt"
fi

# ---------------------------------------------------------------- namespaces
links_before=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sort | tr '\n' ' ')
for ns in "$FVNS" "$LVNS"; do
  ip netns add "$ns"
  NS_MADE+=("$ns")
  ip -n "$ns" link set lo up
done

# ---------------------------------------------------------------- ferrovirtd
say "starting ferrovirtd ($PROFILE) in network namespace $FVNS"
mkdir -p "$T/state" "$T/run"
fv_args=(--socket "$T/api.sock" --state-dir "$T/state" --runtime-dir "$T/run" --qemu "$QEMU")
# (the flag, not FERROVIRT_NO_DEFAULT_NETWORK=1: that value is refused, see the docs)
if "$BIN/ferrovirtd" --help 2>/dev/null | grep -q -- --no-default-network; then
  fv_args+=(--no-default-network)
fi
ip netns exec "$FVNS" "$BIN/ferrovirtd" "${fv_args[@]}" >"$T/ferrovirtd.log" 2>&1 &
FV_PID=$!
fv_up() {  # GET /1.0 answers 200
  "$PY" -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"GET /1.0 HTTP/1.0\r\nHost: x\r\n\r\n")
sys.exit(0 if s.recv(64).split()[1:2] == [b"200"] else 1)' "$T/api.sock" 2>/dev/null
}
for _ in $(seq 300); do
  fv_up && break
  kill -0 "$FV_PID" 2>/dev/null || die "ferrovirtd exited: $(tail -n 5 "$T/ferrovirtd.log")"
  sleep 0.1
done
fv_up || die "ferrovirtd did not come up"
[[ "$(cat /proc/$FV_PID/comm)" == ferrovirtd ]] || die "unexpected process behind ferrovirtd's PID"

# ---------------------------------------------------------------- libvirtd
start_libvirtd() {
  local lv="$T/lv"
  mkdir -p "$lv"/{etc/qemu,lib,cache,log,run,sock}
  cat >"$lv/etc/libvirtd.conf" <<EOF
unix_sock_dir = "$lv/sock"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:$lv/libvirtd.log"
EOF
  # As bench/run.sh: QEMU as root, QEMU's stdout to a file (no virtlogd).
  cat >"$lv/etc/qemu.conf" <<EOF
user = "root"
group = "root"
stdio_handler = "file"
EOF
  if [[ -n "$LV_NET_DRIVER" ]]; then
    mkdir -p "$lv/drivers" "$lv/libexec"
    ln -s /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so "$lv/drivers/"
    ln -s "$LV_NET_DRIVER" "$lv/drivers/libvirt_driver_network.so"
    [[ -d /usr/lib/libvirt ]] && cp -a /usr/lib/libvirt/. "$lv/libexec/"
    cp -f "$LV_LEASESHELPER" "$lv/libexec/libvirt_leaseshelper"
    echo "firewall_backend = \"$LV_FW_BACKEND\"" >"$lv/etc/network.conf"
  fi
  LV_URI="qemu:///system?socket=$lv/sock/libvirt-sock"
  ip netns exec "$LVNS" unshare --mount --propagation private \
    bash "$HERE/lib/snapnet-libvirtd-ns.sh" "$lv" >"$lv/libvirtd.out" 2>&1 &
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
  if [[ -n "$LV_NET_DRIVER" ]] && ! virsh -q -c "$LV_URI" net-list --all >/dev/null 2>&1; then
    LV_NET_NOTE="libvirtd did not load the network driver: $(tail -n 2 "$lv/libvirtd.log" | tr '\n' ' ')"
  fi
}
if [[ -z "$LV_SKIP_REASON" ]]; then
  say "starting libvirtd $(libvirtd --version | awk '{print $NF}') in network namespace $LVNS and a private mount namespace"
  start_libvirtd
fi
[[ -n "$LV_SKIP_REASON" ]] && say "libvirt SKIPPED: $LV_SKIP_REASON"
[[ -z "$LV_SKIP_REASON" && -n "$LV_NET_NOTE" ]] && say "libvirt networks SKIPPED: $LV_NET_NOTE"

# ---------------------------------------------------------------- measure
links_after=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sort | tr '\n' ' ')
[[ "$links_before" == "$links_after" ]] || say "warning: host network interfaces changed meanwhile: [$links_before] -> [$links_after]"
others=$(pgrep -c '^qemu-system' || true)
[[ "$others" -gt 0 ]] && say "warning: $others other QEMU process(es) running on this host: figures will be noisier"
[[ -n "$(pgrep -f 'bench/run.sh' || true)" ]] && say "warning: bench/run.sh is running too: figures will be noisier"
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n "$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null)" ]] && COMMIT="$COMMIT+dirty"
jstr() { printf '%s' "$1" | "$PY" -c 'import json,sys; print(json.dumps(sys.stdin.read()))'; }
META=$(cat <<EOF
{
  "quick": $([[ $QUICK -eq 1 ]] && echo true || echo false),
  "profile": "$PROFILE",
  "ferrovirt_commit": "$COMMIT",
  "ferrovirtd_binary_mtime": "$(date -u -r "$BIN/ferrovirtd" '+%Y-%m-%d %H:%M:%S UTC')",
  "qemu_version": $(jstr "$("$QEMU" --version | head -n1 | sed 's/QEMU emulator version //')"),
  "libvirt_version": $([[ -z "$LV_SKIP_REASON" ]] && jstr "$(libvirtd --version | awk '{print $NF}')" || echo null),
  "libvirt_skipped": $([[ -n "$LV_SKIP_REASON" ]] && jstr "$LV_SKIP_REASON" || echo null),
  "libvirt_network_skipped": $([[ -n "$LV_NET_NOTE" ]] && jstr "$LV_NET_NOTE" || echo null),
  "libvirt_firewall_backend": "$LV_FW_BACKEND",
  "libvirt_network_driver": $(jstr "$LV_NET_DRIVER"),
  "other_qemu_processes_at_start": $others,
  "other_bench_running_at_start": $([[ -n "$(pgrep -f 'bench/run.sh' || true)" ]] && echo true || echo false)
}
EOF
)
args=(measure --out "$T/raw.json" --tmp "$T" --runs "$RUNS" --net-runs "$NET_RUNS"
      --tput-runs "$TPUT_RUNS" --tput-mib "$TPUT_MIB" --sections "$SECTIONS" --qemu "$QEMU"
      --guest "$T/guest.json" --fv-cli "$BIN/ferrovirt" --fv-socket "$T/api.sock"
      --fv-state-dir "$T/state" --fv-pid "$FV_PID" --fv-netns "$FVNS" --meta "$META"
      --reaper-pid "$PPID" --lv-throughput "$LV_TPUT")
if [[ -z "$LV_SKIP_REASON" ]]; then
  args+=(--lv-uri "$LV_URI" --lv-pid "$LV_PID" --lv-dir "$T/lv" --lv-netns "$LVNS")
  [[ -n "$LV_NET_NOTE" ]] && args+=(--lv-no-net)
fi
say "measuring: sections=$SECTIONS runs=$RUNS net-runs=$NET_RUNS tput-runs=$TPUT_RUNS x $TPUT_MIB MiB"
"$PY" "$HERE/lib/snapnet.py" "${args[@]}" &
BENCH_PID=$!
wait "$BENCH_PID"
BENCH_PID=""

mkdir -p "$RESULTS"
cp "$T/raw.json" "$RESULTS/snapnet-latest.json"
"$PY" "$HERE/lib/snapnet_report.py" "$RESULTS/snapnet-latest.json" "$RESULTS/snapnet-latest.md"
say "results: $RESULTS/snapnet-latest.md and $RESULTS/snapnet-latest.json"
