"""The learner's own browser as a client: native ``EventSource``, ``WebSocket``
and ``fetch()``, rendered in the notebook and connected to an in-kernel server.

The kernel-side clients in ``lab.clients`` run in the kernel's process. These
run in the browser tab that shows the notebook, exactly as a web page would:

* ``BrowserEventSource(port, "stream/sse")``: the browser's ``EventSource``
  (Server-Sent Events). It reconnects on its own and sends ``Last-Event-ID``.
* ``BrowserWebSocket(port, "ws")``: the browser's ``WebSocket``. ``.send(text)``
  sends a frame from the browser to the server.
* ``BrowserFetchStream(port, "stream/ndjson")``: ``fetch()`` reading an NDJSON
  body line by line with a stream reader: the buffering lesson. Through
  jupyter-server-proxy the body only arrives when the response ends, while
  ``EventSource`` (which sends ``Accept: text/event-stream``) arrives live.

The URL is derived in the browser from the page itself, never typed in:
Jupyter's base URL (``/`` locally, ``/user/<name>/`` on Binder or JupyterHub)
+ ``proxy/<port>/<path>``, with ``ws:``/``wss:`` following the page's
``http:``/``https:``. The request therefore goes through jupyter-server-proxy
(which the Jupyter login protects) to the server on 127.0.0.1, and the same
code works on a laptop and on Binder's https.

What the browser received is synced back to the kernel (``.received``,
``.last_seq``, ``.arrivals``, ``.status``, ``.url``, ``.error``), so a cell
can compare it with the kernel-side client. Under nbval there is no browser:
these traits then stay at their initial values, so checkpoint cells must not
assert on them (the browser test suite in ``tests/e2e`` does).

The rendered element carries ``data-kind``, ``data-status`` and
``data-received`` attributes so a browser test can read it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anywidget
import traitlets as t

MAX_ROWS = 200  # arrivals kept (and synced back) per client

_ESM = r"""
// Jupyter's base URL as the page knows it: PageConfig's JSON first (JupyterLab,
// Notebook 7), then the classic data attribute, then the path itself.
function jupyterBaseUrl() {
  const config = document.getElementById("jupyter-config-data");
  if (config) {
    try {
      const base = JSON.parse(config.textContent).baseUrl;
      if (base) return base;
    } catch (e) { /* fall through */ }
  }
  if (document.body && document.body.dataset.baseUrl) return document.body.dataset.baseUrl;
  const m = location.pathname.match(/^(.*?\/)(lab|notebooks|tree|doc|voila)(\/|$)/);
  return m ? m[1] : "/";
}

