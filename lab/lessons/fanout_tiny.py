"""Run notebook 04's tiny broadcast handler (and the learner's versions of it).

The notebook defines a ``WebSocketHandler`` with ``initialize(subscribers)``,
``open``/``on_close`` keeping that set, and a classmethod
``broadcast(subscribers, event)``. ``app_for(handler)`` is the app factory
``runtime.start`` takes: one set per server, and the hub calls
``handler.broadcast`` for every published event. What a broadcast raised is
kept in ``server.state.errors`` (the hub would only log it).

``watch(server, n)`` joins ``n`` clients and puts a Fire event panel above
their arrival panels; ``leave(server, clients, k)`` stops ``k`` of them and
waits until the server has seen them go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import tornado.web

from lab.clients.websocket import RoomClient
from lab.waiting import wait_until
from lab.widgets import ArrivalPanel, TriggerPanel, side_by_side


@dataclass
class TinyState:
    """``server.state`` of a tiny fan-out server."""

    subscribers: set = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


def app_for(handler: type) -> Any:
    """An app factory for ``runtime.start``: ``/ws``, every event broadcast by ``handler``."""

    def factory(hub: Any) -> tornado.web.Application:
        state = TinyState()

        def on_event(event: Any) -> None:
            try:
                handler.broadcast(state.subscribers, event)
            except Exception as exc:  # kept for the notebook to show
                state.errors.append(f"seq {event.seq}: {type(exc).__name__}")

        hub.subscribe_callback(on_event)
        routes = [(r"/ws", handler, {"subscribers": state.subscribers})]
        return tornado.web.Application(routes, state=state)

    return factory


def subscribers(server: Any) -> int:
    """How many connections the server's set holds now (read on its loop)."""
    return server.call(lambda: len(server.state.subscribers))


def join(server: Any, n: int, timeout: float = 5.0) -> list[RoomClient]:
    """``n`` WebSocket clients on ``server``'s ``/ws``, each with a recorder."""
    before = subscribers(server)
    clients = [RoomClient(f"{server.ws_url}/ws", name=f"client {i + 1}").start() for i in range(n)]
    if not wait_until(lambda: subscribers(server) >= before + n, timeout=timeout):
        raise TimeoutError(f"only {subscribers(server) - before} of {n} clients joined")
    return clients


def watch(server: Any, n: int = 3, event_type: str = "news") -> tuple[TriggerPanel, list, Any]:
    """Join ``n`` clients; return (trigger, clients, widget with their panels)."""
    clients = join(server, n)
    trigger = TriggerPanel(server.publish, event_types=(event_type,))
    panels = [ArrivalPanel.for_trigger(c.recorder, trigger, rows=4) for c in clients]
    return trigger, clients, side_by_side(trigger.widget, side_by_side(*panels))


def leave(server: Any, clients: list[RoomClient], k: int, timeout: float = 2.0) -> bool:
    """Stop the first ``k`` clients; True once the server's set shrank by ``k``
    (never, if ``on_close`` forgets to drop them)."""
    before = subscribers(server)
    for client in clients[:k]:
        client.stop()
    return wait_until(lambda: subscribers(server) <= before - k, timeout=timeout)


def stop(clients: list[RoomClient]) -> None:
    for client in clients:
        client.stop()
