"""A real JupyterLab and a real Chromium for the browser tests.

Session fixtures start JupyterLab on a free port with a random token, in a
clean configuration (its own config, data, runtime, settings and workspace
folders, so nothing leaks in from the machine or between runs), and launch
Debian's Chromium headless through Playwright's Python package. Everything is
shut down at the end: kernels, JupyterLab and the browser.

Two JupyterLabs can run: ``http`` (a laptop) and ``https`` (as mybinder.org
serves every session), the latter with a certificate made by trustme for this
run. Chromium is told to accept that one certificate, by the hash of its
public key (``--ignore-certificate-errors-spki-list``), and no other. A test
picks its server through the ``lab`` fixture: ``@pytest.mark.parametrize("lab",
["http", "https"], indirect=True)``.

No Chromium or no Playwright: the tests are skipped with a message saying
what to install, except under CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import binder_env
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAB_START_TIMEOUT = 120.0

# First-run noise we switch off through the user settings of the clean profile.
LAB_SETTINGS = {
    # "Would you like to receive official Jupyter news?" and update checks.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    # Render every cell: with windowing, cells scrolled out of view leave the
    # DOM and their widgets cannot be found or clicked.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # Never write the executed notebook (outputs and all) back into the checkout.
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


def _unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail under CI where the browser is required."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI=true and the browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


def find_chromium() -> str | None:
    """``$CHROMIUM`` if set, else Debian's /usr/bin/chromium or one on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabCertificate:
    """A throw-away CA and a server certificate for 127.0.0.1, made at test time."""

    def __init__(self, folder: Path) -> None:
        import trustme
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = folder / "ca.pem"
        self.cert_file = folder / "lab-cert.pem"
        self.key_file = folder / "lab-key.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        issued.private_key_pem.write_to_path(str(self.key_file))
        self.cert_file.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        leaf = x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes())
        spki = leaf.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # What Chromium's --ignore-certificate-errors-spki-list takes: base64(sha256(SPKI)).
        self.spki_sha256 = base64.b64encode(hashlib.sha256(spki).digest()).decode()


