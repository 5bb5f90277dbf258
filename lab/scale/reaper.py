"""End a helper process when the kernel that started it is gone.

Notebook 04 starts real processes (``redis-server``, ``servers.fanout``). Its
clean-up cell stops them, but a learner who restarts the kernel halfway, or a
kernel that dies, would leave them running. ``guard(proc)`` starts a tiny
watcher process (``python -m lab.scale.reaper PARENT CHILD``) that ends the child
once the parent has exited, and then exits itself. It uses psutil, so it works
the same on Windows, where there is no "die with your parent" signal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

POLL_S = 0.5
_watchers: list[subprocess.Popen] = []


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def watch(parent: int, child: int, poll_s: float = POLL_S) -> None:
    try:
        target = psutil.Process(child)
    except psutil.NoSuchProcess:
        return
    while not _gone(child):
        if _gone(parent):
            target.terminate()  # servers.fanout drains on SIGTERM
            try:
                target.wait(3)
            except psutil.TimeoutExpired:
                target.kill()
            return
        time.sleep(poll_s)


def guard(proc: subprocess.Popen) -> subprocess.Popen:
    """Watch ``proc`` on behalf of this process; returns the watcher."""
    # Collect watchers whose child already ended (no zombies pile up).
    _watchers[:] = [w for w in _watchers if w.poll() is None]
    watcher = subprocess.Popen(
        [sys.executable, "-m", "lab.scale.reaper", str(os.getpid()), str(proc.pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _watchers.append(watcher)
    return watcher


if __name__ == "__main__":
    watch(int(sys.argv[1]), int(sys.argv[2]))
