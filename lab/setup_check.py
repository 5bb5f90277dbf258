"""Check a learner's environment and say exactly what to fix.

Run it before a workshop: ``python -m lab.setup_check``. Notebook 00 runs it
in its first section too. Each check prints ``ok``, ``warn`` (a later
notebook degrades gracefully) or ``FAIL`` (fix this first) with the fix.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
from dataclasses import dataclass

# (distribution, import name, minimum version, why it matters)
REQUIRED = [
    ("tornado", "tornado", "6.4", "the in-kernel servers"),
    ("requests", "requests", "2.31", "the HTTP clients"),
    ("sseclient-py", "sseclient", "1.8", "the Server-Sent Events client"),
    ("websocket-client", "websocket", "1.8", "the WebSocket client"),
    ("ipywidgets", "ipywidgets", "8.1", "the buttons and panels"),
    ("matplotlib", "matplotlib", "3.8", "the plots"),
]
OPTIONAL = [
    ("jupyterlab", "JupyterLab itself (not needed to run the tests)"),
    ("jupyterlab_widgets", "widgets rendering in JupyterLab"),
    ("jupyter-server-proxy", "your browser reaching the in-kernel servers (notebooks 02, 03)"),
    ("redis", "the Redis client of the scaling notebook"),
]


@dataclass
class Check:
    name: str
    status: str  # "ok", "warn" or "FAIL"
    detail: str
    fix: str = ""


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_python() -> Check:
    v = sys.version_info
    if v >= (3, 10):
        return Check("python", "ok", f"Python {v.major}.{v.minor}.{v.micro}")
    return Check(
        "python",
        "FAIL",
        f"Python {v.major}.{v.minor} is too old",
        "install Python 3.10 or newer and create the virtual environment with it",
    )


def check_package(dist: str, module: str, minimum: str, why: str) -> Check:
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return Check(
            dist, "FAIL", f"not installed ({why})", "python -m pip install -r requirements.txt"
        )
    if _version_tuple(version) < _version_tuple(minimum):
        return Check(
            dist,
            "FAIL",
            f"{version} is older than {minimum} ({why})",
            f'python -m pip install --upgrade "{dist}>={minimum}"',
        )
    try:
        __import__(module)
    except Exception as exc:  # a broken install: say which
        return Check(
            dist,
            "FAIL",
            f"{version} installed but import fails: {exc}",
            f"python -m pip install --force-reinstall {dist}",
        )
    return Check(dist, "ok", version)


def check_optional(dist: str, why: str) -> Check:
    try:
        return Check(dist, "ok", importlib.metadata.version(dist))
    except importlib.metadata.PackageNotFoundError:
        return Check(
            dist,
            "warn",
            f"not installed: needed for {why}",
            "python -m pip install -r requirements.txt",
        )


def check_collection_installed() -> Check:
    try:
        import lab  # noqa: F401
        import servers  # noqa: F401
    except ImportError as exc:
        return Check(
            "this collection",
            "FAIL",
            str(exc),
            "python -m pip install -r requirements.txt (it installs -e .)",
        )
    return Check("this collection", "ok", "servers and lab import")


def check_loopback_server() -> Check:
    """Start a real server on 127.0.0.1, call it from this thread, stop it."""
    try:
        import requests

        from servers import ServerThread
        from servers.polling import make_app

        with ServerThread(make_app, name="setup-check") as server:
            server.publish("setup.check")
            body = requests.get(f"{server.url}/events", timeout=5).json()
        if body["events"][0]["type"] != "setup.check":
            raise RuntimeError(f"unexpected answer {body}")
    except Exception as exc:
        return Check(
            "loopback server",
            "FAIL",
            f"{type(exc).__name__}: {exc}",
            "a firewall or security tool may block 127.0.0.1; allow Python to listen on loopback",
        )
    return Check("loopback server", "ok", "started on 127.0.0.1, answered, stopped")


def check_loopback_not_proxied() -> Check:
    """requests sends even 127.0.0.1 to a proxy set in HTTP_PROXY unless
    NO_PROXY lists it; proxies buffer streams and may not reach loopback."""
    import requests.utils

    proxy = requests.utils.get_environ_proxies("http://127.0.0.1:8000/")
    if not proxy:
        return Check("proxy", "ok", "no proxy for 127.0.0.1")
    return Check(
        "proxy",
        "FAIL",
        f"requests would send 127.0.0.1 traffic to the proxy {proxy.get('http', proxy)}",
        "set NO_PROXY=127.0.0.1,localhost before starting Jupyter (see docs/instructor.md)",
    )


def check_redis_binary() -> Check:
    path = shutil.which("redis-server")
    if path:
        return Check("redis-server", "ok", path)
    return Check(
        "redis-server",
        "warn",
        "not found: the scaling notebook falls back to one process, in memory",
        "optional: apt install redis-server (Debian/Ubuntu), brew install redis (macOS)",
    )


def run_checks() -> list[Check]:
    checks = [check_python(), check_collection_installed()]
    checks += [check_package(*spec) for spec in REQUIRED]
    checks += [check_optional(*spec) for spec in OPTIONAL]
    checks += [check_loopback_not_proxied(), check_loopback_server(), check_redis_binary()]
    return checks


def report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status:>4}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != "ok":
            lines.append(f"{'':>4}  {'':<{width}}  fix: {c.fix}")
    failed = [c for c in checks if c.status == "FAIL"]
    lines.append("")
    lines.append(
        f"{len(failed)} problem(s) to fix before the workshop."
        if failed
        else "Ready: open notebooks/00_start_here.ipynb."
    )
    lines.append(
        "Widgets: in the notebook, the Fire event button must appear as a button. If you see "
        "text like 'VBox(children=...)' instead, reinstall with the first README command and "
        "reload the browser tab."
    )
    return "\n".join(lines)


def main() -> int:
    checks = run_checks()
    print(report(checks))
    return 1 if any(c.status == "FAIL" for c in checks) else 0


if __name__ == "__main__":
    raise SystemExit(main())
