"""Specs built to hurt — alias bombs (billion laughs, by list, mapping and merge key),
huge files, deep nesting, thousands of documents or keys — and sources that climb out
with ``..``: `statewright validate` answers each with a finding that names the rule, in
bounded time, and `statewright serve` refuses to start on them without a trace."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from statewright.spec.loader import MAX_BYTES

from tests.integration.local.server import STATEWRIGHT
from tests.reliability.figures import record, scaled

HEAD = "version: 1.0\nevents: [GO]\n"


def laughs_by_list(levels: int = 10) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return HEAD + "x-bomb:\n" + "".join(f"  {line}\n" for line in lines)


def laughs_by_mapping(levels: int = 10) -> str:
    lines = ["a0: &a0 {x: lol, y: lol}"]
    for i in range(1, levels):
        pairs = ", ".join(f"k{j}: *a{i - 1}" for j in range(9))
        lines.append(f"a{i}: &a{i} {{{pairs}}}")
    return HEAD + "x-bomb:\n" + "".join(f"  {line}\n" for line in lines)


def laughs_by_merge(levels: int = 24) -> str:
    lines = ["m0: &m0 {k0: lol}"]
    for i in range(1, levels):
        lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}], k{i}: *m{i - 1}, j{i}: *m{i - 1}}}")
    return HEAD + "x-bomb:\n" + "".join(f"  {line}\n" for line in lines)


def one_string_aliased_everywhere() -> str:
    # ~600 KB: one 200 KB string shared by 100 000 aliases (cheap only if never copied)
    return HEAD + "x-s: &s " + "x" * 200_000 + "\nx-l: [" + ", ".join(["*s"] * 100_000) + "]\n"


def deep_flow() -> str:
    return HEAD + "x-deep: " + "[" * 100_000 + "]" * 100_000 + "\n"


def deep_block() -> str:
    depth = 300
    return HEAD + "".join(" " * i + f"x-k{i}:\n" for i in range(depth)) + " " * depth + "v\n"


def too_large() -> str:
    return HEAD + "x-big: " + "x" * (MAX_BYTES + 1) + "\n"


def many_documents() -> str:
    return "---\na: 1\n" * 50_000


def many_keys() -> str:
    count = scaled(5_000, 60_000)
    return HEAD + "".join(f"k{i}: {i}\n" for i in range(count))


def recursive_alias() -> str:
    return HEAD + "x-a: &a [1, *a]\n"


def not_utf8() -> bytes:
    return HEAD.encode() + b"x-b: \xff\xfe\n"


def s3_key_climbing_out() -> str:
    return _terraform_spec("{type: s3, bucket: b, key: modules/../../etc/main.tf}")


def _terraform_spec(source: str) -> str:
    return f"""\
version: 1.0
events: [GO]
states:
  INIT: {{on: {{GO: [{{action: advance, state: DONE}}]}}}}
  DONE: {{terminal: true, tasks: [tf]}}
tasks:
  tf: {{executor: terraform, config: {{action: apply, source: {source}}}}}
"""


# name -> (content, the rule of the error it must get)
HOSTILE: dict[str, tuple[Callable[[], str | bytes], str]] = {
    "laughs_by_list": (laughs_by_list, "yaml-syntax"),
    "laughs_by_mapping": (laughs_by_mapping, "yaml-syntax"),
    "laughs_by_merge": (laughs_by_merge, "yaml-syntax"),
    "deep_flow": (deep_flow, "yaml-syntax"),
    "deep_block": (deep_block, "yaml-syntax"),
    "too_large": (too_large, "yaml-syntax"),
    "many_documents": (many_documents, "yaml-syntax"),
    "recursive_alias": (recursive_alias, "yaml-syntax"),
    "not_utf8": (not_utf8, "yaml-syntax"),
    "many_keys": (many_keys, "unknown-key"),
    "one_string_aliased_everywhere": (one_string_aliased_everywhere, "type"),
    "s3_key_climbing_out": (s3_key_climbing_out, "terraform-config"),
}


@pytest.fixture(scope="module")
def hostile_specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile-specs")
    paths = {}
    for name, (make, _) in HOSTILE.items():
        content = make()
        path = folder / f"{name}.yml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        paths[name] = path
    return paths


def test_validate_names_the_problem_of_every_hostile_spec_quickly(
    hostile_specs: dict[str, Path],
) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [STATEWRIGHT, "validate", "--format", "json", *map(str, hostile_specs.values())],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    findings = json.loads(result.stdout)
    for name, path in hostile_specs.items():
        errors = [f for f in findings if f["path"] == str(path) and f["severity"] == "error"]
        assert errors, f"{name}: no error"
        assert HOSTILE[name][1] in {f["rule"] for f in errors}, (name, errors[:3])
    # Every guard stops early (the files total several MiB); the bound is loose for a
    # loaded 2-core machine.
    assert elapsed < scaled(60, 120), elapsed
    record("hostile", inputs=len(hostile_specs), hostile_specs=len(hostile_specs))


def test_the_s3_key_finding_points_at_the_key(hostile_specs: dict[str, Path]) -> None:
    result = subprocess.run(
        [STATEWRIGHT, "validate", "--format", "json", str(hostile_specs["s3_key_climbing_out"])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    [finding] = json.loads(result.stdout)
    assert (finding["rule"], finding["line"]) == ("terraform-config", 7)
    assert "config.source.key" in finding["message"]


@pytest.mark.parametrize("name", ["laughs_by_merge", "deep_flow", "too_large"])
def test_serve_refuses_a_hostile_spec_and_exits(
    hostile_specs: dict[str, Path], tmp_path: Path, name: str
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "hostile.yml").write_bytes(hostile_specs[name].read_bytes())
    result = subprocess.run(
        [STATEWRIGHT, "serve", "--port", "0", "--specs", str(specs), "--data-dir",
         str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "hostile.yml" in result.stderr and "[yaml-syntax]" in result.stderr
    assert "Traceback" not in result.stderr
    record("hostile", inputs=1)
