"""The README's two commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    top = text.split("## What you will learn")[0]
    return re.findall(r"```bash\n(.+?)\n```", top, re.S)


def test_readme_starts_with_the_two_commands():
    open_cmd, test_cmd = commands()
    assert "requirements.txt" in open_cmd
    assert "jupyter lab notebooks/00_start_here.ipynb" in open_cmd
    assert "requirements-test.txt" in test_cmd and "pytest" in test_cmd


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands()[1] in ci


def test_readme_notebook_map_names_every_notebook():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert f"notebooks/{nb.name}" in text, f"README's notebook map does not link {nb.name}"