class JupyterLab:
    """A JupyterLab server process started for the test session.

    ``python``: the interpreter it runs on, and so its kernels' (Binder's
    pinned environment under CI; see ``lab_python``).
    """

    def __init__(
        self, root: Path, home: Path, python: str, tls: LabCertificate | None = None
    ) -> None:
        # (duplicates pairs these assignments with servers/server_thread.py's by
        # shape only.)
        self.root = root
        self.home = home
        self.python = python
        self.tls = tls
        self.port = free_port()
        self.token = os.urandom(16).hex()
        self.scheme = "https" if tls else "http"
        self.base = f"{self.scheme}://127.0.0.1:{self.port}/"
        self.log_path = home / "jupyterlab.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        dirs = {
            name: self.home / name
            for name in ("config", "data", "runtime", "ipython", "settings", "workspaces")
        }
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        for name, settings in LAB_SETTINGS.items():
            target = dirs["settings"] / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(settings))
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_DATA_DIR=str(dirs["data"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            IPYTHONDIR=str(dirs["ipython"]),
            JUPYTER_PLATFORM_DIRS="1",
            # Kernels import servers/lab from the checkout even when it is not installed.
            PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
            MPLBACKEND="module://matplotlib_inline.backend_inline",
            # Anything the server or a kernel starts by name comes from its environment.
            PATH=os.pathsep.join([str(Path(self.python).parent), env.get("PATH", "")]),
        )
        env.pop("VIRTUAL_ENV", None)
        env.pop("JUPYTERHUB_SERVICE_PREFIX", None)
        cmd = [
            # jupyterlab itself, not `jupyter lab`: that looks up `jupyter-lab`
            # on PATH, which may belong to another environment.
            self.python, "-m", "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--port-retries=0",
            f"--ServerApp.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={dirs['settings']}",
            f"--LabApp.workspaces_dir={dirs['workspaces']}",
        ]  # fmt: skip
        if self.tls is not None:
            cmd += [
                f"--ServerApp.certfile={self.tls.cert_file}",
                f"--ServerApp.keyfile={self.tls.key_file}",
            ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kernels included in the final kill
        )  # fmt: skip
        deadline = time.monotonic() + LAB_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                r = requests.get(
                    self.base + "api/status",
                    params={"token": self.token},
                    timeout=2,
                    verify=self.verify,
                )
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(
            f"JupyterLab did not answer within {LAB_START_TIMEOUT} s:\n{self.log_tail()}"
        )

    def prefix(self) -> str:
        """``sys.prefix`` of the environment JupyterLab and its kernels run in."""
        code = "import sys; print(sys.prefix)"
        return subprocess.run(
            [self.python, "-c", code], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    @property
    def verify(self) -> str | bool:
        """What requests should trust: our CA over https."""
        return str(self.tls.ca_file) if self.tls else True

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            self.base + path,
            headers={"Authorization": f"token {self.token}"},
            timeout=10,
            verify=self.verify,
            **kwargs,
        )

    def url(self, path: str, reset: bool = False) -> str:
        """``reset``: start from an empty workspace (no tabs restored from an
        earlier test)."""
        return f"{self.base}{path}?{'reset&' if reset else ''}token={self.token}"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def running_kernels(self) -> list[dict]:
        return self.api("GET", "api/kernels").json()

    def stop(self) -> None:
        """Shut down kernels and the server; kill the process group if it lingers."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                for kernel in self.running_kernels():
                    self.api("DELETE", f"api/kernels/{kernel['id']}")
                self.api("POST", "api/shutdown")
            except requests.RequestException:
                pass
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        # Anything it started (kernels) and left behind goes with its group.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, AttributeError):
            pass
        self._log.close()
        self.proc = None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        _unavailable(
            "no Chromium executable found (looked for $CHROMIUM, /usr/bin/chromium and "
            f"{', '.join(CHROMIUM_CANDIDATES)} on PATH). Install it with "
            "`sudo apt-get install -y chromium` or run `.ci/install-browser.sh`."
        )
    return path


@pytest.fixture(scope="session")
def lab_certificate(tmp_path_factory: pytest.TempPathFactory) -> LabCertificate:
    return LabCertificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def browser(chromium_path: str, lab_certificate: LabCertificate) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the `playwright` Python package is not installed (pip install playwright)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            # Accept the https JupyterLab's certificate, by its key, and nothing else.
            args=[
                *CHROMIUM_ARGS,
                f"--ignore-certificate-errors-spki-list={lab_certificate.spki_sha256}",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def lab_python(request: pytest.FixtureRequest) -> str:
    """The Python JupyterLab and its kernels run on.

    Under CI (or ``BINDER_ENV_TEST=1``): a fresh venv holding exactly
    ``binder/requirements.txt``, so every notebook's Run All in the browser
    runs on Binder's pinned versions. Otherwise the interpreter running the
    tests, for a quick local loop.
    """
    if binder_env.wanted():
        return request.getfixturevalue("binder_python")
    return sys.executable


@pytest.fixture(scope="session")
def jupyter_lab(
    tmp_path_factory: pytest.TempPathFactory, browser: Any, lab_python: str
) -> Iterator[JupyterLab]:
    # Depends on `browser` so that no server starts when the browser is missing.
    lab = JupyterLab(REPO, tmp_path_factory.mktemp("jupyterlab"), lab_python)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="session")
def jupyter_lab_https(
    tmp_path_factory: pytest.TempPathFactory,
    browser: Any,
    lab_certificate: LabCertificate,
    lab_python: str,
) -> Iterator[JupyterLab]:
    """The same JupyterLab served over https, as Binder serves it."""
    home = tmp_path_factory.mktemp("jupyterlab-https")
    lab = JupyterLab(REPO, home, lab_python, tls=lab_certificate)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> JupyterLab:
    """The JupyterLab a test runs against: ``http`` (default) or ``https``."""
    scheme = getattr(request, "param", "http")
    return request.getfixturevalue("jupyter_lab_https" if scheme == "https" else "jupyter_lab")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # Screenshots from an earlier run would pass for this run's: remove ours.
    patterns = ("FAILED-*.png", "*-run-all.png", "*-after-clicks.png", "*-your-turn.png")
    for pattern in (*patterns, "browser-clients*.png"):
        for old in ARTIFACTS.glob(pattern):
            old.unlink()
    return ARTIFACTS


@pytest.fixture
def page(
    browser: Any, lab: JupyterLab, artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """A fresh browser context (no cookies/storage shared between tests)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    console: list[str] = []
    pg.on(
        "console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error",) else None
    )
    pg.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    pg.console_errors = console  # type: ignore[attr-defined]
    yield pg
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        name = request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
        try:
            pg.screenshot(path=str(artifacts / f"FAILED-{name}.png"), full_page=True)
        except Exception as exc:  # a dead page must not hide the real failure
            print(f"could not save failure screenshot: {exc}")
        print("JupyterLab log tail:\n" + lab.log_tail())
        print("browser console errors:\n" + "\n".join(console[-30:]))
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
