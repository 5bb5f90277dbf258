"""Drive a notebook in JupyterLab from Playwright: open, run, read, click.

JupyterLab is started with ``--LabApp.expose_app_in_browser=True``, so the
page has ``window.jupyterapp``: running cells through its command registry
and reading the notebook model is steadier than clicking menus or scraping
prompts. Clicks on the widgets themselves are real mouse clicks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

CLEANUP_HEADING = "## Clean up"
TRACEBACK = "Traceback (most recent call last)"

# The notebook panel whose document is `path` (not just the current widget:
# a dialog or the launcher may hold the focus).
_PANEL_JS = """
(path) => {
  const app = window.jupyterapp;
  if (!app) return null;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.content && w.sessionContext) return w;
  }
  return null;
}
"""

_READY_JS = f"""
(path) => {{
  const w = ({_PANEL_JS})(path);
  if (!w || !w.context.isReady || !w.sessionContext.isReady) return false;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && w.content.widgets.length > 0;
}}
"""

_STATE_JS = f"""
(path) => {{
  const w = ({_PANEL_JS})(path);
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  const cells = w.content.widgets.map((c, i) => {{
    const m = c.model;
    const info = {{ i, type: m.type, source: m.sharedModel.getSource(), count: null, errors: [] }};
    if (m.type !== 'code') return info;
    info.count = m.executionCount;
    info.running = !!(c.promptNode && c.promptNode.textContent.includes('*'));
    for (let k = 0; k < m.outputs.length; k++) {{
      const o = m.outputs.get(k).toJSON();
      if (o.output_type === 'error') {{
        // The last frames name the failing line (an `assert` has no message).
        const tb = (o.traceback || []).slice(-2).join('\\n').replace(/\\x1b\\[[0-9;]*m/g, '');
        info.errors.push(o.ename + ': ' + o.evalue + '\\n' + tb.slice(-800));
      }}
      const text = Array.isArray(o.text) ? o.text.join('') : (o.text || '');
      if (o.output_type === 'stream' && o.name === 'stderr' && text.includes('{TRACEBACK}'))
        info.errors.push('stderr traceback: ' + text.slice(-600));
    }}
    // What the learner sees: widgets that failed to render, render errors.
    const shown = c.node.querySelector('.jp-Cell-outputArea');
    const seen = shown ? shown.innerText : '';
    for (const marker of ['Error displaying widget', 'Error rendering output', 'Javascript Error'])
      if (seen.includes(marker)) info.errors.push('rendered: ' + marker);
    return info;
  }});
  return {{ status: kernel ? kernel.status : 'no kernel', cells }};
}}
"""

_COUNTERS_JS = f"""
(path) => {{
  // Only this notebook's panel (another tab's DOM may still be in the page).
  const root = ({_PANEL_JS})(path).node;
  const cells = [...root.querySelectorAll('.jp-Cell')];
  const panels = [];
  for (const td of root.querySelectorAll('.jp-OutputArea-output td')) {{
    const m = td.innerText.trim().match(/^received\\s+(\\d+)$/);
    if (m) panels.push({{ cell: cells.indexOf(td.closest('.jp-Cell')), value: Number(m[1]) }});
  }}
  const browser = [...root.querySelectorAll('.lab-browser-client')].map((e) => ({{
    kind: e.dataset.kind, status: e.dataset.status, received: Number(e.dataset.received || 0),
  }}));
  const notSent = [...root.querySelectorAll('.jp-OutputArea-output')]
    .map((e) => e.innerText).filter((t) => t.includes('not sent:'));
  return {{ panels, browser, notSent }};
}}
"""


@dataclass
class CellState:
    index: int
    type: str
    source: str
    count: int | None
    errors: list[str] = field(default_factory=list)
    running: bool = False

    @property
    def needs_run(self) -> bool:
        # JupyterLab does not execute an empty code cell.
        return self.type == "code" and bool(self.source.strip())

    def label(self) -> str:
        first = self.source.strip().splitlines()[0] if self.source.strip() else "(empty)"
        return f"cell {self.index} ({first[:60]!r})"


class NotebookPage:
    def __init__(self, page: Any, path: str) -> None:
        self.page = page
        self.path = path  # relative to JupyterLab's root, e.g. notebooks/00_start_here.ipynb

    # -- opening ---------------------------------------------------------------
    def open(self, url: str, timeout: float = 120) -> None:
        self.page.goto(url, wait_until="domcontentloaded")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.dismiss_first_run_dialogs()
            if self.page.evaluate(_READY_JS, self.path):
                return
            self.page.wait_for_timeout(500)
        raise AssertionError(f"{self.path} did not open with an idle kernel within {timeout} s")

    def dismiss_first_run_dialogs(self) -> None:
        """'Select Kernel' (keep the proposed kernel) and the news toast (No).

        Any other dialog (e.g. "Kernel Restarting") is a failure, reported
        with its text.
        """
        dialog = self.page.locator(".jp-Dialog")
        if dialog.count() and dialog.first.is_visible():
            text = dialog.first.inner_text()
            if "Select Kernel" not in text:
                raise AssertionError(f"unexpected dialog in JupyterLab: {text[:300]!r}")
            dialog.first.locator(".jp-mod-accept").first.click()
        toast = self.page.locator(".Toastify__toast").filter(has_text="news")
        if toast.count() and toast.first.is_visible():
            toast.first.get_by_role("button", name="No", exact=True).click()

    # -- reading ---------------------------------------------------------------
    def state(self) -> tuple[str, list[CellState]]:
        raw = self.page.evaluate(_STATE_JS, self.path)
        cells = [
            CellState(
                c["i"], c["type"], c["source"], c["count"], c["errors"], c.get("running", False)
            )
            for c in raw["cells"]
        ]
        return raw["status"], cells

    def errors(self) -> list[str]:
        _, cells = self.state()
        return [f"{c.label()}: {e}" for c in cells for e in c.errors]

    def cleanup_index(self) -> int | None:
        """Index of the '## Clean up' markdown cell, if the notebook has one."""
        _, cells = self.state()
        for c in cells:
            if c.type == "markdown" and c.source.lstrip().startswith(CLEANUP_HEADING):
                return c.index
        return None

    def counters(self) -> dict:
        """Every arrival panel's "received" (with the index of its cell), the
        browser-side clients, and trigger panels reporting "not sent"."""
        return self.page.evaluate(_COUNTERS_JS, self.path)

    def diagrams(self) -> dict:
        """Mermaid diagrams in this notebook's page: how many rendered as an
        SVG, and the text of any that JupyterLab shows as a parse warning."""
        return self.page.evaluate(
            f"""(path) => {{
                const root = ({_PANEL_JS})(path).node;
                const all = [...root.querySelectorAll('.jp-RenderedMermaid')];
                const bad = all.filter((e) => e.classList.contains('jp-mod-warning'));
                // JupyterLab 4 draws a diagram as an <img> whose source is the SVG
                // (older versions inline an <svg>); a loaded image has a width.
                const drawn = (e) => {{
                    const img = e.querySelector('img[src^="data:image/svg+xml"]');
                    return (img && img.complete && img.naturalWidth > 0) || e.querySelector('svg');
                }};
                const svgs = all.filter((e) => !bad.includes(e) && drawn(e));
                const warnings = bad.map((e) => e.innerText.slice(0, 300));
                return {{ rendered: svgs.length, warnings }};
            }}""",
            self.path,
        )

    def output_text(self, index: int) -> str:
        """The text a learner sees under code cell ``index`` (stream and plain text)."""
        return self.page.evaluate(
            f"""([path, index]) => {{
                const cell = ({_PANEL_JS})(path).content.widgets[index];
                const area = cell.node.querySelector('.jp-Cell-outputArea');
                return area ? area.innerText : '';
            }}""",
            [self.path, index],
        )

    def panel_locator(self) -> Any:
        """This notebook's panel, to scope locators (buttons) to it."""
        widget_id = self.page.evaluate(f"(path) => ({_PANEL_JS})(path).id", self.path)
        return self.page.locator(f'[id="{widget_id}"]')

    @staticmethod
    def cell_index(locator: Any) -> int:
        """Index of the notebook cell that holds ``locator``'s element."""
        return locator.evaluate(
            "(e) => [...e.closest('.jp-Notebook').querySelectorAll('.jp-Cell')]"
            ".indexOf(e.closest('.jp-Cell'))"
        )

    # -- running ---------------------------------------------------------------
    def command(self, name: str, active_cell: int | None = None) -> None:
        """Start a JupyterLab command without waiting for it (run-all returns late)."""
        self.page.evaluate(
            f"""([path, name, index]) => {{
                const w = ({_PANEL_JS})(path);
                window.jupyterapp.shell.activateById(w.id);
                if (index !== null) w.content.activeCellIndex = index;
                window.jupyterapp.commands.execute(name);
                return true;
            }}""",
            [self.path, name, active_cell],
        )

    def wait_executed(self, indices: range, timeout: float) -> None:
        """Wait until every non-empty code cell in ``indices`` has run and the
        kernel is idle; fail early, with the cell, on the first error."""
        deadline = time.monotonic() + timeout
        while True:
            status, cells = self.state()
            chosen = [c for c in cells if c.index in indices]
            errors = [f"{c.label()}: {e}" for c in chosen for e in c.errors]
            if errors:
                raise AssertionError(
                    f"{self.path}: error output after Run All:\n" + "\n".join(errors)
                )
            pending = [c for c in chosen if c.needs_run and (c.count is None or c.running)]
            if not pending and status == "idle":
                return
            if time.monotonic() > deadline:
                first = pending[0].label() if pending else "(all ran)"
                raise AssertionError(
                    f"{self.path}: not finished within {timeout} s; kernel {status}; "
                    f"{len(pending)} cells pending, first {first}"
                )
            self.page.wait_for_timeout(500)

    def wait_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.state()[0] != "idle":
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.path}: kernel not idle within {timeout} s")
            self.page.wait_for_timeout(250)

    def run_in_kernel(self, code: str, timeout: float = 30) -> str:
        """Execute ``code`` in the notebook's kernel (not as a cell); return its
        stdout. Raises with the traceback if it fails."""
        result = self.page.evaluate(
            f"""async ([path, code, timeoutMs]) => {{
                const w = ({_PANEL_JS})(path);
                const kernel = w.sessionContext.session.kernel;
                const future = kernel.requestExecute({{ code, stop_on_error: true }});
                let out = '', err = '';
                future.onIOPub = (msg) => {{
                  const t = msg.header.msg_type;
                  if (t === 'stream') out += msg.content.text;
                  if (t === 'error') err += msg.content.traceback.join('\\n');
                }};
                const timer = new Promise((_, reject) =>
                  setTimeout(() => reject(new Error('timeout')), timeoutMs));
                await Promise.race([future.done, timer]);
                return {{ out, err }};
            }}""",
            [self.path, code, int(timeout * 1000)],
        )
        if result["err"]:
            raise AssertionError(f"kernel code failed:\n{code}\n{result['err']}")
        return result["out"]

    def shutdown_kernel(self) -> None:
        self.page.evaluate(
            f"""async (path) => {{
                const w = ({_PANEL_JS})(path);
                if (w) await w.sessionContext.shutdown();
                return true;
            }}""",
            self.path,
        )
