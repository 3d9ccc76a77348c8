"""An attempt's config as its executor gets it: the references in the fields the
executor names (lambda ``args``, terraform ``variables``) replaced with the machine's
values when the attempt starts (docs/spec.md, "Task graphs and references").

The service calls :func:`resolve_invocation` just before it asks the executor to start
the attempt, in every mode, so the task-function event and the Terraform variables are
built from resolved values; the executors know nothing of references."""

from __future__ import annotations

from statewright.executors.registry import registry
from statewright.model import TaskInvocation
from statewright.spec.references import Context, UnresolvedReference, resolve

__all__ = ["UnresolvedReference", "resolve_invocation"]


def resolve_invocation(invocation: TaskInvocation) -> TaskInvocation:
    """``invocation`` with its task's config resolved (the same object when the config
    holds no reference). UnresolvedReference names the field and the reference."""
    plugin = registry().get(invocation.task_spec.executor)
    config = invocation.task_spec.config
    if plugin is None or not any(field in config for field in plugin.reference_fields):
        return invocation
    context = Context(
        outputs=invocation.outputs,
        metadata=invocation.metadata,
        machine_id=invocation.machine_id,
        spec=invocation.spec,
        state=invocation.state,
    )
    resolved = dict(config)
    for field in plugin.reference_fields:
        if field in config:
            resolved[field] = resolve(config[field], context, f"config.{field}")
    if resolved == config:
        return invocation
    task_spec = invocation.task_spec.model_copy(update={"config": resolved})
    return invocation.model_copy(update={"task_spec": task_spec})
