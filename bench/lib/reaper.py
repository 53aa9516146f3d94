#!/usr/bin/env python3
"""Run a command as a child subreaper that reaps every orphan.

PID 1 on some containers (including the machine these benchmarks were first
run on) never reaps orphaned children. QEMU started with -daemonize is such an
orphan, and a process that stays a zombie still answers kill(pid, 0). A
manager that waits for QEMU to disappear that way (libvirt does) would then
wait for its own timeout. On a normal host init reaps at once; this wrapper
restores that behaviour for everything the benchmark starts.

Usage: reaper.py COMMAND [ARG...]  -- exits with COMMAND's status.
"""
import ctypes
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("reaper: prctl(PR_SET_CHILD_SUBREAPER) failed", file=sys.stderr)
    child = os.fork()
    if child == 0:
        try:
            os.execvp(sys.argv[1], sys.argv[1:])
        finally:
            os._exit(127)

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(s, forward)

    status = 0
    while True:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            status = os.waitstatus_to_exitcode(st)
            if status < 0:
                status = 128 - status
            # The command is done; orphans it left (there should be none:
            # run.sh cleans up) are still reaped when they exit, but we do
            # not wait for them.
            break
    # Sweep zombies that are already there.
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    return status


if __name__ == "__main__":
    sys.exit(main())
