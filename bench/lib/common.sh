# Shell functions shared by the benchmark scripts (sourced, not run):
# choosing the Ferrovirt binaries, stopping processes, installing libvirt,
# unpacking extra libvirt drivers from their .debs without installing them,
# and starting a private libvirtd (bench/lib/libvirtd-private-ns.sh) or a
# private ferrovirtd inside a network namespace.
#
# bench/storage.sh uses it; the older scripts (run.sh, snapnet.sh,
# migration.sh) still carry their own copies of the same steps.
#
# The caller defines say() and die() and sets T (its temporary directory,
# removed on exit); functions report through the variables they name.

# fv_binaries ROOT PROFILE BUILD: sets BIN (target/PROFILE) and PROFILE
# (release when built, else debug), cargo-building first when BUILD is 1.
fv_binaries() {
  local root=$1 build=$3 b
  PROFILE=$2
  if [[ $build -eq 1 ]]; then
    say "cargo build --release -p ferrovirtd -p ferrovirt"
    (cd "$root" && cargo build --release -p ferrovirtd -p ferrovirt)
  fi
  if [[ -z "$PROFILE" ]]; then
    if [[ -x "$root/target/release/ferrovirtd" && -x "$root/target/release/ferrovirt" ]]; then
      PROFILE=release
    else
      PROFILE=debug
      say "warning: no release build, measuring the debug build (use --build for release figures)"
    fi
  fi
  BIN="$root/target/$PROFILE"
  for b in ferrovirtd ferrovirt; do
    [[ -x "$BIN/$b" ]] || die "$BIN/$b missing: cargo build $([[ $PROFILE == release ]] && echo --release) -p ferrovirtd -p ferrovirt"
  done
  local stale
  stale=$(find "$root/crates" -name '*.rs' \( -newer "$BIN/ferrovirtd" -o -newer "$BIN/ferrovirt" \) 2>/dev/null | head -n 3 | tr '\n' ' ')
  [[ -z "$stale" ]] || say "warning: sources newer than the $PROFILE binaries ($stale...): rebuild for current figures (--build)"
}

