"""Who the local server answers (docs/security.md, "The local server and the browser").

A web page the user visits can make the browser send requests to 127.0.0.1: a form POST,
a ``fetch(..., {mode: "no-cors"})``, or — after rebinding its own host name to
127.0.0.1 — requests whose answers it can read. Three checks, before any routing:

- **Origin**: a browser names the page that sent a request in ``Origin`` (on every
  POST, no-cors and form posts included) and, in current browsers, its relation in
  ``Sec-Fetch-Site``. A foreign origin or a cross-site/same-site request is refused
  (``403 forbidden_origin``). The body's Content-Type is not a defense (``curl -d``
  sends a form type) and is not checked.
- **Host**: a rebinding page's requests carry its own host name. Without tokens only a
  loopback ``Host`` is answered (``403 forbidden_host``).
- **Tokens** (``--token-file``): every API request needs ``Authorization: Bearer``
  with a listed token (``401 unauthenticated``); a page cannot know one, so the Host
  check is off and the server may listen on other addresses. The token's name is the
  caller (``requestContext.identity.userArn`` of the proxy event, where API Gateway puts
  the IAM principal).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from statewright.access import LOCAL_PRINCIPAL
from statewright.errors import ConfigurationError

TOKEN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
TOKEN_PATTERN = re.compile(r"^[\x21-\x7e]{16,512}$")
LOOPBACK_NAMES = frozenset({"localhost"})


class Refusal(Exception):
    """A request the server does not answer with the API: status, error code, message."""

    def __init__(
        self, status: int, code: str, message: str, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = tuple(headers)


@dataclass(frozen=True)
class Token:
    name: str
    secret: bytes


def load_tokens(path: Path) -> tuple[Token, ...]:  # noqa: C901 — each malformed line of the token file is its own refusal
    """The tokens of a file of ``NAME TOKEN`` lines (blank lines and ``#`` comments
    skipped). ConfigurationError, saying what to change, for a file others may read, a
    malformed line, a short token or a name or token listed twice; the message never
    quotes a token."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read token file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"token file {path} is not UTF-8 text") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"token file {path} may be read or changed by other users (mode "
            f"{stat.S_IMODE(mode):04o}); make it private: chmod 600 {path}"
        )
    tokens: list[Token] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"token file {path}, line {number}"
        if len(fields) != 2:
            raise ConfigurationError(f"{where}: expected `NAME TOKEN`, two fields")
        name, secret = fields
        if not TOKEN_NAME_PATTERN.match(name):
            raise ConfigurationError(
                f"{where}: the name must match {TOKEN_NAME_PATTERN.pattern} (it is the "
                "caller's name in the history)"
            )
        if not TOKEN_PATTERN.match(secret):
            raise ConfigurationError(
                f"{where}: the token must be 16 to 512 printable ASCII characters; make one "
                "with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        for other in tokens:
            if other.name == name:
                raise ConfigurationError(f"{where}: the name {name} is listed twice")
            if hmac.compare_digest(other.secret, secret.encode()):
                raise ConfigurationError(f"{where}: the same token as {other.name}")
        tokens.append(Token(name, secret.encode()))
    if not tokens:
        raise ConfigurationError(f"token file {path} lists no `NAME TOKEN` line")
    return tuple(tokens)


# Asked for every request's Host: a client sends the same one each time.
@functools.lru_cache(maxsize=64)
def is_loopback(host: str) -> bool:
    """Whether a host name or address (no port; IPv6 with or without brackets) is
    this machine's loopback."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name part of a Host header (``[::1]:8080`` -> ``[::1]``)."""
    if header.startswith("["):
        return header.partition("]")[0] + "]"
    name, _, port = header.rpartition(":")
    return name if name and port.isdigit() else header


def check_bind(host: str, tokens: Sequence[Token]) -> None:
    """ConfigurationError when the server would listen beyond loopback without tokens."""
    if not tokens and not is_loopback(host):
        raise ConfigurationError(
            f"--host {host} is not a loopback address: anyone who reaches it could run and "
            "destroy infrastructure. Pass --token-file FILE (lines `NAME TOKEN`) to require a "
            "token, or keep --host 127.0.0.1"
        )


class TrustPolicy:
    """The Origin, Host and token checks of one server."""

    def __init__(self, tokens: Sequence[Token] = ()) -> None:
        self.tokens = tuple(tokens)

    def check_browser(self, headers: Sequence[tuple[str, str]]) -> None:
        """Refusal for a request a web page sent, or one addressed to a foreign host."""
        origins = _values(headers, "origin")
        hosts = _values(headers, "host")
        if len(hosts) != 1:
            raise Refusal(400, "invalid_request", "a request needs exactly one Host header")
        host = hosts[0].strip()
        site = ",".join(_values(headers, "sec-fetch-site")).strip().lower()
        if site in ("cross-site", "same-site"):
            raise Refusal(
                403,
                "forbidden_origin",
                f"the browser says this request comes from another site (Sec-Fetch-Site: "
                f"{site}); statewright serve answers only its own pages and non-browser "
                "clients",
            )
        if len(origins) > 1 or (origins and origins[0].strip().lower() != f"http://{host}".lower()):
            raise Refusal(
                403,
                "forbidden_origin",
                f"requests from the page {origins[0].strip()!r} are not accepted; only "
                f"from http://{host} itself",
            )
        if not self.tokens and not is_loopback(host_name(host)):
            raise Refusal(
                403,
                "forbidden_host",
                f"Host {host!r} is not a loopback name; without --token-file the server "
                "answers only requests addressed to 127.0.0.1, [::1] or localhost",
            )

    def caller(self, headers: Sequence[tuple[str, str]]) -> str:
        """The caller's name: the token's NAME, or ``local`` when the server has no
        tokens. Refusal 401 without a listed token."""
        if not self.tokens:
            return LOCAL_PRINCIPAL
        values = _values(headers, "authorization")
        scheme, _, presented = (values[0] if len(values) == 1 else "").strip().partition(" ")
        if scheme.lower() == "bearer" and presented.strip():
            secret = presented.strip().encode("utf-8", errors="replace")
            found = None
            for token in self.tokens:  # every token compared: the time tells nothing
                if hmac.compare_digest(token.secret, secret):
                    found = token.name
            if found is not None:
                return found
        raise Refusal(
            401,
            "unauthenticated",
            "this server requires a token: send `Authorization: Bearer TOKEN` with a token "
            "from its --token-file",
            (("WWW-Authenticate", 'Bearer realm="statewright"'),),
        )


def _values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name]
