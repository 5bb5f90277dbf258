"""The durable outbox: every delivery is written down before it is tried.

The provider never sends a webhook straight from memory. For each event and
each matching endpoint it first inserts a row into this SQLite file and
commits; only then does the dispatcher try to deliver it. A row stays
``pending`` until a receiver answers 2xx (``delivered``) or the retry
schedule runs out (``dead``: the dead-letter list, replayable). So when the
provider process stops with deliveries pending, the rows are still in the
file and the next start picks them up: **at-least-once** delivery. The
price: a delivery that succeeded just before a crash, whose ``delivered``
mark was not yet committed, is sent again. Receivers deduplicate on
``webhook-id`` for exactly this reason.

Commit policy: the enqueue is committed at once (that is what makes the
event durable); status updates and the attempt log are committed together
once per loop iteration (``commit()`` from the provider), since losing one
only means a harmless re-delivery.

The registered endpoints (``Endpoint``: URL, event types, secrets) live
here too, secrets included. A real provider would encrypt
them at rest; this teaching file does not.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .sqlitefiles import reset  # noqa: F401  (outbox.reset: delete the file, Windows too)

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL,             -- the webhook-id header, same on every retry
    sub_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL,               -- exact bytes sent (and signed) on every attempt
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | dead | held (health.py)
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,    -- wall clock: survives a restart
    last_error TEXT,
    created_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS messages_due ON messages(status, next_attempt_at);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message INTEGER NOT NULL,
    msg_id TEXT NOT NULL,
    sub_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    started_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    status_code INTEGER,
    error TEXT,
    outcome TEXT NOT NULL,            -- delivered | retry | dead | gone
    next_delay_s REAL
);
"""


@dataclass(frozen=True)
class Message:
    id: int
    msg_id: str
    sub_id: str
    event_type: str
    seq: int
    body: bytes
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None


