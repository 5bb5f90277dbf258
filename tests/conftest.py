"""Suite-wide ordering, and Binder's environment for the tests that use it.

The suite runs on two pytest-xdist workers (``-n 2 --dist loadscope
--no-loadscope-reorder`` in pyproject.toml). A worker takes one *scope* at a
time and a scope never splits across workers: a notebook (nbval runs its
cells in order, in one kernel), a test file (its module fixtures start once)
or a test class. Scopes are handed out in the order sorted here:

* the notebooks first: the longest scopes, so the two workers end together;
* then the test files, then ``tests/test_binder_env.py``;
* the browser tests (``tests/e2e/``) last, each a scope of its own (see
  ``pytest_xdist_make_scheduler``). Playwright's sync API leaves an asyncio
  loop marked as running in the main thread while it lives: anything after
  it in the same process that calls asyncio.run() would fail, so nothing but
  browser tests may follow them.

(``--dist loadgroup`` with ``xdist_group`` marks would say this more
directly, but pytest-xdist 3.8 groups by rewriting ``item._nodeid``, which
pytest 9.2 no longer reads: the groups were silently split.)
"""

from __future__ import annotations

import binder_env
import pytest


def _rank(item: pytest.Item) -> int:
    path = str(item.path).replace("\\", "/")
    if "/tests/e2e/" in path:
        return 3
    if path.endswith("/tests/test_binder_env.py"):
        return 2
    return 0 if path.endswith(".ipynb") else 1


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=_rank)  # stable: a notebook's cells and a file's tests keep their order


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist; without it, not called
def pytest_xdist_make_scheduler(config, log):
    """``loadscope``, except that each browser test is a scope of its own:
    they are the longest tests (30-50 s each), so both workers take them,
    each with its own JupyterLab and Chromium."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class BrowserTestsApart(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith("tests/e2e/"):
                return nodeid
            return super()._split_scope(nodeid)

    return BrowserTestsApart(config, log)


@pytest.fixture(scope="session")
def binder_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The python of a fresh venv holding Binder's pinned environment (built once)."""
    try:
        return str(binder_env.build(tmp_path_factory.mktemp("binder") / "venv"))
    except LookupError as exc:
        pytest.skip(str(exc))
