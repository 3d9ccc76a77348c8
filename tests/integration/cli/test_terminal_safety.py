"""The CLI against a hostile HTTP server on loopback: whatever it answers — machines,
metadata, history, errors, broken HTTP — reaches the terminal as inert text (control
characters escaped, never read as Rich markup) and never as a traceback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from statewright.cli import app
from typer.testing import CliRunner

CLEAR = "\u001b[2J"
LINK = "[link=https://x]y[/link]"
OSC_LINK = "\u001b]8;;https://evil.example\u0007click\u001b]8;;\u0007"
BELL_CR = "\u0007\rover"
RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\u202e")

MACHINE = {
    "id": "evil" + CLEAR,
    "spec": LINK,
    "spec_digest": "d",
    "state": "RUN" + BELL_CR,
    "previous_state": None,
    "status": "waiting",
    "epoch": 2,
    "version": 3,
    "metadata": {"clear": CLEAR, "link": LINK, "rtl": "\u202eabc", "csi": "\x9b2J"},
    "tasks": {
        "t" + OSC_LINK: {
            "executor": "lambda" + CLEAR,
            "status": "succeeded",
            "attempt": 1,
            "state": "[bold]RUN[/bold]",
            "epoch": 2,
            "error": None,
            "output": {"out": LINK + CLEAR},
        }
    },
    "created_at": "2026-01-01T00:00:00.000Z",
    "updated_at": "2026-01-01T00:00:00.000Z" + CLEAR,
    "expires_at": "2026-01-02T00:00:00.000Z" + BELL_CR,
    "expired": False,
}
HISTORY = {
    "entries": [
        {"seq": 1, "kind": "event", "event": "GO" + CLEAR, "source": LINK, "epoch": 1, "at": ""},
        {
            "seq": 2,
            "kind": "task_finished",
            "task": OSC_LINK,
            "attempt": 1,
            "status": "failed",
            "error": LINK + BELL_CR,
            "epoch": 2,
            "at": "2026-01-01T00:00:00.000Z",
        },
        {"seq": 3, "kind": "[red]odd[/red]" + CLEAR, "epoch": 2},
        {"seq": 4, "kind": "ttl_changed", "expires_at": LINK + CLEAR, "epoch": 2},
        "not an object",
    ],
    "next_token": None,
}


def _answers() -> dict[str, tuple[int, str, bytes]]:
    def as_json(status: int, body: Any) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(body).encode()

    return {
        "/machines/evil": as_json(200, MACHINE),
        "/machines/evil/history": as_json(200, HISTORY),
        "/machines/evil/events": as_json(202, MACHINE),
        "/machines/evil/ttl": as_json(200, MACHINE),
        "/machines": as_json(200, {"machines": [MACHINE, 7], "next_token": "tok" + CLEAR}),
        "/machines/err": as_json(
            409, {"error": {"code": "x" + CLEAR, "message": CLEAR + LINK + BELL_CR}}
        ),
        "/machines/gateway": as_json(403, {"message": LINK + CLEAR}),
        "/machines/text": (500, "text/plain", (CLEAR + "boom" + LINK).encode()),
        "/machines/list": as_json(200, ["not", "a", "machine"]),
        "/machines/garbage-status": (0, "", b"HELLO" + CLEAR.encode() + b"\r\n\r\n"),
    }


class _Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answers = _answers()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        status, content_type, body = self.answers.get(
            self.path.split("?")[0], (404, "application/json", b'{"error": {}}')
        )
        if status == 0:  # not HTTP at all
            self.wfile.write(body)
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide terminal, so no table cell or error line is cut short."""
    from statewright.cli import machines

    for console in (machines._out, machines._err):
        monkeypatch.setattr(console, "_width", 400)


def run(*args: str) -> tuple[int, str]:
    # output holds stdout and stderr
    result = CliRunner().invoke(app, ["machines", *args], catch_exceptions=False)
    return result.exit_code, result.output


def assert_inert(text: str) -> None:
    for control in RAW_CONTROLS:
        assert control not in text, (control, text)
    assert "Traceback" not in text


