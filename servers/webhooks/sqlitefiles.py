"""Delete a SQLite file and its WAL companions, on Windows too.

``outbox.reset`` and ``inbox.reset`` (a fresh start for a notebook) both
come here. On Linux and macOS a file can be deleted while it is open.
Windows refuses (``PermissionError``) while any connection holds it, e.g. a
provider still running from an earlier run of the same cell, or a
notebook's ``sqlite3.connect(...)`` that was never closed. There ``reset``
first releases what this process holds on the file (``_release``), then
deletes.
"""

from __future__ import annotations

import gc
import sqlite3
from pathlib import Path


def files(path: str | Path) -> list[Path]:
    """The database file and the companions SQLite may create beside it."""
    return [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")]


def _unlink(file: Path) -> None:
    file.unlink(missing_ok=True)


def reset(path: str | Path) -> None:
    """Delete the file and its companions (a fresh start)."""
    try:
        for file in files(path):
            _unlink(file)
    except PermissionError:
        _release(path)
        for file in files(path):
            _unlink(file)


def _release(path: str | Path) -> None:
    """Windows fallback of ``reset``: stop the running providers whose outbox
    is this file (their stop hook closes it), then close this process's other
    SQLite connections to it (a receiver's inbox, a notebook's own)."""
    from servers import runtime

    target = Path(path).resolve()
    for server in runtime.running().values():
        outbox_path = getattr(getattr(server.state, "outbox", None), "path", None)
        if outbox_path is not None and Path(outbox_path).resolve() == target:
            server.stop()
    for obj in gc.get_objects():
        if isinstance(obj, sqlite3.Connection):
            try:
                names = [row[2] for row in obj.execute("PRAGMA database_list")]
                if any(f and Path(f).resolve() == target for f in names):
                    obj.close()
            except sqlite3.Error:  # closed already, or owned by another thread
                continue
