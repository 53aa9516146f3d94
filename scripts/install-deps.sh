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
apt-get install -y -qq -t bookworm-backports qemu-system-x86 qemu-utils >/dev/null
# Test guest ingredients and host tools: busybox for the guest, cpio/xz/zstd to
# unpack the Debian kernel, iproute2 for links and namespaces.
apt-get install -y -qq busybox-static cpio xz-utils zstd iproute2 procps >/dev/null
# Networks: dnsmasq for DHCP/DNS, nft for the firewall, Open vSwitch; ping
# for the network tests.
apt-get install -y -qq dnsmasq-base nftables openvswitch-switch iputils-ping >/dev/null
qemu-system-x86_64 --version | head -n1
