"""The linter's checks of the task graph: ``needs`` (rule ``needs``), references in the
config fields an executor names (rule ``reference``), task-less states that hand
``NEXT`` around a cycle (rule ``next-cycle``), and the plan a Terraform apply applies
(rule ``terraform-config``). docs/spec.md shows a spec tripping each.

They run on what the linter's walk learned (statewright.spec.lint), after the walk, and
skip whatever part of the spec had the wrong type."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from statewright.executors.registry import registry
from statewright.spec.loader import MappingNode, Node, Scalar, SequenceNode
from statewright.spec.references import ReferenceSyntaxError, parse
from statewright.spec.rules import MAX_IDLE_NEXT_TRANSITIONS
from statewright.spec.wording import explain

if TYPE_CHECKING:
    from statewright.spec.lint import _Linter, _Task


def _state_task_sets(linter: _Linter) -> dict[str, list[str]]:
    """Each state's task names (states whose ``tasks`` had the wrong type left out)."""
    return {
        name: [item.name for item in state.tasks]
        for name, state in (linter.states or {}).items()
        if state.tasks is not None
    }


def _needs_of(linter: _Linter) -> dict[str, list[str]]:
    return {
        name: [item.name for item in task.needs or []]
        for name, task in (linter.tasks or {}).items()
    }


def check_needs(linter: _Linter) -> None:  # noqa: C901, PLR0912 — every needs problem reported in one walk
    tasks = linter.tasks
    if tasks is None:
        return
    for name, task in tasks.items():
        seen: set[str] = set()
        for item in task.needs or []:
            needed = item.name
            if needed == name:
                linter.report(item, "needs", f"task `{name}` needs itself; it could never start")
            elif needed in seen:
                linter.report(item, "needs", f"task `{name}` lists `{needed}` twice in `needs`")
            elif needed not in tasks:
                defined = [t for t in tasks if t != name]
                linter.report(
                    item,
                    "needs",
                    explain(
                        f"task `{name}` needs `{needed}`, which is not defined under `tasks`",
                        word=needed,
                        candidates=defined,
                        accepted=defined,
                    ),
                )
            seen.add(needed)
    if linter.states is None:
        return
    by_state = _state_task_sets(linter)
    for name, task in tasks.items():
        for item in task.needs or []:
            needed = item.name
            if needed == name or needed not in tasks:
                continue
            if not any(name in listed and needed in listed for listed in by_state.values()):
                linter.warn(
                    item,
                    "needs",
                    f"task `{name}` needs `{needed}`, but no state runs both, so the need "
                    "never orders anything (needs outside the task's state are ignored)",
                )
    needs = _needs_of(linter)
    for state, listed in by_state.items():
        members = set(listed) & set(tasks)
        for cycle in _cycles({t: [n for n in needs[t] if n in members] for t in members}):
            first = min(cycle, key=lambda t: (tasks[t].key.line, tasks[t].key.column))
            at = cycle.index(first)
            ordered = cycle[at:] + cycle[:at]
            item = next(i for i in tasks[first].needs or [] if i.name == ordered[1 % len(ordered)])
            chain = " -> ".join([*ordered, first])
            linter.report(
                item,
                "needs",
                f"tasks {chain} need each other in state `{state}`, so none of them could "
                "ever start; remove one of these needs",
            )


def _cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """The elementary cycles found by a depth-first search (each once, self-loops left
    out): enough to name every cycle a spec has, one finding each."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in edges.get(node, []):
            if nxt == node:
                continue
            if nxt in path:
                cycle = path[path.index(nxt) :]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    found.append(cycle)
            elif nxt not in done:
                visit(nxt, [*path, nxt])
        done.add(node)

    for start in sorted(edges):
        if start not in done:
            visit(start, [start])
    return found


def _closure(start: str, edges: dict[str, list[str]], within: set[str]) -> set[str]:
    """Every task ``start`` needs, directly or through others, inside ``within``."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        for nxt in edges.get(stack.pop(), []):
            if nxt in within and nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _located_strings(node: Node) -> Iterator[Scalar]:
    if isinstance(node, Scalar):
        if isinstance(node.value, str):
            yield node
    elif isinstance(node, MappingNode):
        for _, value in node.pairs:
            yield from _located_strings(value)
    elif isinstance(node, SequenceNode):
        for item in node.items:
            yield from _located_strings(item)


