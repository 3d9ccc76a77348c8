"""Every reference to a document names one that is in the repository: a `name.md` (or a
Markdown link) resolves to a tracked file, a `name.md#anchor` to one of its headings, a
`name.md §N` to a numbered heading. A bare `§N` (a section of a document nobody can
open) is refused too. The design lives in docs/; nothing may point outside it."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
# This file: its examples of broken references are there on purpose.
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()

# `docs/runtime.md`, `runtime.md#the-loop`, `README.md`: a name ending in .md, and an anchor.
MENTION = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md)(#[\w-]+)?(?:\s+(§\s?[\d.]*\d))?")
# [text](target) in Markdown; external links and pure anchors are checked apart.
LINK = re.compile(r"\]\(([^)\s]+)\)")
SECTION = re.compile(r"§\s?\d")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


ReadDoc = Callable[[str], str]


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    reference: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reference}: {self.why}"


@cache
def tracked_files() -> tuple[str, ...]:
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return tuple(name for name in listing.split("\0") if name and (ROOT / name).is_file())


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = heading.strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in {"L", "N"})
    return kept.replace(" ", "-")


def headings(markdown: str) -> list[str]:
    """The headings of a Markdown text, outside fenced code blocks."""
    found: list[str] = []
    fenced = False
    for line in markdown.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            found.append(match.group(2))
    return found


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    result: set[str] = set()
    for heading in headings(markdown):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def numbered(markdown: str, number: str) -> bool:
    """Whether a heading is numbered ``number`` (``3.2`` matches ``### 3.2 Events``)."""
    return any(re.match(rf"{re.escape(number)}\.?\s", h) for h in headings(markdown))


def resolve(target: str, referrer: str, files: frozenset[str]) -> str | None:
    """The tracked file ``target`` names, read from ``referrer``: relative to the
    referrer's folder, to the repository root, or to docs/."""
    bases = [PurePosixPath(referrer).parent, PurePosixPath("."), PurePosixPath("docs")]
    for base in bases:
        parts: list[str] = []
        for part in (base / target).parts:
            if part == "..":
                if not parts:
                    break
                parts.pop()
            elif part != ".":
                parts.append(part)
        else:
            candidate = "/".join(parts)
            if candidate in files:
                return candidate
    return None


def check_text(path: str, text: str, files: frozenset[str], read: ReadDoc) -> Iterator[Problem]:
    for number, line in enumerate(text.splitlines(), start=1):
        claimed: list[tuple[int, int]] = []
        for match in MENTION.finditer(line):
            claimed.append(match.span())
            name, anchor, section = match.group(1), match.group(2), match.group(3)
            yield from check_target(path, number, name, anchor, section, files, read)
        if path.endswith(".md"):
            for match in LINK.finditer(line):
                target = match.group(1)
                if re.match(r"[a-z]+:", target):
                    continue
                name, _, anchor = target.partition("#")
                name = name or path
                if name.endswith(".md") and any(a <= match.start(1) < b for a, b in claimed):
                    continue  # already checked as a mention
                yield from check_target(
                    path, number, name, f"#{anchor}" if anchor else None, None, files, read
                )
        for match in SECTION.finditer(line):
            if not any(a <= match.start() < b for a, b in claimed):
                yield Problem(path, number, match.group(0), "a section of no named document")


def check_target(
    path: str,
    line: int,
    name: str,
    anchor: str | None,
    section: str | None,
    files: frozenset[str],
    read: ReadDoc,
) -> Iterator[Problem]:
    reference = name + (anchor or "") + (f" {section}" if section else "")
    found = resolve(name, path, files)
    if found is None:
        yield Problem(path, line, reference, "no such file in the repository")
        return
    if anchor and found.endswith(".md") and anchor[1:] not in anchors(read(found)):
        yield Problem(path, line, reference, f"{found} has no heading with this anchor")
    if section and not numbered(read(found), section.lstrip("§ ")):
        yield Problem(path, line, reference, f"{found} has no section numbered so")


@cache
def read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def test_every_reference_in_the_repository_resolves() -> None:
    files = frozenset(tracked_files())
    problems: list[Problem] = []
    for name in sorted(files - {SELF}):
        try:
            text = read(name)
        except UnicodeDecodeError:
            continue  # binary: nothing to cite from
        problems.extend(check_text(name, text, files, read))
    assert not problems, "references that resolve to nothing:\n" + "\n".join(map(str, problems))


# ---- the checker catches what it must ---------------------------------------------------

FAKE_DOCS = {
    "docs/runtime.md": "# Runtime\n\n## The loop\n\n```\n# not a heading\n```\n## 3.2 Events\n",
    "README.md": "# Readme\n",
}


def problems_in(path: str, text: str) -> list[str]:
    files = frozenset(FAKE_DOCS)
    return [p.why for p in check_text(path, text, files, FAKE_DOCS.__getitem__)]


# A document kept outside the repository: nothing may cite it.
OUTSIDE = "../shared/CONTRACT.md"


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("layers/x.py", f'"""The rules of {OUTSIDE}."""'),
        ("layers/x.py", f"# {OUTSIDE} §4: routes"),
        ("layers/x.py", "see docs/runtime.md#the-loops"),
        ("layers/x.py", "see docs/runtime.md#not-a-heading"),
        ("layers/x.py", "see docs/runtime.md §4.1"),
        ("layers/x.py", "the order §3.2 gives"),
        ("docs/api.md", "[the loop](runtime.md#loop)"),
        ("docs/api.md", "[spec](spec.md)"),
        ("docs/api.md", "[schema](machine.schema.json)"),
    ],
)
def test_a_reference_to_nothing_is_found(path: str, text: str) -> None:
    assert problems_in(path, text)


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("layers/x.py", "see docs/runtime.md#the-loop and README.md"),
        ("layers/x.py", "see docs/runtime.md §3.2"),
        ("docs/api.md", "[the loop](runtime.md#the-loop), [readme](../README.md)"),
        ("docs/api.md", "[AWS](https://docs.aws.amazon.com/x.md)"),
        ("docs/runtime.md", "[up](#the-loop)"),
    ],
)
def test_a_reference_that_resolves_passes(path: str, text: str) -> None:
    assert problems_in(path, text) == []


def test_anchors_follow_github() -> None:
    markdown = "## Retry (`POST /machines/{id}/retry`)\n## Satisfied, NEXT and FAILED\n## A\n## A\n"
    assert anchors(markdown) == {
        "retry-post-machinesidretry",
        "satisfied-next-and-failed",
        "a",
        "a-1",
    }
