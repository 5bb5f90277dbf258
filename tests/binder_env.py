"""Binder's pinned environment (``binder/``), built in a fresh virtual
environment for the tests that must run in it.

Binder builds ``binder/requirements.txt`` on the Python ``binder/runtime.txt``
names, with pip, from the repository root (``-e .`` is the repository). Here
the same file goes into a fresh venv, with uv when it is installed (seconds
instead of minutes; same resolver inputs, every version pinned) and pip
otherwise.

Which tests use it: the browser suite runs JupyterLab, and so every
notebook's kernel, from this environment when ``CI=true`` or
``BINDER_ENV_TEST=1`` (see ``tests/e2e/conftest.py``), and
``tests/test_binder_env.py`` checks that it installs, has no conflicts and
imports everything the collection imports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wanted() -> bool:
    """Whether this run should use the Binder environment: always under CI."""
    return os.environ.get("CI") == "true" or os.environ.get("BINDER_ENV_TEST") == "1"


def binder_python_version() -> str:
    return (
        (REPO / "binder" / "runtime.txt")
        .read_text(encoding="utf-8")
        .strip()
        .removeprefix("python-")
    )


def base_python() -> str | None:
    """An interpreter of the version Binder uses, or None."""
    version = binder_python_version()
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    return shutil.which(f"python{version}")


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / "python"


def build(venv: Path) -> Path:
    """Install binder/requirements.txt into a new venv at ``venv``; its python.

    Raises ``RuntimeError`` with the installer's output when it fails.
    """
    python = base_python()
    if python is None:
        raise LookupError(f"no python{binder_python_version()} (binder/runtime.txt) here")
    uv = shutil.which("uv")
    if uv:
        steps = [
            [uv, "venv", "-q", "--python", python, str(venv)],
            [uv, "pip", "install", "-q", "--python", str(venv_python(venv)),
             "-r", "binder/requirements.txt"],
        ]  # fmt: skip
    else:
        steps = [
            [python, "-m", "venv", str(venv)],
            [str(venv_python(venv)), "-m", "pip", "install", "-q",
             "-r", "binder/requirements.txt"],
        ]  # fmt: skip
    for step in steps:
        # From the repository root, as repo2docker runs it: `-e .` is this checkout.
        done = subprocess.run(
            step, cwd=REPO, capture_output=True, text=True, encoding="utf-8", timeout=900
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(step)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
            )
    return venv_python(venv)
