// The browser side of lab/clients/browser.py: one anywidget module (initialize,
// render) for the three clients, loaded from this file as the widgets' _esm.
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
