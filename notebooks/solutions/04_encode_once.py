import tornado.websocket

from servers.wsframes import encode_text_frame


class OnceFanout(tornado.websocket.WebSocketHandler):
    """TinyFanout with the frame built once per event, not once per client."""

    def initialize(self, subscribers):
        self.subscribers = subscribers

    def open(self):
        self.subscribers.add(self)

    def on_close(self):
        self.subscribers.discard(self)

    @classmethod
    def broadcast(cls, subscribers, event):
        # A server never masks its frames and this handler negotiates no compression
        # (Tornado's default), so one frame is right for every client (RFC 6455 5.1).
        frame = encode_text_frame(event.to_json())  # JSON, UTF-8 and frame header: once
        for client in list(subscribers):
            client.ws_connection.stream.write(frame)  # the very same bytes, N times
