#!/usr/bin/env bash
# Installs everything Ferrovirt needs on a Debian 12 (bookworm) host, as root.
# QEMU 10 comes from bookworm-backports: the source is added *before* any QEMU
# package is installed, so the preinstalled qemu-utils 10 is never downgraded.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat >/etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq
# qemu-block-extra carries QEMU's iSCSI driver (iscsi pools), matching QEMU 10.
apt-get install -y -qq -t bookworm-backports qemu-system-x86 qemu-utils qemu-block-extra >/dev/null
# Test guest ingredients and host tools: busybox for the guest, cpio/xz/zstd to
# unpack the Debian kernel, iproute2 for links and namespaces; syslinux,
# mtools and dosfstools for the test guest's firmware-bootable disk image.
apt-get install -y -qq busybox-static cpio xz-utils zstd iproute2 procps \
  syslinux mtools dosfstools >/dev/null
# Networks: dnsmasq for DHCP/DNS, nft for the firewall, Open vSwitch; ping
# for the network tests.
apt-get install -y -qq dnsmasq-base nftables openvswitch-switch iputils-ping >/dev/null
# Storage pools: LVM (logical), libiscsi's iscsi-ls (iscsi), mkfs for xfs and
# btrfs (fs); tgt is the userspace iSCSI target the tests serve LUNs with.
had_tgt=$(dpkg-query -W -f='${Status}' tgt 2>/dev/null | grep -c "ok installed" || true)
apt-get install -y -qq lvm2 libiscsi-bin xfsprogs btrfs-progs e2fsprogs util-linux tgt >/dev/null
# The tests run their own tgtd inside their namespaces; a system one that the
# package may have just started would listen on the host: stop it.
if [[ "$had_tgt" == 0 ]] && pgrep -x tgtd >/dev/null; then
  (systemctl disable --now tgt || service tgt stop) >/dev/null 2>&1 || true
fi
qemu-system-x86_64 --version | head -n1
# Members of this group may use the daemon's API socket (0660): the CLI
# without root, like libvirt's group.
groupadd -f -r ferrovirt
