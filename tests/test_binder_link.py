"""``python -m lab.binder_link``: the mybinder.org launch link for any host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lab import binder_link

OPEN = "?urlpath=lab/tree/notebooks/00_start_here.ipynb"


@pytest.mark.parametrize(
    "remote, expected",
    [
        ("https://github.com/ada/event-lab.git", "gh/ada/event-lab/HEAD"),
        ("https://github.com/ada/event-lab", "gh/ada/event-lab/HEAD"),
        ("git@github.com:ada/event-lab.git", "gh/ada/event-lab/HEAD"),
        ("ssh://git@github.com/ada/event-lab.git", "gh/ada/event-lab/HEAD"),
        ("https://gitlab.com/group/sub/event-lab.git", "gl/group%2Fsub%2Fevent-lab/HEAD"),
        ("git@gitlab.com:group/event-lab.git", "gl/group%2Fevent-lab/HEAD"),
        (
            "https://git.example.org/teaching/event-lab.git",
            "git/https%3A%2F%2Fgit.example.org%2Fteaching%2Fevent-lab.git/HEAD",
        ),
        (
            "git@git.example.org:teaching/event-lab.git",
            "git/https%3A%2F%2Fgit.example.org%2Fteaching%2Fevent-lab.git/HEAD",
        ),
    ],
)
def test_launch_url_for_each_kind_of_remote(remote, expected):
    assert binder_link.launch_url(remote) == f"https://mybinder.org/v2/{expected}{OPEN}"


def test_a_ref_is_escaped_and_the_badge_wraps_the_url():
    url = binder_link.launch_url("https://github.com/ada/event-lab", ref="feature/x")
    assert url == f"https://mybinder.org/v2/gh/ada/event-lab/feature%2Fx{OPEN}"
    assert binder_link.badge(url) == f"[![Binder](https://mybinder.org/badge_logo.svg)]({url})"


@pytest.mark.parametrize("remote", ["", "/home/ada/event-lab", "file:///srv/repo.git", "https://"])
def test_what_binder_cannot_clone_is_refused_with_a_reason(remote):
    with pytest.raises(ValueError):
        binder_link.launch_url(remote)


def run(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lab.binder_link", *args],
        capture_output=True, text=True, encoding="utf-8", timeout=30, cwd=cwd,
    )  # fmt: skip


def test_the_command_reads_the_origin_remote(tmp_path, monkeypatch):
    # A throw-away clone-like repository whose origin we choose.
    repo = tmp_path / "repo"
    (repo / "lab").mkdir(parents=True)
    (repo / "lab" / "__init__.py").write_text("", encoding="utf-8")
    (repo / "lab" / "binder_link.py").write_text(
        Path(binder_link.__file__).read_text(encoding="utf-8"), encoding="utf-8"
    )
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    no_remote = run(cwd=repo)
    assert no_remote.returncode == 1
    assert "no git remote named 'origin'" in no_remote.stderr
    assert "git remote add origin" in no_remote.stderr
    subprocess.run(
        ["git", "-C", str(repo), "remote", "add", "origin", "git@github.com:ada/event-lab.git"],
        check=True,
    )
    done = run(cwd=repo)
    assert done.returncode == 0, done.stderr
    assert f"https://mybinder.org/v2/gh/ada/event-lab/HEAD{OPEN}" in done.stdout
    assert "[![Binder](https://mybinder.org/badge_logo.svg)]" in done.stdout


def test_url_option_needs_no_git(tmp_path):
    done = run("--url", "https://gitlab.com/group/event-lab", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "https://mybinder.org/v2/gl/group%2Fevent-lab/HEAD" in done.stdout
