"""Suite-wide ordering, and Binder's environment for the tests that use it."""

from __future__ import annotations

import binder_env
import pytest


def pytest_collection_modifyitems(session, config, items):
    # The browser tests keep one Playwright session open, and Playwright's sync
    # API leaves an asyncio loop marked as running in the main thread while it
    # lives. Anything after it that calls asyncio.run() would fail, so the
    # browser tests run last, after the unit tests and the notebooks.
    items.sort(key=lambda item: "/tests/e2e/" in str(item.path).replace("\\", "/"))


@pytest.fixture(scope="session")
def binder_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The python of a fresh venv holding Binder's pinned environment (built once)."""
    try:
        return str(binder_env.build(tmp_path_factory.mktemp("binder") / "venv"))
    except LookupError as exc:
        pytest.skip(str(exc))
