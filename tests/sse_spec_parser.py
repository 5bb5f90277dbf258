"""An independent ``text/event-stream`` parser, written from the WHATWG HTML
Standard, section 9.2.6 "Interpreting an event stream", for the tests.

It shares no code with the server or with sseclient-py, so when both agree
with it on the server's bytes, the server speaks the spec and not just a
dialect one client happens to accept. Incremental: ``feed()`` takes bytes in
any split (a CRLF may be cut between two chunks), ``close()`` ends the stream.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True)
class SpecEvent:
    type: str
    data: str
    last_event_id: str


class SpecParser:
    def __init__(self) -> None:
        # "The stream must then be parsed by ... a UTF-8 decode" with
        # replacement of invalid sequences.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._first_text = True
        self._line = ""
        self._pending_cr = False  # a CR that may be the first half of a CRLF
        self.data_buffer = ""
        self.event_type_buffer = ""
        self.last_event_id_buffer = ""
        self.last_event_id = ""  # the event source's last event ID string
        self.reconnection_time: int | None = None
        self.comments: list[str] = []
        self.events: list[SpecEvent] = []

    # -- the stream -------------------------------------------------------------
    def feed(self, data: bytes) -> list[SpecEvent]:
        before = len(self.events)
        text = self._decoder.decode(data)
        if self._first_text and text:
            self._first_text = False
            if text.startswith("\ufeff"):  # "One leading U+FEFF BOM character must be ignored"
                text = text[1:]
        for ch in text:
            if self._pending_cr:
                self._pending_cr = False
                if ch == "\n":  # CRLF: the CR already ended the line
                    continue
            if ch == "\r":
                self._process_line(self._line)
                self._line = ""
                self._pending_cr = True
            elif ch == "\n":
                self._process_line(self._line)
                self._line = ""
            else:
                self._line += ch
        return self.events[before:]

    def close(self) -> list[SpecEvent]:
        """End of stream: "If the file ends in the middle of an event, before
        the final empty line, the incomplete event is not dispatched." A final
        line without its end-of-line is likewise dropped."""
        self._line = ""
        self.data_buffer = ""
        self.event_type_buffer = ""
        return []

    # -- 9.2.6 line by line --------------------------------------------------------
    def _process_line(self, line: str) -> None:
        if line == "":
            self._dispatch()
        elif line.startswith(":"):
            self.comments.append(line[1:])
        elif ":" in line:
            field, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
            self._process_field(field, value)
        else:
            self._process_field(line, "")

    def _process_field(self, field: str, value: str) -> None:
        if field == "event":
            self.event_type_buffer = value
        elif field == "data":
            self.data_buffer += value + "\n"
        elif field == "id":
            if "\0" not in value:
                self.last_event_id_buffer = value
        elif field == "retry":
            if value and all(c in "0123456789" for c in value):
                self.reconnection_time = int(value)
        # any other field is ignored

    def _dispatch(self) -> None:
        # 1. The last event ID string is set even if nothing is dispatched.
        self.last_event_id = self.last_event_id_buffer
        # 2. No data: reset the buffers and return.
        if self.data_buffer == "":
            self.event_type_buffer = ""
            return
        # 3. Remove one trailing LF.
        data = self.data_buffer[:-1] if self.data_buffer.endswith("\n") else self.data_buffer
        # 4-5. Type defaults to "message"; the last event ID is attached.
        event = SpecEvent(self.event_type_buffer or "message", data, self.last_event_id_buffer)
        self.data_buffer = ""
        self.event_type_buffer = ""
        self.events.append(event)


def parse(data: bytes, chunk_size: int | None = None) -> SpecParser:
    """Parse a whole byte string (optionally fed ``chunk_size`` bytes at a time)."""
    parser = SpecParser()
    if chunk_size is None:
        parser.feed(data)
    else:
        for i in range(0, len(data), chunk_size):
            parser.feed(data[i : i + chunk_size])
    parser.close()
    return parser
