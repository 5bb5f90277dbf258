"""Suite-wide ordering."""

from __future__ import annotations


def pytest_collection_modifyitems(session, config, items):
    # The browser tests keep one Playwright session open, and Playwright's sync
    # API leaves an asyncio loop marked as running in the main thread while it
    # lives. Anything after it that calls asyncio.run() would fail, so the
    # browser tests run last, after the unit tests and the notebooks.
    items.sort(key=lambda item: "/tests/e2e/" in str(item.path).replace("\\", "/"))
