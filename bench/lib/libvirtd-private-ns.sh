#!/usr/bin/env bash
# The general form of bench/lib/{,migration-,snapnet-}libvirtd-ns.sh, for new
# benchmarks (bench/storage.sh uses it; the older scripts keep their own).
#
# Runs inside `unshare --mount --propagation private` (itself inside a
# network namespace the calling benchmark made, via `ip netns exec`): gives a
# private libvirtd its own /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt,
# /var/log/libvirt and /run/libvirt (bind mounts of directories under LVDIR,
# seen only by this mount namespace, i.e. by libvirtd and what it starts),
# then becomes libvirtd. The host's own libvirt files are never written to.
#
# Optional parts of LVDIR, each used only when present:
#   drivers/          the connection-driver directory (LIBVIRT_DRIVER_DIR):
#                     symlinks to the system's QEMU driver plus drivers
#                     unpacked from their .debs (network, storage), so that
#                     the host's libvirt installation stays as it was
#   storage-backend/  the storage backends (LIBVIRT_STORAGE_BACKEND_DIR),
#                     e.g. libvirt_storage_backend_fs.so for dir pools
#   libexec/          replaces /usr/lib/libvirt (helpers such as
#                     libvirt_leaseshelper or libvirt_parthelper)
#
# Usage: libvirtd-private-ns.sh LVDIR   (LVDIR has etc/ lib/ cache/ log/ run/)
set -euo pipefail
LV=$1
mount --bind "$LV/etc" /etc/libvirt
mount --bind "$LV/lib" /var/lib/libvirt
mount --bind "$LV/cache" /var/cache/libvirt
mount --bind "$LV/log" /var/log/libvirt
# /run/libvirt may not exist on the host, and creating it there would race
# with other benchmarks that remove it: when it is missing, this namespace
# gets a /run of its own (a tmpfs) to hold it.
if [[ ! -d /run/libvirt ]]; then
  mount -t tmpfs -o mode=0755 lv-private-run /run
  mkdir /run/libvirt
fi
mount --bind "$LV/run" /run/libvirt
if [[ -d "$LV/libexec" ]]; then
  mkdir -p /usr/lib/libvirt 2>/dev/null || true
  mount --bind "$LV/libexec" /usr/lib/libvirt
fi
[[ -d "$LV/drivers" ]] && export LIBVIRT_DRIVER_DIR="$LV/drivers"
[[ -d "$LV/storage-backend" ]] && export LIBVIRT_STORAGE_BACKEND_DIR="$LV/storage-backend"
ip link set lo up 2>/dev/null || true
exec /usr/sbin/libvirtd -f /etc/libvirt/libvirtd.conf -p "$LV/libvirtd.pid"
