"""In-process Tornado servers, one module per transport, and the runtime
that runs any of them on a background thread (see ``servers.runtime``)."""

from .events import Event, EventLog
from .hub import EventHub, HubClosedError
from .runtime import PortInUseError, ServerStoppedError, ServerThread

__all__ = [
    "Event",
    "EventHub",
    "EventLog",
    "HubClosedError",
    "PortInUseError",
    "ServerStoppedError",
    "ServerThread",
]
