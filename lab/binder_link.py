"""The mybinder.org launch link for wherever this repository is hosted.

The public address of a copy of this collection is whatever its owner chose,
so no badge in the README can be right for everyone. This reads the git
remote and prints the launch URL and a Markdown badge for it::

    python -m lab.binder_link                 # the `origin` remote
    python -m lab.binder_link --remote upstream --ref main
    python -m lab.binder_link --url https://gitlab.com/group/project.git

BinderHub's providers (https://mybinder.readthedocs.io/en/latest/introduction.html):
``gh/<owner>/<repo>/<ref>`` for GitHub, ``gl/<url-escaped path>/<ref>`` for
GitLab.com, ``git/<url-escaped clone URL>/<ref>`` for any other public git
host. Binder clones over https, so an ssh remote is turned into its https
form; the repository must be public there. ``urlpath=lab/tree/...`` opens
JupyterLab on the first notebook.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

BINDER = "https://mybinder.org/v2"
FIRST_NOTEBOOK = "notebooks/00_start_here.ipynb"
BADGE_IMAGE = "https://mybinder.org/badge_logo.svg"

# git@host:path/to/repo.git (scp-like ssh syntax: no scheme, a colon before the path)
_SCP_LIKE = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?!//)(?P<path>.+)$")


class NoRemoteError(RuntimeError):
    """There is no remote to build a link for; the message says what to do."""


def https_clone_url(remote: str) -> str:
    """The https form of a git remote URL (Binder cannot clone over ssh)."""
    remote = remote.strip()
    match = _SCP_LIKE.match(remote)
    if match and "://" not in remote:
        host, path = match["host"], match["path"]
    else:
        parts = urlsplit(remote)
        if parts.scheme not in ("https", "http", "ssh", "git", "git+ssh") or not parts.hostname:
            raise ValueError(f"not a git remote URL Binder can clone: {remote!r}")
        host, path = parts.hostname, parts.path
        if parts.scheme == "http":  # a public host that still serves plain http
            return f"http://{parts.netloc.rsplit('@', 1)[-1]}{path}"
    path = path.strip("/")
    if not path:
        raise ValueError(f"no repository path in {remote!r}")
    return f"https://{host}/{path}"


def launch_url(remote: str, ref: str = "HEAD", notebook: str = FIRST_NOTEBOOK) -> str:
    """The mybinder.org URL that builds ``remote`` at ``ref`` and opens ``notebook``."""
    clone = https_clone_url(remote)
    parts = urlsplit(clone)
    path = parts.path.strip("/")
    bare = path[: -len(".git")] if path.endswith(".git") else path
    if parts.hostname == "github.com" and bare.count("/") == 1:
        spec = f"gh/{bare}"
    elif parts.hostname == "gitlab.com":
        spec = f"gl/{quote(bare, safe='')}"
    else:
        spec = f"git/{quote(clone, safe='')}"
    return f"{BINDER}/{spec}/{quote(ref, safe='')}?urlpath=lab/tree/{notebook}"


def badge(url: str) -> str:
    return f"[![Binder]({BADGE_IMAGE})]({url})"


def git_remote_url(name: str = "origin") -> str:
    """The URL of remote ``name`` of the repository this file is in."""
    try:
        result = subprocess.run(
            ["git", "remote", "get-url", name],
            capture_output=True,
            text=True,
            encoding="utf-8",
            check=False,
            cwd=Path(__file__).resolve().parents[1],  # this repository, wherever run from
        )
    except FileNotFoundError:
        raise NoRemoteError("git is not installed here; pass the address with --url") from None
    if result.returncode != 0:
        raise NoRemoteError(
            f"this copy has no git remote named {name!r} (a ZIP download, or a clone that was "
            "never pushed). Push it to a public GitHub or GitLab repository, then run "
            "`git remote add origin <its URL>`, or pass the address with --url."
        )
    return result.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.binder_link", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--remote", default="origin", help="git remote to read (default origin)")
    parser.add_argument("--url", help="a repository URL to use instead of a git remote")
    parser.add_argument("--ref", default="HEAD", help="branch, tag or commit (default HEAD)")
    args = parser.parse_args(argv)
    try:
        remote = args.url or git_remote_url(args.remote)
        url = launch_url(remote, args.ref)
    except (NoRemoteError, ValueError) as exc:
        print(f"No Binder link: {exc}", file=sys.stderr)
        return 1
    print(f"repository: {https_clone_url(remote)}")
    print(f"launch URL: {url}")
    print(f"badge:      {badge(url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
