"""A fake language model answering token by token over SSE, and cancelling.

No model and no network: the "answer" is a fixed text cut into word-sized
tokens, one produced every ``delay`` seconds, the way a chat assistant's
reply appears word by word. ``GET /answer`` streams::

    id: 0                        <- the token's index
    event: token
    data: {"i": 0, "text": "Streaming "}

    ...
    event: done                  <- the whole answer was sent
    data: {"tokens": 42}

Cancel: a client that stops listening closes its connection. Tornado calls
``on_connection_close`` and the loop stops producing tokens: a model that
keeps generating for nobody costs compute. ``server.state`` (``TokenStats``)
keeps one record per answer: tokens ``generated`` of ``total``, whether it was
``cancelled`` or ``finished``, and who asked (``agent``: the User-Agent).

Some proxies keep reading after their client has gone (jupyter-server-proxy
4.6 does, notebook 03 in depth measures it): the server never sees the close.
So an answer can also be cancelled explicitly: ``POST /answer/<n>/cancel``
(``n`` is the ``answer`` field of every token) stops it before the next token.

A reconnection with ``Last-Event-ID: <i>`` continues after token ``i``.
``?delay=<seconds>`` overrides the pace for one answer.

Run standalone: ``python -m servers.sse_tokens --port 8000`` then
``curl -N http://127.0.0.1:8000/answer``.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field

from tornado.iostream import StreamClosedError
from tornado.web import Application, HTTPError, RequestHandler

from .common import JSONErrorsMixin, parse_seconds, request_cursor
from .hub import EventHub

ANSWER = (
    "Streaming over HTTP is far from dead. When you ask a chat assistant a question, "
    "the reply appears word by word because the server sends each piece as soon as "
    "the model produces it, often as Server-Sent Events on one long response. The "
    "reader sees progress at once, and closing the tab tells the server to stop "
    "generating, which saves the work nobody will read."
)


def tokenize(text: str) -> list[str]:
    """Word-sized tokens, each keeping its trailing space: joined, they give ``text``."""
    return re.findall(r"\S+\s*", text)


@dataclass
class TokenStats:
    """The answer's text and pace, and one record per answer streamed."""

    text: str = ANSWER
    delay_s: float = 0.08
    runs: list[dict] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(tokenize(self.text))


class AnswerHandler(JSONErrorsMixin, RequestHandler):
    """One answer, one token per ``delay``, stopped when the client leaves."""

    def initialize(self, stats: TokenStats) -> None:
        self.stats = stats
        self.cancelled = False
        self.run: dict | None = None

    async def get(self) -> None:
        tokens = tokenize(self.stats.text)
        after = request_cursor(self, "after", header="Last-Event-ID")
        start = 0 if after is None else min(after + 1, len(tokens))
        delay = parse_seconds(self, "delay", self.stats.delay_s, 0, 5)
        self.run = run = {
            "answer": len(self.stats.runs) + 1,
            "agent": self.request.headers.get("User-Agent", ""),
            "total": len(tokens),
            "generated": 0,
            "cancelled": False,
            "how": "",
            "finished": False,
        }
        self.stats.runs.append(run)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        try:
            for i in range(start, len(tokens)):
                if self.cancelled or run["cancelled"]:  # the client left, or asked to stop
                    return
                run["generated"] += 1  # the "model" produced one more token
                data = json.dumps({"answer": run["answer"], "i": i, "text": tokens[i]})
                self.write(f"id: {i}\nevent: token\ndata: {data}\n\n")
                await self.flush()
                await asyncio.sleep(delay)
            self.write(f"event: done\ndata: {json.dumps({'tokens': len(tokens)})}\n\n")
            await self.flush()
            run["finished"] = True
        except StreamClosedError:
            self.on_connection_close()

    def on_connection_close(self) -> None:
        """Tornado calls this when the client closes: stop generating."""
        self.cancelled = True
        if self.run is not None and not self.run["finished"] and not self.run["cancelled"]:
            self.run.update(cancelled=True, how="connection closed")


class CancelHandler(JSONErrorsMixin, RequestHandler):
    """``POST /answer/<n>/cancel``: stop answer ``n`` (204), whoever streams it."""

    def initialize(self, stats: TokenStats) -> None:
        self.stats = stats

    def post(self, number: str) -> None:
        n = int(number)
        if not 1 <= n <= len(self.stats.runs):
            raise HTTPError(404, f"no answer {n}")
        run = self.stats.runs[n - 1]
        if not run["finished"] and not run["cancelled"]:
            run.update(cancelled=True, how="cancel request")
        self.set_status(204)


def routes(hub: EventHub, stats: TokenStats | None = None) -> list:
    kw = {"stats": stats if stats is not None else TokenStats()}
    return [(r"/answer", AnswerHandler, kw), (r"/answer/([0-9]{1,9})/cancel", CancelHandler, kw)]


def make_app(hub: EventHub, stats: TokenStats | None = None) -> Application:
    """The answer app; its ``server.state`` is the ``TokenStats``."""
    stats = stats if stats is not None else TokenStats()
    return Application(routes(hub, stats), hub=hub, state=stats)


if __name__ == "__main__":
    from .runtime import main

    main(make_app, "sse_tokens", __doc__.splitlines()[0])
