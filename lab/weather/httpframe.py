"""Where one HTTP/1.1 response ends, for the relay's buffering middlebox.

A buffering proxy reads HTTP: it releases a response once the response is
complete (``Content-Length`` bytes of body, or a chunked body's last
``0`` chunk, RFC 9112 sections 6 and 7.1), not when the TCP connection
ends. A stream that never ends (NDJSON, SSE) is therefore held until the
proxy's buffer fills. After ``101 Switching Protocols`` there is no more
HTTP on the connection: the proxy tunnels the WebSocket bytes through.
"""

from __future__ import annotations


def complete_prefix(buf: bytes | bytearray) -> tuple[int, bool]:
    """``(n, upgraded)``: the first ``n`` bytes of ``buf`` are whole
    responses; ``upgraded`` once a ``101`` was seen (release everything)."""
    pos = 0
    while True:
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            return pos, False
        lines = bytes(buf[pos:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            return pos, False  # not HTTP: held until the end or a full buffer
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        body = end + 4
        if status == 101:
            return len(buf), True
        if 100 <= status < 200 or status in (204, 304):
            pos = body
        elif "chunked" in headers.get("transfer-encoding", ""):
            done = _chunked_end(buf, body)
            if done is None:
                return pos, False
            pos = done
        elif headers.get("content-length", "").isdigit():
            done = body + int(headers["content-length"])
            if len(buf) < done:
                return pos, False
            pos = done
        else:
            return pos, False  # delimited by the close: released at the end


def _chunked_end(buf: bytes | bytearray, i: int) -> int | None:
    """The offset just past a chunked body starting at ``i``, or None if incomplete."""
    while True:
        eol = buf.find(b"\r\n", i)
        if eol < 0:
            return None
        size_text = bytes(buf[i:eol]).split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return None
        if size == 0:
            if buf[eol + 2 : eol + 4] == b"\r\n":
                return eol + 4
            trailers = buf.find(b"\r\n\r\n", eol + 2)
            return None if trailers < 0 else trailers + 4
        i = eol + 2 + size + 2
        if i > len(buf):
            return None
