"""The web console's static files, served by ``statewright serve`` under ``/console/``
from the ``statewright/console`` package folder (no token needed: the console asks for
one and sends it with its API calls). Only regular files inside that folder are served;
anything else is a 404 in the API's error shape."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

PREFIX = "/console"
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "console"
INDEX = "index.html"
MAX_FILE_BYTES = 16 * 1024 * 1024

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
# Pages of the console may not be framed by another page (a framed console would send
# requests as its own origin while the framing page steers the clicks), and a file is
# only ever what its extension says. The console loads scripts, styles and data from its
# own origin only, and no inline script or style runs (values are shown as text).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-cache"),
)
_BAD_SEGMENT = re.compile(r"^\.|[\x00-\x1f\x7f\\]")


@dataclass(frozen=True)
class StaticFile:
    content_type: str
    data: bytes


def is_console_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


class ConsoleFiles:
    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = root

    def find(self, path: str) -> StaticFile | None:  # noqa: PLR0911 — one early return per refusal, each its own rule
        """The file a ``/console/...`` path (without its query) names, or None."""
        relative = path[len(PREFIX) :].lstrip("/")
        try:
            segments = [unquote(s, errors="strict") for s in relative.split("/")]
        except UnicodeDecodeError:
            return None
        if segments[-1] == "":
            segments[-1] = INDEX
        if any(not s or _BAD_SEGMENT.search(s) or "/" in s for s in segments):
            return None
        try:
            root = self.root.resolve(strict=True)
            candidate = root.joinpath(*segments).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        # resolve() followed any symlink: what it names must still be inside the folder.
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
        try:
            if candidate.stat().st_size > MAX_FILE_BYTES:
                return None
            data = candidate.read_bytes()
        except OSError:
            return None
        return StaticFile(
            CONTENT_TYPES.get(candidate.suffix.lower(), "application/octet-stream"), data
        )
