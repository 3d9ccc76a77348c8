"""``statewright machines create|get|list|send|history|retry|watch``: the HTTP API from the
command line, against ``statewright serve`` or a deployed API Gateway (SigV4-signed)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from statewright.cli.api_client import DEFAULT_ENDPOINT, ApiClient, ApiError, segment

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
        help="API URL: statewright serve, or a deployed API Gateway stage URL (SigV4-signed).",
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
IdempotencyOpt = Annotated[
    str | None,
    typer.Option("--idempotency-key", help="Sent as Idempotency-Key: a retry replays the answer."),
]

IntervalOpt = Annotated[float, typer.Option(min=0.1, help="Seconds between polls while watching.")]
TimeoutOpt = Annotated[
    float, typer.Option(min=0, help="Stop watching after this many seconds, exit 2 (0: never).")
]

_out = Console()
_err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.add_typer(machines_app)


# ---- helpers --------------------------------------------------------------------------


def _fail(message: str, code: int = 1) -> NoReturn:
    _err.print(Text("error: ", style="bold red") + Text(message))
    raise typer.Exit(code)


def _call(endpoint: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    try:
        return ApiClient(endpoint).request(method, path, body, **kw)
    except ApiError as exc:
        suffix = f" [{exc.code}]" if exc.status else ""
        _fail(exc.message + suffix)


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
    for name, task in machine.get("tasks", {}).items():
        detail = task.get("error") or ""
        if not detail and task.get("output") is not None:
            detail = _output_text(task["output"])
        table.add_row(
            name,
            str(task.get("state", "")),
            str(task.get("executor", "")),
            Text(str(task.get("status")), style=styles.get(str(task.get("status")), "")),
            str(task.get("attempt", "")),
            detail,
        )
    return table


def _summary(machine: dict[str, Any]) -> Group:
    status = str(machine.get("status"))
    style = {"waiting": "green", "failed": "red"}.get(status, "yellow")
    head = Text.assemble(
        (str(machine.get("id")), "bold"),
        f"  spec {machine.get('spec')}  state ",
        (str(machine.get("state")), "bold"),
        "  ",
        (status, style),
        f"  epoch {machine.get('epoch')}",
    )
    parts: list[Any] = [head]
    if machine.get("metadata"):
        parts.append(Text("metadata " + json.dumps(machine["metadata"], separators=(",", ":"))))
    if machine.get("tasks"):
        parts.append(_task_table(machine))
    return Group(*parts)


def _history_line(entry: dict[str, Any]) -> Text:
    kind = entry.get("kind", "")
    at = str(entry.get("at", ""))[11:23]
    if kind == "transition":
        what = f"{entry.get('from_state')} -> {entry.get('to_state')} on {entry.get('event')}"
    elif kind == "event":
        what = f"event {entry.get('event')}" + (
            f" from {entry['source']}" if entry.get("source") else ""
        )
    elif kind.startswith("task_"):
        what = f"{kind} {entry.get('task')} attempt {entry.get('attempt')}"
        if entry.get("status") and kind == "task_finished":
            what += f": {entry['status']}"
        if entry.get("error"):
            what += f" ({entry['error']})"
    elif kind == "created":
        what = f"created in {entry.get('to_state') or entry.get('state')}"
    else:
        what = kind
    return Text.assemble((f"{at} ", "dim"), (f"[epoch {entry.get('epoch')}] ", "dim"), what)


def _pages(
    endpoint: str, path: str, key: str, query: dict[str, Any], all_pages: bool
) -> Iterator[Any]:
    token = query.get("next_token")
    while True:
        page = _call(endpoint, "GET", path, query={**query, "next_token": token})
        yield from page.get(key, [])
        token = page.get("next_token")
        if not all_pages or not token:
            if token and not all_pages:
                _err.print(f"more: --next-token {token}", style="dim")
            return


# ---- commands -------------------------------------------------------------------------


@machines_app.command()
def create(
    spec: Annotated[str, typer.Argument(help="The spec's name (GET /specs lists them).")],
    *,
    machine_id: Annotated[
        str | None, typer.Option("--id", help="The machine id; generated when omitted.")
    ] = None,
    metadata: MetadataOpt = None,
    idempotency_key: IdempotencyOpt = None,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
    as_json: AsJson = False,
) -> None:
    """Create a machine: it starts in INIT."""
    body: dict[str, Any] = {"spec": spec}
    if machine_id is not None:
        body["id"] = machine_id
    meta = parse_metadata(metadata)
    if meta is not None:
        body["metadata"] = meta
    machine = _call(endpoint, "POST", "/machines", body, headers=_headers(idempotency_key))
    _show(machine, as_json)


@machines_app.command()
def get(
    machine_id: Annotated[str, typer.Argument(help="The machine id.")],
    *,
    endpoint: Endpoint = DEFAULT_ENDPOINT,
    as_json: AsJson = False,
) -> None:
    """Show a machine: state, status, tasks and metadata."""
    machine = _call(endpoint, "GET", f"/machines/{segment(machine_id)}")
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
    for m in machines:
        table.add_row(m["id"], m["spec"], m["state"], m["status"], str(m["epoch"]), m["updated_at"])
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
    machine = _call(
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
        ApiClient(endpoint),
        machine_id,
        interval=interval,
        timeout=timeout,
        last=machine,
        since_epoch=machine["epoch"] - 1,
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
    machine = _call(
        endpoint,
        "POST",
        f"/machines/{segment(machine_id)}/retry",
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
    _follow(ApiClient(endpoint), machine_id, interval=interval, timeout=timeout)


def _follow(
    client: ApiClient,
    machine_id: str,
    *,
    interval: float,
    timeout: float,
    last: dict[str, Any] | None = None,
    since_epoch: int = 0,
) -> None:
    """The watch loop. ``last``: the machine as the caller last saw it (so a 404 on the
    first poll means it was deleted since); history before ``since_epoch`` is skipped."""
    from rich.live import Live

    path = f"/machines/{segment(machine_id)}"
    seen = 0
    deadline = time.monotonic() + timeout if timeout else None

    def fetch(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ApiError as exc:
            if exc.code == "machine_not_found":
                return None
            _fail(exc.message + (f" [{exc.code}]" if exc.status else ""))

    with Live(Text("waiting for the first answer...", style="dim"), console=_out) as live:
        while True:
            machine = fetch(lambda: client.request("GET", path))
            if machine is None:
                live.update(Text(""))
                if last is None:
                    _fail(
                        f"machine {machine_id} does not exist (never created, or already "
                        "deleted) [machine_not_found]"
                    )
                _out.print(
                    Text.assemble(
                        (f"{machine_id} ", "bold"),
                        ("deleted", "green"),
                        f" (its last state was {last['state']})",
                    )
                )
                return
            entries = fetch(lambda: _all_entries(client, path)) or []
            for entry in entries:
                if entry.get("seq", 0) > seen:
                    seen = entry["seq"]
                    if entry.get("epoch", 0) >= since_epoch:
                        live.console.print(_history_line(entry))
            live.update(_summary(machine))
            last = machine
            if machine["status"] == "waiting":
                return
            if machine["status"] == "failed":
                errors = [
                    f"{name}: {t.get('error')}"
                    for name, t in machine["tasks"].items()
                    if t.get("status") == "failed" and t.get("epoch") == machine["epoch"]
                ]
                _fail(
                    f"{machine_id} failed in {machine['state']}: "
                    + "; ".join(errors)
                    + f"  (fix it, then: statewright machines retry {machine_id})"
                )
            if deadline is not None and time.monotonic() >= deadline:
                _fail(
                    f"{machine_id} is still {machine['status']} in {machine['state']} after "
                    f"{timeout}s",
                    code=2,
                )
            time.sleep(interval)


def _all_entries(client: ApiClient, path: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        query = {"limit": 1000, "next_token": token}
        page = client.request("GET", f"{path}/history", query=query)
        entries.extend(page.get("entries", []))
        token = page.get("next_token")
        if not token:
            return entries
