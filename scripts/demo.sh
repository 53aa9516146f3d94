#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine, as root: install what Ferrovirt
# needs, build it, start ferrovirtd, boot a demo VM (the project's own small
# Debian-kernel + busybox guest) and show its serial console.
#
# Afterwards the daemon keeps running: try `ferrovirt list`, `ferrovirt
# console demo`, `ferrovirt stop demo` (binaries in target/debug/).
#
# The demo daemon runs in a network namespace of its own (ferrovirt-demo):
# its default NAT network, bridges and firewall table stay there and leave
# the host's networking alone. For real use run `ferrovirtd` directly.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --workspace --bins
BIN=$PWD/target/debug
export FERROVIRT_SOCKET=${FERROVIRT_SOCKET:-/run/ferrovirt/ferrovirt.sock}
NETNS=ferrovirt-demo
if ! "$BIN/ferrovirt" list >/dev/null 2>&1; then
  mkdir -p /var/log/ferrovirt
  ip netns list | grep -qw "$NETNS" || { ip netns add "$NETNS"; ip -n "$NETNS" link set lo up; }
  nohup ip netns exec "$NETNS" "$BIN/ferrovirtd" >>/var/log/ferrovirt/ferrovirtd.log 2>&1 &
  for _ in $(seq 100); do "$BIN/ferrovirt" list >/dev/null 2>&1 && break; sleep 0.1; done
fi
"$BIN/ferrovirt" host check || true
GUEST=$("$BIN/ferrovirt-test-guest")
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])" <<<"$GUEST"; }
if ! "$BIN/ferrovirt" show demo >/dev/null 2>&1; then
  "$BIN/ferrovirt" create demo --memory 256 --nic default \
    --kernel "$(field kernel)" --initrd "$(field initrd)" --cmdline "console=ttyS0 panic=-1"
fi
status=$("$BIN/ferrovirt" show demo --format json | python3 -c "import json,sys; print(json.load(sys.stdin)['state']['status'])")
[ "$status" = running ] || "$BIN/ferrovirt" start demo
"$BIN/ferrovirt" list
# Wait for the guest to finish booting, then show its serial console.
for _ in $(seq 600); do
  "$BIN/ferrovirt" console demo --log | grep -q FERROVIRT-GUEST-READY && break
  sleep 0.1
done
echo "----- console of demo -----"
"$BIN/ferrovirt" console demo --log
echo "---------------------------"
echo "The demo VM runs on. Attach to its live console with:"
echo "  $BIN/ferrovirt console demo      (Ctrl-] detaches; the test guest's console"
echo "                                    serves the test command channel, not a login)"
echo "Stop it with: $BIN/ferrovirt stop demo"
