"""A small client of the HTTP API for the CLI: stdlib urllib, with SigV4 signing (botocore)
when the endpoint is an API Gateway host (``execute-api`` in the hostname) over https —
a signature is never sent in the clear. Answers are bounded in size; what they hold is
the caller's to print safely (statewright.printable)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
# Larger than any answer of the API (a page is at most 5 MiB of JSON).
MAX_ANSWER_BYTES = 16 * 1024 * 1024


class ApiError(Exception):
    """The API answered an error (``code`` from its body), or could not be reached
    (``status`` 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def segment(value: str) -> str:
    """One path segment, percent-encoded."""
    return quote(value, safe="")


class ApiClient:
    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, timeout: float = 60.0) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(
                0,
                "invalid_endpoint",
                f"endpoint {endpoint!r} is not an http(s) URL; e.g. {DEFAULT_ENDPOINT}",
            )
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self._hostname = parts.hostname
        self.signed = "execute-api" in parts.hostname.split(".")
        if self.signed and parts.scheme != "https":
            raise ApiError(
                0,
                "invalid_endpoint",
                f"endpoint {endpoint!r} is API Gateway over plain http: requests to it are "
                "signed with your AWS credentials, which is only done over https; use "
                f"https://{parts.netloc}{parts.path}",
            )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """The decoded JSON answer; ApiError for an error answer or no answer."""
        url = self.endpoint + path
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        if self.signed:
            all_headers = self._sign(method, url, data, all_headers)
        req = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) only, checked above
                return _decode(self._read(resp))
        except urllib.error.HTTPError as exc:
            raise _api_error(exc.code, self._read(exc)) from None
        except urllib.error.URLError as exc:
            hint = "" if self.signed else "; is `statewright serve` running there?"
            raise ApiError(
                0, "unreachable", f"cannot reach {self.endpoint}: {exc.reason}{hint}"
            ) from None
        except TimeoutError:
            raise ApiError(
                0, "timeout", f"{self.endpoint} did not answer in {self.timeout}s"
            ) from None
        except (http.client.HTTPException, OSError) as exc:
            # A broken answer: a bad status line, a connection dropped mid-answer...
            raise ApiError(
                0, "bad_answer", f"{self.endpoint} sent no valid HTTP answer ({exc!r})"
            ) from None

    def _read(self, answer: Any) -> bytes:
        data: bytes = answer.read(MAX_ANSWER_BYTES + 1)
        if len(data) > MAX_ANSWER_BYTES:
            raise ApiError(
                0,
                "answer_too_large",
                f"{self.endpoint} sent an answer over {MAX_ANSWER_BYTES // (1024 * 1024)} MiB",
            )
        return data

    def _sign(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> dict[str, str]:
        from statewright.cli.sigv4 import Signer, SigningError

        try:
            return Signer(self._hostname).sign(method, url, data, headers)
        except SigningError as exc:
            raise ApiError(0, exc.code, exc.message) from None


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _api_error(status: int, raw: bytes) -> ApiError:
    body = _decode(raw)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return ApiError(status, str(error.get("code", "error")), str(error.get("message", "")))
        if "message" in body:  # API Gateway's own answers (403, 429...)
            return ApiError(status, "gateway", str(body["message"]))
    text = str(body or "").strip()[:500] or "no message"
    return ApiError(status, "http_error", f"HTTP {status}: {text}")
