"""Plumbing for notebook 02's core: members, the room's view, handshakes, one capture.

The notebook shows the protocol (the tiny room, the hardened room's
guards); what only wires it up lives here, one call per cell:

* ``join(url, names, first)``: ``RoomClient`` members, started, connected;
* ``come_back(member)``: a stopped member starts again, welcomed anew;
* ``show_room(server, members, *extra)``: a trigger panel and one arrival
  panel per member (plus any extra widget, e.g. the browser member);
* ``handshake(url, **kwargs)``: one upgrade attempt, as ``(status, reason)``;
  ``rebinding(port)`` the headers a DNS-rebinding page sends, ``table`` the results;
* ``capture_exchange(port, path)``: one connection's bytes through a
  counting relay, split into the HTTP heads and the decoded frames.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
import websocket  # websocket-client
from IPython.display import HTML, display

from lab.clients.websocket import RoomClient
from lab.recorder import ArrivalRecorder
from lab.waiting import wait_until
from lab.widgets import ArrivalPanel, TriggerPanel, side_by_side
from lab.wire.relay import CountingRelay
from lab.wire.websocket import Frame, decode_frames

EVENT_TYPES = ["board.update", "room.announcement"]


def join(
    url: str, names: list[str], first: int, tokens: dict[str, str] | None = None
) -> list[RoomClient]:
    """One ``RoomClient`` per name, recording from seq ``first``, connected.

    ``tokens``: the room's table (token -> user); each member uses its own."""
    token_of = {user: token for token, user in (tokens or {}).items()}
    members = [
        RoomClient(
            url,
            token=token_of.get(name, "demo"),
            name=name,
            recorder=ArrivalRecorder(name, first),
            last_seq=first - 1,
        )
        for name in names
    ]
    for member in members:
        member.start()
    if not all(m.wait_connected() for m in members):
        raise RuntimeError(f"not every member joined {url}: {[m.errors[-1:] for m in members]}")
    return members


def come_back(member: RoomClient, timeout: float = 5.0) -> bool:
    """Start a stopped member again; True once the room has welcomed it anew.

    The welcome is the room's first message after it has subscribed the new
    connection, so from then on nothing published can pass the member by."""
    before = _welcomes(member)
    member.start()
    return wait_until(lambda: _welcomes(member) > before, timeout)


def _welcomes(member: RoomClient) -> int:
    return sum(n.get("type") == "room.welcome" for n in list(member.notices))


def show_room(
    server: Any, members: list[RoomClient], *extra: w.Widget
) -> tuple[TriggerPanel, list[ArrivalPanel]]:
    """Display a trigger panel and the members' arrival panels, side by side."""
    trigger = TriggerPanel(server.publish, event_types=EVENT_TYPES)
    panels = [
        ArrivalPanel.for_trigger(
            m.recorder, trigger, title=m.name, extra=lambda m=m: {"connections": m.connections}
        )
        for m in members
    ]
    display(w.VBox([trigger.widget, side_by_side(*panels, *extra)]))
    return trigger, panels


def chat_seqs(member: RoomClient) -> list[int]:
    """The sequence numbers of the chat lines a member has received, in order."""
    return [a.seq for a in member.recorder.arrivals if a.type == "chat.message"]


def handshake(url: str, **kwargs: Any) -> tuple[int, str]:
    """Try one upgrade: ``(101, "upgraded")`` or the refusal's status and reason."""
    try:
        ws = websocket.create_connection(url, timeout=5, **kwargs)
    except websocket.WebSocketBadStatusException as exc:
        try:
            reason = json.loads(exc.resp_body)["error"]
        except (TypeError, ValueError, KeyError):
            reason = (exc.resp_body or b"").decode(errors="replace")[:80] or "refused"
        return exc.status_code, reason
    ws.close()
    return 101, "upgraded"


def rebinding(port: int) -> dict[str, str]:
    """The headers of a DNS-rebinding page: its own name for 127.0.0.1, as Origin and Host."""
    return {"origin": f"http://evil.example:{port}", "host": f"evil.example:{port}"}


def table(attempts: dict[str, tuple[int, str]]) -> HTML:
    """Handshake attempts as an HTML table: attempt, status, reason."""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{s}</td><td>{html.escape(r)}</td></tr>"
        for k, (s, r) in attempts.items()
    )
    return HTML(f"<table><tr><th>attempt</th><th>status</th><th>reason</th></tr>{rows}</table>")


@dataclass
class Exchange:
    """One connection's bytes: the HTTP heads, then frames both ways."""

    request_head: str
    response_head: str
    up: list[Frame]  # frames the client sent
    down: list[Frame]  # frames the server sent

    def header(self, head: str, name: str) -> str:
        lines = (self.request_head if head == "request" else self.response_head).splitlines()
        return next(h.split(": ", 1)[1] for h in lines if h.lower().startswith(name.lower()))


def capture_exchange(port: int, path: str, text: str = "Hello") -> Exchange:
    """Connect through a counting relay, say ``text``, read two messages, close."""
    with CountingRelay(port, keep=8192) as relay:
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{relay.port}/{path}", timeout=5, suppress_origin=True
        )
        ws.recv()  # the welcome
        ws.send(json.dumps({"type": "say", "text": text}))
        ws.recv()  # the room's broadcast of it
        ws.close()
    up, down = bytes(relay.captured["up"]), bytes(relay.captured["down"])
    request_head, _, up_frames = up.partition(b"\r\n\r\n")
    response_head, _, down_frames = down.partition(b"\r\n\r\n")
    return Exchange(
        request_head.decode(),
        response_head.decode(),
        decode_frames(up_frames),
        decode_frames(down_frames),
    )
