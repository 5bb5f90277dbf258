"""Binder's environment is the tested one.

``binder/requirements.txt`` is installed into a fresh venv (``binder_env``),
and under ``CI=true`` (or ``BINDER_ENV_TEST=1``) the browser suite runs
JupyterLab and every notebook's kernel from that venv, over http and https:
each notebook's Run All, its clicks and its checkpoints run on exactly the
pinned versions Binder installs. This file checks the environment itself:
it installs, its pins do not conflict, and every module the collection
imports imports there.
"""

from __future__ import annotations

import shutil
import subprocess

import binder_env
import pytest
from test_binder import _top_level_imports

pytestmark = pytest.mark.skipif(
    not binder_env.wanted(),
    reason="installs binder/requirements.txt in a fresh venv: set BINDER_ENV_TEST=1 (CI does)",
)


def test_pins_do_not_conflict(binder_python: str) -> None:
    uv = shutil.which("uv")
    cmd = [uv, "pip", "check", "--python", binder_python] if uv else [
        binder_python, "-m", "pip", "check"
    ]  # fmt: skip
    check = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert check.returncode == 0, f"conflicting pins in binder/requirements.txt:\n{check.stdout}"


def test_everything_the_collection_imports_imports_there(binder_python: str) -> None:
    modules = sorted(_top_level_imports())
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    done = subprocess.run(
        [binder_python, "-c", code, *modules, "servers", "lab", "benchmarks"],
        capture_output=True, text=True, encoding="utf-8", timeout=300,
        cwd=binder_env.REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
