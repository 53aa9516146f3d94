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
# then announce it and power off, like a real OS would.
watch_power_button() {
	until dd if="$1" of=/dev/null bs=24 count=1 2>/dev/null; do
		sleep 1
	done
	echo FERROVIRT-ACPI-POWER-BUTTON >"$CONSOLE"
	sync
	poweroff -f
}
find_power_buttons() {
	tries=0
	while [ "$tries" -lt 100 ]; do
		found=
		for name in /sys/class/input/event*/device/name; do
			[ "$(cat "$name" 2>/dev/null)" = "Power Button" ] || continue
			event=${name%/device/name}
			found="$found /dev/input/${event##*/}"
		done
		if [ -n "$found" ]; then
			for device in $found; do
				until [ -c "$device" ]; do usleep 50000; done
				watch_power_button "$device" &
			done
			return
		fi
		tries=$((tries + 1))
		usleep 100000
	done
	echo "FERROVIRT-NO-POWER-BUTTON: no input device named 'Power Button'" >"$CONSOLE"
}
find_power_buttons </dev/null >/dev/null 2>&1 &

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
		if printf '%s' "$3" | base64 -d >/tmp/.fv-cmd 2>/dev/null; then
			sh -c "$(cat /tmp/.fv-cmd)" </dev/null >/tmp/.fv-out 2>&1
			code=$?
		else
			echo "ferrovirt guest: cannot decode the command (bad base64)" >/tmp/.fv-out
			code=254
		fi
		printf '@@FV-END %s %s ' "$id" "$code"
		base64 -w 0 /tmp/.fv-out
		printf '\n'
	done
}

stty -F "$CONSOLE" raw -echo 2>/dev/null
echo FERROVIRT-GUEST-READY >"$CONSOLE"
while :; do
	(channel) <"$CONSOLE" >"$CONSOLE" 2>/dev/null
	usleep 100000
done
