"""A stand-in for a deployed API Gateway stage with IAM auth: every request's SigV4
signature is recomputed with botocore's signer from the request as it arrived (method,
path, query, the signed headers, the body) and compared; a request that passes loses its
stage prefix and goes, as an API Gateway proxy event carrying the caller's ARN, to a real
LocalControlPlane — as API Gateway hands it to the dispatcher."""

from __future__ import annotations

import base64
import hmac
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from statewright.local.control_plane import LocalControlPlane
from statewright.local.server import proxy_event

STAGE = "/v1"
REGION = "eu-west-1"
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


class SigV4Gateway(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, plane: LocalControlPlane, users: dict[str, tuple[str, str]]) -> None:
        """``users``: access key id -> (secret key, principal ARN)."""
        self.plane = plane
        self.users = users
        self.verified: list[str] = []  # "METHOD /path" of each request let through
        self.refused: list[str] = []  # why each refused request was refused
        super().__init__(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{STAGE}"

    def check(self, method: str, target: str, headers: Any, body: bytes) -> str:
        """The caller's ARN; ValueError saying why the signature does not hold."""
        match = AUTHORIZATION.fullmatch(headers.get("Authorization") or "")
        if match is None:
            raise ValueError("Missing Authentication Token")
        if match["key"] not in self.users:
            raise ValueError("The security token included in the request is invalid.")
        if match["region"] != REGION or match["service"] != "execute-api":
            raise ValueError(f"Credential should be scoped to {REGION}/execute-api")
        signed = match["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            raise ValueError("host and x-amz-date must be signed")
        amz_date = headers.get("X-Amz-Date") or ""
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if abs(datetime.now(UTC) - when) > timedelta(minutes=5) or match["date"] != amz_date[:8]:
            raise ValueError("Signature expired")
        secret, principal = self.users[match["key"]]
        request = AWSRequest(
            method=method,
            url=f"http://{headers['Host']}{target}",
            data=body or None,
            headers={name: headers[name] for name in signed if headers.get(name) is not None},
        )
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(match["key"], secret), "execute-api", REGION)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, match["signature"]):
            raise ValueError(
                "The request signature we calculated does not match the signature you provided."
            )
        return principal


class _Handler(BaseHTTPRequestHandler):
    server: SigV4Gateway
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            principal = self.server.check(self.command, self.path, self.headers, body)
        except (ValueError, KeyError) as exc:
            self.server.refused.append(str(exc))
            # The deployed API re-words API Gateway's refusals into the API's error shape.
            error = {"code": "unauthenticated", "message": str(exc)}
            self._send(403, {"Content-Type": "application/json"}, json.dumps({"error": error}))
            return
        if not self.path.startswith(STAGE + "/"):
            self._send(403, {"Content-Type": "application/json"}, '{"message": "Forbidden"}')
            return
        target = self.path[len(STAGE) :]
        self.server.verified.append(f"{self.command} {target}")
        event = proxy_event(self.command, target, list(self.headers.items()), body)
        event["requestContext"]["identity"]["userArn"] = principal
        result = self.server.plane.resolve(event)
        headers = {k: str(v[0]) for k, v in (result.get("multiValueHeaders") or {}).items()}
        headers.update(result.get("headers") or {})
        text = result.get("body") or ""
        if result.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        self._send(int(result["statusCode"]), headers, text)

    def _send(self, status: int, headers: dict[str, str], text: str) -> None:
        data = text.encode()
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
