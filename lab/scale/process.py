"""One way to run a process beside the kernel: start it guarded, stop it for sure.

Notebook 04 and 03 start real processes: ``servers.fanout`` replicas
(``cluster``), a throwaway ``redis-server`` (``redis_server``), a
``jupyter_server`` with jupyter-server-proxy (``jupyter_proxy``), and load
generator workers (``loadgen``). Each must end, whatever the learner does:

* ``ManagedProcess._spawn`` starts a command and has the ``reaper`` watch it,
  so a kernel that dies or restarts halfway does not leave it running;
* ``end_process`` stops one politely (``terminate()``: SIGTERM on POSIX,
  TerminateProcess on Windows), waits, then kills: for a ``subprocess.Popen``
  and a ``multiprocessing.Process`` alike;
* every live one is tracked, so ``stop_all()`` (the clean-up cell, and each
  module's own ``stop_all``) ends them all.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import weakref
from typing import Any

from lab.waiting import wait_until

from . import reaper

_live: weakref.WeakSet[Any] = weakref.WeakSet()  # anything with a stop()


def _alive(proc: Any) -> bool:
    if isinstance(proc, subprocess.Popen):
        return proc.poll() is None
    return proc.is_alive()  # multiprocessing.Process


def _wait(proc: Any, timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``proc`` to end; True if it did."""
    if isinstance(proc, subprocess.Popen):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    proc.join(timeout)
    return not proc.is_alive()


def end_process(proc: Any, timeout: float = 5.0, polite: bool = True) -> None:
    """Stop ``proc`` (a Popen or a multiprocessing.Process): ``terminate()``,
    wait ``timeout`` s, then ``kill()``. ``polite=False`` kills at once (a crash)."""
    if proc is None or not _alive(proc):
        return
    if polite:
        proc.terminate()
        if _wait(proc, timeout):
            return
    proc.kill()
    _wait(proc, timeout)


def track(obj: Any) -> None:
    """Have ``stop_all()`` stop ``obj`` (anything with a ``stop()``)."""
    _live.add(obj)


def untrack(obj: Any) -> None:
    _live.discard(obj)


def stop_all(kind: type | None = None) -> None:
    """Stop every live managed process (only those of ``kind`` if given)."""
    for obj in list(_live):
        if kind is None or isinstance(obj, kind):
            obj.stop()


class ManagedProcess:
    """One command run beside the kernel. A subclass's ``start()`` calls
    ``_spawn(cmd)`` then ``_wait_ready(check)``; ``stop()`` ends it and removes
    its temporary folder (``_tempdir()``); ``kill()`` is a crash."""

    what = "process"  # for error messages
    owns_output = True  # stop() closes its stdout pipe (False: a reader thread owns it)

    proc: subprocess.Popen | None = None
    _dir: str | None = None

    def _tempdir(self, prefix: str) -> str:
        self._dir = tempfile.mkdtemp(prefix=prefix)
        return self._dir

    def _spawn(self, cmd: list[str], **popen: Any) -> subprocess.Popen:
        self.proc = subprocess.Popen(cmd, **popen)
        reaper.guard(self.proc)  # ends it if this kernel dies before stop()
        track(self)
        return self.proc

    def _wait_ready(self, ready, timeout: float, interval: float = 0.05) -> None:
        """Wait until ``ready()`` is true; stop and raise if the process exits
        first or ``timeout`` s pass."""
        proc = self.proc
        if wait_until(lambda: not _alive(proc) or ready(), timeout, interval) and _alive(proc):
            return
        output = self._output()
        self.stop()
        why = "exited during start-up" if not _alive(proc) else f"was not ready in {timeout} s"
        raise self._failure(f"{self.what} {why}{': ' + output if output else ''}")

    def _output(self) -> str:
        """The last of what the process printed (when its output is a pipe)."""
        proc = self.proc
        if proc is None or proc.stdout is None or _alive(proc):
            return ""
        data = proc.stdout.read()
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        return text.strip()[-500:]

    def _failure(self, message: str) -> Exception:
        return RuntimeError(message)

    @property
    def alive(self) -> bool:
        return self.proc is not None and _alive(self.proc)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate (then kill if needed), remove the temp folder. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            end_process(proc, timeout)
            if proc.stdout is not None and self.owns_output:
                proc.stdout.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        untrack(self)

    def kill(self) -> None:
        """A crash: kill at once, no goodbye (the object can still be stopped)."""
        if self.proc is not None:
            end_process(self.proc, polite=False)
        untrack(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
