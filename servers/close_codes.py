"""The WebSocket close codes this collection sends, by name.

RFC 6455 section 7.4.1 defines 1000-1011 (1004-1006 and 1015 are never sent
on the wire); 1012-1014 are registered with IANA ("WebSocket Close Code
Number Registry"), not defined in RFC 6455. An ``IntEnum``, so a code
compares equal to the number a client library reports.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000  # RFC 6455: done, nothing wrong
    GOING_AWAY = 1001  # RFC 6455: server shutting down (or a page navigating away)
    PROTOCOL_ERROR = 1002  # RFC 6455: a frame broke the protocol
    UNSUPPORTED_DATA = 1003  # RFC 6455: a kind of data the endpoint cannot take
    INVALID_PAYLOAD = 1007  # RFC 6455: e.g. a text frame that is not UTF-8
    POLICY_VIOLATION = 1008  # RFC 6455: e.g. over the rate limit
    MESSAGE_TOO_BIG = 1009  # RFC 6455
    INTERNAL_ERROR = 1011  # RFC 6455: the server hit an unexpected condition
    TRY_AGAIN_LATER = 1013  # IANA registry: e.g. a slow consumer cut off; reconnect and resume
