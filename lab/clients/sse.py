"""A reconnecting Server-Sent Events client around sseclient-py.

sseclient-py parses an SSE byte stream into events, and that is all it does.
A browser's ``EventSource`` does more, and a client that must not lose events
needs all of it, so this module adds it:

* **reconnect** when the stream ends or the connection breaks, after the
  reconnection delay;
* send **Last-Event-ID** with the id of the last event received, so the
  server replays what was missed (sseclient-py does not carry ``id`` over
  from one event to the next: we remember it ourselves);
* honour **retry:** (sseclient-py drops a block that has ``retry:`` but no
  ``data:``, so we read ``retry:`` lines from the raw bytes);
* obey **204 No Content** (and any other non-200 answer or wrong content
  type): stop reconnecting, as the spec says;
* a **heartbeat watchdog**: if no byte (event or ``: heartbeat`` comment)
  arrives for ``watchdog_s``, the connection is presumed dead and replaced;
* never dispatch an event **cut off** by a dropped connection (sseclient-py
  would: we stop its input with an error instead of a clean end);
* ``resync`` notices (``servers.cursor``) are kept in ``notices`` and move the resume
  point to where the server continues.

Never parse SSE with ``requests``' ``iter_lines()``: it can yield a false
empty line when a CRLF is split across reads, and an empty line dispatches
an event.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import requests
import sseclient

from lab.clients.base import BackgroundClient, cut_connection, timed_out
from lab.recorder import ArrivalRecorder
from lab.waiting import wait_until
from servers.events import Event

RESYNC = "resync"  # servers.cursor.RESYNC


class TruncatedStream(ConnectionError):
    """The connection ended in the middle of an event."""


class StopReconnecting(Exception):
    """The server told the client to stop (204, a non-200 status, a wrong type)."""


@dataclass(frozen=True)
class ReconnectPlan:
    """What to do after a response: stop (``stop=True``, with ``reason``) or
    reconnect after ``delay_s`` sending ``headers``."""

    stop: bool
    delay_s: float = 0.0
    headers: dict | None = None
    reason: str = ""


def plan_reconnect(
    status: int | None, content_type: str | None, last_event_id: str | None, retry_ms: int
) -> ReconnectPlan:
    """The spec's reconnection rules in one place (notebook 03's exercise 2).

    ``status`` is None when the connection failed or broke (no answer, or a
    200 stream that ended): then the client reconnects after ``retry_ms``.
    A 204, any other non-200 status, or a 200 that is not
    ``text/event-stream`` means: stop, and do not come back.
    """
    if status is not None:
        if status == 204:
            return ReconnectPlan(True, reason="204 No Content: the server closed this feed")
        if status != 200:
            return ReconnectPlan(True, reason=f"HTTP {status}: the spec says fail, not retry")
        media = (content_type or "").split(";")[0].strip().lower()
        if media != "text/event-stream":
            return ReconnectPlan(True, reason=f"content type {content_type!r} is not an SSE stream")
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return ReconnectPlan(False, retry_ms / 1000.0, headers)


class RawTap:
    """Sits between the socket and sseclient-py: sees every raw line.

    Counts heartbeat comments, applies ``retry:`` (which sseclient-py may
    drop), notes when the last byte arrived (for the watchdog), and turns an
    end of stream in the middle of an event into ``TruncatedStream``.
    """

    def __init__(self, chunks: Iterable[bytes], on_retry: Callable[[int], None]) -> None:
        self.chunks = chunks
        self.on_retry = on_retry
        self.heartbeats = 0
        self.bytes = 0
        self.last_byte_at = time.monotonic()
        self._partial = b""
        self._at_boundary = True  # no event half-received

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            if not chunk:
                continue
            self.bytes += len(chunk)
            self.last_byte_at = time.monotonic()
            self._scan(chunk)
            yield chunk
        if not self._at_boundary or self._partial:
            raise TruncatedStream("the stream ended in the middle of an event")

    def _scan(self, chunk: bytes) -> None:
        data = self._partial + chunk
        # Normalise CRLF and CR to LF for our scan only (sseclient-py gets the
        # original bytes). A trailing CR may be half of a CRLF: keep it.
        keep_cr = data.endswith(b"\r")
        if keep_cr:
            data = data[:-1]
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._partial = lines.pop() + (b"\r" if keep_cr else b"")
        for line in lines:
            if line == b"":
                self._at_boundary = True
            elif line.startswith(b":"):
                if line[1:].strip() == b"heartbeat":
                    self.heartbeats += 1
            else:
                self._at_boundary = False
                if line.startswith(b"retry:"):
                    value = line[6:].lstrip(b" ")
                    if value.isdigit():
                        self.on_retry(int(value))


class ReconnectingSSEClient(BackgroundClient):
    """An ``EventSource`` for Python: reconnects, resumes, obeys the server."""

    name = "sse"

    def __init__(
        self,
        base_url: str,
        path: str = "/stream/sse",
        last_event_id: str | int | None = None,
        retry_ms: int = 1000,
        watchdog_s: float | None = 30.0,
        params: dict | None = None,
        headers: dict | None = None,
        recorder: ArrivalRecorder | None = None,
        on_notice: Callable[[dict], None] | None = None,
        resume: bool = True,
    ) -> None:
        super().__init__(base_url, recorder=recorder)
        self.path = path
        self.last_event_id = None if last_event_id is None else str(last_event_id)
        self.retry_ms = retry_ms
        self.watchdog_s = watchdog_s
        self.params = dict(params or {})
        self.extra_headers = dict(headers or {})
        self.on_notice = on_notice
        # resume=False: reconnect but never send Last-Event-ID, which is what
        # a plain sseclient-py loop does (notebook 03 shows what it loses).
        self.resume = resume
        # Counters notebook 03 reads. (duplicates pairs these lines with
        # lab/scale/loadgen_wire.Client's counters by shape only: other state.)
        self.connections = 0
        self.watchdog_reconnects = 0
        self.truncated_streams = 0
        self.heartbeats = 0
        self.bytes_received = 0
        self.notices: list[dict] = []
        self.sent_last_event_ids: list[str | None] = []
        self.stopped_by_server: str | None = None
        self._response: requests.Response | None = None
        self._tap: RawTap | None = None
        self._lock = threading.Lock()

    # -- the EventSource loop ------------------------------------------------
    def _run_safely(self) -> None:
        first = True
        while not self._stop.is_set():
            if not first:
                # The reconnection delay: the server's retry: value, or ours.
                self._stop.wait(self.retry_ms / 1000.0)
                if self._stop.is_set():
                    return
            first = False
            try:
                self.run()
            except StopReconnecting as exc:
                self.stopped_by_server = str(exc)
                return
            except TruncatedStream as exc:
                self.truncated_streams += 1
                self.errors.append(f"TruncatedStream: {exc}")
            except requests.exceptions.ConnectionError as exc:
                if self._stop.is_set():
                    return
                if timed_out(exc):
                    # Nothing, not even a heartbeat, for watchdog_s: the
                    # connection is presumed dead (a silent proxy, a cut cable).
                    self.watchdog_reconnects += 1
                self.errors.append(f"{type(exc).__name__}: {exc}")
            except (requests.RequestException, OSError, ValueError) as exc:
                if self._stop.is_set():
                    return
                self.errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                self._response = None

    def run(self) -> None:
        last_id = self.last_event_id if self.resume else None
        plan = plan_reconnect(None, None, last_id, self.retry_ms)
        headers = {**plan.headers, **self.extra_headers}
        self.requests_made += 1
        self.sent_last_event_ids.append(last_id)
        # (connect timeout, read timeout): the read timeout *is* the watchdog.
        with self.session.get(
            f"{self.base_url}{self.path}",
            params=self.params,
            headers=headers,
            stream=True,
            timeout=(5, self.watchdog_s),
        ) as resp:
            verdict = plan_reconnect(resp.status_code, resp.headers.get("Content-Type"), last_id, 0)
            if verdict.stop:
                raise StopReconnecting(verdict.reason)
            self.connections += 1
            self._response = resp
            tap = RawTap(resp.iter_content(chunk_size=None), self._set_retry)
            self._tap = tap
            try:
                for message in sseclient.SSEClient(tap).events():
                    if self._stop.is_set():
                        return
                    self._dispatch(message)
            finally:
                self.heartbeats += tap.heartbeats
                self.bytes_received += tap.bytes
                self._tap = None

    def _set_retry(self, ms: int) -> None:
        self.retry_ms = ms

    def _dispatch(self, message) -> None:
        if message.event == RESYNC:
            notice = json.loads(message.data)
            self.notices.append(notice)
            if notice.get("missed"):
                # Those are gone for good: resume after them next time.
                self.last_event_id = str(notice["missed"][1])
            if self.on_notice is not None:
                self.on_notice(notice)
            return
        event = Event.from_json(message.data)
        if message.id is not None:
            self.last_event_id = message.id  # carried over by us, not by sseclient-py
        self.deliver(event)

    @property
    def live_heartbeats(self) -> int:
        """Heartbeats so far, the open connection's included."""
        tap = self._tap
        return self.heartbeats + (tap.heartbeats if tap is not None else 0)

    # -- test and notebook hooks -------------------------------------------------
    def drop_connection(self) -> None:
        """Cut the TCP connection, as a flaky network would."""
        self._interrupt()

    def _interrupt(self) -> None:
        cut_connection(self._response)

    def wait_connected(self, connections: int = 1, timeout: float = 5.0) -> bool:
        def connected() -> bool:
            return self.connections >= connections and self._response is not None

        # A server that said "stop reconnecting" ends the wait at once.
        wait_until(lambda: connected() or self.stopped_by_server, timeout, interval=0.005)
        return connected() and not self.stopped_by_server
