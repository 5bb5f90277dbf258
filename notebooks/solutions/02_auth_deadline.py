import hmac
import json

from tornado.ioloop import IOLoop
from tornado.websocket import WebSocketHandler

TOKEN = "demo"


class AuthFirst(WebSocketHandler):
    DEADLINE = 0.5  # seconds from the upgrade to the auth message

    def open(self):
        self.user = None  # send nothing yet: no welcome before the token checks out
        self.timer = IOLoop.current().call_later(self.DEADLINE, self.too_late)

    def too_late(self):
        self.timer = None
        self.close(1008, f"no auth message within {self.DEADLINE} s")

    def on_message(self, message):
        if self.user is not None:
            self.write_message(message)  # authenticated: echo
            return
        try:
            data = json.loads(message)
        except ValueError:  # not JSON (a bad UTF-8 binary frame included)
            data = None
        if not isinstance(data, dict) or data.get("type") != "auth":
            return self.refuse("authenticate first")
        token = data.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), TOKEN.encode()):
            return self.refuse("unknown token")
        self.stop_timer()  # in time and right: the deadline no longer applies
        self.user = "guest"
        self.write_message({"type": "welcome", "user": self.user})

    def refuse(self, reason):
        self.stop_timer()
        self.close(1008, reason)  # 1008: policy violation (RFC 6455 section 7.4.1)

    def stop_timer(self):
        if self.timer is not None:
            IOLoop.current().remove_timeout(self.timer)
            self.timer = None

    def on_close(self):
        self.stop_timer()  # a client that leaves early leaves no timer behind
