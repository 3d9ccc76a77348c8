"""``statewright machines create|get|list|send|history|retry|extend|watch``: the HTTP API
from the command line, against ``statewright serve`` or a deployed API Gateway
(SigV4-signed)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from statewright.cli.api_client import DEFAULT_ENDPOINT, ApiClient, ApiError, segment
from statewright.durations import format_duration
from statewright.printable import printable

machines_app = typer.Typer(
    name="machines",
    help="Create, drive and watch machines through the HTTP API.",
    no_args_is_help=True,
)

Endpoint = Annotated[
    str,
    typer.Option(
        "--endpoint",
        envvar="STATEWRIGHT_ENDPOINT",
        help="API URL: statewright serve, or a deployed API Gateway stage URL (https; "
        "requests to it are SigV4-signed).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]
MetadataOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--metadata",
        "-m",
        help="KEY=VALUE, repeatable. VALUE is read as JSON when it is a number, true, false, "
        'null or a "quoted string", else as text.',
        show_default=False,
    ),
]
TtlOpt = Annotated[
    str | None,
    typer.Option(
        "--ttl",
        help="How long the machine lives, e.g. 24h, 30m, 7d (its spec needs a lifecycle; "
        "at most its max_ttl). Default: the spec's ttl.",
        show_default=False,
    ),
]
IdempotencyOpt = Annotated[
    str | None,
    typer.Option("--idempotency-key", help="Sent as Idempotency-Key: a retry replays the answer."),
]

IntervalOpt = Annotated[float, typer.Option(min=0.1, help="Seconds between polls while watching.")]
TimeoutOpt = Annotated[
    float, typer.Option(min=0, help="Stop watching after this many seconds, exit 2 (0: never).")
]

# Every value printed comes from a server, which may be hostile: no string is ever read
# as Rich markup (or emoji codes), and each passes through printable() (control
# characters escaped) on its way into a Text.
_out = Console(markup=False, emoji=False, highlight=False)
_err = Console(stderr=True, markup=False, emoji=False, highlight=False)
HISTORY_PAGE = 100


def register(app: typer.Typer) -> None:
    app.add_typer(machines_app)


# ---- helpers --------------------------------------------------------------------------


def _text(value: Any, style: str = "") -> Text:
    """A value from the server as inert text: control characters escaped, no markup."""
    return Text(printable("" if value is None else value), style=style)


def _fail(message: str, code: int = 1) -> NoReturn:
    _err.print(Text("error: ", style="bold red") + _text(message))
    raise typer.Exit(code)


def _fail_api(exc: ApiError) -> NoReturn:
    _fail(exc.message + (f" [{exc.code}]" if exc.status else ""))


def _client(endpoint: str) -> ApiClient:
    try:
        return ApiClient(endpoint)
    except ApiError as exc:
        _fail_api(exc)


def _call(endpoint: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    try:
        return _client(endpoint).request(method, path, body, **kw)
    except ApiError as exc:
        _fail_api(exc)


def _call_object(endpoint: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    """The answer, which must be a JSON object (a machine, a page)."""
    answer = _call(endpoint, method, path, body, **kw)
    if not isinstance(answer, dict):
        _fail(f"{endpoint} answered {method} {path} with something other than a JSON object")
    return answer


def parse_metadata(items: list[str] | None) -> dict[str, Any] | None:
    if not items:
        return None
    metadata: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--metadata")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if isinstance(value, dict | list):
            value = raw  # metadata is flat: a JSON-looking object stays text
        metadata[key] = value
    return metadata


def _headers(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key} if idempotency_key else {}


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _show(machine: dict[str, Any], as_json: bool) -> None:
    """A machine as JSON (json.dumps escapes every control character), or a summary."""
    if as_json:
        _print_json(machine)
    else:
        _out.print(_summary(machine))


def _output_text(output: Any) -> str:
    """A task output on one line; Terraform's ``output -json`` form as name=value."""
    if (
        isinstance(output, dict)
        and output
        and all(isinstance(v, dict) and "value" in v for v in output.values())
    ):
        return " ".join(
            f"{name}={json.dumps(v['value'], separators=(',', ':'))}" for name, v in output.items()
        )
    return json.dumps(output, separators=(",", ":"))


def _task_table(machine: dict[str, Any]) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, expand=True)
    for column in ("task", "state", "executor", "status", "attempt"):
        table.add_column(column, no_wrap=True, ratio=None)
    # The detail (output or error) takes what is left of the line; `get --json` has it all.
    table.add_column("detail", no_wrap=True, overflow="ellipsis", ratio=1)
    styles = {"succeeded": "green", "failed": "red", "running": "yellow", "pending": "cyan"}
    for name, task in _tasks(machine).items():
        detail = task.get("error") or ""
        if not detail and task.get("output") is not None:
            detail = _output_text(task["output"])
        status = str(task.get("status"))
        table.add_row(
            _text(name),
            _text(task.get("state")),
            _text(task.get("executor")),
            _text(status, styles.get(status, "")),
            _text(task.get("attempt")),
            _text(detail),
        )
    return table


