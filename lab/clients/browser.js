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

// Every EventSource these widgets opened in this page and not yet closed:
// the limit probe reports how many were open (they count against the limit).
const liveSources = new Set();

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
  let gaps = 0, duplicates = 0, opens = 0, text = "";
  const arrived = (obj, fallbackType) => {
    const t = performance.now() - opened;
    received += 1;
    const seq = Number.isInteger(obj.seq) ? obj.seq : null;
    if (seq !== null && model.get("track_order") && lastSeq > 0) {
      // Order as the panel sees it: a seq again is a duplicate, a jump a gap.
      if (seq <= lastSeq) duplicates += 1;
      else if (seq > lastSeq + 1) gaps += seq - lastSeq - 1;
      model.set({ gaps, duplicates });
    }
    const field = model.get("text_field");
    if (field && typeof obj[field] === "string") {
      text = (text + obj[field]).slice(-4000);
      model.set("text", text);
    }
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
      liveSources.add(es);
      const onEvent = (ev) => {
        const obj = parse(ev.data);
        if (obj.seq === undefined && ev.lastEventId && /^\d+$/.test(ev.lastEventId))
          obj.seq = Number(ev.lastEventId);
        arrived(obj, ev.type);
        // close_on: an event that ends the stream for good (an answer's "done").
        if (model.get("close_on").includes(ev.type)) { close(); setStatus("done"); }
      };
      es.onmessage = onEvent;
      for (const type of model.get("event_types")) es.addEventListener(type, onEvent);
      es.onopen = () => {
        opens += 1;  // more than 1: it reconnected by itself
        model.set("opens", opens);
        setStatus("open");
      };
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
    liveSources.delete(conn);
    conn = null;
    setStatus("closed");
  };

  if (kind === "limit") return initializeLimit(model);
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
    root.dataset.opens = String(model.get("opens"));
    root.dataset.gaps = String(model.get("gaps"));
    root.dataset.duplicates = String(model.get("duplicates"));
    const rows = model.get("arrivals").slice(-model.get("show_rows")).reverse();
    const esc = (s) => String(s).replace(/[&<>"]/g, (c) => "&#" + c.charCodeAt(0) + ";");
    if (model.get("kind") === "limit") {  // a measurement, not a feed: no rows
      root.innerHTML = "<div style='border:1px solid #ccc;padding:4px;min-width:260px'>" +
        "<b>" + esc(model.get("title")) + "</b><div class='lab-browser-status'>status: <b>" +
        esc(model.get("status")) + "</b></div><div class='lab-browser-probe'>" +
        esc(model.get("probe").verdict || "") + "</div></div>";
      return;
    }
    root.innerHTML =
      "<div style='border:1px solid #ccc;padding:4px;min-width:260px'>" +
      "<b>" + esc(model.get("title")) + "</b>" +
      "<div class='lab-browser-status'>status: <b>" + esc(model.get("status")) + "</b> " +
      esc(model.get("error")) + "</div>" +
      "<div>received <b class='lab-browser-received'>" + received + "</b> · last seq <b>" +
      model.get("last_seq") + "</b></div>" +
      (model.get("track_order") ? "<div class='lab-browser-order'>connections opened <b>" +
        model.get("opens") + "</b> · gaps <b>" + model.get("gaps") + "</b> · duplicates <b>" +
        model.get("duplicates") + "</b></div>" : "") +
      (model.get("text") ? "<div class='lab-browser-text' style='max-width:420px'>" +
        esc(model.get("text")) + "</div>" : "") +
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
  for (const name of ["received", "status", "error", "url", "arrivals", "title", "opens",
                      "gaps", "duplicates", "text", "probe"])
    model.on("change:" + name, request);
  draw();
}

// kind "limit": on the kernel's "probe", open `streams` EventSources to one
// origin at once, see how many open, close one, see whether the last then
// opens, close them all, and report what was measured (and over which protocol).
function initializeLimit(model) {
  let running = false;
  const protocol = () => {
    const nav = performance.getEntriesByType("navigation")[0];
    const own = performance.getEntriesByType("resource")
      .filter((e) => e.name.startsWith(location.origin) && e.nextHopProtocol);
    return (nav && nav.nextHopProtocol) || (own.length ? own[own.length - 1].nextHopProtocol : "");
  };
  const probe = async () => {
    if (running) return;
    running = true;
    const n = model.get("streams"), waitMs = model.get("wait_ms");
    const url = proxyUrl(model.get("port"), model.get("path"), false);
    model.set({ url, status: "probing", probe: {} });
    model.save_changes();
    const others = [...liveSources].filter((es) => es.readyState === EventSource.OPEN).length;
    const t0 = performance.now();
    const openedAt = new Array(n).fill(null);
    const sources = [];
    for (let i = 0; i < n; i++) {
      const es = new EventSource(url + (url.includes("?") ? "&" : "?") + "probe=" + i);
      es.onopen = () => { if (openedAt[i] === null) openedAt[i] = performance.now() - t0; };
      sources.push(es);
    }
    const count = () => openedAt.filter((x) => x !== null).length;
    const waitFor = async (pred) => {
      const end = performance.now() + waitMs;
      while (!pred() && performance.now() < end) await new Promise((r) => setTimeout(r, 25));
    };
    await waitFor(() => count() === n);
    const first = count();
    let freed = null, afterFree = null;
    if (first < n && first > 0) {
      freed = openedAt.findIndex((x) => x !== null);
      const closedAt = performance.now() - t0;
      sources[freed].close();
      await waitFor(() => openedAt.some((x) => x !== null && x > closedAt));
      const late = openedAt.filter((x) => x !== null && x > closedAt);
      afterFree = late.length ? Math.round(late[0] - closedAt) : null;
    }
    for (const es of sources) es.close();
    const proto = protocol();
    const held = others ? ` (this page already held ${others} other stream(s) open)` : "";
    let verdict;
    if (first === n)
      verdict = `all ${n} opened at once over ${proto || "an unknown protocol"}: no per-origin limit ` +
        "was hit here" + (proto.startsWith("h2") || proto.startsWith("h3")
          ? " (HTTP/2 or 3 multiplexes streams on one connection)" : "");
    else
      verdict = `${first} of ${n} opened within ${waitMs} ms over ${proto || "an unknown protocol"}; ` +
        (afterFree !== null ? `one more opened ${afterFree} ms after we closed one`
                            : "none more opened after we closed one") + held;
    model.set({
      status: "measured",
      probe: { protocol: proto, streams: n, opened_first: first, wait_ms: waitMs,
               opened_ms: openedAt.map((x) => (x === null ? null : Math.round(x))),
               freed, opened_after_free_ms: afterFree, others_open: others, verdict },
    });
    model.save_changes();
    running = false;
  };
  model.on("msg:custom", (msg) => { if (msg.action === "probe") probe(); });
  model.set("page_origin", location.origin);
  model.set("status", "ready");
  model.save_changes();
  return () => {};
}

export default { initialize, render };
