"""The durable outbox: every delivery is written down before it is tried.

The provider never sends a webhook straight from memory. For each event and
each matching subscription it first inserts a row into this SQLite file and
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

Subscriptions live here too, secrets included. A real provider would encrypt
them at rest; this teaching file does not.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,        -- JSON list; ["*"] means every type
    secrets TEXT NOT NULL,            -- JSON list, newest first (rotation)
    status TEXT NOT NULL DEFAULT 'active',  -- active | disabled (after a 410)
    disabled_reason TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL,             -- the webhook-id header, same on every retry
    sub_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL,               -- exact bytes sent (and signed) on every attempt
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | dead
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
class Subscription:
    id: str
    url: str
    event_types: tuple[str, ...]
    secrets: tuple[str, ...]
    status: str = "active"
    disabled_reason: str | None = None

    def wants(self, event_type: str) -> bool:
        return self.status == "active" and (
            "*" in self.event_types or event_type in self.event_types
        )


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
        self._in_tx = False

    # -- transactions ------------------------------------------------------------
    def _begin(self) -> None:
        if not self._in_tx:
            self.db.execute("BEGIN")
            self._in_tx = True

    def commit(self) -> None:
        if self._in_tx:
            self.db.execute("COMMIT")
            self._in_tx = False

    def close(self) -> None:
        self.commit()
        self.db.close()

    # -- subscriptions -------------------------------------------------------------
    def add_subscription(
        self, url: str, event_types: list[str], secrets: list[str]
    ) -> Subscription:
        sub = Subscription(f"sub_{uuid.uuid4().hex[:12]}", url, tuple(event_types), tuple(secrets))
        self._begin()
        self.db.execute(
            "INSERT INTO subscriptions (id, url, event_types, secrets, created_at)"
            " VALUES (?,?,?,?,?)",
            (sub.id, url, json.dumps(event_types), json.dumps(secrets), self.clock()),
        )
        self.commit()
        return sub

    def subscriptions(self) -> list[Subscription]:
        rows = self.db.execute("SELECT * FROM subscriptions ORDER BY created_at").fetchall()
        return [
            Subscription(
                r["id"],
                r["url"],
                tuple(json.loads(r["event_types"])),
                tuple(json.loads(r["secrets"])),
                r["status"],
                r["disabled_reason"],
            )
            for r in rows
        ]

    def set_secrets(self, sub_id: str, secrets: list[str]) -> None:
        self._begin()
        self.db.execute(
            "UPDATE subscriptions SET secrets=? WHERE id=?", (json.dumps(secrets), sub_id)
        )
        self.commit()

    def disable_subscription(self, sub_id: str, reason: str) -> None:
        self._begin()
        self.db.execute(
            "UPDATE subscriptions SET status='disabled', disabled_reason=? WHERE id=?",
            (reason, sub_id),
        )

    def enable_subscription(self, sub_id: str) -> None:
        self._begin()
        self.db.execute(
            "UPDATE subscriptions SET status='active', disabled_reason=NULL WHERE id=?", (sub_id,)
        )
        self.commit()

    def delete_subscription(self, sub_id: str) -> bool:
        self._begin()
        cur = self.db.execute("DELETE FROM subscriptions WHERE id=?", (sub_id,))
        self.commit()
        return cur.rowcount > 0

    # -- messages ------------------------------------------------------------------
    def enqueue(self, items: list[tuple[str, str, int, bytes]]) -> list[Message]:
        """Insert ``(sub_id, event_type, seq, body)`` rows and commit at once;
        return them as pending messages, ready for a first attempt."""
        now = self.clock()
        self._begin()
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
        self._begin()
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
        """Move a disabled subscription's pending messages to the dead letters."""
        self._begin()
        cur = self.db.execute(
            "UPDATE messages SET status='dead', last_error=?, finished_at=? "
            "WHERE sub_id=? AND status='pending'",
            (reason, self.clock(), sub_id),
        )
        return cur.rowcount

    def replay(self, message_ids: list[int] | None = None) -> int:
        """Dead letters back to pending, due now, with a fresh attempt count."""
        self._begin()
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

    def attempts(self, since_id: int = 0, limit: int = 10_000) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM attempts WHERE id>? ORDER BY id LIMIT ?", (since_id, limit)
        ).fetchall()
        return [dict(r) for r in rows]

    @staticmethod
    def _message(r: sqlite3.Row) -> Message:
        return Message(
            r["id"],
            r["msg_id"],
            r["sub_id"],
            r["event_type"],
            r["seq"],
            bytes(r["body"]),
            r["status"],
            r["attempts"],
            r["next_attempt_at"],
            r["last_error"],
        )


def _files(path: str | Path) -> list[Path]:
    return [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")]


def _unlink(file: Path) -> None:
    file.unlink(missing_ok=True)


def reset(path: str | Path) -> None:
    """Delete the outbox file and its WAL companions (a fresh start).

    On Linux and macOS a file can be deleted while it is open. Windows refuses
    (``PermissionError``) while any connection holds it, e.g. a provider still
    running from an earlier run of the same cell, or a notebook's
    ``sqlite3.connect(...)`` that was never closed. There ``reset`` first
    releases what this process holds on the file (``_release``), then deletes.
    """
    try:
        for file in _files(path):
            _unlink(file)
    except PermissionError:
        _release(path)
        for file in _files(path):
            _unlink(file)


def _release(path: str | Path) -> None:
    """Windows fallback of ``reset``: stop the running providers that use this
    outbox (their stop hook closes it) and close this process's other SQLite
    connections to it."""
    import gc

    from servers import runtime

    target = Path(path).resolve()
    for server in runtime.running().values():
        provider = server.app.settings.get("provider") if server.app is not None else None
        outbox = getattr(provider, "outbox", None)
        if isinstance(outbox, Outbox) and Path(outbox.path).resolve() == target:
            server.stop()
    for obj in gc.get_objects():
        if isinstance(obj, sqlite3.Connection):
            try:
                files = [row[2] for row in obj.execute("PRAGMA database_list")]
                if any(f and Path(f).resolve() == target for f in files):
                    obj.close()
            except sqlite3.Error:  # closed already, or owned by another thread
                continue
