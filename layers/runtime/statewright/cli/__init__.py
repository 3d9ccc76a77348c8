"""The ``statewright`` command. Each group of commands lives in its own module and
registers itself here; imports stay inside the commands so ``--help`` is fast."""

from __future__ import annotations

import typer

from statewright.cli import console, machines, serve, spec_commands

app = typer.Typer(
    name="statewright",
    help="Lifecycle state machines from Machine 1.0 specs: lint them, run them locally, "
    "drive them on AWS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

spec_commands.register(app)
serve.register(app)
machines.register(app)
console.register(app)


def main() -> None:
    app()