class Outbox:
    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self.clock = clock
        # One connection, used from one thread (the provider's loop). WAL lets
        # a notebook cell read the file with its own connection meanwhile.
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._in_tx = self._commit_scheduled = self.closed = False

    # -- transactions ------------------------------------------------------------
    def begin(self) -> None:
        """Open a transaction unless one is open: writes share it until ``commit``."""
        if not self._in_tx:
            self.db.execute("BEGIN")
            self._in_tx = True

    def commit(self) -> None:
        if self._in_tx:
            self.db.execute("COMMIT")
            self._in_tx = False

    def commit_soon(self) -> None:
        """Commit on the loop's next turn: many attempts that finish in the
        same iteration share one commit."""
        if not self._commit_scheduled:
            self._commit_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_commit)

    def _scheduled_commit(self) -> None:
        self._commit_scheduled = False
        if not self.closed:
            self.commit()

    def close(self) -> None:
        self.commit()
        self.db.close()
        self.closed = True

    # -- messages ------------------------------------------------------------------
    def enqueue(self, items: list[tuple[str, str, int, bytes]]) -> list[Message]:
        """Insert ``(sub_id, event_type, seq, body)`` rows and commit at once;
        return them as pending messages, ready for a first attempt."""
        now = self.clock()
        self.begin()
        messages = []
        for sub_id, event_type, seq, body in items:
            msg_id = f"msg_{uuid.uuid4().hex}"
            cur = self.db.execute(
                "INSERT INTO messages (msg_id, sub_id, event_type, seq, body, next_attempt_at,"
                " created_at) VALUES (?,?,?,?,?,?,?)",
                (msg_id, sub_id, event_type, seq, body, now, now),
            )
            messages.append(
                Message(
                    cur.lastrowid, msg_id, sub_id, event_type, seq, body, "pending", 0, now, None
                )
            )
        self.commit()
        return messages

    def due(self, now: float, exclude: set[int], limit: int) -> list[Message]:
        rows = self.db.execute(
            "SELECT * FROM messages WHERE status='pending' AND next_attempt_at<=? "
            "ORDER BY next_attempt_at, id LIMIT ?",
            (now, limit + len(exclude)),
        ).fetchall()
        return [self._message(r) for r in rows if r["id"] not in exclude][:limit]

    def next_due_at(self, exclude: set[int]) -> float | None:
        rows = self.db.execute(
            "SELECT id, next_attempt_at FROM messages WHERE status='pending' "
            "ORDER BY next_attempt_at LIMIT ?",
            (len(exclude) + 1,),
        ).fetchall()
        for r in rows:
            if r["id"] not in exclude:
                return r["next_attempt_at"]
        return None

    def record_attempt(
        self,
        message: Message,
        attempt: int,
        started_at: float,
        duration_ms: float,
        status_code: int | None,
        error: str | None,
        outcome: str,
        next_delay_s: float | None = None,
    ) -> None:
        """Log one attempt and move the message on (delivered / retry / dead)."""
        self.begin()
        self.db.execute(
            "INSERT INTO attempts (message, msg_id, sub_id, seq, attempt, started_at, duration_ms,"
            " status_code, error, outcome, next_delay_s) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                message.id,
                message.msg_id,
                message.sub_id,
                message.seq,
                attempt,
                started_at,
                duration_ms,
                status_code,
                error,
                outcome,
                next_delay_s,
            ),
        )
        now = self.clock()
        if outcome == "delivered":
            self.db.execute(
                "UPDATE messages SET status='delivered', attempts=?, last_error=NULL,"
                " finished_at=? WHERE id=?",
                (attempt, now, message.id),
            )
        elif outcome == "retry":
            self.db.execute(
                "UPDATE messages SET attempts=?, next_attempt_at=?, last_error=? WHERE id=?",
                (attempt, now + (next_delay_s or 0.0), error, message.id),
            )
        else:  # dead or gone: the dead-letter list
            self.db.execute(
                "UPDATE messages SET status='dead', attempts=?, last_error=?, finished_at=?"
                " WHERE id=?",
                (attempt, error, now, message.id),
            )

    def kill_pending(self, sub_id: str, reason: str) -> int:
        """Move an endpoint's undelivered messages (pending, or held while it
        was disabled for failing) to the dead letters: none is silently left
        behind when it is gone, and ``replay`` can still send them."""
        self.begin()
        cur = self.db.execute(
            "UPDATE messages SET status='dead', last_error=?, finished_at=? "
            "WHERE sub_id=? AND status IN ('pending', 'held')",
            (reason, self.clock(), sub_id),
        )
        return cur.rowcount

    def replay(self, message_ids: list[int] | None = None) -> int:
        """Dead letters back to pending, due now, with a fresh attempt count."""
        self.begin()
        sql = (
            "UPDATE messages SET status='pending', attempts=0, next_attempt_at=?, finished_at=NULL "
        )
        if message_ids is None:
            cur = self.db.execute(sql + "WHERE status='dead'", (self.clock(),))
        else:
            cur = self.db.executemany(
                sql + "WHERE status='dead' AND id=?", [(self.clock(), i) for i in message_ids]
            )
        self.commit()
        return cur.rowcount

    # -- what the notebook shows -----------------------------------------------------
    def counts(self) -> dict[str, int]:
        counts = {"pending": 0, "delivered": 0, "dead": 0}
        for r in self.db.execute("SELECT status, COUNT(*) AS n FROM messages GROUP BY status"):
            counts[r["status"]] = r["n"]
        return counts

    def messages(self, status: str | None = None, limit: int = 1000) -> list[Message]:
        if status is None:
            rows = self.db.execute("SELECT * FROM messages ORDER BY id LIMIT ?", (limit,))
        else:
            rows = self.db.execute(
                "SELECT * FROM messages WHERE status=? ORDER BY id LIMIT ?", (status, limit)
            )
        return [self._message(r) for r in rows.fetchall()]

    def attempts(self, after: int = 0, limit: int = 10_000) -> list[dict[str, Any]]:
        """The attempt log after row ``after`` (a resume cursor: the last id seen)."""
        rows = self.db.execute(
            "SELECT * FROM attempts WHERE id>? ORDER BY id LIMIT ?", (after, limit)
        ).fetchall()
        return [dict(r) for r in rows]

    @staticmethod
    def _message(r: sqlite3.Row) -> Message:
        return Message(**{name: r[name] for name in Message.__dataclass_fields__})
