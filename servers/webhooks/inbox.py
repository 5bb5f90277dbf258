"""The receiver's inbox: a webhook is written down before it is acknowledged.

The provider's outbox makes *delivery* at-least-once. This file does the
same on the receiving side, in three steps:

1. **store**: the verified message is inserted here and committed; only
   then does the receiver answer 2xx. A crash after the answer loses
   nothing: the row is in the file, ``pending``.
2. **process**: a worker takes pending rows one by one. The application's
   work (here: a row in ``effects``, standing in for your own tables) and
   the mark ``processed`` are committed in **one transaction**: both happen,
   or neither. If the work raises, the transaction is rolled back and the
   row stays ``pending`` for a later try.
3. **deduplicate**: the ``msg_id`` primary key *is* the dedup record. A
   retry of an id already here (pending or processed) is answered 2xx and
   not processed again.

How long ids are kept: by time, not by count. A processed id is forgotten
only ``keep_ids_s`` after it arrived, and ``keep_ids_s`` is at least the
signature's timestamp tolerance: inside that window a captured request
still passes the timestamp check, so only its id stops a replay. (Provider
retries carry fresh timestamps; keep ids as long as your provider retries if
those must be absorbed too: Svix's schedule spans about 28 hours, Stripe's
three days.) Ids live in this file, not in memory. The file is bounded by
``max_ids``; when that many ids are all still inside their window, ``add``
answers ``"full"`` and the receiver refuses with 503 and ``Retry-After``:
the provider retries later, whereas forgetting an id early could let a
replay or a duplicate through.

Subtle point: the ``handlers`` a receiver runs while processing (sending an
email, calling another API) are outside this transaction. If the process
dies after such a call and before the commit, the call happens again on the
retry: effects outside the database must be idempotent themselves.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .sqlitefiles import reset  # noqa: F401  (inbox.reset: delete the file, Windows too)

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    msg_id TEXT PRIMARY KEY,          -- webhook-id: the dedup record
    body BLOB,                        -- the verified raw body; NULL once processed
    received_at REAL NOT NULL,        -- wall clock: ids expire by time
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | processed
    attempts INTEGER NOT NULL DEFAULT 0,     -- failed processing attempts
    next_try_at REAL NOT NULL,
    last_error TEXT,
    processed_at REAL
);
CREATE INDEX IF NOT EXISTS inbox_due ON inbox(status, next_try_at);
CREATE INDEX IF NOT EXISTS inbox_age ON inbox(status, received_at);
CREATE TABLE IF NOT EXISTS effects (  -- the application's own data
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL,
    event_type TEXT,
    seq INTEGER,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS effects_msg ON effects(msg_id);
"""


@dataclass(frozen=True)
class Pending:
    msg_id: str
    body: bytes
    attempts: int