// <base>proxy/<port>/<path>: through jupyter-server-proxy, same origin as the page.
export function proxyUrl(port, path, websocket) {
  let base = jupyterBaseUrl();
  if (!base.endsWith("/")) base += "/";
  const url = new URL(base + "proxy/" + port + "/" + String(path).replace(/^\/+/, ""),
                      location.href);
  if (websocket) url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

function parse(text) {
  try { return JSON.parse(text); } catch (e) { return { data: text }; }
}

function initialize({ model }) {
  const kind = model.get("kind");
  const opened = performance.now();
  let conn = null;           // EventSource | WebSocket | AbortController
  let pending = null;        // throttled save_changes timer
  let arrivals = [];
  let received = 0;
  let lastSeq = 0;

  const save = () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; model.save_changes(); }, 100);
  };
  const setStatus = (status, error) => {
    model.set("status", status);
    if (error !== undefined) model.set("error", String(error));
    save();
  };
  const arrived = (obj, fallbackType) => {
    const t = performance.now() - opened;
    received += 1;
    const seq = Number.isInteger(obj.seq) ? obj.seq : null;
    if (seq !== null) lastSeq = Math.max(lastSeq, seq);
    const type = obj.type || fallbackType || "message";
    const prev = arrivals.length ? arrivals[arrivals.length - 1][2] : t;
    const row = [seq, type, Math.round(t * 10) / 10, Math.round((t - prev) * 10) / 10];
    arrivals = arrivals.concat([row]).slice(-model.get("max_rows"));
    model.set({ received, last_seq: lastSeq, arrivals });
    save();
  };

  const connect = () => {
    const path = model.get("path");
    const port = model.get("port");
    const url = proxyUrl(port, path, kind === "websocket");
    model.set("url", url);
    setStatus("connecting");
    if (kind === "eventsource") {
      const es = new EventSource(url);
      const onEvent = (ev) => {
        const obj = parse(ev.data);
        if (obj.seq === undefined && ev.lastEventId && /^\d+$/.test(ev.lastEventId))
          obj.seq = Number(ev.lastEventId);
        arrived(obj, ev.type);
      };
      es.onmessage = onEvent;
      for (const type of model.get("event_types")) es.addEventListener(type, onEvent);
      es.onopen = () => setStatus("open");
      // EventSource reconnects by itself after an error, unless it gave up (CLOSED).
      es.onerror = () =>
        setStatus(es.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
      conn = es;
    } else if (kind === "websocket") {
      const ws = new WebSocket(url);
      ws.onopen = () => setStatus("open");
      ws.onmessage = (ev) => arrived(parse(ev.data));
      ws.onerror = () => setStatus("error", "WebSocket error (see the browser console)");
      ws.onclose = (ev) => setStatus("closed", ev.code === 1000 ? "" : "close code " + ev.code);
      conn = ws;
    } else if (kind === "fetch") {
      const ctrl = new AbortController();
      conn = ctrl;
      (async () => {
        const resp = await fetch(url, { signal: ctrl.signal, credentials: "same-origin" });
        if (!resp.ok) throw new Error("HTTP " + resp.status);
        setStatus("open");
        const reader = resp.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let nl;
          while ((nl = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, nl).trim();
            buffer = buffer.slice(nl + 1);
            if (line) arrived(parse(line));
          }
        }
        setStatus("closed");
      })().catch((e) => setStatus(ctrl.signal.aborted ? "closed" : "error", e));
    }
  };

  const close = () => {
    if (!conn) return;
    if (kind === "fetch") conn.abort(); else conn.close();
    conn = null;
    setStatus("closed");
  };

  model.on("msg:custom", (msg) => {
    const open = conn && kind === "websocket" && conn.readyState === 1;
    if (msg.action === "send" && open) conn.send(msg.text);
    if (msg.action === "close") close();
  });
  // Tell the kernel where this page is served from (over Jupyter's own,
  // authenticated widget channel), and wait for it to admit that origin when
  // the server checks Origin. The kernel handles the message between cells.
  model.set("page_origin", location.origin);
  model.save_changes();
  const start = () => { if (model.get("active")) connect(); };
  if (model.get("origin_admitted")) start();
  else {
    setStatus("waiting", "for the kernel to admit " + location.origin);
    const admitted = () => {
      if (!model.get("origin_admitted")) return;
      model.off("change:origin_admitted", admitted);
      model.set("error", "");
      start();
    };
    model.on("change:origin_admitted", admitted);
  }
  return () => close();  // the widget was closed: close the connection too
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "lab-browser-client";
  root.dataset.kind = model.get("kind");
  el.appendChild(root);
  let frame = 0;
  const draw = () => {
    frame = 0;
    const received = model.get("received");
    root.dataset.status = model.get("status");
    root.dataset.received = String(received);
    root.dataset.lastSeq = String(model.get("last_seq"));
    const rows = model.get("arrivals").slice(-model.get("show_rows")).reverse();
    const esc = (s) => String(s).replace(/[&<>"]/g, (c) => "&#" + c.charCodeAt(0) + ";");
    root.innerHTML =
      "<div style='border:1px solid #ccc;padding:4px;min-width:260px'>" +
      "<b>" + esc(model.get("title")) + "</b>" +
      "<div class='lab-browser-status'>status: <b>" + esc(model.get("status")) + "</b> " +
      esc(model.get("error")) + "</div>" +
      "<div>received <b class='lab-browser-received'>" + received + "</b> · last seq <b>" +
      model.get("last_seq") + "</b></div>" +
      "<div style='font-size:11px;color:#666;word-break:break-all'>" +
      esc(model.get("url")) + "</div>" +
      "<table style='font-family:monospace;font-size:12px'><tr><th>seq</th><th>type</th>" +
      "<th>t (ms)</th><th>Δ (ms)</th></tr>" +
      rows.map((r) => "<tr><td>" + (r[0] === null ? "" : r[0]) + "</td><td>" + esc(r[1]) +
        "</td><td style='text-align:right'>" + r[2].toFixed(1) +
        "</td><td style='text-align:right'>" + r[3].toFixed(1) + "</td></tr>").join("") +
      "</table></div>";
  };
  const request = () => { if (!frame) frame = requestAnimationFrame(draw); };
  for (const name of ["received", "status", "error", "url", "arrivals", "title"])
    model.on("change:" + name, request);
  draw();
}

export default { initialize, render };
"""


class _BrowserClient(anywidget.AnyWidget):
    """Common state of the three browser clients (see the module docstring)."""

    _esm = _ESM
    kind = t.Unicode("").tag(sync=True)
    title = t.Unicode("").tag(sync=True)
    port = t.Int().tag(sync=True)
    path = t.Unicode("").tag(sync=True)
    event_types = t.List(t.Unicode()).tag(sync=True)
    active = t.Bool(True).tag(sync=True)
    max_rows = t.Int(MAX_ROWS).tag(sync=True)
    show_rows = t.Int(8).tag(sync=True)
    # Written by the browser, read by the kernel.
    url = t.Unicode("").tag(sync=True)
    status = t.Unicode("not rendered").tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    received = t.Int(0).tag(sync=True)
    last_seq = t.Int(0).tag(sync=True)
    arrivals = t.List().tag(sync=True)  # [seq, type, t_ms since connect, ms since previous]
    page_origin = t.Unicode("").tag(sync=True)  # location.origin of the page showing it
    # Kernel -> browser: False makes the page wait before connecting (see BrowserWebSocket).
    origin_admitted = t.Bool(True).tag(sync=True)

    def __init__(self, port: int, path: str, title: str | None = None, **kwargs) -> None:
        if not 0 < int(port) < 65536:
            raise ValueError(f"port must be 1..65535, got {port!r}")
        super().__init__(port=int(port), path=path.lstrip("/"), **kwargs)
        self.title = title or f"browser {self.kind} ({self.proxy_path})"

    @property
    def proxy_path(self) -> str:
        """The path the browser asks for, relative to Jupyter's base URL."""
        return proxy_path(self.port, self.path)

    def arrival_times_ms(self) -> list[float]:
        """Arrival times (ms since the browser connected) of the kept events."""
        return [row[2] for row in self.arrivals]

    def disconnect(self) -> None:
        """Ask the browser to close its connection (the widget stays shown)."""
        self.send({"action": "close"})

    def close(self) -> None:
        """Close the connection and the widget (the clean-up cell calls this)."""
        if self.comm is not None:
            self.disconnect()
        super().close()


class BrowserEventSource(_BrowserClient):
    """The browser's native ``EventSource`` on ``<base>proxy/<port>/<path>``.

    ``event_types``: the SSE ``event:`` names to listen to. ``EventSource``
    delivers unnamed events to ``onmessage`` but named ones only to listeners
    registered for that exact name.
    """

    def __init__(
        self,
        port: int,
        path: str = "stream/sse",
        event_types: Sequence[str] = (),
        title: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(
            port, path, title, kind="eventsource", event_types=list(event_types), **kwargs
        )


class BrowserWebSocket(_BrowserClient):
    """The browser's native ``WebSocket`` on ``ws(s)://<host><base>proxy/<port>/<path>``.

    ``admit``: for a server that checks ``Origin`` against an allowlist (the
    room's ``OriginAllowlist.add``). The page reports its own origin
    (``location.origin``: ``https://hub.mybinder.org``, ``http://localhost:8888``)
    and connects only once the kernel has passed it to ``admit``. Nothing in
    the request can tell the server that origin: jupyter-server-proxy hands
    it on with an http scheme and the page's ``Host``, whatever the page used.
    The kernel reads the message between cells, so under "Run All" the page
    joins when the run ends.
    """

    def __init__(
        self,
        port: int,
        path: str = "ws",
        title: str | None = None,
        admit: Callable[[str], None] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(
            port, path, title, kind="websocket", origin_admitted=admit is None, **kwargs
        )
        self._admit = admit
        if admit is not None:
            self.observe(self._on_page_origin, "page_origin")

    def _on_page_origin(self, change: dict) -> None:
        origin = change["new"]
        if not origin or self.origin_admitted:
            return
        self._admit(origin)  # raises for anything that is not an origin: the page stays out
        self.origin_admitted = True

    def send_text(self, text: str) -> None:
        """Send one text frame from the browser to the server."""
        self.send({"action": "send", "text": text})


class BrowserFetchStream(_BrowserClient):
    """``fetch()`` of an NDJSON stream, read line by line as bytes arrive."""

    def __init__(
        self, port: int, path: str = "stream/ndjson", title: str | None = None, **kwargs
    ) -> None:
        super().__init__(port, path, title, kind="fetch", **kwargs)


def proxy_path(port: int, path: str) -> str:
    """``proxy/<port>/<path>``: appended to Jupyter's base URL by the browser."""
    return f"proxy/{int(port)}/{path.lstrip('/')}"


def kernel_side_proxy_url(port: int, path: str = "", base_url: str | None = None) -> str:
    """The same proxy path as the kernel can know it (for printing a link).

    The kernel does not know the page's host, so this is a path: on Binder
    and JupyterHub ``JUPYTERHUB_SERVICE_PREFIX`` (e.g. ``/user/abc/``) is the
    base, locally ``/``.
    """
    import os

    base = base_url if base_url is not None else os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    if not base.endswith("/"):
        base += "/"
    return base + proxy_path(port, path)
