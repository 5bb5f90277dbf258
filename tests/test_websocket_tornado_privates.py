"""The room's hardening overrides and reads a few of Tornado's private names,
because no public API serves (``servers/websocket_strict.py`` says why for
each). A Tornado release that renames or removes one would break the strict
RFC 6455 checks, loudly or silently: these tests name what changed."""

from __future__ import annotations

import inspect

import tornado
import tornado.util
import tornado.websocket
from tornado.websocket import WebSocketProtocol13

from servers import websocket_strict as strict


def a_protocol() -> WebSocketProtocol13:
    # Most of the names are instance attributes set in __init__: build one
    # (``_WebSocketParams`` is private too; used here only to construct it).
    return WebSocketProtocol13(object(), False, tornado.websocket._WebSocketParams())


def test_every_private_name_the_room_uses_still_exists():
    protocol = a_protocol()
    missing = [
        f"{owner.__name__}.{name}"
        for owner, names in strict.PRIVATE_NAMES.items()
        for name in names
        if not hasattr(owner, name)
        and not (owner is WebSocketProtocol13 and hasattr(protocol, name))
    ]
    assert not missing, (
        f"Tornado {tornado.version} no longer has {missing}: servers/websocket_strict.py "
        "(PRIVATE_NAMES) relies on them; port StrictProtocol to the new names"
    )


def test_the_overridden_methods_are_tornados_own_with_the_same_signatures():
    # StrictProtocol replaces these; if Tornado stopped calling them (or
    # changed their arguments), the checks would silently stop running.
    expected = {
        "_receive_frame": ["self"],
        "_read_bytes": ["self", "n"],
        "_handle_message": ["self", "opcode", "data"],
        "_abort": ["self"],
        "close": ["self", "code", "reason"],
    }
    for name, params in expected.items():
        method = getattr(WebSocketProtocol13, name, None)
        assert method is not None, f"Tornado {tornado.version}: WebSocketProtocol13.{name} is gone"
        got = list(inspect.signature(method).parameters)
        assert got == params, (
            f"Tornado {tornado.version}: WebSocketProtocol13.{name}{tuple(got)} changed; "
            f"StrictProtocol overrides or calls it as {tuple(params)}"
        )
    reader = inspect.getsource(WebSocketProtocol13._receive_frame_loop)
    assert "self._receive_frame()" in reader, (
        f"Tornado {tornado.version}'s read loop no longer calls _receive_frame: "
        "StrictProtocol's frame checks would not run"
    )


def test_tornados_unmasking_function_is_still_there():
    mask = getattr(tornado.util, "_websocket_mask", None)
    assert callable(mask), (
        f"Tornado {tornado.version} has no tornado.util._websocket_mask; "
        "StrictProtocol._receive_frame unmasks with it"
    )
    assert mask(b"\x01\x02\x03\x04", b"\x00\x00\x00\x00\x00") == b"\x01\x02\x03\x04\x01"
