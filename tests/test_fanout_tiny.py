"""Notebook 04's tiny broadcast handler and Exercise 2's checker, tested both
ways: the reference handler passes, each usual mistake is named."""

from __future__ import annotations

import tornado.websocket

from lab.exercises import load_solution
from lab.exercises.scaling import check_fanout_handler
from lab.lessons import fanout_tiny
from servers import runtime
from servers.wsframes import encode_text_frame


class Naive(tornado.websocket.WebSocketHandler):
    """The notebook's TinyFanout: correct, but frames the text per client."""

    def initialize(self, subscribers):
        self.subscribers = subscribers

    def open(self):
        self.subscribers.add(self)

    def on_close(self):
        self.subscribers.discard(self)

    @classmethod
    def broadcast(cls, subscribers, event):
        text = event.to_json()
        for client in list(subscribers):
            client.write_message(text)


class Leaky(Naive):
    """Break it: the closed client stays in the set."""

    def on_close(self):
        pass


class OnceButLeaky(Naive):
    def on_close(self):
        pass

    @classmethod
    def broadcast(cls, subscribers, event):
        frame = encode_text_frame(event.to_json())
        for client in list(subscribers):
            client.ws_connection.stream.write(frame)


class ShortLengthOnly(Naive):
    """Frames only the 7-bit length: wrong from 126 bytes on (RFC 6455 5.2)."""

    @classmethod
    def broadcast(cls, subscribers, event):
        data = event.to_json().encode()
        frame = bytes([0x81, len(data) % 128]) + data
        for client in list(subscribers):
            client.ws_connection.stream.write(frame)


def test_the_reference_answer_passes():
    assert check_fanout_handler(load_solution("04_encode_once")["OnceFanout"])


def test_per_client_framing_is_named():
    fb = check_fanout_handler(Naive)
    assert not fb and "write_message ran 3 times" in fb.messages[0]


def test_a_client_left_in_the_set_is_named():
    fb = check_fanout_handler(OnceButLeaky)
    assert not fb and "still in the set" in fb.messages[0]


def test_a_frame_clients_cannot_read_is_named():
    fb = check_fanout_handler(ShortLengthOnly)
    assert not fb and "of 3 clients received" in fb.messages[0]


def test_break_it_leaves_closed_clients_in_the_set():
    server = runtime.start("test-tiny", fanout_tiny.app_for(Leaky))
    clients = fanout_tiny.join(server, 3)
    try:
        assert not fanout_tiny.leave(server, clients, 2, timeout=0.5)
        assert fanout_tiny.subscribers(server) == 3
        server.publish("news", {})
        fanout_tiny.wait_until(lambda: server.state.errors, timeout=2)
        assert "WebSocketClosedError" in server.state.errors[0]
    finally:
        fanout_tiny.stop(clients)
        server.stop()