def _tasks(machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The machine's task records (those that are objects: the server may be wrong)."""
    tasks = machine.get("tasks")
    if not isinstance(tasks, dict):
        return {}
    return {str(k): v for k, v in tasks.items() if isinstance(v, dict)}


def _summary(machine: dict[str, Any]) -> Group:
    status = str(machine.get("status"))
    style = {"waiting": "green", "failed": "red"}.get(status, "yellow")
    head = Text.assemble(
        _text(machine.get("id"), "bold"),
        _text(f"  spec {machine.get('spec')}  state "),
        _text(machine.get("state"), "bold"),
        "  ",
        _text(status, style),
        _text(f"  epoch {machine.get('epoch')}"),
    )
    parts: list[Any] = [head]
    if machine.get("expires_at"):
        parts.append(_text("expires " + _expiry_text(machine)))
    if machine.get("metadata"):
        parts.append(_text("metadata " + json.dumps(machine["metadata"], separators=(",", ":"))))
    if _tasks(machine):
        parts.append(_task_table(machine))
    return Group(*parts)


def _expiry_text(machine: dict[str, Any], *, short: bool = False) -> str:
    """When the machine expires, for a person: ``2026-05-01 08:00:00Z (in 23h59m)``, or
    with ``short`` only ``in 23h59m``; ``never`` without an expiry, ``expired`` once it
    has come."""
    expires_at = machine.get("expires_at")
    if not isinstance(expires_at, str) or not expires_at:
        return "never"
    shown = expires_at.replace("T", " ")
    try:
        at = datetime.fromisoformat(expires_at)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        return shown  # not a UTC time: shown as the server sent it (made printable)
    left = int((at - datetime.now(UTC)).total_seconds())
    if machine.get("expired") is True:
        relative = "expired"
    elif left <= 0:
        relative = "due"
    else:
        # to the minute past an hour: the seconds only change while one reads them
        relative = f"in {format_duration(left if left < 3600 else round(left / 60) * 60)}"
    return relative if short else f"{shown} ({relative})"


def _history_line(entry: dict[str, Any]) -> Text:
    kind = str(entry.get("kind", ""))
    at = str(entry.get("at", ""))[11:23]
    if kind == "transition":
        what = f"{entry.get('from_state')} -> {entry.get('to_state')} on {entry.get('event')}"
    elif kind == "event":
        what = f"event {entry.get('event')}" + (
            f" from {entry['source']}" if entry.get("source") else ""
        )
    elif kind.startswith("task_") or kind == "run_finished":
        what = f"{kind} {entry.get('task')} attempt {entry.get('attempt')}"
        if entry.get("status") and kind in ("task_finished", "run_finished"):
            what += f": {entry['status']}"
        if entry.get("error"):
            what += f" ({entry['error']})"
    elif kind == "created":
        what = f"created in {entry.get('to_state') or entry.get('state')}"
    elif kind in ("ttl_changed", "expiring", "expired"):
        labels = {
            "ttl_changed": "ttl changed: expires",
            "expiring": "expiring",
            "expired": "expired",
        }
        what = f"{labels[kind]} at {entry.get('expires_at')}"
    else:
        what = kind
    # who caused it: an API caller, bus:<source> or statewright (docs/api.md, "Access
    # and actors")
    actor = f" by {entry['actor']}" if entry.get("actor") else ""
    return Text.assemble(
        _text(f"{at} ", "dim"),
        _text(f"[epoch {entry.get('epoch')}] ", "dim"),
        _text(what),
        _text(actor, "cyan"),
    )


def _pages(
    endpoint: str, path: str, key: str, query: dict[str, Any], all_pages: bool
) -> Iterator[Any]:
    token = query.get("next_token")
    while True:
        page = _call_object(endpoint, "GET", path, query={**query, "next_token": token})
        yield from _objects(page.get(key))
        token = page.get("next_token")
        if not all_pages or not token:
            if token and not all_pages:
                _err.print(_text(f"more: --next-token {token}", "dim"))
            return


def _objects(items: Any) -> list[dict[str, Any]]:
    """The JSON objects of a page's list (the server may send anything else)."""
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


# ---- commands -------------------------------------------------------------------------


@machines_app.command()
def create(
    spec: Annotated[str, typer.Argument(help="The spec's name (GET /specs lists them).")],
    *,
    machine_id: Annotated[
        str | None, typer.Option("--id", help="The machine id; generated when omitted.")
    ] = None,
    metadata: MetadataOpt = None,
    ttl: TtlOpt = None,
    idempotency_key: IdempotencyOpt = None,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
    as_json: AsJson = False,
) -> None:
    """Create a machine: it starts in INIT."""
    body: dict[str, Any] = {"spec": spec}
    if machine_id is not None:
        body["id"] = machine_id
    if ttl is not None:
        body["ttl"] = ttl
    meta = parse_metadata(metadata)
    if meta is not None:
        body["metadata"] = meta
    machine = _call_object(endpoint, "POST", "/machines", body, headers=_headers(idempotency_key))
    _show(machine, as_json)


@machines_app.command()
def get(
    machine_id: Annotated[str, typer.Argument(help="The machine id.")],
    *,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
    as_json: AsJson = False,
) -> None:
    """Show a machine: state, status, tasks and metadata."""
    machine = _call_object(endpoint, "GET", f"/machines/{segment(machine_id)}")
    _show(machine, as_json)


@machines_app.command(name="list")
def list_(
    *,
    spec: Annotated[str | None, typer.Option(help="Only machines of this spec.")] = None,
    state: Annotated[str | None, typer.Option(help="Only machines in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 100,
    next_token: Annotated[str | None, typer.Option(help="Continue a previous listing.")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow every page.")] = False,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
    as_json: AsJson = False,
) -> None:
    """List machines, optionally of one spec and/or in one state."""
    query = {"spec": spec, "state": state, "limit": limit, "next_token": next_token}
    machines = list(_pages(endpoint, "/machines", "machines", query, all_pages))
    if as_json:
        _print_json(machines)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "spec", "state", "status", "epoch", "updated"):
        table.add_column(column)
    table.add_column("expires", no_wrap=True)
    for m in machines:
        fields = ("id", "spec", "state", "status", "epoch", "updated_at")
        expires = _expiry_text(m, short=True)
        table.add_row(*(_text(m.get(field)) for field in fields), _text(expires))
    _out.print(table if machines else Text("no machines", style="dim"))


@machines_app.command()
def send(
    machine_id: Annotated[str, typer.Argument(help="The machine id.")],
    event: Annotated[str, typer.Argument(help="The event, e.g. LAUNCH.")],
    *,
    metadata: MetadataOpt = None,
    spec: Annotated[
        str | None,
        typer.Option(help="Create the machine from this spec first if it does not exist."),
    ] = None,
    ttl: TtlOpt = None,
    idempotency_key: IdempotencyOpt = None,
    follow: Annotated[
        bool, typer.Option("--watch", help="Then watch the machine, as `machines watch` does.")
    ] = False,
    interval: IntervalOpt = 0.5,
    timeout: TimeoutOpt = 0,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
    as_json: AsJson = False,
) -> None:
    """Send an event to a machine; prints the machine after the transition."""
    body: dict[str, Any] = {"event": event}
    meta = parse_metadata(metadata)
    if meta is not None:
        body["metadata"] = meta
    if spec is not None:
        body["spec"] = spec
    if ttl is not None:
        body["ttl"] = ttl
    machine = _call_object(
        endpoint,
        "POST",
        f"/machines/{segment(machine_id)}/events",
        body,
        headers=_headers(idempotency_key),
    )
    if not follow:
        _show(machine, as_json)
        return
    # Watching from this answer on: a machine deleted before the first poll (a quick
    # teardown) is reported as deleted, not as unknown.
    _follow(
        _client(endpoint),
        machine_id,
        interval=interval,
        timeout=timeout,
        last=machine,
        since_epoch=_int(machine.get("epoch")) - 1,
    )


@machines_app.command()
def history(
    machine_id: Annotated[str, typer.Argument(help="The machine id.")],
    *,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 100,
    next_token: Annotated[str | None, typer.Option(help="Continue a previous listing.")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow every page.")] = False,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
    as_json: AsJson = False,
) -> None:
    """A machine's history, oldest first."""
    query = {"limit": limit, "next_token": next_token}
    path = f"/machines/{segment(machine_id)}/history"
    entries = list(_pages(endpoint, path, "entries", query, all_pages))
    if as_json:
        _print_json(entries)
        return
    for entry in entries:
        _out.print(_history_line(entry))


@machines_app.command()
def retry(
    machine_id: Annotated[str, typer.Argument(help="The machine id.")],
    *,
    idempotency_key: IdempotencyOpt = None,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
    as_json: AsJson = False,
) -> None:
    """Re-run the failed tasks of the machine's current state."""
    machine = _call_object(
        endpoint,
        "POST",
        f"/machines/{segment(machine_id)}/retry",
        headers=_headers(idempotency_key),
    )
    _show(machine, as_json)


@machines_app.command()
def extend(
    machine_id: Annotated[str, typer.Argument(help="The machine id.")],
    duration: Annotated[
        str,
        typer.Argument(
            help="The machine's new ttl, counted from now: 90s, 30m, 24h, 7d, 1d12h (at most "
            "its spec's max_ttl)."
        ),
    ],
    *,
    idempotency_key: IdempotencyOpt = None,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
    as_json: AsJson = False,
) -> None:
    """Set a machine's ttl: it then expires DURATION from now (an expired machine whose
    expire event no state accepted yet is called back too)."""
    machine = _call_object(
        endpoint,
        "POST",
        f"/machines/{segment(machine_id)}/ttl",
        {"ttl": duration},
        headers=_headers(idempotency_key),
    )
    _show(machine, as_json)


@machines_app.command()
def watch(
    machine_id: Annotated[str, typer.Argument(help="The machine id.")],
    *,
    interval: IntervalOpt = 0.5,
    timeout: TimeoutOpt = 0,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
) -> None:
    """Follow a machine live until it waits (exit 0), fails (exit 1) or is deleted (exit 0)."""
    _follow(_client(endpoint), machine_id, interval=interval, timeout=timeout)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class _HistoryCursor:
    """Reads a machine's history from where it left off. The API's page tokens are
    opaque and there is none after the last page, so the cursor keeps the token of the
    page holding the newest entry seen and re-reads only that page (at most
    HISTORY_PAGE entries) on each poll, never the whole history."""

    client: ApiClient
    path: str
    token: str | None = None
    seen: int = 0  # the newest seq printed

    def new_entries(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            query = {"limit": HISTORY_PAGE, "next_token": self.token}
            page = self.client.request("GET", f"{self.path}/history", query=query)
            if not isinstance(page, dict):
                raise ApiError(0, "invalid_answer", "the history page is not a JSON object")
            for entry in _objects(page.get("entries")):
                if _int(entry.get("seq")) > self.seen:
                    self.seen = _int(entry.get("seq"))
                    found.append(entry)
            token = page.get("next_token")
            if not isinstance(token, str) or not token:
                return found
            self.token = token


def _fetch_or_none(fetch: Callable[[], Any]) -> Any:
    """``fetch()``'s answer; None when the machine is not found; any other API error
    ends the watch."""
    try:
        return fetch()
    except ApiError as exc:
        if exc.code == "machine_not_found":
            return None
        _fail_api(exc)


def _report_deleted(machine_id: str, last: dict[str, Any] | None) -> None:
    if last is None:
        _fail(
            f"machine {machine_id} does not exist (never created, or already deleted) "
            "[machine_not_found]"
        )
    _out.print(
        Text.assemble(
            _text(f"{machine_id} ", "bold"),
            ("deleted", "green"),
            _text(f" (its last state was {last.get('state')})"),
        )
    )


def _settled(
    machine: dict[str, Any], machine_id: str, deadline: float | None, timeout: float
) -> bool:
    """True when the watch is over and went well (the machine waits); exits 1 when the
    machine failed and 2 past the deadline; False to keep watching."""
    status, state = machine.get("status"), machine.get("state")
    if status == "waiting":
        return True
    if status == "failed":
        epoch = machine.get("epoch")
        errors = [
            f"{name}: {task.get('error')}"
            for name, task in _tasks(machine).items()
            if task.get("status") == "failed" and task.get("epoch") == epoch
        ]
        _fail(
            f"{machine_id} failed in {state}: "
            + "; ".join(errors)
            + f"  (fix it, then: statewright machines retry {machine_id})"
        )
    if deadline is not None and time.monotonic() >= deadline:
        _fail(f"{machine_id} is still {status} in {state} after {timeout}s", code=2)
    return False


def _follow(
    client: ApiClient,
    machine_id: str,
    *,
    interval: float,
    timeout: float,
    last: dict[str, Any] | None = None,
    since_epoch: int = 0,
) -> None:
    """The watch loop: each poll prints the history entries not seen yet (from
    ``since_epoch`` on) and the machine's summary, until it settles. ``last``: the
    machine as the caller last saw it (so a 404 on the first poll means it was deleted
    since)."""
    from rich.live import Live

    path = f"/machines/{segment(machine_id)}"
    history = _HistoryCursor(client, path)
    deadline = time.monotonic() + timeout if timeout else None
    with Live(Text("waiting for the first answer...", style="dim"), console=_out) as live:
        while True:
            machine = _fetch_or_none(lambda: client.request("GET", path))
            if machine is None:
                live.update(Text(""))
                _report_deleted(machine_id, last)
                return
            if not isinstance(machine, dict):
                _fail(f"{client.endpoint} answered GET {path} with something other than a machine")
            for entry in _fetch_or_none(history.new_entries) or []:
                if _int(entry.get("epoch")) >= since_epoch:
                    live.console.print(_history_line(entry))
            live.update(_summary(machine))
            last = machine
            if _settled(machine, machine_id, deadline, timeout):
                return
            time.sleep(interval)
