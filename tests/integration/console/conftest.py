from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.integration.console.browser import launch


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One chromium per test process, a fresh context (tab state) per test."""
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()