class Inbox:
    """One SQLite connection. Not thread-safe by itself: the ``Receiver``
    holds its lock around every call."""

    def __init__(
        self,
        path: str | Path,
        keep_ids_s: float,
        max_ids: int,
        clock: Callable[[], float],
    ) -> None:
        self.path = str(path)
        self.keep_ids_s = keep_ids_s
        self.max_ids = max_ids
        self.clock = clock
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the 2xx goes out, even if the
        # machine (not only the process) fails right after.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self.size = self.db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]
        self._purged_at = float("-inf")

    def close(self) -> None:
        self.db.close()

    # -- 1. store ---------------------------------------------------------------------
    def add(self, msg_id: str, body: bytes) -> str:
        """``"new"`` (stored and committed), ``"duplicate"``, or ``"full"``."""
        if self.db.execute("SELECT 1 FROM inbox WHERE msg_id=?", (msg_id,)).fetchone():
            return "duplicate"
        now = self.clock()
        if self.size >= self.max_ids or now - self._purged_at >= 1.0:
            self.purge(now)
        if self.size >= self.max_ids:
            return "full"
        self.db.execute(
            "INSERT INTO inbox (msg_id, body, received_at, next_try_at) VALUES (?,?,?,?)",
            (msg_id, body, now, now),
        )  # autocommit: durable when this returns
        self.size += 1
        return "new"

    def purge(self, now: float) -> int:
        """Forget processed ids older than the window (never a pending one)."""
        cur = self.db.execute(
            "DELETE FROM inbox WHERE status='processed' AND received_at < ?",
            (now - self.keep_ids_s,),
        )
        self._purged_at = now
        self.size -= cur.rowcount
        return cur.rowcount

    def full_reason(self) -> str:
        """Why ``add`` answered ``"full"`` (the receiver's 503)."""
        return (
            f"{self.max_ids} ids are still inside their {self.keep_ids_s:g} s dedup "
            "window; refusing rather than forgetting one (retry later)"
        )

    def retry_after_s(self) -> float:
        """When the oldest id leaves the window (what a 503 tells the provider)."""
        row = self.db.execute(
            "SELECT MIN(received_at) FROM inbox WHERE status='processed'"
        ).fetchone()
        if row[0] is None:  # all pending: the worker is behind
            return 1.0
        return max(1.0, row[0] + self.keep_ids_s - self.clock())

    # -- 2. process ---------------------------------------------------------------------
    def due(self, limit: int) -> list[Pending]:
        rows = self.db.execute(
            "SELECT msg_id, body, attempts FROM inbox WHERE status='pending' AND next_try_at<=?"
            " ORDER BY next_try_at, received_at LIMIT ?",
            (self.clock(), limit),
        ).fetchall()
        return [Pending(r[0], bytes(r[1]), r[2]) for r in rows]

    def next_try_at(self) -> float | None:
        return self.db.execute(
            "SELECT MIN(next_try_at) FROM inbox WHERE status='pending'"
        ).fetchone()[0]

    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def record_effect(self, msg_id: str, event_type: str | None, seq: int | None) -> None:
        self.db.execute(
            "INSERT INTO effects (msg_id, event_type, seq, at) VALUES (?,?,?,?)",
            (msg_id, event_type, seq, self.clock()),
        )

    def mark_processed_and_commit(self, msg_id: str) -> None:
        self.db.execute(
            "UPDATE inbox SET status='processed', body=NULL, processed_at=?, last_error=NULL"
            " WHERE msg_id=?",
            (self.clock(), msg_id),
        )
        self.db.execute("COMMIT")

    def rollback_and_retry_later(self, msg_id: str, error: str, delay_s: float) -> None:
        self.db.execute("ROLLBACK")
        self.db.execute(
            "UPDATE inbox SET attempts=attempts+1, last_error=?, next_try_at=? WHERE msg_id=?",
            (error, self.clock() + delay_s, msg_id),
        )

    def status_of(self, msg_id: str) -> str | None:
        row = self.db.execute("SELECT status FROM inbox WHERE msg_id=?", (msg_id,)).fetchone()
        return row[0] if row else None

    # -- what the notebook shows ----------------------------------------------------------
    def processed_counts(self) -> Counter[str]:
        """msg_id -> how many times its work was committed (must be 1)."""
        rows = self.db.execute("SELECT msg_id, COUNT(*) FROM effects GROUP BY msg_id")
        return Counter(dict(rows.fetchall()))

    def processed_distinct(self) -> int:
        return self.db.execute("SELECT COUNT(DISTINCT msg_id) FROM effects").fetchone()[0]

    def processed_more_than_once(self) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM effects GROUP BY msg_id HAVING COUNT(*) > 1)"
        ).fetchone()[0]

    def counts(self) -> dict[str, int]:
        counts = {"pending": 0, "processed": 0}
        for status, n in self.db.execute("SELECT status, COUNT(*) FROM inbox GROUP BY status"):
            counts[status] = n
        return counts
