from tornado.websocket import WebSocketHandler

ALLOWED_ORIGINS = {"https://lab.example"}


class ExactOrigin(WebSocketHandler):
    """The tiny room's door: only pages from ALLOWED_ORIGINS may open a socket."""

    def check_origin(self, origin):
        # Exact membership: no prefix or suffix test, and never a comparison with Host.
        return origin in ALLOWED_ORIGINS
