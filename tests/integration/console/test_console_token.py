"""The console against `statewright serve --token-file`: it asks for the token, keeps it
in the tab's session storage (never a cookie) and sends it as a Bearer header."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.integration.console.browser import screenshot
from tests.integration.local.server import EXAMPLES, Server

TOKEN = "console-token-0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root: Path = tmp_path_factory.mktemp("console-token")
    tokens = root / "tokens"
    tokens.write_text(f"ana {TOKEN}\n")
    tokens.chmod(0o600)
    with Server(root, specs=[EXAMPLES / "specs"], args=["--token-file", str(tokens)]) as s:
        s.token = TOKEN
        yield s


def test_the_console_asks_for_the_token_and_sends_it(server: Server, browser: Browser) -> None:
    assert server.request("POST", "/machines", {"spec": "demo", "id": "tok-1"}).status == 201
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{server.url}/console/")
        dialog = page.locator("dialog#token")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("Authorization: Bearer TOKEN")  # the server's message
        screenshot(page, "token")

        # Cancelled: the server's refusal is shown, and the console does not nag.
        dialog.get_by_role("button", name="Cancel").click()
        expect(page.get_by_role("alert")).to_contain_text("(unauthenticated)")
        page.wait_for_timeout(2500)  # two more refreshes
        expect(dialog).to_be_hidden()

        # A wrong token is refused and asked again; the right one is used.
        page.get_by_role("button", name="Token", exact=True).click()
        page.fill("#token-input", "not-the-token-at-all")
        page.get_by_role("button", name="Use token").click()
        expect(dialog).to_be_visible()
        page.fill("#token-input", TOKEN)
        page.get_by_role("button", name="Use token").click()
        expect(page.locator('tr[data-machine="tok-1"]')).to_be_visible()
        expect(page.get_by_role("alert")).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('statewright.token')") == TOKEN
        assert page.evaluate("document.cookie") == ""
        assert context.cookies() == []

        # The tab keeps it: a reload asks nothing; a new tab (session) asks again.
        page.reload()
        expect(page.locator('tr[data-machine="tok-1"]')).to_be_visible()
        expect(dialog).to_be_hidden()
        other = browser.new_page()
        try:
            other.goto(f"{server.url}/console/")
            expect(other.locator("dialog#token")).to_be_visible()
        finally:
            other.close()
    finally:
        context.close()
