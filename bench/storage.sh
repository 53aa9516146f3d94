#!/usr/bin/env bash
# Ferrovirt vs libvirt on storage: linked clones, full clones (next to cp) and
# volume create/list, in one run. See docs/benchmarks-storage.md for what each
# figure means.
#
#   bench/storage.sh            full run: N=10; linked clones of 1 and 100 GiB
#                               bases; full clones of a 512 MiB file; pools of
#                               1, 100 and 1000 volumes (then + 100 VMs)
#   bench/storage.sh --quick    CI smoke run (< 60 s): N=1, a 64 MiB file,
#                               pools of 1 and 50 volumes (then + 10 VMs)
#
# Options:
#   --runs N           runs per figure (default 10)
#   --clone-mib M      size of the full-clone source file (default 512; half
#                      random data, half holes)
#   --counts LIST      pool sizes for create/list (default 1,100,1000)
#   --instances M      then the largest pool again with M VMs defined, each
#                      with a disk on one of its volumes (default 100; 0: no)
#   --linked-gib LIST  base sizes for linked clones, GiB (default 1,100)
#   --sections LIST    comma-separated subset of linked,full,vols (default all)
#   --no-xfs           no loop-mounted XFS (reflink=1) for the full clones
#   --profile P        release (default when built) or debug
#   --build            cargo build --release -p ferrovirtd -p ferrovirt first
#   --no-libvirt       measure Ferrovirt (and cp) only
#   --no-install       never run apt-get (libvirt is skipped if missing)
#   --results DIR      where storage-latest.md / .json go (default
#                      bench/results, bench/results/quick for --quick)
#
# Needs root. ferrovirtd runs in network namespace storage-fv-PID, libvirtd in
# storage-lv-PID and a private mount namespace (bench/lib/libvirtd-private-ns.sh),
# so neither touches the host's networking or libvirt. Installs libvirt from
# Debian if absent; libvirt's storage driver is not installed on the host: its
# .deb (matching the installed libvirt) is unpacked into the temporary
# directory and loaded by this run's libvirtd only. The XFS is a sparse image
# file in the temporary directory on a loop device. Everything the run makes
# (daemons, namespaces, the mount, the loop device, temp files) is removed on
# exit, including on failure or Ctrl-C.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

PY=python3
if [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3; fi

# Under a child subreaper (bench/lib/reaper.py): PID 1 here does not reap
# orphans, and libvirtd's double-forked helpers are orphans.
if [[ -z "${FV_STORAGE_REAPED:-}" ]]; then
  export FV_STORAGE_REAPED=1
  exec "$PY" "$HERE/lib/reaper.py" bash "$0" "$@"
fi

RUNS=10 CLONE_MIB=512 COUNTS=1,100,1000 INSTANCES=100 LINKED_GIB=1,100 SECTIONS=linked,full,vols
XFS=1 PROFILE="" BUILD=0 LIBVIRT=1 INSTALL=1 QUICK=0 RESULTS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 RUNS=1 CLONE_MIB=64 COUNTS=1,50 INSTANCES=10 ;;
    --runs) RUNS=$2; shift ;;
    --clone-mib) CLONE_MIB=$2; shift ;;
    --counts) COUNTS=$2; shift ;;
    --instances) INSTANCES=$2; shift ;;
    --linked-gib) LINKED_GIB=$2; shift ;;
    --sections) SECTIONS=$2; shift ;;
    --no-xfs) XFS=0 ;;
    --profile) PROFILE=$2; shift ;;
    --build) BUILD=1 ;;
    --no-libvirt) LIBVIRT=0 ;;
    --no-install) INSTALL=0 ;;
    --results) RESULTS=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "storage.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# A --quick run (CI) must not overwrite the figures of the last full run.
if [[ -z "$RESULTS" ]]; then
  if [[ $QUICK -eq 1 ]]; then RESULTS="$HERE/results/quick"; else RESULTS="$HERE/results"; fi
fi

