"""Processes notebook 04 starts do not outlive a kernel that dies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from lab.scale import redis_server

CHILD_SCRIPT = textwrap.dedent(
    """
    import subprocess, sys, time
    from lab.scale import reaper
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    reaper.guard(child)
    print(child.pid, flush=True)
    time.sleep(60)
    """
)


def test_a_guarded_process_ends_when_its_parent_is_killed():
    parent = subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT], stdout=subprocess.PIPE, text=True
    )
    try:
        child_pid = int(parent.stdout.readline())
        assert psutil.pid_exists(child_pid)
        parent.kill()  # like a kernel that dies: no clean-up code runs
        parent.wait(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the guarded child outlived its killed parent")
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.skipif(redis_server.binary() is None, reason="redis-server is not installed")
def test_redis_started_by_a_killed_kernel_is_ended():
    script = textwrap.dedent(
        """
        import time
        from lab.scale.redis_server import RedisServer
        server = RedisServer().start()
        print(server.proc.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        redis_pid = int(parent.stdout.readline())
        parent.kill()
        parent.wait(5)
        gone = (
            psutil.wait_procs([psutil.Process(redis_pid)], timeout=10)[0]
            if psutil.pid_exists(redis_pid)
            else True
        )
        assert gone, "redis-server outlived the process that started it"
    finally:
        if parent.poll() is None:
            parent.kill()
