"""What every ``terraform`` executor agrees on, defined once: where a machine's state for
a source lives, the variables a run gets, and what becomes of ``terraform output -json``
(docs/runtime.md, "Terraform tasks"). The local executor and the CodeBuild executor
(with its buildspec) both use these, so a module behaves the same in either mode."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statewright.model import STACK_ID_VARIABLE, is_reserved_variable

if TYPE_CHECKING:
    from statewright.executors.builtin import LocalSource, S3Source, TerraformConfig
    from statewright.model import TaskInvocation


def source_digest(source: S3Source | LocalSource) -> str:
    """A short, stable digest of the source as the spec writes it: an ``apply`` and a
    later ``destroy`` of one source share a state, two sources never do, and moving the
    specs folder keeps every machine's state.

    The canonical form is the source's JSON (sorted keys, no spaces). Every field of a
    source is a string, so this equals what the two former copies computed (one dumped
    in Python mode, one in JSON mode): the state keys of running machines keep their
    meaning (tests/unit/executors/test_terraform_run.py pins known digests)."""
    canonical = json.dumps(source.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def state_name(machine_id: str, source: S3Source | LocalSource) -> str:
    """``<machine>/<source-digest>``: the state's place, under the data dir locally and
    under ``<env>/`` in the state bucket on AWS."""
    return f"{machine_id}/{source_digest(source)}"


def reserved_variables(invocation: TaskInvocation) -> dict[str, Any]:
    """The variables the control plane sets itself (no metadata key or task variable
    may take their names: ``stack_id`` and every ``statewright_*``)."""
    return {STACK_ID_VARIABLE: invocation.machine_id}


def terraform_variables(invocation: TaskInvocation, config: TerraformConfig) -> dict[str, Any]:
    """``statewright.auto.tfvars.json``: the machine's metadata, then the task's
    ``variables`` (later wins), then the reserved variables — last, so nothing can
    override them. Metadata and task variables are refused with a reserved name when
    they come in; a reserved name stored before that rule existed is left out here."""
    variables: dict[str, Any] = {
        k: v for k, v in invocation.metadata.items() if not is_reserved_variable(k)
    }
    variables.update((k, v) for k, v in config.variables.items() if not is_reserved_variable(k))
    variables.update(reserved_variables(invocation))
    return variables


class OutputsNotUnderstood(ValueError):
    """``terraform output -json`` printed something that is not its documented shape."""


@dataclass(frozen=True)
class TerraformOutputs:
    """A run's outputs as a task output: ``{name: value}`` without the sensitive ones,
    whose names are in ``redacted`` (sorted)."""

    values: dict[str, Any]
    redacted: list[str]


def terraform_outputs(raw: Any) -> TerraformOutputs:
    """``{name: {"value", "type", "sensitive"}}`` -> ``{name: value}``, with every output
    marked sensitive left out and named in ``redacted``. An entry that does not say
    ``"sensitive": false`` is treated as sensitive: when unsure, hide."""
    if not isinstance(raw, Mapping):
        raise OutputsNotUnderstood(
            f"terraform output -json printed a JSON {type(raw).__name__}, not an object"
        )
    values: dict[str, Any] = {}
    redacted: list[str] = []
    for name, entry in raw.items():
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise OutputsNotUnderstood(
                f"terraform output {name!r} has no value (expected an object with "
                "value, type and sensitive)"
            )
        if entry.get("sensitive") is False:
            values[str(name)] = entry["value"]
        else:
            redacted.append(str(name))
    return TerraformOutputs(values=values, redacted=sorted(redacted))