say() { printf '[storage.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }
# shellcheck source=lib/common.sh
source "$HERE/lib/common.sh"

[[ $(id -u) -eq 0 ]] || die "run as root (network namespaces, a loop mount, libvirt's system driver)"
for tool in qemu-img qemu-io ip unshare cp cmp; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh installs QEMU's tools; apt-get install iproute2 util-linux)"
done
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "$PY is older than 3.9"
[[ "$SECTIONS" =~ ^(linked|full|vols)(,(linked|full|vols))*$ ]] || die "--sections: a comma-separated subset of linked,full,vols"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "--runs: a positive number"
[[ "$CLONE_MIB" =~ ^[1-9][0-9]*$ ]] || die "--clone-mib: a positive number of MiB"
[[ "$COUNTS" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--counts: comma-separated positive numbers"
[[ "$INSTANCES" =~ ^[0-9]+$ ]] || die "--instances: a number"
[[ "$LINKED_GIB" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--linked-gib: comma-separated positive numbers"
BENCH_T0=$(date +%s)

fv_binaries "$ROOT" "$PROFILE" "$BUILD"

# ---------------------------------------------------------------- cleanup
T=$(mktemp -d /tmp/fvstorage.XXXXXX)
FVNS="storage-fv-$$" LVNS="storage-lv-$$"
FV_PID="" LV_PID="" LV_URI="" BENCH_PID="" NS_MADE=() XFS_DIR="" XFS_LOOP=""
LOGS=/tmp/storage-bench-logs

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM HUP
  say "cleaning up"
  stop_pid "$BENCH_PID" 5
  stop_pid "$FV_PID" 5
  stop_pid "$LV_PID" 10
  local ns pid
  for ns in "${NS_MADE[@]}"; do  # whatever else still runs there (qemu-img)
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
  for ns in "${NS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null; done
  if [[ -n "$XFS_DIR" ]]; then
    # (the daemons' mount namespaces, which held copies of it, are gone)
    for _ in $(seq 50); do umount "$XFS_DIR" 2>/dev/null && break; sleep 0.1; done
    mountpoint -q "$XFS_DIR" && { say "warning: $XFS_DIR still busy, lazy unmount"; umount -l "$XFS_DIR"; }
  fi
  [[ -n "$XFS_LOOP" ]] && losetup -d "$XFS_LOOP" 2>/dev/null
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

# ---------------------------------------------------------------- libvirt
LV_SKIP_REASON=""
if [[ $LIBVIRT -eq 1 ]]; then
  if ! lv_installed; then
    if [[ $INSTALL -eq 1 ]]; then lv_install; else LV_SKIP_REASON="libvirt is not installed (--no-install)"; fi
  fi
  [[ -z "$LV_SKIP_REASON" ]] && ! lv_installed && LV_SKIP_REASON="libvirtd not found after installing"
  if [[ -z "$LV_SKIP_REASON" ]]; then
    # The storage driver and its dir/fs backend, for this libvirtd only.
    if [[ $INSTALL -eq 0 ]] && ! dpkg-query -W -f='${Status}' libvirt-daemon-driver-storage 2>/dev/null | grep -q 'install ok installed'; then
      LV_SKIP_REASON="libvirt's storage driver is not installed (--no-install)"
    else
      LV_STORAGE_ROOT=$(lv_unpack libvirt-daemon-driver-storage) || true
      if [[ -z "$LV_STORAGE_ROOT" ]]; then
        LV_SKIP_REASON="cannot get libvirt-daemon-driver-storage (see $LOGS/apt.log)"
      else
        lv_prepare "$T/lv"
        lv_add_driver "$T/lv" "$LV_STORAGE_ROOT" storage
        mkdir -p "$T/lv/storage-backend"
        ln -s "${LV_STORAGE_ROOT%/}$LV_DRIVERS_DIR/storage-backend/libvirt_storage_backend_fs.so" "$T/lv/storage-backend/"
      fi
    fi
  fi
else
  LV_SKIP_REASON="--no-libvirt"
fi

# ---------------------------------------------------------------- XFS
# Mounted before the daemons start, so that their mount namespaces have it.
XFS_NOTE=""
if [[ $XFS -eq 1 && ",$SECTIONS," == *,full,* ]]; then
  if command -v mkfs.xfs >/dev/null && command -v losetup >/dev/null; then
    # room for three sources and a copy per tool (sparse: costs what is written)
    img_mib=$((CLONE_MIB * 4 + 256))
    ((img_mib < 320)) && img_mib=320
    truncate -s "${img_mib}M" "$T/xfs.img"
    # direct I/O: the loop device writes through to the disk, so that an
    # fsync on the XFS means the data is on the disk, not in the page cache
    # of the image file
    if XFS_LOOP=$(losetup -f --show --direct-io=on "$T/xfs.img" 2>"$T/xfs.err") \
       && mkfs.xfs -q -m reflink=1 "$XFS_LOOP" 2>>"$T/xfs.err" \
       && mkdir -p "$T/xfs" && mount "$XFS_LOOP" "$T/xfs" 2>>"$T/xfs.err"; then
      XFS_DIR="$T/xfs"
      say "XFS (reflink=1, ${img_mib} MiB) on $XFS_LOOP at $XFS_DIR"
    else
      XFS_NOTE="no XFS: $(tr '\n' ' ' <"$T/xfs.err")"
      [[ -n "$XFS_LOOP" ]] && losetup -d "$XFS_LOOP" 2>/dev/null
      XFS_LOOP=""
    fi
  else
    XFS_NOTE="no XFS: mkfs.xfs (xfsprogs) or losetup missing"
  fi
  [[ -n "$XFS_NOTE" ]] && say "$XFS_NOTE"
elif [[ $XFS -eq 0 ]]; then
  XFS_NOTE="--no-xfs"
fi

# ---------------------------------------------------------------- daemons
links_before=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sort | tr '\n' ' ')
for ns in "$FVNS" "$LVNS"; do
  ip netns add "$ns"
  NS_MADE+=("$ns")
  ip -n "$ns" link set lo up
done
say "starting ferrovirtd ($PROFILE) in network namespace $FVNS"
fv_start "$FVNS" "$T/api.sock" "$T/state" "$T/run" "$T/ferrovirtd.log"
if [[ -z "$LV_SKIP_REASON" ]]; then
  say "starting libvirtd $(libvirtd --version | awk '{print $NF}') (with its storage driver) in network namespace $LVNS and a private mount namespace"
  lv_start "$T/lv" "$LVNS"
  if [[ -z "$LV_SKIP_REASON" ]] && ! virsh -q -c "$LV_URI" pool-list --all >/dev/null 2>&1; then
    LV_SKIP_REASON="libvirtd did not load its storage driver: $(tail -n 2 "$T/lv/libvirtd.log" | tr '\n' ' ')"
  fi
fi
[[ -n "$LV_SKIP_REASON" ]] && say "libvirt SKIPPED: $LV_SKIP_REASON"

# ---------------------------------------------------------------- measure
links_after=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sort | tr '\n' ' ')
[[ "$links_before" == "$links_after" ]] || say "warning: host network interfaces changed meanwhile: [$links_before] -> [$links_after]"
others=$(pgrep -c '^qemu-system' || true)
building=$(pgrep -c '^(cargo|rustc)' || true)
[[ $others -gt 0 ]] && say "warning: $others QEMU process(es) running on this host: figures will be noisier"
[[ $building -gt 0 ]] && say "warning: cargo/rustc running on this host: figures will be noisier"
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n "$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null)" ]] && COMMIT="$COMMIT+dirty"
META=$(cat <<EOF
{
  "quick": $([[ $QUICK -eq 1 ]] && echo true || echo false),
  "date": "$(date -u '+%Y-%m-%d %H:%M UTC')",
  "profile": "$PROFILE",
  "ferrovirt_commit": "$COMMIT",
  "ferrovirtd_binary_mtime": "$(date -u -r "$BIN/ferrovirtd" '+%Y-%m-%d %H:%M:%S UTC')",
  "qemu_img_version": $(json_str "$(qemu-img --version | head -n1 | sed 's/qemu-img version //')"),
  "coreutils_version": $(json_str "$(cp --version | head -n1 | awk '{print $NF}')"),
  "libvirt_version": $([[ -z "$LV_SKIP_REASON" ]] && json_str "$(libvirtd --version | awk '{print $NF}')" || echo null),
  "libvirt_skipped": $([[ -n "$LV_SKIP_REASON" ]] && json_str "$LV_SKIP_REASON" || echo null),
  "xfs_skipped": $([[ -n "$XFS_NOTE" ]] && json_str "$XFS_NOTE" || echo null),
  "cpu": $(json_str "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"),
  "loadavg_at_start": $(json_str "$(cut -d' ' -f1-3 /proc/loadavg)"),
  "qemu_processes_at_start": $others,
  "cargo_processes_at_start": $building,
  "xfs_loop_direct_io": $([[ -n "$XFS_LOOP" ]] && [[ "$(cat /sys/block/"${XFS_LOOP#/dev/}"/loop/dio 2>/dev/null)" == 1 ]] && echo true || echo false)
}
EOF
)
args=(measure --out "$T/raw.json" --tmp "$T" --runs "$RUNS" --clone-mib "$CLONE_MIB"
      --counts "$COUNTS" --instances "$INSTANCES" --linked-gib "$LINKED_GIB" --sections "$SECTIONS"
      --fv-cli "$BIN/ferrovirt" --fv-socket "$T/api.sock" --meta "$META")
[[ -z "$LV_SKIP_REASON" ]] && args+=(--lv-uri "$LV_URI")
[[ -n "$XFS_DIR" ]] && args+=(--xfs "$XFS_DIR")
say "measuring: sections=$SECTIONS runs=$RUNS clone=$CLONE_MIB MiB counts=$COUNTS instances=$INSTANCES linked=$LINKED_GIB GiB"
# In the background, so that a TERM reaches the trap at once.
"$PY" "$HERE/lib/storage.py" "${args[@]}" &
BENCH_PID=$!
wait "$BENCH_PID"
BENCH_PID=""

mkdir -p "$RESULTS"
cp "$T/raw.json" "$RESULTS/storage-latest.json"
"$PY" "$HERE/lib/storage.py" report "$RESULTS/storage-latest.json" "$RESULTS/storage-latest.md"
say "results: $RESULTS/storage-latest.md and $RESULTS/storage-latest.json"
