"""What notebook 03 shows about HTTP streaming: the bytes and the timing.

* **Wire views**: ``raw_request()`` reads a response straight off a socket
  (no HTTP library in between), and ``WireView`` renders it: the chunk-size
  lines (hex) around each NDJSON line, or the SSE text with its ``id:``,
  ``event:``, ``data:``, ``retry:`` lines and ``: heartbeat`` comments.
* **The buffering trap**: ``measure_arrivals()`` publishes a few paced
  events and records when each one reaches a ``requests`` reader;
  ``plot_buffering()`` draws arrival time against send time. A live stream
  lies on the diagonal; a buffered one is a vertical wall after the last send.
* ``JupyterServerProxy``: a real jupyter_server with jupyter-server-proxy in
  a subprocess (the proxy Binder users go through), for the measured run.
* ``HeartbeatPanel``: a slider that sets the server's heartbeat interval,
  with the heartbeat and watchdog counters.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
import sseclient

from servers.events import Event
from servers.runtime import ServerThread

# -- wire views -----------------------------------------------------------------


def raw_request(
    url: str,
    path: str,
    headers: dict | None = None,
    duration: float = 0.5,
    until: bytes | None = None,
    max_bytes: int = 1 << 20,
    then: Callable[[], object] | None = None,
) -> bytes:
    """Send a bare HTTP/1.1 GET and return every byte received within
    ``duration`` seconds (or until ``until`` appears, or the server closes).
    ``then()`` is called once the response headers have arrived (e.g. to
    publish events while the stream is open)."""
    parts = urlsplit(url)
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    received = b""
    deadline = time.monotonic() + duration
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(request)
        while len(received) < max_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            received += data
            if then is not None and b"\r\n\r\n" in received:
                then()
                then = None
            if until is not None and until in received:
                break
    return received


def split_http(raw: bytes) -> tuple[bytes, bytes]:
    """(status line + headers, body) of a raw response."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no end of headers in these bytes")
    return head, body


def dechunk(body: bytes) -> list[tuple[bytes, bytes]]:
    """The chunks of a chunked body, as ``(size line, data)`` pairs, in order.
    The last pair is ``(b"0", b"")`` if the response ended. A chunk cut off
    at the end of ``body`` is returned as far as it arrived."""
    chunks = []
    pos = 0
    while pos < len(body):
        end = body.find(b"\r\n", pos)
        if end < 0:
            break
        size_line = body[pos:end]
        size = int(size_line.split(b";")[0], 16)
        data = body[end + 2 : end + 2 + size]
        chunks.append((size_line, data))
        pos = end + 2 + size + 2
        if size == 0:
            break
    return chunks


def _visible(data: bytes) -> str:
    """Bytes as text with CR and LF shown (they matter on the wire)."""
    text = html.escape(data.decode("utf-8", errors="replace"))
    return text.replace("\r", "<span class='ws'>\\r</span>").replace(
        "\n", "<span class='ws'>\\n</span><br>"
    )


_STYLE = (
    "<style>.wire{font-family:monospace;font-size:12px;line-height:1.35;"
    "background:#f7f7f7;padding:6px;border:1px solid #ddd;max-height:360px;overflow:auto}"
    ".wire .ws{color:#aaa}.wire .hex{background:#ffe08a;font-weight:bold}"
    ".wire .head{color:#555}.wire .id{color:#0550ae}.wire .ev{color:#8250df}"
    ".wire .retry{color:#bc4c00}.wire .data{color:#116329}"
    ".wire .cm{color:#999;font-style:italic}</style>"
)