# stop_pid PID [SECS]: TERM, then KILL after SECS (default 5) seconds.
stop_pid() {
  local pid=$1 secs=${2:-5} i
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    [[ -d /proc/$pid ]] && [[ "$(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null)" != Z ]] || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# json_str STRING: STRING as a JSON string literal.
json_str() {
  printf '%s' "$1" | "${PY:-python3}" -c 'import json,sys; print(json.dumps(sys.stdin.read()))'
}

LV_DRIVERS_DIR=/usr/lib/x86_64-linux-gnu/libvirt

lv_installed() {  # libvirtd, virsh and the QEMU driver
  command -v libvirtd >/dev/null && command -v virsh >/dev/null \
    && [[ -e $LV_DRIVERS_DIR/connection-driver/libvirt_driver_qemu.so ]]
}

# lv_install: installs libvirtd, its QEMU driver and virsh (and, optionally,
# python3-libvirt) from Debian, bookworm-backports when available, as
# bench/run.sh does. Sets LV_SKIP_REASON on failure.
lv_install() {
  command -v apt-get >/dev/null || { LV_SKIP_REASON="libvirt is not installed and there is no apt-get"; return; }
  say "installing libvirt (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >>"$T/apt.log" 2>&1 || true
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

# lv_unpack PACKAGE: the root of PACKAGE's files, for this run's libvirtd
# only: / when the package is installed, else the .deb of the version
# matching the installed libvirt-daemon, downloaded (apt-get download, no
# install) and unpacked under $T/pkg. Prints the root; on failure prints
# nothing and says why on stderr.
lv_unpack() {
  local pkg=$1 ver
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    echo /
    return
  fi
  ver=$(dpkg-query -W -f='${Version}' libvirt-daemon 2>/dev/null) || true
  [[ -n "$ver" ]] || { say "cannot tell the installed libvirt's version"; return; }
  mkdir -p "$T/pkg/$pkg"
  if ! (cd "$T/pkg/$pkg" && apt-get download "$pkg=$ver" >>"$T/apt.log" 2>&1); then
    apt-get update -qq >>"$T/apt.log" 2>&1 || true
    if ! (cd "$T/pkg/$pkg" && apt-get download "$pkg=$ver" >>"$T/apt.log" 2>&1); then
      say "apt-get download $pkg=$ver failed: $(tail -n 2 "$T/apt.log" | tr '\n' ' ')"
      return
    fi
  fi
  dpkg-deb -x "$T/pkg/$pkg/${pkg}_"*.deb "$T/pkg/$pkg/root" || return
  echo "$T/pkg/$pkg/root"
}

# lv_prepare LVDIR: the configuration of a private libvirtd under LVDIR
# (private sockets without authentication, 0700; QEMU as root; QEMU's stdio
# to a file, no virtlogd), as in bench/run.sh. Sets LV_URI.
lv_prepare() {
  local lv=$1
  mkdir -p "$lv"/{etc/qemu,lib,cache,log,run,sock}
  cat >"$lv/etc/libvirtd.conf" <<EOF
unix_sock_dir = "$lv/sock"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:$lv/libvirtd.log"
EOF
  cat >"$lv/etc/qemu.conf" <<EOF
user = "root"
group = "root"
stdio_handler = "file"
EOF
  LV_URI="qemu:///system?socket=$lv/sock/libvirt-sock"
}

# lv_add_driver LVDIR ROOT NAME: makes LVDIR/drivers (the system's QEMU
# driver, linked) if needed and links ROOT's libvirt_driver_NAME.so into it.
lv_add_driver() {
  local lv=$1 root=$2 name=$3
  if [[ ! -d "$lv/drivers" ]]; then
    mkdir -p "$lv/drivers"
    ln -s "$LV_DRIVERS_DIR/connection-driver/libvirt_driver_qemu.so" "$lv/drivers/"
  fi
  ln -sf "${root%/}$LV_DRIVERS_DIR/connection-driver/libvirt_driver_$name.so" "$lv/drivers/"
}

# lv_start LVDIR NETNS: starts libvirtd (bench/lib/libvirtd-private-ns.sh) in
# network namespace NETNS and a private mount namespace; waits until it
# answers. Sets LV_PID, or LV_SKIP_REASON on failure.
lv_start() {
  local lv=$1 ns=$2 i
  ip netns exec "$ns" unshare --mount --propagation private \
    bash "$(dirname "${BASH_SOURCE[0]}")/libvirtd-private-ns.sh" "$lv" >"$lv/libvirtd.out" 2>&1 &
  LV_PID=$!
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
  [[ "$(cat /proc/"$LV_PID"/comm)" == libvirtd ]] || LV_SKIP_REASON="unexpected process behind libvirtd's PID"
}

# fv_start NETNS SOCKET STATE RUNTIME LOG [ARGS...]: starts ferrovirtd ($BIN)
# in network namespace NETNS, without the default NAT network, and waits
# until GET /1.0 answers 200. Sets FV_PID.
fv_start() {
  local ns=$1 sock=$2 state=$3 rt=$4 logf=$5
  shift 5
  mkdir -p "$state" "$rt"
  ip netns exec "$ns" "$BIN/ferrovirtd" --socket "$sock" --state-dir "$state" --runtime-dir "$rt" \
    --no-default-network "$@" >"$logf" 2>&1 &
  FV_PID=$!
  local i
  for ((i = 0; i < 300; i++)); do
    fv_up "$sock" && break
    kill -0 "$FV_PID" 2>/dev/null || die "ferrovirtd exited: $(tail -n 5 "$logf")"
    sleep 0.1
  done
  fv_up "$sock" || die "ferrovirtd did not come up"
  [[ "$(cat /proc/"$FV_PID"/comm)" == ferrovirtd ]] || die "unexpected process behind ferrovirtd's PID"
}

fv_up() {  # SOCKET: GET /1.0 answers 200
  "${PY:-python3}" -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"GET /1.0 HTTP/1.0\r\nHost: x\r\n\r\n")
sys.exit(0 if s.recv(64).split()[1:2] == [b"200"] else 1)' "$1" 2>/dev/null
}