@pytest.mark.parametrize(
    "args",
    [
        ["get", "evil"],
        ["send", "evil", "GO"],
        ["list"],
        ["history", "evil"],
        ["extend", "evil", "1h"],
        ["watch", "evil", "--interval", "0.1"],
    ],
)
def test_hostile_machines_and_history_print_as_inert_text(hostile: str, args: list[str]) -> None:
    code, out = run(*args, "--endpoint", hostile)
    assert code == 0, out
    assert_inert(out)
    # Markup is shown as written, escapes as visible text.
    assert LINK in out
    assert "\\x1b" in out


def test_metadata_is_shown_as_written(hostile: str) -> None:
    code, out = run("get", "evil", "--endpoint", hostile)
    assert code == 0, out
    assert '"link":"[link=https://x]y[/link]"' in out
    # json.dumps writes control characters as \\u escapes, printable() the rest
    assert '"clear":"\\u001b[2J"' in out
    assert "evil\\x1b[2J" in out
    assert "RUN\\x07\\x0dover" in out


def test_the_history_shows_markup_and_escapes_literally(hostile: str) -> None:
    code, out = run("history", "evil", "--endpoint", hostile)
    assert code == 0, out
    assert f"event GO\\x1b[2J from {LINK}" in out
    assert "[red]odd[/red]\\x1b[2J" in out
    assert f"ttl changed: expires at {LINK}\\x1b[2J" in out


def test_an_expiry_that_is_not_a_time_is_shown_as_sent(hostile: str) -> None:
    for args in (["get", "evil"], ["list"], ["extend", "evil", "2h"]):
        code, out = run(*args, "--endpoint", hostile)
        assert code == 0, out
        assert "2026-01-02 00:00:00.000Z\\x07\\x0dover" in out, out


@pytest.mark.parametrize(
    ("machine", "says"),
    [
        ("err", "\\x1b[2J[link=https://x]y[/link]\\x07\\x0dover [x\\x1b[2J]"),
        ("gateway", "[link=https://x]y[/link]\\x1b[2J"),
        ("text", "HTTP 500: \\x1b[2Jboom[link=https://x]y[/link]"),
        ("list", "something other than a JSON object"),
        ("garbage-status", "sent no valid HTTP answer"),
    ],
)
def test_hostile_errors_are_inert_and_clean(hostile: str, machine: str, says: str) -> None:
    code, out = run("get", machine, "--endpoint", hostile)
    assert code == 1, out
    assert_inert(out)
    assert says in out


def test_a_plain_http_api_gateway_endpoint_is_refused_before_signing() -> None:
    code, out = run(
        "get", "m", "--endpoint", "http://abc123.execute-api.eu-west-1.amazonaws.com/prod"
    )
    assert code == 1, out
    assert "only done over https" in out
    assert "https://abc123.execute-api.eu-west-1.amazonaws.com/prod" in out


# ---- watch follows the history from where it left off ---------------------------------


class PagedHistory:
    """An API client whose history pages as the API's do (opaque tokens, none after the
    last page); records every request."""

    def __init__(self, count: int) -> None:
        self.entries = [{"seq": n, "kind": "event", "epoch": 1} for n in range(1, count + 1)]
        self.requests: list[tuple[str | None, int]] = []

    def request(self, method: str, path: str, query: dict[str, Any]) -> dict[str, Any]:
        start = int(query["next_token"][1:]) if query["next_token"] else 0
        limit = query["limit"]
        self.requests.append((query["next_token"], limit))
        page = self.entries[start : start + limit]
        more = start + limit < len(self.entries)
        return {"entries": page, "next_token": f"p{start + limit}" if more else None}


def test_watch_reads_only_the_last_page_again_on_each_poll() -> None:
    from statewright.cli.machines import HISTORY_PAGE, _HistoryCursor

    api = PagedHistory(2 * HISTORY_PAGE + 50)
    cursor = _HistoryCursor(api, "/machines/m")  # type: ignore[arg-type]
    first = cursor.new_entries()
    assert [e["seq"] for e in first] == list(range(1, 2 * HISTORY_PAGE + 51))
    assert len(api.requests) == 3
    api.requests.clear()
    assert cursor.new_entries() == []
    # one request, from the page holding the newest entry seen
    assert api.requests == [(f"p{2 * HISTORY_PAGE}", HISTORY_PAGE)]
    more = range(2 * HISTORY_PAGE + 51, 3 * HISTORY_PAGE + 90)
    api.entries += [{"seq": n, "kind": "event", "epoch": 1} for n in more]
    assert [e["seq"] for e in cursor.new_entries()] == list(more)
