"""`statewright validate|graph|schema|simulate`: the spec toolkit on the command line.

Exit codes (docs/spec.md#other-commands): 0 clean or warnings only, 1 errors (in a
spec, or an event a simulation refuses), 2 usage or I/O errors (an unreadable file, no
spec found)."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from statewright.spec.lint import LintResult

EXIT_ERRORS = 1
EXIT_USAGE = 2


class FindingFormat(enum.StrEnum):
    text = "text"
    json = "json"


class GraphFormat(enum.StrEnum):
    mermaid = "mermaid"
    dot = "dot"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


def _spec_files(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Files to lint (a folder stands for its .yml/.yaml files) and the I/O problems."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.suffix.lower() in (".yml", ".yaml") and p.is_file()
            )
            if not found:
                problems.append(f"{path}: no .yml or .yaml spec in this folder")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            problems.append(f"{path}: no such file")
    return files, problems


def _lint_one(path: Path, strict: bool = False) -> LintResult:
    """Lint a spec file; an unreadable one exits 2 with the reason."""
    from statewright.spec.lint import lint_file

    if path.is_dir():
        raise _fail(f"{path} is a folder; give a spec file")
    try:
        return lint_file(path, strict=strict)
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror or exc}") from exc


def _valid_spec(path: Path) -> LintResult:
    """A spec without errors, or exit 1 after printing them."""
    result = _lint_one(path)
    if result.spec is None:
        for finding in result.errors:
            typer.echo(finding.format(), err=True)
        typer.echo(f"{path}: the spec has errors; run `statewright validate {path}`", err=True)
        raise typer.Exit(EXIT_ERRORS)
    return result


def validate(
    specs: Annotated[
        list[Path],
        typer.Argument(
            help="Spec files (or folders of .yml/.yaml specs) to lint.", show_default=False
        ),
    ],
    output_format: Annotated[
        FindingFormat,
        typer.Option(
            "--format", help="text: path:line:col: severity: message [rule-id]; json: a list."
        ),
    ] = FindingFormat.text,
    strict: Annotated[
        bool, typer.Option("--strict", help="Also report Statewright extensions as warnings.")
    ] = False,
) -> None:
    """Lint Machine 1.0 specs.

    Exit 0 when clean or warnings only, 1 on errors, 2 when a file cannot be read."""
    from statewright.spec.lint import lint_file

    files, problems = _spec_files(specs)
    findings = []
    for path in files:
        try:
            findings.extend(lint_file(path, strict=strict).findings)
        except OSError as exc:
            problems.append(f"{path}: cannot read: {exc.strerror or exc}")
    if output_format is FindingFormat.json:
        typer.echo(json.dumps([f.as_dict() for f in findings], indent=2))
    else:
        for finding in findings:
            typer.echo(finding.format())
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    if output_format is FindingFormat.text:
        typer.echo(
            f"{len(files)} spec(s) checked: {errors} error(s), {warnings} warning(s)", err=True
        )
    if problems:
        raise typer.Exit(EXIT_USAGE)
    if errors:
        raise typer.Exit(EXIT_ERRORS)


def graph(
    spec: Annotated[Path, typer.Argument(help="The spec file.", show_default=False)],
    output_format: Annotated[
        GraphFormat, typer.Option("--format", help="Mermaid stateDiagram-v2 or Graphviz DOT.")
    ] = GraphFormat.mermaid,
) -> None:
    """Print the state diagram of a spec, tasks shown on their states, with its expiry and
    schedules."""
    from statewright.spec.graph import render

    result = _valid_spec(spec)
    assert result.spec is not None
    typer.echo(render(result.spec, output_format.value), nl=False)


def schema() -> None:
    """Print the JSON Schema of Machine 1.0 specs (for yaml-language-server and editors)."""
    from statewright.spec.schema import spec_schema

    typer.echo(json.dumps(spec_schema(), indent=2))


def simulate(
    spec: Annotated[Path, typer.Argument(help="The spec file.", show_default=False)],
    events: Annotated[
        list[str] | None,
        typer.Argument(help="External events to send, in order.", show_default=False),
    ] = None,
    fail: Annotated[
        list[str] | None,
        typer.Option(
            "--fail", help="A task that fails (after its retries); repeatable.", show_default=False
        ),
    ] = None,
    advance: Annotated[
        str | None,
        typer.Option(
            "--advance",
            "--at",
            help="Then let this much time pass since creation (e.g. 80h, 7d) and show what "
            "the spec's lifecycle does: its warnings, its expiry and the expire event.",
            show_default=False,
        ),
    ] = None,
    output_format: Annotated[
        FindingFormat, typer.Option("--format", help="text for people, json for programs.")
    ] = FindingFormat.text,
) -> None:
    """Dry-run a spec: the states and tasks each event leads to.

    Tasks are assumed to succeed (except those given with --fail); the events all apply
    at creation, then --advance lets time pass. Exit 1 when an event would be refused."""
    from statewright.durations import DurationError, parse_duration
    from statewright.spec.simulate import describe
    from statewright.spec.simulate import simulate as run

    try:
        seconds = parse_duration(advance) if advance is not None else 0
    except DurationError as exc:
        raise _fail(f"--advance: {exc}") from exc
    result = _valid_spec(spec)
    assert result.spec is not None
    unknown = sorted(set(fail or []) - set(result.spec.tasks))
    if unknown:
        raise _fail(
            f"--fail names no task of {spec}: {', '.join(unknown)}; "
            f"tasks: {', '.join(result.spec.tasks) or 'none'}"
        )
    sim = run(result.spec, events or [], fail or [], advance=seconds)
    if output_format is FindingFormat.json:
        typer.echo(json.dumps(sim.as_dict(), indent=2))
    else:
        for line in describe(result.spec, sim):
            typer.echo(line)
    if sim.refused:
        raise typer.Exit(EXIT_ERRORS)


def register(app: typer.Typer) -> None:
    """Add the spec commands to ``app``."""
    app.command()(validate)
    app.command()(graph)
    app.command()(schema)
    app.command()(simulate)
