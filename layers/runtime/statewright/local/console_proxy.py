"""``statewright console --endpoint URL``: the web console for a deployed API, served on
127.0.0.1 by the local server itself (so every browser rule of docs/security.md holds:
loopback Host, own Origin only, connection limits), whose API requests are forwarded to
the endpoint SigV4-signed with the user's AWS credentials instead of being run here.

Only the API's routes are forwarded, with GET or POST, to the one endpoint the proxy was
started with; an answer that redirects is passed back, never followed."""

from __future__ import annotations

import base64
import http.client
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from statewright.cli.sigv4 import Signer, SigningError
from statewright.local.server import ApiServer, error_result
from statewright.local.trust import is_loopback

# The API's routes (docs/openapi.json); nothing else is forwarded.
API_PATH = re.compile(
    r"^/(openapi\.json|specs(/[^/]+)?|machines(/[^/]+(/(events|history|retry|ttl))?)?)$"
)
FORWARDED_HEADERS = ("Content-Type", "Accept", "Idempotency-Key")
ANSWER_HEADERS = ("Content-Type", "Retry-After", "Allow", "Location")


class EndpointError(ValueError):
    """The endpoint URL cannot be proxied to (the message says why)."""


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    base_path: str  # the stage's path, e.g. /v1

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EndpointError(f"{url!r} is not an http(s) URL of a deployed API")
        if parts.query or parts.fragment or parts.username:
            raise EndpointError(f"{url!r}: give the stage URL only, without a query or a user")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            # A signed request in clear text hands its signature to the network.
            raise EndpointError(
                f"{url!r} is plain http: a deployed API is https://<id>.execute-api."
                "<region>.amazonaws.com/<stage> (http only for a stand-in on loopback)"
            )
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    def url(self, target: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.base_path}{target}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _target(event: Mapping[str, Any]) -> str:
    """The path (each segment encoded again) and query of a proxy event."""
    # proxy_event decoded each segment and kept an encoded "/" as %2F.
    path = "/".join(quote(s.replace("%2F", "/"), safe="") for s in event["path"].split("/"))
    query = event.get("multiValueQueryStringParameters") or {}
    return path + (f"?{urlencode(query, doseq=True)}" if query else "")


def _body(event: Mapping[str, Any]) -> bytes:
    raw = event.get("body")
    if not raw:
        return b""
    return base64.b64decode(raw) if event.get("isBase64Encoded") else str(raw).encode()


class SignedForwarder:
    """The local server's resolve function in console mode: an API request, as the proxy
    event the server made of it, sent on to the endpoint with a SigV4 signature."""

    def __init__(self, endpoint: Endpoint, signer: Signer, *, timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self.signer = signer
        self.timeout = timeout

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        method, path = event["httpMethod"], event["path"]
        if method == "GET" and path == "/":
            return error_result(
                302, "moved", "the console is at /console/", [("Location", "/console/")]
            )
        if not API_PATH.match(path):
            return error_result(
                404, "not_found", f"no route {path}; the console forwards the API's routes only"
            )
        if method not in ("GET", "POST"):
            return error_result(
                405, "method_not_allowed", f"the console forwards GET and POST, not {method}"
            )
        target = _target(event)
        data = _body(event) if method == "POST" else None
        incoming = event.get("headers") or {}
        headers = {n: v for n in FORWARDED_HEADERS if (v := _header(incoming, n)) is not None}
        try:
            signed = self.signer.sign(method, self.endpoint.url(target), data, headers)
        except SigningError as exc:
            return error_result(502, exc.code, exc.message)
        connection_class = (
            http.client.HTTPSConnection
            if self.endpoint.scheme == "https"
            else http.client.HTTPConnection
        )
        connection = connection_class(self.endpoint.host, self.endpoint.port, timeout=self.timeout)
        try:
            connection.request(method, self.endpoint.base_path + target, body=data, headers=signed)
            response = connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return error_result(
                502, "unreachable", f"the API at {self.endpoint.url('')} did not answer: {exc}"
            )
        finally:
            connection.close()
        kept = {n: v for n in ANSWER_HEADERS if (v := response.headers.get(n)) is not None}
        return {
            "statusCode": response.status,
            "headers": kept,
            "body": base64.b64encode(answer).decode(),
            "isBase64Encoded": True,
        }


def console_server(endpoint: Endpoint, signer: Signer, port: int) -> ApiServer:
    """The console's local server on 127.0.0.1:``port``, forwarding to ``endpoint``."""
    return ApiServer(("127.0.0.1", port), SignedForwarder(endpoint, signer))
