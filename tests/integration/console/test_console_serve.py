"""The web console in a real chromium, against a real `statewright serve` with the demo
specs: the fleet, a machine launched, failed, retried and destroyed from the console, the
spec page, keyboard use, a phone-sized screen and dark mode."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.integration.console.browser import REPO, screenshot
from tests.integration.local.server import EXAMPLES, Server, gone, in_state

pytestmark = pytest.mark.terraform

SLOW = 60_000  # ms: Terraform runs inside these waits


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root: Path = tmp_path_factory.mktemp("console")
    with Server(root, specs=[EXAMPLES / "specs", REPO / "specs"]) as s:
        yield s


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1100, "height": 800}, color_scheme="light")
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    page = context.new_page()
    errors: list[str] = []  # uncaught exceptions in the console's code
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    return page


def create(server: Server, machine_id: str, spec: str = "demo", **metadata: object) -> None:
    answer = server.request(
        "POST", "/machines", {"spec": spec, "id": machine_id, "metadata": metadata}
    )
    assert answer.status == 201, answer


def confirm(page: Page, expected_title: str) -> None:
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog.locator("h2")).to_have_text(expected_title)
    dialog.locator("#confirm-ok").click()
    expect(dialog).to_be_hidden()


def test_the_fleet_lists_machines_and_follows_changes_without_reloading(
    server: Server, page: Page
) -> None:
    create(server, "fleet-a", owner="ana")
    create(server, "fleet-b", spec="tenant-lifecycle")
    page.goto(f"{server.url}/console/")
    rows = page.locator("table.fleet tbody tr")
    expect(page.locator('tr[data-machine="fleet-a"]')).to_contain_text("demo")
    expect(page.locator('tr[data-machine="fleet-a"]')).to_contain_text("INIT")
    expect(page.locator('tr[data-machine="fleet-b"]')).to_contain_text("tenant-lifecycle")
    page.evaluate("window.sameDocument = true")

    # A machine created and one changed over the API show up on the open page.
    create(server, "fleet-c")
    expect(page.locator('tr[data-machine="fleet-c"]')).to_be_visible(timeout=10_000)
    server.request("POST", "/machines/fleet-b/events", {"event": "MARK_ACCESS"})
    server.request("POST", "/machines/fleet-b/events", {"event": "OFFBOARD"})
    expect(page.locator('tr[data-machine="fleet-b"]')).to_have_count(0, timeout=10_000)
    assert page.evaluate("window.sameDocument") is True, "the page reloaded"

    # Filters: spec, then status; the counts follow the filters.
    page.select_option("#filter-spec", "demo")
    expect(rows.filter(has_text="tenant-lifecycle")).to_have_count(0)
    expect(page.locator('.counts li[data-state="INIT"] strong')).to_have_text(str(rows.count()))
    page.select_option("#filter-status", "failed")
    expect(page.locator("td.empty")).to_have_text("No machines match.")
    page.select_option("#filter-status", "")
    expect(page.locator('tr[data-machine="fleet-a"]')).to_be_visible()
    screenshot(page, "fleet")
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_launch_from_the_console_runs_the_demo_then_destroy_removes_it(
    server: Server, page: Page
) -> None:
    create(server, "pr-7", owner="ana")
    page.goto(f"{server.url}/console/#/machine/pr-7")
    launch = page.get_by_role("button", name="Send LAUNCH")

    # Nothing happens without the confirmation: the keyboard opens and cancels it.
    launch.focus()
    page.keyboard.press("Enter")
    expect(page.locator("dialog#confirm")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("dialog#confirm")).to_be_hidden()
    assert server.machine("pr-7")["state"] == "INIT"  # type: ignore[index]

    launch.click()
    confirm(page, "Send LAUNCH to pr-7?")
    state = page.locator("[data-current-state]")
    expect(state).to_have_text("RUN", timeout=SLOW)
    current = page.locator("svg.diagram g.state.current")
    expect(current).to_have_count(1)
    expect(current).to_have_attribute("data-state", "RUN")
    for task in ("allocate", "infrastructure"):
        on_diagram = page.locator(f'svg.diagram g[data-state="PROVISION"] g[data-task="{task}"]')
        expect(on_diagram).to_have_attribute("data-status", "succeeded")
        expect(page.locator(f'table.tasks tr[data-task="{task}"]')).to_have_attribute(
            "data-status", "succeeded"
        )
    tasks = page.locator("table.tasks")
    expect(tasks.locator('tr[data-task="allocate"] pre')).to_contain_text(
        '"url": "https://pr-7.preview.example.test"'
    )
    infrastructure = tasks.locator('tr[data-task="infrastructure"]')
    expect(infrastructure.locator("pre")).to_contain_text("preview-pr-7-0")
    # The module's sensitive output is named as withheld, and its value is nowhere.
    expect(infrastructure.locator(".redacted")).to_have_text("sensitive, not shown: admin_token")
    assert hashlib.sha256(b"pr-7-admin").hexdigest() not in page.content()
    history = page.locator("table.history")
    launched = history.locator('tr[data-kind="event"]', has_text="event LAUNCH")
    expect(launched).to_contain_text("api")
    expect(launched.locator("td.actor")).to_have_text("local")  # who sent it
    expect(history).to_contain_text("PROVISION → RUN on NEXT")
    screenshot(page, "machine-run", for_docs=True)

    page.get_by_role("button", name="Send DESTROY").click()
    confirm(page, "Send DESTROY to pr-7?")
    expect(page.locator(".gone")).to_contain_text("pr-7 no longer exists", timeout=SLOW)
    assert gone(server.machine("pr-7"))
    page.get_by_role("link", name="Back to the fleet").click()
    expect(page.locator("h1")).to_have_text("Fleet")
    expect(page.locator('tr[data-machine="pr-7"]')).to_have_count(0)
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_a_failed_task_shows_failed_and_retry_brings_it_back(server: Server, page: Page) -> None:
    # The demo's allocate function fails its first `fail_attempts` attempts; the spec
    # allows two, so the task fails and a retry (attempt 3) succeeds.
    create(server, "pr-fail", fail_attempts=2)
    assert server.request("POST", "/machines/pr-fail/events", {"event": "LAUNCH"}).status == 202
    page.goto(f"{server.url}/console/#/machine/pr-fail")
    row = page.locator('table.tasks tr[data-task="allocate"]')
    expect(row).to_have_attribute("data-status", "failed", timeout=SLOW)
    expect(row.locator(".error-text")).to_have_text(
        "RuntimeError: asked to fail attempt 2 (metadata fail_attempts)"
    )
    expect(
        page.locator('svg.diagram g[data-state="PROVISION"] g[data-task="allocate"]')
    ).to_have_attribute("data-status", "failed")
    expect(page.locator("svg.diagram g.state.current")).to_have_attribute("data-state", "PROVISION")
    screenshot(page, "machine-failed")

    page.get_by_role("button", name="Retry failed tasks").click()
    confirm(page, "Retry the failed tasks of pr-fail?")
    expect(row).to_have_attribute("data-status", "succeeded", timeout=SLOW)
    expect(page.locator("[data-current-state]")).to_have_text("RUN", timeout=SLOW)
    expect(page.get_by_role("button", name="Retry failed tasks")).to_have_count(0)
    assert in_state("RUN")(server.machine("pr-fail"))
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_the_ttl_shows_in_the_fleet_and_extend_sets_it_through_the_api(
    server: Server, page: Page
) -> None:
    # The demo's lifecycle: 8h to live, at most 7d.
    create(server, "pr-ttl")
    page.goto(f"{server.url}/console/")
    row = page.locator('tr[data-machine="pr-ttl"]')
    expect(row.locator('td[data-label="Expires"]')).to_contain_text("in 8h")
    page.goto(f"{server.url}/console/#/machine/pr-ttl")

    # More than max_ttl: the API's refusal is shown and nothing changes.
    before = server.machine("pr-ttl")["expires_at"]  # type: ignore[index]
    page.get_by_role("button", name="Extend TTL").click()
    page.fill("#ttl-input", "30d")
    confirm(page, "Extend the TTL of pr-ttl?")
    expect(page.get_by_role("alert")).to_contain_text("its max_ttl is 7d")
    assert server.machine("pr-ttl")["expires_at"] == before  # type: ignore[index]

    page.get_by_role("button", name="Extend TTL").click()
    expect(page.locator("#ttl-input")).to_have_value("8h")  # the spec's ttl, to start from
    page.fill("#ttl-input", "2d")
    confirm(page, "Extend the TTL of pr-ttl?")
    expect(page.locator("table.history")).to_contain_text("TTL set: expires")
    after = server.machine("pr-ttl")["expires_at"]  # type: ignore[index]
    left = datetime.fromisoformat(after) - datetime.now(UTC)
    assert timedelta(days=2) - timedelta(minutes=1) < left <= timedelta(days=2)
    expect(page.locator("dl.facts")).to_contain_text("in 2d")
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_api_errors_are_shown_with_their_messages(server: Server, page: Page) -> None:
    create(server, "taken")
    expected = server.request("POST", "/machines", {"spec": "demo", "id": "taken"}).body["error"]
    page.goto(f"{server.url}/console/")
    page.get_by_text("Create a machine").click()
    page.select_option("#create-spec", "demo")
    page.fill("#create-id", "taken")
    page.get_by_role("button", name="Create machine").click()
    confirm(page, "Create a machine of spec demo with id taken?")
    expect(page.get_by_role("alert")).to_have_text(f"{expected['message']} ({expected['code']})")

    page.goto(f"{server.url}/console/#/machine/no-such-machine")
    expect(page.get_by_role("alert")).to_contain_text("machine_not_found")


def test_the_spec_page_shows_diagram_events_and_tasks(server: Server, page: Page) -> None:
    page.goto(f"{server.url}/console/#/specs")
    page.get_by_role("link", name="demo").click()
    expect(page.locator("h1")).to_have_text("Spec demo")
    states = page.locator("svg.diagram g.state")
    expect(states).to_have_count(4)
    expect(page.locator('svg.diagram g.edge[data-from="RUN"][data-to="TEARDOWN"]')).to_contain_text(
        "DESTROY"
    )
    expect(page.locator('table.events tr[data-event="LAUNCH"]')).to_contain_text("INIT → PROVISION")
    expect(page.locator('table.spec-tasks tr[data-task="infrastructure"]')).to_contain_text(
        "terraform"
    )
    expect(page.locator(".findings-unavailable")).to_contain_text("statewright validate")
    screenshot(page, "spec")


def test_readable_on_a_phone_and_in_the_dark(server: Server, browser: Browser) -> None:
    create(server, "phone", owner="ana")
    context = browser.new_context(viewport={"width": 375, "height": 800}, color_scheme="dark")
    try:
        page = context.new_page()
        for name, fragment in [("fleet", "#/"), ("machine", "#/machine/phone")]:
            page.goto(f"{server.url}/console/{fragment}")
            expect(page.locator("main h1")).not_to_be_empty()
            expect(page.locator("main table").first).to_be_visible()
            # Nothing wider than the screen: no sideways scrolling of the page.
            assert page.evaluate("document.documentElement.scrollWidth") <= 375
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(15, 20, 25)", background
            screenshot(page, f"{name}-375px-dark")
    finally:
        context.close()
