#!/usr/bin/env bash
# Runs inside `unshare --mount --propagation private`, itself inside the
# network namespace bench/snapnet.sh made for libvirt (ip netns exec): gives
# a private libvirtd its own /etc/libvirt, /var/lib/libvirt,
# /var/cache/libvirt, /var/log/libvirt and /run/libvirt (bind mounts of
# directories under $1, seen only by this mount namespace, i.e. by libvirtd
# and what it starts), then becomes libvirtd. The host's own libvirt files
# are never written to.
#
# For the network driver, when LVDIR/drivers exists it is the driver
# directory (LIBVIRT_DRIVER_DIR: the system's QEMU driver plus a network
# driver unpacked from its .deb, so the host's libvirt is not changed), and
# LVDIR/libexec replaces /usr/lib/libvirt (the system's helpers plus
# libvirt_leaseshelper, which libvirt's dnsmasq calls).
#
# Usage: snapnet-libvirtd-ns.sh LVDIR   (LVDIR has etc/ lib/ cache/ log/ run/)
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
  mount -t tmpfs -o mode=0755 snapnet-run /run
  mkdir /run/libvirt
fi
mount --bind "$LV/run" /run/libvirt
if [[ -d "$LV/libexec" ]]; then
  mkdir -p /usr/lib/libvirt 2>/dev/null || true
  mount --bind "$LV/libexec" /usr/lib/libvirt
fi
if [[ -d "$LV/drivers" ]]; then
  export LIBVIRT_DRIVER_DIR="$LV/drivers"
fi
ip link set lo up 2>/dev/null || true
exec /usr/sbin/libvirtd -f /etc/libvirt/libvirtd.conf -p "$LV/libvirtd.pid"
