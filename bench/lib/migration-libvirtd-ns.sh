#!/usr/bin/env bash
# Runs inside `ip netns exec NS unshare --mount --propagation private`: gives
# one private libvirtd (one "host" of bench/migration.sh) its own
# /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt and
# /run/libvirt (bind mounts of directories under $1, seen only by this mount
# namespace, i.e. by this libvirtd and the QEMUs it starts), then becomes
# libvirtd. The host's own libvirt directories are never written to.
# (The same approach as bench/lib/libvirtd-ns.sh, kept separate so that the
# two benchmarks can change independently.)
#
# Usage: migration-libvirtd-ns.sh LVDIR   (LVDIR has etc/ lib/ cache/ log/ run/)
set -euo pipefail
LV=$1
mount --bind "$LV/etc" /etc/libvirt
mount --bind "$LV/lib" /var/lib/libvirt
mount --bind "$LV/cache" /var/cache/libvirt
mount --bind "$LV/log" /var/log/libvirt
mount --bind "$LV/run" /run/libvirt
exec /usr/sbin/libvirtd -f /etc/libvirt/libvirtd.conf -p "$LV/libvirtd.pid"
