"""Binder's environment (binder/) is complete, pinned, and what repo2docker uses.

When ``binder/`` exists, repo2docker (Binder's builder) ignores the root
configuration files, so everything a notebook imports must be pinned there.
``repo2docker --no-build`` prints the Dockerfile it would build without
needing Docker; when repo2docker is installed (``pip install
jupyter-repo2docker``) the last test checks that it picks up binder/ and the
intended Python.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BINDER = REPO / "binder"
PYTHON = "3.11"
LOCAL_PACKAGES = {"servers", "lab", "benchmarks"}

# Import name -> distribution name, where they differ (or the module is
# installed by another distribution).
IMPORT_TO_DIST = {
    "IPython": "ipython",
    "sseclient": "sseclient-py",
    "websocket": "websocket-client",
    "yaml": "pyyaml",
    "PIL": "pillow",
    "jupyter_server_proxy": "jupyter-server-proxy",
    "matplotlib_inline": "matplotlib-inline",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _pins() -> dict[str, str]:
    pins = {}
    for line in _requirement_lines(BINDER / "requirements.txt"):
        if line.startswith("-"):
            continue
        name, _, version = line.partition("==")
        pins[_norm(name.split("[")[0])] = version
    return pins


def _top_level_imports() -> dict[str, set[str]]:
    """Third-party top-level modules imported by the notebooks and packages."""
    sources: list[tuple[str, str]] = []
    for folder in ("servers", "lab", "notebooks"):
        for path in (REPO / folder).rglob("*.py"):
            sources.append((str(path.relative_to(REPO)), path.read_text()))
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        for cell in cells:
            if cell["cell_type"] == "code":
                code = "".join(cell["source"])
                # IPython magics and shell escapes are not Python.
                code = "\n".join(
                    "" if line.lstrip().startswith(("%", "!")) else line
                    for line in code.splitlines()
                )
                sources.append((str(path.relative_to(REPO)), code))
    found: dict[str, set[str]] = {}
    for where, code in sources:
        for node in ast.walk(ast.parse(code, where)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in LOCAL_PACKAGES | {
                    "__future__"
                }:
                    found.setdefault(top, set()).add(where)
    return found


def _distribution(module: str) -> str:
    if module in IMPORT_TO_DIST:
        return IMPORT_TO_DIST[module]
    from importlib.metadata import packages_distributions

    dists = packages_distributions().get(module)
    return dists[0] if dists else module


def test_runtime_states_the_python_version() -> None:
    assert (BINDER / "runtime.txt").read_text().strip() == f"python-{PYTHON}"
    pyproject = (REPO / "pyproject.toml").read_text()
    minimum = re.search(r'requires-python\s*=\s*">=\s*3\.(\d+)"', pyproject)
    assert minimum and int(minimum.group(1)) <= int(PYTHON.split(".")[1]), (
        "runtime.txt below requires-python"
    )


def test_requirements_are_pinned_pip_only_and_install_the_repository() -> None:
    assert not (BINDER / "environment.yml").exists(), (
        "binder/ is pip-only: no conda environment.yml"
    )
    lines = _requirement_lines(BINDER / "requirements.txt")
    options = [line for line in lines if line.startswith("-")]
    assert options == ["-e ."], (
        f"only '-e .' (the repository itself) may be unpinned, got {options}"
    )
    unpinned = [
        line
        for line in lines
        if not line.startswith("-") and not re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line)
    ]
    assert not unpinned, f"pin these with ==: {unpinned}"


def test_jupyter_server_proxy_streams_sse() -> None:
    version = _pins().get("jupyter-server-proxy")
    assert version, (
        "binder/requirements.txt must pin jupyter-server-proxy (how the browser reaches servers)"
    )
    assert tuple(int(p) for p in version.split(".")[:2]) >= (4, 4), (
        "jupyter-server-proxy >= 4.4 streams SSE"
    )


def test_every_imported_module_is_pinned() -> None:
    pins = _pins()
    missing = {
        module: sorted(where)[:3]
        for module, where in _top_level_imports().items()
        if _norm(_distribution(module)) not in pins
    }
    assert not missing, f"imported but not pinned in binder/requirements.txt: {missing}"


def test_every_root_requirement_is_pinned_for_binder() -> None:
    pins = _pins()
    wanted = [
        _norm(re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0])
        for line in _requirement_lines(REPO / "requirements.txt")
        if not line.startswith("-")
    ]
    missing = [name for name in wanted if name not in pins]
    assert not missing, (
        f"requirements.txt needs these, binder/requirements.txt does not pin them: {missing}"
    )


def test_apt_packages_and_post_build() -> None:
    packages = [line for line in _requirement_lines(BINDER / "apt.txt")]
    assert "redis-server" in packages, "the scaling notebook starts a real redis-server"
    post_build = BINDER / "postBuild"
    if post_build.exists():
        assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"


def _repo2docker() -> str | None:
    explicit = os.environ.get("REPO2DOCKER")
    if explicit:
        return explicit
    beside = Path(sys.executable).with_name("repo2docker")
    return str(beside) if beside.exists() else shutil.which("repo2docker")


def test_repo2docker_picks_up_binder_and_python() -> None:
    exe = _repo2docker()
    if exe is None:
        pytest.skip(
            "repo2docker is not installed (pip install jupyter-repo2docker, or set "
            "REPO2DOCKER=/path/to/repo2docker): cannot check what Binder would build"
        )
    result = subprocess.run(
        [exe, "--no-build", "--debug", str(REPO)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert f"python={PYTHON}" in output or f"py-{PYTHON}" in output, (
        "repo2docker did not pick Python " + PYTHON
    )
    # binder/requirements.txt, not the root one, and installed after the repository
    # is copied in (it refers to the repository with -e .).
    install = output.find('pip install --no-cache-dir -r "binder/requirements.txt"')
    assert install >= 0, "repo2docker does not install binder/requirements.txt"
    assert '-r "requirements.txt"' not in output, "repo2docker used the root requirements.txt"
    copy = output.find("COPY --chown=")
    copy_repo = output.find("src/ ${REPO_DIR}/")
    assert 0 <= copy and 0 <= copy_repo < install, (
        "pip must run after the repository is copied (-e .)"
    )
    apt = re.search(r"apt-get install[^\n]*\n?[^\n]*redis-server", output)
    assert apt, "repo2docker did not install binder/apt.txt's redis-server"
