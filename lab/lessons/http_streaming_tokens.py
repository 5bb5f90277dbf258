"""Notebook 03 in depth, "Is HTTP streaming still relevant?": what its cells call.

* ``TokenDemo``: a fake language model's answer (``servers/sse_tokens.py``)
  streamed token by token to your browser, next to the live price feed, with
  Ask, Close (the browser closes its ``EventSource``) and Close and cancel
  (plus ``POST /answer/<n>/cancel``: the close alone may not reach the server).
* ``kernel_answer``: the same answer read from the kernel, or cancelled after
  a few tokens by closing the connection.
"""

from __future__ import annotations

import json
import threading
import time

import ipywidgets as w
import requests
import sseclient

from lab.clients.browser import BrowserEventSource
from lab.lessons.http_streaming_browser import _table, _who
from lab.waiting import wait_until
from lab.widgets import side_by_side
from servers import runtime, sse_tokens

# -- a language model's answer, token by token ----------------------------------------


def kernel_answer(url: str, stop_after: int | None = None, delay: float = 0.01) -> dict:
    """Read ``/answer`` with requests + sseclient-py; close after ``stop_after`` tokens."""
    tokens: list[str] = []
    with requests.get(
        f"{url}/answer", params={"delay": delay}, stream=True, timeout=10
    ) as resp:  # leaving the block closes the connection: that is the cancel
        for event in sseclient.SSEClient(resp).events():
            if event.event == "token":
                tokens.append(json.loads(event.data)["text"])
            if event.event == "done" or (stop_after and len(tokens) >= stop_after):
                break
    return {"tokens read": len(tokens), "text": "".join(tokens)}


class TokenDemo:
    """Ask, Close, Close and cancel for your browser's answer, beside the live price feed."""

    def __init__(self, feed_server, delay_s: float = 0.05) -> None:
        self.stats = sse_tokens.TokenStats(delay_s=delay_s)
        self.server = runtime.start("tokens", lambda hub: sse_tokens.make_app(hub, self.stats))
        self.feed_server = feed_server
        self.prices = BrowserEventSource(
            feed_server.port, "stream/sse", event_types=["price.tick"], title="live price feed"
        )
        self.ask_button = w.Button(description="Ask", icon="comment")
        self.close_button = w.Button(description="Close", icon="times")
        self.cancel_button = w.Button(
            description="Close and cancel", icon="stop", layout={"width": "auto"}
        )
        self.ask_button.on_click(lambda _: self.ask())
        self.close_button.on_click(lambda _: self.close_answer())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.answer_box = w.Box([w.HTML("<i>the answer appears when you click Ask</i>")])
        self.widget = w.VBox(
            [
                w.HBox([self.ask_button, self.close_button, self.cancel_button]),
                side_by_side(self.answer_box, self.prices),
            ]
        )
        self.answer: BrowserEventSource | None = None
        self.ticker: threading.Thread | None = None

    @property
    def asked(self) -> bool:
        return self.answer is not None

    def ask(self) -> None:
        """A fresh browser EventSource on /answer, and price ticks while it streams."""
        old, self.answer = (
            self.answer,
            BrowserEventSource(
                self.server.port,
                "answer",
                event_types=["token", "done"],
                close_on=["done"],
                text_field="text",
                show_rows=3,
                title="your browser: the answer, token by token",
            ),
        )
        self.answer_box.children = [self.answer]
        if old is not None:
            old.close()
        seconds = self.stats.total * self.stats.delay_s
        if self.ticker is None or not self.ticker.is_alive():
            self.ticker = threading.Thread(
                target=self._tick, args=(seconds,), name="tokens-ticker", daemon=True
            )
            self.ticker.start()

    def _tick(self, seconds: float) -> None:
        end, n = time.monotonic() + seconds, 0
        while time.monotonic() < end and self.feed_server.running:
            n += 1
            self.feed_server.publish("price.tick", {"symbol": "ACME", "price": 100 + n / 4})
            time.sleep(0.3)

    def from_kernel(self, stop_after: int | None = None, delay: float = 0.01) -> dict:
        """``kernel_answer`` plus what the server recorded for that answer; after
        a cancel, also whether it went on generating for six more tokens' time."""
        result = kernel_answer(self.server.url, stop_after, delay)
        run = [r for r in self.stats.runs if _who(r["agent"]) != "browser"][-1]
        if stop_after:
            wait_until(lambda: run["cancelled"], timeout=5)
            stopped_at = run["generated"]
            time.sleep(6 * delay)
            result["still generating"] = run["generated"] != stopped_at
        return {
            **result,
            **{k: run[k] for k in ("generated", "total", "cancelled", "how", "finished")},
        }

    def close_answer(self) -> None:
        """The browser closes its EventSource, and that is all."""
        if self.answer is not None:
            self.answer.disconnect()

    def cancel(self) -> None:
        """The browser closes its EventSource, and the app asks the server to stop
        that answer (``POST /answer/<n>/cancel``, sent here from the kernel)."""
        self.close_answer()
        for run in reversed(self.stats.runs):
            if _who(run["agent"]) == "browser" and not run["finished"]:
                requests.post(f"{self.server.url}/answer/{run['answer']}/cancel", timeout=5)
                break

    def runs(self) -> w.HTML:
        rows = [
            (
                r["answer"],
                _who(r["agent"]),
                r["generated"],
                r["total"],
                r["how"] or "-",
                r["finished"],
            )
            for r in self.stats.runs
        ]
        return _table(rows, ("answer", "who asked", "generated", "of", "cancelled by", "finished"))

    def close(self) -> None:
        if self.ticker is not None:
            self.ticker.join(10)
        for widget in (self.answer, self.prices, self.widget):
            if widget is not None:
                widget.close()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
