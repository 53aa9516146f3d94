#!/bin/sh
# /init of the Ferrovirt test guest: busybox sh as PID 1 in an initramfs.
#
# It mounts the kernel file systems, loads the modules the builder chose,
# starts a counter and a power-button watcher, prints the ready marker on
# ttyS0 and then serves the command channel there, forever:
#
#   host -> guest   @@FV <id> <base64 of a shell command>
#   guest -> host   @@FV-END <id> <exit code> <base64 of stdout+stderr>
#
# Anything else on the line is ignored by both sides. Kept in sync with
# crates/testkit/src/channel.rs; a change here changes the guest's cache key.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TERM=dumb
CONSOLE=/dev/ttyS0

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /run /tmp
mount -t devpts devpts /dev/pts 2>/dev/null

# Keep kernel messages off the console: they would interleave with the channel.
dmesg -n 1

# Modules, dependencies first (see /etc/ferrovirt/modules). Optional ones may
# fail (missing hardware, wrong CPU); that is fine.
while read -r module; do
	[ -n "$module" ] && insmod "$module" 2>/dev/null
done </etc/ferrovirt/modules

# A counter that advances about every 100 ms: tests read /tmp/counter to see
# whether the guest is running (pause/resume, save/restore).
counter() {
	n=0
	while :; do
		n=$((n + 1))
		echo "$n" >/tmp/counter.new
		mv -f /tmp/counter.new /tmp/counter
		usleep 100000
	done
}
counter </dev/null >/dev/null 2>&1 &

# ACPI power button: block on one input event of the "Power Button" device,
# then announce it and power off, like a real OS would. Each watcher opens
# its device first and then leaves a flag file; the ready marker waits for
# the flags, so a button press right after it is never missed.
watch_power_button() {
	exec 3<"$1" || return
	: >"/run/power-button.$2"
	until dd of=/dev/null bs=24 count=1 <&3 2>/dev/null; do
		sleep 1
	done
	echo FERROVIRT-ACPI-POWER-BUTTON >"$CONSOLE"
	sync
	poweroff -f
}
power_buttons=
tries=0
while [ -z "$power_buttons" ] && [ "$tries" -lt 30 ]; do
	for name in /sys/class/input/event*/device/name; do
		[ "$(cat "$name" 2>/dev/null)" = "Power Button" ] || continue
		event=${name%/device/name}
		power_buttons="$power_buttons /dev/input/${event##*/}"
	done
	[ -n "$power_buttons" ] || usleep 100000
	tries=$((tries + 1))
done
watchers=0
for device in $power_buttons; do
	tries=0
	until [ -c "$device" ] || [ "$tries" -ge 30 ]; do
		usleep 100000
		tries=$((tries + 1))
	done
	watchers=$((watchers + 1))
	watch_power_button "$device" "$watchers" </dev/null >/dev/null 2>&1 &
done
tries=0
while [ "$(ls /run/power-button.* 2>/dev/null | wc -l)" -lt "$watchers" ] && [ "$tries" -lt 100 ]; do
	usleep 20000
	tries=$((tries + 1))
done
[ "$watchers" -gt 0 ] || echo "FERROVIRT-NO-POWER-BUTTON: no input device named 'Power Button'" >"$CONSOLE"

# Serve commands from the serial line. Raw mode: no echo, no line editing
# (and no 4 KiB canonical line limit), no CR/LF translation.
CR=$(printf '\r')
channel() {
	stty raw -echo 2>/dev/null
	while IFS= read -r line; do
		case "$line" in
		*"@@FV "*) line="@@FV ${line##*@@FV }" ;;
		*) continue ;;
		esac
		line=${line%"$CR"}
		set -f
		# shellcheck disable=SC2086 # split into marker, id, payload
		set -- $line
		set +f
		[ "$#" -eq 3 ] || continue
		id=$2
		case "$id" in '' | *[!0-9]*) continue ;; esac
		# One output file per command: background jobs a command leaves
		# behind keep writing to their own (deleted) file, not the next one.
		out=/tmp/.fv-out.$id
		if cmd=$(printf '%s' "$3" | base64 -d 2>/dev/null); then
			sh -c "$cmd" </dev/null >"$out" 2>&1
			code=$?
		else
			echo "ferrovirt guest: cannot decode the command (bad base64)" >"$out"
			code=254
		fi
		printf '@@FV-END %s %s ' "$id" "$code"
		base64 -w 0 "$out"
		printf '\n'
		rm -f "$out"
	done
}

# busybox halt/poweroff/reboot without -f signal PID 1 (USR1/USR2/TERM);
# the -f forms call reboot(2) directly and need no help. Commands run in
# the foreground, so the trap runs as soon as `poweroff` itself returns.
trap 'halt -f' USR1
trap 'poweroff -f' USR2
trap 'reboot -f' TERM

stty -F "$CONSOLE" raw -echo 2>/dev/null
echo FERROVIRT-GUEST-READY >"$CONSOLE"
# The channel runs in PID 1 itself (not in a background job, whose commands
# would inherit ignored SIGINT/SIGQUIT). A trapped signal ends its `read`;
# the trap runs, and the channel starts over, as it does if the tty hangs up.
while :; do
	channel <"$CONSOLE" >"$CONSOLE" 2>/dev/null
	usleep 100000
done
