"""``statewright serve``: the local control plane over HTTP."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from statewright.access import AccessPolicy

# The server's threads mostly wait (on sockets, on SQLite). At the interpreter's default
# switch interval (5 ms) a thread whose wait has ended queues that long for the
# interpreter lock behind one that computes; at 0.5 ms, concurrent requests are answered
# about 1.6x as fast (docs/local.md).
SWITCH_INTERVAL_SECONDS = 0.0005


class PrintableFormatter(logging.Formatter):
    """Log lines with every control character escaped: logged values (request lines,
    ids, error messages) come from clients, specs and task output, and must not drive
    the terminal that shows the log. A traceback keeps its line breaks."""

    # The time as text, and the second it was made for: the server logs every request
    # it answers, and the clock's second changes far less often than that.
    _second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        if datefmt is not None or self.datefmt is not None:
            return super().formatTime(record, datefmt)
        second, text = self._second
        if second != int(record.created):
            second = int(record.created)
            text = time.strftime(self.default_time_format, self.converter(second))
            self._second = (second, text)
        return f"{text},{int(record.msecs):03d}"  # as logging.Formatter writes it

    def format(self, record: logging.LogRecord) -> str:
        from statewright.printable import printable

        return "\n".join(printable(line) for line in super().format(record).split("\n"))


def register(app: typer.Typer) -> None:
    app.command(name="serve")(serve)


def configure_logging(log_level: str) -> None:
    """Log lines to stderr at ``--log-level``."""
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise typer.BadParameter("use DEBUG, INFO, WARNING or ERROR", param_hint="--log-level")
    # What a record would carry that this format never shows (the thread, the process,
    # the calling function's file and line): not looked up for every request logged
    # (the logging HOWTO's "Optimization").
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def _access_rules(path: Path) -> AccessPolicy:
    """The rules of ``--access FILE``; exit 2 saying what is wrong with them."""
    from statewright.access import AccessPolicy, InvalidRules

    try:
        return AccessPolicy.from_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        typer.echo(f"statewright serve: cannot read {path}: {exc.strerror}", err=True)
        raise typer.Exit(2) from exc
    except InvalidRules as exc:
        typer.echo(f"statewright serve: {path}: {exc}", err=True)
        raise typer.Exit(2) from exc


def serve(
    *,
    host: Annotated[
        str,
        typer.Option(help="Address to bind. Anything but a loopback address needs --token-file."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")] = 8080,
    specs: Annotated[
        list[Path] | None,
        typer.Option(
            "--specs",
            help="A folder of spec files (repeatable). Default: specs/",
            show_default=False,
        ),
    ] = None,
    data_dir: Annotated[
        Path, typer.Option(help="Where the SQLite database, Terraform states and task logs live.")
    ] = Path(".statewright"),
    functions: Annotated[
        Path | None,
        typer.Option(help="Folder of lambda task functions: function N runs DIR/N.py's handler."),
    ] = None,
    terraform_bin: Annotated[
        str | None,
        typer.Option(
            help="Terraform (or OpenTofu) binary. Default: terraform, else tofu, on PATH."
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="File of `NAME TOKEN` lines, readable by you alone (chmod 600): every API "
            "request then needs `Authorization: Bearer TOKEN`, and NAME is the caller in "
            "the history.",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    access: Annotated[
        Path | None,
        typer.Option(
            help="A JSON file of access rules (the value of cdk.json's access): who may do "
            "what to which machine. Default: everybody may do everything.",
        ),
    ] = None,
) -> None:
    """Serve the local control plane (the HTTP API, on SQLite and local tasks) and the web
    console at /console/. It answers no web page but its own: requests from other sites
    and, without --token-file, requests addressed to a non-loopback host are refused."""
    from statewright.errors import ConfigurationError
    from statewright.local.control_plane import LocalControlPlane
    from statewright.local.trust import Token, check_bind, load_tokens
    from statewright.printable import printable

    configure_logging(log_level)
    try:
        tokens: tuple[Token, ...] = load_tokens(token_file) if token_file is not None else ()
        check_bind(host, tokens)
    except ConfigurationError as exc:
        typer.echo(f"statewright serve: {printable(exc)}", err=True)
        raise typer.Exit(2) from exc
    plane = LocalControlPlane(
        specs_dirs=specs or [Path("specs")],
        data_dir=data_dir,
        functions_dir=functions,
        terraform_bin=terraform_bin,
        access=_access_rules(access) if access is not None else None,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    try:
        url = plane.serve(host=host, port=port, tokens=tokens)
    except ConfigurationError as exc:
        typer.echo(f"statewright serve: {printable(exc)}", err=True)
        raise typer.Exit(2) from exc
    except OSError as exc:
        typer.echo(f"statewright serve: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        plane.stop()
        raise typer.Exit(2) from exc
    report = plane.recovery
    if report is not None and report.machines_repaired:
        typer.echo(
            f"recovered {report.machines_repaired} machine(s): {report.tasks_started} task(s) "
            f"restarted, {report.events_published} event(s) re-published",
            err=True,
        )
    specs_loaded = ", ".join(printable(s.name) for s in plane.service.list_specs()) or "none"
    callers = f"{len(tokens)} token(s)" if tokens else "loopback clients, no tokens"
    typer.echo(f"statewright listening on {url} (specs: {specs_loaded}; {callers})", err=True)
    typer.echo(url)
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        typer.echo("statewright: shutting down", err=True)
        plane.stop()
