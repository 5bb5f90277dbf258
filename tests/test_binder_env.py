"""Binder's environment is the tested one: install binder/requirements.txt into
a fresh venv and run every notebook under nbval there.

It downloads and installs the whole pinned environment (a few minutes), so on
a laptop it runs only when asked:
``BINDER_ENV_TEST=1 python -m pytest tests/test_binder_env.py``; CI (``CI=true``)
always runs it.
It needs the Python that binder/runtime.txt names (``python3.11`` on PATH, or
the interpreter running the tests when it is that version).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_TOOLS = ["pytest==9.2.0", "nbval==0.11.0", "pytest-timeout==2.4.0"]


def _binder_python() -> str | None:
    wanted = (REPO / "binder" / "runtime.txt").read_text().strip().removeprefix("python-")
    if f"{sys.version_info.major}.{sys.version_info.minor}" == wanted:
        return sys.executable
    return shutil.which(f"python{wanted}")


@pytest.mark.timeout(1500)
def test_notebooks_pass_nbval_in_the_binder_environment(tmp_path: Path) -> None:
    # CI always runs it (Binder's environment must be the tested one); on a
    # laptop it is opt-in because it installs the whole pinned environment.
    if os.environ.get("BINDER_ENV_TEST") != "1" and os.environ.get("CI") != "true":
        pytest.skip(
            "slow (installs binder/requirements.txt in a fresh venv): set BINDER_ENV_TEST=1"
        )
    python = _binder_python()
    if python is None:
        pytest.skip("the Python named in binder/runtime.txt is not installed")
    venv = tmp_path / "binder-venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    vpython = str(venv / ("Scripts" if os.name == "nt" else "bin") / "python")
    # repo2docker runs pip from the repository root, so `-e .` means the repository.
    install = subprocess.run(
        [vpython, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt", *TEST_TOOLS],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-3000:]
    check = subprocess.run(
        [vpython, "-m", "pip", "check"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, f"conflicting pins in binder/requirements.txt:\n{check.stdout}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    notebooks = sorted(
        str(p.relative_to(REPO)) for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")
    )
    run = subprocess.run(
        [vpython, "-m", "pytest", "-q", "-p", "no:cacheprovider", *notebooks],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
