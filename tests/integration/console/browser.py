"""Debian's chromium driven by Playwright, and the screenshots the console tests keep.

Playwright's own browser downloads are never used: the tests launch /usr/bin/chromium
(`apt-get install chromium`; `make install` does it when run as root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "console"
# `make console-screenshot` sets this to docs/console.png: the README's picture is taken
# by the same test code that checks the page.
DOCS_SCREENSHOT = "STATEWRIGHT_CONSOLE_SCREENSHOT"


def launch(playwright: Playwright) -> Browser:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the console tests drive Debian's chromium. Install it "
            "with `sudo apt-get install -y chromium` (make install does it when run as root)."
        )
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def screenshot(page: Page, name: str, *, for_docs: bool = False) -> Path:
    """A full-page PNG under test-artifacts/console/ (and the docs' copy when asked)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get(DOCS_SCREENSHOT)
    if for_docs and target:
        page.screenshot(path=str(REPO / target), full_page=True)
    return path