@dataclass
class WireView:
    """Raw response bytes, rendered with their framing highlighted."""

    raw: bytes
    max_items: int = 14

    @property
    def head(self) -> str:
        return split_http(self.raw)[0].decode("latin-1")

    @property
    def chunked(self) -> bool:
        return "transfer-encoding: chunked" in self.head.lower()

    @property
    def chunks(self) -> list[tuple[bytes, bytes]]:
        return dechunk(split_http(self.raw)[1]) if self.chunked else []

    @property
    def body(self) -> bytes:
        """The payload bytes, chunk framing removed."""
        if self.chunked:
            return b"".join(data for _, data in self.chunks)
        return split_http(self.raw)[1]

    def _body_html(self, data: bytes) -> str:
        if "text/event-stream" not in self.head.lower():
            return _visible(data)
        out = []
        for line in data.decode("utf-8", errors="replace").split("\n"):
            css = {"id": "id", "event": "ev", "retry": "retry", "data": "data"}.get(
                line.split(":", 1)[0], ""
            )
            if line.startswith(":"):
                css = "cm"
            text = html.escape(line) + "<span class='ws'>\\n</span>"
            out.append(f"<span class='{css}'>{text}</span>" if css else text)
        return (
            "<br>".join(out[:-1])
            if out and out[-1].startswith("<span class='ws'>")
            else "<br>".join(out)
        )

    def _repr_html_(self) -> str:
        head = split_http(self.raw)[0] + b"\r\n\r\n"
        parts = [f"<div class='head'>{_visible(head)}</div>"]
        if self.chunked:
            for i, (size_line, data) in enumerate(self.chunks):
                if i == self.max_items:
                    parts.append(f"<i>... {len(self.chunks) - i} more chunks</i>")
                    break
                size = int(size_line.split(b";")[0], 16)
                parts.append(
                    f"<span class='hex' title='{size} bytes follow'>"
                    f"{html.escape(size_line.decode())}</span><span class='ws'>\\r\\n</span>"
                    f" <span class='cm'>&larr; {size} bytes</span><br>"
                    f"{self._body_html(data)}<span class='ws'>\\r\\n</span><br>"
                )
        else:
            parts.append(self._body_html(self.body))
        return _STYLE + "<div class='wire'>" + "".join(parts) + "</div>"


# -- the buffering trap ------------------------------------------------------------


@dataclass
class BufferingRun:
    """When each event was sent and when it reached the reader (ms since the first send)."""

    label: str
    sends_ms: list[float]
    arrivals_ms: list[float | None]
    status: int | None = None
    response_headers: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def received(self) -> int:
        return sum(a is not None for a in self.arrivals_ms)

    @property
    def first_arrival_ms(self) -> float:
        return min(a for a in self.arrivals_ms if a is not None)

    @property
    def last_send_ms(self) -> float:
        return max(self.sends_ms)

    @property
    def held_until_end(self) -> bool:
        """True when nothing arrived before the last event was sent: the
        response was buffered somewhere."""
        return self.received > 0 and self.first_arrival_ms > self.last_send_ms

    def row(self) -> dict:
        return {
            "variant": self.label,
            "received": f"{self.received}/{len(self.sends_ms)}",
            "first arrival (ms)": round(self.first_arrival_ms, 1) if self.received else None,
            "last send (ms)": round(self.last_send_ms, 1),
            "buffered": self.held_until_end,
        }


def _subscriptions(server: ServerThread) -> set:
    # The objects themselves (not a count): a connection that closes while a
    # new one opens would leave the count unchanged.
    return server.call(lambda: set(server.hub._subscriptions))


