import tornado.web


class CheckedPoll(tornado.web.RequestHandler):
    def initialize(self, hub):
        self.hub = hub

    def get(self):
        raw = self.get_argument("after", "0")
        # isdecimal() alone would let "٣" through (int() reads it as 3): ASCII digits only.
        if not (raw.isascii() and raw.isdecimal()) or int(raw) > self.hub.log.last_seq:
            self.set_status(400)
            self.write({"error": f"after={raw!r} is not a seq this server handed out"})
            return
        events, _ = self.hub.log.since(int(raw))
        self.write({"events": [e.to_dict() for e in events]})
