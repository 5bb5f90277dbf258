import json

import tornado.web

from servers.webhooks import signing


class OrderReceiver(tornado.web.RequestHandler):
    def initialize(self, secret, seen, process):
        self.secret, self.seen, self.process = secret, seen, process

    def post(self):
        body = self.request.body  # the raw bytes: verify them before anything else
        try:
            msg_id = signing.verify(self.secret, self.request.headers, body)
        except signing.VerificationError as exc:  # forged, tampered or too old
            self.set_status(exc.status)  # 401 (400 for missing or malformed headers)
            return self.finish({"error": exc.reason})
        if msg_id in self.seen:  # a retry or a replay of a message already done
            return self.finish({"status": "duplicate"})
        self.seen.add(msg_id)  # remember it before answering
        self.finish({"status": "accepted"})
        self.process(json.loads(body))  # parsed only now, after the signature held