def check_references(linter: _Linter) -> None:  # noqa: C901, PLR0912 — every reference problem reported in one walk
    tasks = linter.tasks
    if tasks is None:
        return
    by_state = _state_task_sets(linter)
    needs = _needs_of(linter)
    plugins = registry()
    for name, task in tasks.items():
        plugin = plugins.get(task.executor) if task.executor else None
        if plugin is None or not isinstance(task.config_node, MappingNode):
            continue
        for field in plugin.reference_fields:
            holder = task.config_node.get(field)
            if holder is None:
                continue
            for scalar in _located_strings(holder):
                assert isinstance(scalar.value, str)
                try:
                    found = parse(scalar.value)
                except ReferenceSyntaxError as exc:
                    linter.report(scalar, "reference", str(exc))
                    continue
                for ref in found:
                    if ref.kind != "tasks":
                        continue
                    if ref.name not in tasks:
                        linter.report(
                            scalar,
                            "reference",
                            explain(
                                f"`{ref.text}` refers to task `{ref.name}`, which is not "
                                "defined under `tasks`",
                                word=ref.name,
                                candidates=list(tasks),
                                accepted=list(tasks),
                            ),
                        )
                        continue
                    for state, listed in by_state.items():
                        if name not in listed or ref.name not in listed:
                            continue
                        if ref.name not in _closure(name, needs, set(listed)):
                            linter.report(
                                scalar,
                                "reference",
                                f"`{ref.text}`: task `{ref.name}` runs in state `{state}` "
                                f"beside `{name}`, so `{name}` must need it (directly or "
                                f"through others) to start after its output exists: add "
                                f"`needs: [{ref.name}]` to task `{name}`",
                            )
                            break


def check_next_cycle(linter: _Linter) -> None:
    states = linter.states
    if states is None:
        return
    edges: dict[str, str] = {}
    for name, state in states.items():
        if state.tasks != [] or state.terminal is not False or state.handlers is None:
            continue
        handler = state.handlers.get("NEXT")
        for action in (handler.actions or []) if handler else []:
            if action.action == "advance" and action.target is not None:
                edges[name] = action.target.name
    reported: set[frozenset[str]] = set()
    for start in edges:
        path = [start]
        while (nxt := edges.get(path[-1])) is not None and nxt not in path:
            path.append(nxt)
        if nxt is None:
            continue
        cycle = path[path.index(nxt) :]
        if frozenset(cycle) in reported:
            continue
        reported.add(frozenset(cycle))
        first = min(cycle, key=lambda s: (states[s].key.line, states[s].key.column))
        at = cycle.index(first)
        chain = " -> ".join([*cycle[at:], *cycle[:at], first])
        linter.report(
            states[first].key,
            "next-cycle",
            f"states {chain} have no tasks and hand `NEXT` around a cycle: a machine that "
            f"enters one advances forever (the control plane stops it after "
            f"{MAX_IDLE_NEXT_TRANSITIONS} transitions); give one of them a task, or let it "
            "wait for an event instead of handling `NEXT`",
        )


def _plan_tasks(tasks: dict[str, _Task]) -> list[str]:
    return [
        name
        for name, task in tasks.items()
        if task.executor == "terraform"
        and isinstance(task.config, dict)
        and task.config.get("action") == "plan"
    ]


def check_saved_plans(linter: _Linter) -> None:
    """An apply's ``plan`` names a plan task of the same source: the saved plan is kept
    beside that source's state, and only a plan of that state can be applied to it."""
    tasks = linter.tasks
    if tasks is None:
        return
    plans = _plan_tasks(tasks)
    for name, task in tasks.items():
        if task.executor != "terraform" or not isinstance(task.config_node, MappingNode):
            continue
        node = task.config_node.get("plan")
        if not isinstance(node, Scalar) or not isinstance(node.value, str):
            continue  # absent, or the wrong type (the config check reported it)
        wanted = node.value
        if wanted not in plans:
            what = "is not defined under `tasks`" if wanted not in tasks else "is not a plan"
            linter.report(
                node,
                "terraform-config",
                explain(
                    f"task `{name}` applies the saved plan of `{wanted}`, which {what}: "
                    "`plan` names a terraform task with `action: plan`",
                    word=wanted,
                    candidates=plans,
                    accepted=plans,
                ),
            )
            continue
        ours = task.config.get("source") if isinstance(task.config, dict) else None
        theirs = tasks[wanted].config.get("source")
        if ours != theirs:
            linter.report(
                node,
                "terraform-config",
                f"task `{name}` applies the saved plan of `{wanted}`, which plans another "
                f"source: a plan applies only to the state it was made from; give `{name}` "
                f"the same `source` as `{wanted}`",
            )