def measure_arrivals(
    server: ServerThread,
    url: str,
    kind: str,
    label: str,
    n: int = 6,
    gap_s: float = 0.15,
    headers: dict | None = None,
    timeout: float = 15.0,
) -> BufferingRun:
    """Open ``url`` (which must end after ``n`` events: ``limit=n``) with
    ``requests``, publish ``n`` events ``gap_s`` apart on ``server``, and
    record when each one reached the reader. ``kind``: ``"ndjson"`` or
    ``"sse"``. The reader is the same for every variant: whatever differs
    is on the wire or in between."""
    if kind not in ("ndjson", "sse"):
        raise ValueError("kind must be 'ndjson' or 'sse'")
    arrivals: dict[int, int] = {}
    result: dict = {}

    def read() -> None:
        try:
            with requests.get(url, headers=headers, stream=True, timeout=(5, timeout)) as resp:
                result["status"] = resp.status_code
                result["headers"] = dict(resp.headers)
                if kind == "ndjson":
                    for line in resp.iter_lines(chunk_size=None):
                        obj = json.loads(line) if line else {}
                        if "seq" in obj:
                            arrivals.setdefault(obj["seq"], time.monotonic_ns())
                else:
                    for message in sseclient.SSEClient(resp.iter_content(chunk_size=None)).events():
                        if message.event != "resync":
                            arrivals.setdefault(
                                Event.from_json(message.data).seq, time.monotonic_ns()
                            )
        except Exception as exc:  # reported in the result, never raised in the thread
            result["error"] = f"{type(exc).__name__}: {exc}"

    before = _subscriptions(server)
    reader = threading.Thread(target=read, name="buffering-reader", daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and reader.is_alive():
        if _subscriptions(server) - before:
            break  # the reader's request reached the server (directly or via the proxy)
        time.sleep(0.01)
    before.clear()
    sent: list[Event] = []
    for i in range(n):
        if i:
            time.sleep(gap_s)
        sent.append(server.publish("price.tick", {"variant": label, "i": i}))
    reader.join(timeout)
    t0 = sent[0].sent_ns
    return BufferingRun(
        label=label,
        sends_ms=[(e.sent_ns - t0) / 1e6 for e in sent],
        arrivals_ms=[(arrivals[e.seq] - t0) / 1e6 if e.seq in arrivals else None for e in sent],
        status=result.get("status"),
        response_headers=result.get("headers", {}),
        error=result.get("error") or ("reader still running" if reader.is_alive() else None),
    )


def plot_buffering(runs: list[BufferingRun], title: str = "When did each event arrive?"):
    """Arrival time against send time, one panel per variant."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.2), sharey=True)
    axes = [axes] if len(runs) == 1 else list(axes)
    top = max(
        [r.last_send_ms for r in runs] + [a for r in runs for a in r.arrivals_ms if a is not None]
    )
    for ax, run in zip(axes, runs, strict=True):
        pairs = [
            (s, a) for s, a in zip(run.sends_ms, run.arrivals_ms, strict=True) if a is not None
        ]
        ax.plot([0, top], [0, top], color="#bbb", lw=1, ls="--", label="arrives when sent")
        ax.axvline(run.last_send_ms, color="#d33", lw=0.8, ls=":", label="last send")
        if pairs:
            xs, ys = zip(*pairs, strict=True)
            ax.plot(xs, ys, "o", color="#d33" if run.held_until_end else "#1a7f37")
        ax.set_title(run.label + ("\n(buffered)" if run.held_until_end else "\n(live)"), fontsize=9)
        ax.set_xlabel("sent at (ms)")
        ax.set_xlim(-20, top * 1.08)
        ax.set_ylim(-20, top * 1.08)
    axes[0].set_ylabel("arrived at (ms)")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# -- the real proxy --------------------------------------------------------------


class JupyterServerProxy:
    """A jupyter_server with only jupyter-server-proxy enabled, in a
    subprocess on a free loopback port: ``url_for(port, path)`` is the
    ``/proxy/<port>/<path>`` URL a Binder user's browser would use."""

    def __init__(self, startup_timeout: float = 60.0) -> None:
        self.startup_timeout = startup_timeout
        self.token = os.urandom(12).hex()
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None
        self._dir: str | None = None

    @staticmethod
    def available() -> bool:
        return all(
            importlib.util.find_spec(m) is not None
            for m in ("jupyter_server", "jupyter_server_proxy")
        )

    @property
    def headers(self) -> dict:
        return {"Authorization": f"token {self.token}"}

    def url_for(self, port: int, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/proxy/{port}/{path.lstrip('/')}"

    def start(self) -> JupyterServerProxy:
        if not self.available():
            raise RuntimeError("jupyter_server and jupyter-server-proxy are not installed")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._dir = tempfile.mkdtemp(prefix="jsp-")
        config = os.path.join(self._dir, "config.json")
        with open(config, "w", encoding="utf-8") as fh:
            # Only the proxy: starting JupyterLab's extensions would triple the start-up time.
            off = [
                "jupyterlab",
                "jupyter_lsp",
                "notebook",
                "notebook_shim",
                "jupyter_server_terminals",
            ]
            extensions = {"jupyter_server_proxy": True, **dict.fromkeys(off, False)}
            json.dump({"ServerApp": {"jpserver_extensions": extensions}}, fh)
        cmd = [
            sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={self.port}", "--port-retries=0",
            f"--IdentityProvider.token={self.token}", f"--config={config}",
            f"--ServerApp.root_dir={self._dir}",
        ]  # fmt: skip
        env = {**os.environ, "JUPYTER_CONFIG_DIR": self._dir, "JUPYTER_RUNTIME_DIR": self._dir}
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=self._dir
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self.stop()
                raise RuntimeError("jupyter_server exited during start-up")
            try:
                status = requests.get(
                    f"http://127.0.0.1:{self.port}/api/status", headers=self.headers, timeout=1
                )
                if status.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"jupyter_server did not start within {self.startup_timeout} s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> JupyterServerProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def proxy_runs(
    server: ServerThread,
    url_for,
    headers: dict | None = None,
    n: int = 5,
    gap_s: float = 0.15,
    label: str = "proxy",
) -> list[BufferingRun]:
    """The same SSE feed through a proxy, with ``Accept: */*`` (what
    ``fetch()`` and ``requests`` send) and ``Accept: text/event-stream``
    (what ``EventSource`` sends)."""
    runs = []
    for accept in ("*/*", "text/event-stream"):
        runs.append(
            measure_arrivals(
                server,
                url_for(f"stream/sse?limit={n}"),
                "sse",
                f"{label}, Accept: {accept}",
                n=n,
                gap_s=gap_s,
                headers={**(headers or {}), "Accept": accept},
            )
        )
    return runs


# -- heartbeats ----------------------------------------------------------------------


class HeartbeatPanel:
    """A slider for the server's heartbeat interval and what it caused.

    ``interval.value = 0.2`` is the programmatic twin of moving the slider;
    0 turns heartbeats off. The counters show heartbeats the server sent,
    heartbeats the client saw, and the client's watchdog reconnections.
    """

    def __init__(self, feed, client) -> None:
        import ipywidgets as w

        self.feed = feed
        self.client = client
        self.interval = w.FloatSlider(
            value=min(feed.heartbeat_s, 5.0),  # shows the feed's setting; moving it changes it
            min=0.0,
            max=5.0,
            step=0.1,
            description="heartbeat every (s)",
            style={"description_width": "initial"},
        )
        self.status = w.HTML()
        self.refresh_button = w.Button(description="Refresh counters", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.interval.observe(self._on_change, names="value")
        self.widget = w.VBox([w.HBox([self.interval, self.refresh_button]), self.status])
        self.refresh()

    def _on_change(self, change: dict) -> None:
        self.feed.heartbeat_s = float(change["new"])
        self.refresh()

    def counts(self) -> dict:
        return {
            "heartbeats sent": self.feed.heartbeats_sent,
            "heartbeats seen by client": self.client.live_heartbeats,
            "watchdog reconnects": self.client.watchdog_reconnects,
            "connections": self.client.connections,
        }

    def refresh(self) -> None:
        cells = "".join(
            f"<td style='padding:0 8px'>{html.escape(k)}<br><b>{v}</b></td>"
            for k, v in self.counts().items()
        )
        self.status.value = f"<table><tr>{cells}</tr></table>"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
