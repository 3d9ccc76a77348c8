"""The machine every benchmark runs: ``specs/preview-env.yml``'s states, events and
transitions. Tasks are left out where a benchmark measures the machine alone (the engine
against its peers, which know no tasks; events on machines at rest), and a ``TOUCH``
event that is a no-op in every live state is added where a benchmark needs an event
that changes nothing but history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
PREVIEW_ENV = REPO / "specs" / "preview-env.yml"
NOOP_EVENT = "TOUCH"


def preview_env(*, tasks: bool = False, noop: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(PREVIEW_ENV.read_text())
    for state in doc["states"].values():
        if True in state:  # YAML 1.1 reads the key `on` as true
            state["on"] = state.pop(True)
    if not tasks:
        doc.pop("tasks", None)
        for state in doc["states"].values():
            state.pop("tasks", None)
    if noop:
        doc["events"] = [*doc["events"], NOOP_EVENT]
        for state in doc["states"].values():
            if not state.get("terminal"):
                state.setdefault("on", {})[NOOP_EVENT] = [{"action": "no-op"}]
    return doc


def write(folder: Path, name: str, doc: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def load(name: str, doc: dict[str, Any], folder: Path) -> Any:
    """The spec as the control plane runs it (linted, normalized)."""
    from statewright.spec.lint import lint_file

    result = lint_file(write(folder, name, doc))
    if result.errors or result.spec is None:
        raise RuntimeError(f"the benchmark's spec {name} does not lint: {result.errors}")
    return result.spec
