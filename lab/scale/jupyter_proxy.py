"""A real jupyter-server-proxy for notebook 03's buffering measurement.

``JupyterServerProxy`` runs a jupyter_server with only jupyter-server-proxy
enabled, in a subprocess on a free loopback port: the proxy every Binder user
goes through. ``url_for(port, path)`` is the ``/proxy/<port>/<path>`` URL a
Binder user's browser would use.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys

import requests

from . import process


class JupyterServerProxy(process.ManagedProcess):
    """``with JupyterServerProxy() as jsp: jsp.url_for(port, "stream/sse")``."""

    what = "jupyter_server"

    def __init__(self, startup_timeout: float = 60.0) -> None:
        self.startup_timeout = startup_timeout
        self.token = os.urandom(12).hex()
        self.port: int | None = None

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
        folder = self._tempdir("jsp-")
        config = os.path.join(folder, "config.json")
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
            f"--ServerApp.root_dir={folder}",
        ]  # fmt: skip
        env = {**os.environ, "JUPYTER_CONFIG_DIR": folder, "JUPYTER_RUNTIME_DIR": folder}
        self._spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=folder)
        self._wait_ready(self._answers, self.startup_timeout, interval=0.1)
        return self

    def _answers(self) -> bool:
        try:
            status = requests.get(
                f"http://127.0.0.1:{self.port}/api/status", headers=self.headers, timeout=1
            )
        except requests.RequestException:
            return False
        return status.status_code == 200
