"""``statewright console``: the web console for a deployed API, served on this machine."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command(name="console")(console)


def console(
    *,
    endpoint: Annotated[
        str,
        typer.Option(
            help="The deployed API's stage URL: https://<id>.execute-api.<region>.amazonaws.com/<stage>.",
        ),
    ],
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")] = 8090,
    region: Annotated[
        str | None,
        typer.Option(
            help="AWS region to sign for. Default: the endpoint's, else your AWS config's."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "WARNING",
) -> None:
    """Serve the web console on 127.0.0.1 for a deployed API: its calls are forwarded there,
    SigV4-signed with your AWS credentials (as the AWS CLI finds them). Nothing new is
    exposed in AWS; the local server takes requests only from its own pages."""
    from urllib.parse import urlsplit

    from statewright.cli.serve import configure_logging
    from statewright.cli.sigv4 import Signer, SigningError
    from statewright.local.console_proxy import Endpoint, EndpointError, console_server
    from statewright.printable import printable

    configure_logging(log_level)
    try:
        target = Endpoint.parse(endpoint)
        signer = Signer(urlsplit(endpoint).hostname or "", region)
    except EndpointError as exc:
        typer.echo(f"statewright console: --endpoint {printable(exc)}", err=True)
        raise typer.Exit(2) from exc
    except SigningError as exc:
        typer.echo(f"statewright console: {printable(exc.message)}", err=True)
        raise typer.Exit(2) from exc
    try:
        proxy = console_server(target, signer, port)
    except OSError as exc:
        typer.echo(
            f"statewright console: cannot listen on 127.0.0.1:{port}: {exc.strerror}", err=True
        )
        raise typer.Exit(2) from exc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    thread = threading.Thread(target=proxy.serve_forever, name="statewright-console", daemon=True)
    thread.start()
    typer.echo(
        f"statewright console for {printable(target.url(''))} (signing for "
        f"{printable(signer.region)}); open:",
        err=True,
    )
    typer.echo(f"{proxy.url}/console/")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        proxy.shutdown()
        proxy.server_close()
