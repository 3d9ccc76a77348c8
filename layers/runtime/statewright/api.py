"""The HTTP API of docs/api.md: Powertools resolver routes, used by the Lambda dispatcher
on AWS and by the local server (which feeds it API Gateway REST proxy events), so both
run this code. A deployment behind API Gateway's HTTP API (cdk.json ``api.type: http``)
resolves its payload format 2.0 events with the same routes (``build_api(...,
api_type="http")``: Powertools' ``APIGatewayHttpResolver``).

Handlers are thin: validate (pydantic, through Powertools' validation), call the
service, shape the answer. Domain exceptions become HTTP answers in one place,
:func:`error_response`. Before routing, :meth:`StatewrightResolver.resolve` screens the
raw request: bodies over 256 KiB answer 413, and a body that is not UTF-8 JSON (or nests
too deep, or holds a NUL or a lone surrogate) answers 400, so no client mistake can
reach the code as a 5xx.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    Response,
    content_types,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.utilities.data_classes import (
    APIGatewayProxyEvent,
    APIGatewayProxyEventV2,
)
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from pydantic import BaseModel

from statewright import __version__
from statewright.api_idempotency import HEADER as IDEMPOTENCY_HEADER
from statewright.api_idempotency import MAX_KEY_LENGTH, Answer, Idempotency, fingerprint
from statewright.api_models import (
    NO_NUL_PATTERN,
    CreateMachineRequest,
    ErrorBody,
    HistoryPage,
    MachineList,
    MachineOut,
    SendEventRequest,
    SetTtlRequest,
    SpecDocument,
    SpecList,
)
from statewright.errors import (
    Conflict,
    InvalidRequest,
    PayloadTooLarge,
    SpecNotFound,
    StatewrightError,
)
from statewright.model import BAD_TEXT, MACHINE_ID_PATTERN, Machine
from statewright.service import MAX_PAGE, Service

Middleware = Callable[[ApiGatewayResolver, NextMiddleware], Response[Any]]
# Which API Gateway API sends the requests: a REST API (proxy events, payload 1.0; also
# the local server) or an HTTP API (payload format 2.0).
ApiType = Literal["rest", "http"]

MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32
OPENAPI_PATH = "/openapi.json"
# Prefix of GET /specs/{name}; what follows it is the name asked for.
SPECS_PATH = "/specs/"
TTL_SUFFIX = "/ttl"

# The one mapping from domain error codes to HTTP statuses.
STATUS_BY_CODE: dict[str, int] = {
    "invalid_request": 400,
    "invalid_metadata": 400,
    "metadata_too_large": 400,
    "reserved_event": 400,
    "unknown_event": 400,
    "forbidden": 403,
    "not_found": 404,
    "unknown_spec": 404,
    "spec_not_found": 404,
    "machine_not_found": 404,
    "machine_exists": 409,
    "event_not_accepted": 409,
    "nothing_to_retry": 409,
    "idempotency_key_reused": 409,
    "payload_too_large": 413,
    "conflict": 503,
}

MachineIdPath = Annotated[
    str, Path(pattern=MACHINE_ID_PATTERN, description="the machine id", max_length=128)
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        pattern=f"^[ -~]{{1,{MAX_KEY_LENGTH}}}$",
        description="replays the first answer to this key for one hour (printable ASCII)",
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, 1 to {MAX_PAGE}")]
NextToken = Annotated[
    str | None,
    Query(
        pattern="^[A-Za-z0-9_=-]{1,4096}$",
        description="the next_token of the previous page, unchanged (any other value "
        "answers 400 invalid_request: the token is opaque)",
    ),
]


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(exc: StatewrightError) -> Response[Any]:
    """A domain error as the HTTP answer of docs/api.md#one-code-path."""
    status = STATUS_BY_CODE.get(exc.code, HTTPStatus.BAD_REQUEST)
    headers: dict[str, str] = {}
    if isinstance(exc, Conflict):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=_error(exc.code, exc.message),
        headers=headers,
    )


# Why a route answers 400 even to a request its schema allows: what the schema cannot
# know (a spec's events, whether an opaque token was issued by this API).
BAD_BODY = "invalid_request: the body or a parameter is not valid (each field is named)"
BAD_PAGE = (
    "invalid_request: a parameter is not valid, or next_token is not one this API handed "
    "out for this listing"
)
BAD_EVENT = (
    "invalid_request or invalid_metadata; metadata_too_large (over 16 KiB as compact JSON "
    "after the merge); reserved_event (NEXT, FAILED); unknown_event: the machine's spec "
    "does not declare the event"
)


def _responses(
    success: int, model: type[BaseModel], *errors: int, bad_request: str = BAD_BODY
) -> dict[int, Any]:
    """OpenAPI responses of a route: its success model and the error statuses it has
    (``bad_request`` says what its 400 means)."""
    described = {
        400: bad_request,
        403: "forbidden: no access rule allows the caller this action on this machine "
        "(docs/security.md); a machine the caller may not read answers 404 as if missing",
        404: "not found (machine_not_found, unknown_spec, spec_not_found)",
        409: "machine_exists, event_not_accepted, nothing_to_retry or idempotency_key_reused",
        413: "payload_too_large: the body is over 256 KiB",
        503: "conflict: the machine changed too fast for 10 seconds; see Retry-After",
    }
    out: dict[int, Any] = {
        success: {
            "description": HTTPStatus(success).phrase,
            "content": {"application/json": {"model": model}},
        }
    }
    for status in errors:
        entry: dict[str, Any] = {
            "description": described[status],
            "content": {"application/json": {"model": ErrorBody}},
        }
        if status == 503:
            entry["headers"] = {
                "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
            }
        out[status] = entry
    return out


def _validation_message(errors: list[dict[str, Any]], accepted: Mapping[str, list[str]]) -> str:
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        where = ".".join(loc) or "request"
        kind = err.get("type", "")
        if kind == "extra_forbidden":
            fields = accepted.get(loc[0] if loc else "", [])
            why = "is not a field of this request" + (
                f" (accepted: {', '.join(fields)})" if fields else ""
            )
        elif kind == "missing":
            why = "is required" if len(loc) > 1 else "is required: send a JSON object"
        elif kind in ("model_attributes_type", "dict_type"):
            why = "must be a JSON object"
        elif kind == "json_invalid":
            why = f"is not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})"
        else:
            why = str(err.get("msg", "is not valid")).rstrip(".")
            why = why[0].lower() + why[1:] if why else "is not valid"
        parts.append(f"{where} {why}")
    return "invalid request: " + "; ".join(parts)


class _RequestState(threading.local):
    """What Powertools keeps about the request being resolved, one copy per thread."""

    def __init__(self) -> None:
        self.event: BaseProxyEvent | None = None
        self.context: dict[str, Any] = {}
        self.frames: list[str] = []


class _ProxyEvent(APIGatewayProxyEvent):
    """A REST proxy event whose case-insensitive headers are made once per request:
    Powertools reads them several times a request (routing, validation, cookies,
    compression) and would make the case-insensitive copy again at each read. Its
    validation writes the validated value of a header parameter back into the copy it
    is given, which only that validation reads again."""

    @functools.cached_property
    def headers(self) -> dict[str, str]:
        return super().headers

    @functools.cached_property
    def multi_value_headers(self) -> dict[str, list[str]]:
        return super().multi_value_headers


class ScreenedResolver(ApiGatewayResolver):
    """The resolver, with the raw request screened before routing (see module doc), and
    safe to call from several threads at once (the local server resolves its requests
    in parallel). Powertools keeps the request being resolved on the router *class*
    (``current_event``) and its routing context and middleware frames on the instance;
    here all three are kept per thread, so concurrent requests never see each other's."""

    def __init__(self, **options: Any) -> None:
        self._request = _RequestState()
        super().__init__(**options)

    # Reads of ``self.current_event`` find this property before the class attribute
    # Powertools' resolve() assigns; _to_proxy_event is where resolve() builds the event.
    @property
    def current_event(self) -> BaseProxyEvent:  # type: ignore[override]
        event = self._request.event
        if event is None:
            raise RuntimeError("no request is being resolved on this thread")
        return event

    def _to_proxy_event(self, event: dict[str, Any]) -> BaseProxyEvent:
        self._request.event = self._new_event(event)
        return self._request.event

    def _new_event(self, event: dict[str, Any]) -> BaseProxyEvent:
        """The data class Powertools reads the request being resolved from."""
        return super()._to_proxy_event(event)

    @property
    def context(self) -> dict[str, Any]:
        return self._request.context

    @context.setter
    def context(self, value: dict[str, Any]) -> None:
        self._request.context = value

    @property
    def processed_stack_frames(self) -> list[str]:
        return self._request.frames

    @processed_stack_frames.setter
    def processed_stack_frames(self, value: list[str]) -> None:
        self._request.frames = value

    def build_middleware_stacks(self) -> None:
        """Powertools builds a route's middleware stack on the route's first request,
        without a lock: two first requests at once would wrap it twice. Built here, once,
        before any request."""
        for route in (*self._static_routes, *self._dynamic_routes):
            if not route._middleware_stack_built:
                route._build_middleware_stack(router_middlewares=self._router_middlewares, app=self)

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        try:
            screened = screen_request(event)
        except StatewrightError as exc:
            return self.screen_refusal(error_response(exc))
        try:
            return super().resolve(screened, context)
        finally:
            self._request.event = None

    def screen_refusal(self, response: Response[Any]) -> dict[str, Any]:
        """The answer to a request refused before routing, in the integration's format."""
        return proxy_result(response)


# Each Powertools resolver declares current_event as its own event class; ScreenedResolver
# keeps it per thread as the common base class (the one mypy cannot reconcile).
class StatewrightResolver(ScreenedResolver, APIGatewayRestResolver):  # type: ignore[misc]
    """API Gateway REST proxy events (and the local server's, which are the same)."""

    def _new_event(self, event: dict[str, Any]) -> BaseProxyEvent:
        return _ProxyEvent(event, self._json_body_deserializer)


class StatewrightHttpResolver(ScreenedResolver, APIGatewayHttpResolver):  # type: ignore[misc]
    """API Gateway HTTP API events, payload format 2.0."""

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "^{}/*$") -> Any:
        # As the REST resolver compiles its routes: "/machines/" reaches "/machines".
        return APIGatewayRestResolver._compile_regex(rule)

    def screen_refusal(self, response: Response[Any]) -> dict[str, Any]:
        return http_api_result(response)


def proxy_result(response: Response[Any]) -> dict[str, Any]:
    """An API Gateway REST proxy result, shaped as Powertools shapes its own."""
    headers = {"Content-Type": [content_types.APPLICATION_JSON]}
    headers.update({k: [str(v)] for k, v in response.headers.items()})
    return {
        "statusCode": int(response.status_code),
        "multiValueHeaders": headers,
        "body": json.dumps(response.body),
        "isBase64Encoded": False,
    }


def http_api_result(response: Response[Any]) -> dict[str, Any]:
    """An HTTP API (payload format 2.0) result, shaped as Powertools shapes its own."""
    headers = {"Content-Type": content_types.APPLICATION_JSON}
    headers.update({k: str(v) for k, v in response.headers.items()})
    return {
        "statusCode": int(response.status_code),
        "headers": headers,
        "cookies": [],
        "body": json.dumps(response.body),
        "isBase64Encoded": False,
    }


def _json_depth_ok(value: Any, depth: int = 0) -> bool:
    if depth > MAX_JSON_DEPTH:
        return False
    if isinstance(value, dict):
        return all(_json_depth_ok(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_json_depth_ok(v, depth + 1) for v in value)
    return True


def _bad_character(value: Any) -> str | None:
    """The first NUL or lone surrogate in any string (key or value) of ``value``."""
    if isinstance(value, str):
        found = BAD_TEXT.search(value)
        return found.group() if found else None
    if isinstance(value, dict):
        items: list[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        bad = _bad_character(item)
        if bad is not None:
            return bad
    return None


def screen_request(event: Mapping[str, Any]) -> dict[str, Any]:
    """The proxy event with its body decoded to text and declared as JSON, or a domain
    error for what no route should ever see."""
    _check_target(event)
    raw = event.get("body")
    if raw is None or raw == "":
        return dict(event)
    text = _body_text(_body_bytes(raw, base64_encoded=bool(event.get("isBase64Encoded"))))
    _check_json(text)
    return _declared_json(event, text)


def _check_target(event: Mapping[str, Any]) -> None:
    """InvalidRequest for a NUL in the path or the query string."""
    path = str(event.get("path") or event.get("rawPath") or "")  # REST | payload 2.0
    query = event.get("queryStringParameters") or {}
    if "\x00" in path or any("\x00" in str(k) + str(v) for k, v in query.items()):
        raise InvalidRequest("the path or query string contains a NUL character")


def _body_bytes(raw: Any, *, base64_encoded: bool) -> bytes:
    """The body's bytes (API Gateway flags a binary body as base64); PayloadTooLarge
    over MAX_BODY_BYTES."""
    if base64_encoded:
        try:
            data = base64.b64decode(str(raw), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest("the body is not valid base64") from exc
    else:
        data = str(raw).encode("utf-8", errors="surrogatepass")
    if len(data) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"the body is {len(data)} bytes; the limit is {MAX_BODY_BYTES} bytes (256 KiB)"
        )
    return data


def _body_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"the body is not valid UTF-8 (byte {exc.start}); send JSON encoded as UTF-8"
        ) from exc


def _check_json(text: str) -> None:
    """InvalidRequest unless ``text`` is JSON nested at most MAX_JSON_DEPTH deep whose
    strings hold no NUL and no lone surrogate."""
    try:
        parsed = json.loads(text)
    except RecursionError as exc:
        raise InvalidRequest(f"the body nests deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from exc
    if not _json_depth_ok(parsed):
        raise InvalidRequest(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    bad = _bad_character(parsed)
    if bad == "\x00":
        raise InvalidRequest("the body contains a NUL character (\\u0000), which is not accepted")
    if bad is not None:
        raise InvalidRequest(
            f"the body contains \\u{ord(bad):04x}, half of a UTF-16 surrogate pair without "
            "its other half: strings must be valid Unicode"
        )


def _declared_json(event: Mapping[str, Any], text: str) -> dict[str, Any]:
    """The event with ``text`` as its body and Content-Type application/json. The API
    speaks JSON only: whatever Content-Type a client sent (curl -d sends a form type),
    the body is read as the JSON it was checked to be."""
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
    headers["Content-Type"] = content_types.APPLICATION_JSON
    declared = {**event, "body": text, "isBase64Encoded": False, "headers": headers}
    if _is_http_api(event):
        return declared  # payload 2.0 has no multiValueHeaders
    multi = {
        k: v
        for k, v in (event.get("multiValueHeaders") or {}).items()
        if k.lower() != "content-type"
    }
    multi["Content-Type"] = [content_types.APPLICATION_JSON]
    return {**declared, "multiValueHeaders": multi}


def _is_http_api(event: Mapping[str, Any]) -> bool:
    return event.get("version") == "2.0"


def _caller(app: ApiGatewayResolver) -> str:
    """Who sent the request: the IAM principal's ARN on AWS, the token's name (or
    ``local``) locally. The access rules are checked against it, the history records it
    as the actor, and idempotency keys are scoped to it.

    A REST API puts the SigV4 signer in ``requestContext.identity``; an HTTP API with IAM
    authorization puts it in ``requestContext.authorizer.iam`` (payload format 2.0)."""
    event = app.current_event
    request_context = event.get("requestContext") or {}
    if isinstance(event, APIGatewayProxyEventV2):
        identity = (request_context.get("authorizer") or {}).get("iam") or {}
    else:
        identity = request_context.get("identity") or {}
    return str(identity.get("userArn") or identity.get("caller") or "anonymous")


def _answer_of(response: Response[Any]) -> Answer:
    body = response.body
    if isinstance(body, BaseModel):
        body = body.model_dump(mode="json")
    elif isinstance(body, str | bytes):
        body = json.loads(body)
    if not isinstance(body, dict):
        body = {"value": body}
    return Answer(
        status=int(response.status_code),
        body=body,
        headers={k: str(v) for k, v in response.headers.items() if k.lower() != "content-type"},
    )


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers=dict(headers or {}),
    )


def _machine_json(machine: Machine) -> dict[str, Any]:
    return machine.public()


class _Description:
    """The API's OpenAPI document and, from it, which methods a path takes (so a wrong
    method answers 405 with Allow, not 404). Made on first need, not at start (it costs
    a cold start tens of milliseconds), and by one thread: Powertools' schema
    generation is not safe to run on two at once."""

    def __init__(self, app: ApiGatewayResolver) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._document: dict[str, Any] | None = None
        self._routes: list[tuple[re.Pattern[str], list[str]]] = []

    def document(self) -> dict[str, Any]:
        with self._lock:
            if self._document is None:
                self._document = openapi_document(self._app)
                self._routes = self._route_table(self._document)
            return self._document

    @staticmethod
    def _route_table(document: dict[str, Any]) -> list[tuple[re.Pattern[str], list[str]]]:
        routes = []
        for template, operations in document["paths"].items():
            # templates hold letters, "/", "_" and {parameters} only
            pattern = re.sub(r"\{[^/]+\}", "[^/]+", template)
            methods = sorted(m.upper() for m in operations)
            routes.append((re.compile(f"^{pattern}$"), methods))
        routes.append((re.compile(f"^{re.escape(OPENAPI_PATH)}$"), ["GET"]))
        return routes

    def methods_of(self, path: str) -> list[str]:
        self.document()
        return next((m for p, m in self._routes if p.match(path)), [])


def _register_error_handlers(app: ApiGatewayResolver, table: _Description) -> None:
    """Every error answer comes from here (domain errors through error_response)."""
    app.exception_handler(StatewrightError)(error_response)

    def validation_error(exc: RequestValidationError) -> Response[Any]:
        path = app.current_event.path
        fields = {"body": list(SendEventRequest.model_fields)}
        if path == "/machines":
            fields = {"body": list(CreateMachineRequest.model_fields)}
        elif path.endswith(TTL_SUFFIX):
            fields = {"body": list(SetTtlRequest.model_fields)}
        message = _validation_message(list(exc.errors()), fields)
        return error_response(InvalidRequest(message))

    def not_found(exc: NotFoundError) -> Response[Any]:
        event = app.current_event
        allowed = table.methods_of(event.path)
        if event.http_method.upper() in allowed:
            # The route exists for this method, but Powertools' router refused the
            # parameter's characters: no spec is named so (404), no machine id is (400).
            if event.path.startswith(SPECS_PATH):
                name = event.path.removeprefix(SPECS_PATH)
                return error_response(SpecNotFound(f"no spec named {name!r}"))
            return error_response(
                InvalidRequest(f"the path {event.path!r} holds characters no machine id can have")
            )
        if allowed:
            message = f"{event.path} does not take {event.http_method}; it takes "
            return _json(
                405,
                _error("method_not_allowed", message + ", ".join(allowed)),
                {"Allow": ", ".join(allowed)},
            )
        message = f"no route {event.http_method} {event.path}; the routes are listed at "
        return _json(404, _error("not_found", message + OPENAPI_PATH))

    app.exception_handler(RequestValidationError)(validation_error)
    app.exception_handler(NotFoundError)(not_found)


def _idempotency_middleware(idempotency: Idempotency) -> Middleware:
    """Replays the first answer to an Idempotency-Key on every POST."""

    def idempotent(app: ApiGatewayResolver, next_middleware: NextMiddleware) -> Response[Any]:
        event = app.current_event
        key = event.headers.get(IDEMPOTENCY_HEADER)
        if event.http_method.upper() != "POST" or key is None:
            return next_middleware(app)

        def call() -> Answer:
            try:
                response = next_middleware(app)
            except StatewrightError as exc:
                response = error_response(exc)
            return _answer_of(response)

        body = event.json_body if event.body else None
        answer = idempotency.run(
            _caller(app), key, fingerprint(event.http_method, event.path, body), call
        )
        return _json(answer.status, answer.body, answer.headers)

    return idempotent


def build_api(service: Service, *, api_type: ApiType = "rest") -> ScreenedResolver:
    """The resolver with every route of docs/api.md#routes, bound to ``service``, for
    requests from ``api_type`` (REST proxy events, or an HTTP API's payload format 2.0);
    it may resolve several requests at once."""
    resolver = StatewrightHttpResolver if api_type == "http" else StatewrightResolver
    app = resolver(enable_validation=True)
    description = _Description(app)
    _register_error_handlers(app, description)
    app.use(middlewares=[_idempotency_middleware(Idempotency(service))])
    _register_routes(app, service, description)
    app.build_middleware_stacks()
    return app


def _register_routes(app: ApiGatewayResolver, service: Service, description: _Description) -> None:
    # ---- specs ------------------------------------------------------------------------

    @app.get("/specs", responses=_responses(200, SpecList, 400), summary="list the loaded specs")
    def list_specs() -> Response[SpecList]:
        specs = [
            {"name": s.name, "digest": s.digest, "events": s.events, "states": list(s.states)}
            for s in service.list_specs()
        ]
        return _json(200, {"specs": specs})

    @app.get(
        "/specs/<name>",
        responses=_responses(200, SpecDocument, 400, 404),
        summary="one spec, normalized",
    )
    def get_spec(
        name: Annotated[
            str, Path(max_length=256, pattern=NO_NUL_PATTERN, description="the spec's name")
        ],
    ) -> Response[SpecDocument]:
        spec = service.get_spec(name)
        return _json(200, {**spec.document(), "name": spec.name, "digest": spec.digest})

    # ---- machines -----------------------------------------------------------------------

    @app.post(
        "/machines",
        responses=_responses(
            201,
            MachineOut,
            400,
            403,
            404,
            409,
            413,
            503,
            bad_request="invalid_request or invalid_metadata (a nested metadata value); "
            "metadata_too_large (over 16 KiB as compact JSON)",
        ),
        summary="create a machine",
    )
    def create_machine(
        body: Annotated[CreateMachineRequest, Body()],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[MachineOut]:
        machine = service.create_machine(
            body.spec, machine_id=body.id, metadata=body.metadata, ttl=body.ttl, caller=_caller(app)
        )
        return _json(201, _machine_json(machine), {"Location": f"/machines/{machine.id}"})

    @app.get(
        "/machines",
        responses=_responses(200, MachineList, 400, bad_request=BAD_PAGE),
        summary="list machines (only those the caller may read)",
    )
    def list_machines(
        spec: Annotated[
            str | None, Query(max_length=256, pattern=NO_NUL_PATTERN, description="only this spec")
        ] = None,
        state: Annotated[
            str | None,
            Query(max_length=256, pattern=NO_NUL_PATTERN, description="only this state"),
        ] = None,
        limit: Limit = 100,
        next_token: NextToken = None,
    ) -> Response[MachineList]:
        machines, token = service.list_machines(
            spec=spec, state=state, limit=limit, next_token=next_token, caller=_caller(app)
        )
        return _json(200, {"machines": [_machine_json(m) for m in machines], "next_token": token})

    @app.get(
        "/machines/<machine_id>",
        responses=_responses(200, MachineOut, 400, 403, 404),
        summary="one machine",
    )
    def get_machine(machine_id: MachineIdPath) -> Response[MachineOut]:
        return _json(200, _machine_json(service.get_machine(machine_id, caller=_caller(app))))

    @app.post(
        "/machines/<machine_id>/events",
        responses=_responses(202, MachineOut, 400, 403, 404, 409, 413, 503, bad_request=BAD_EVENT),
        summary="send an event to a machine",
    )
    def send_event(
        machine_id: MachineIdPath,
        body: Annotated[SendEventRequest, Body()],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[MachineOut]:
        machine = service.send_event(
            machine_id,
            body.event,
            metadata=body.metadata,
            spec=body.spec,
            ttl=body.ttl,
            caller=_caller(app),
        )
        return _json(202, _machine_json(machine))

    @app.get(
        "/machines/<machine_id>/history",
        responses=_responses(200, HistoryPage, 400, 403, 404, bad_request=BAD_PAGE),
        summary="a machine's history, oldest first",
    )
    def history(
        machine_id: MachineIdPath, limit: Limit = 100, next_token: NextToken = None
    ) -> Response[HistoryPage]:
        entries, token = service.history(
            machine_id, limit=limit, next_token=next_token, caller=_caller(app)
        )
        return _json(
            200, {"entries": [e.model_dump(mode="json") for e in entries], "next_token": token}
        )

    _register_action_routes(app, service)

    # ---- the API's own description ----------------------------------------------------

    @app.get(OPENAPI_PATH, include_in_schema=False)
    def openapi() -> Response[Any]:
        return _json(200, description.document())


def _register_action_routes(app: ApiGatewayResolver, service: Service) -> None:
    """The routes that act on one machine besides sending it an event."""

    @app.post(
        "/machines/<machine_id>/retry",
        responses=_responses(202, MachineOut, 400, 403, 404, 409, 503),
        summary="re-run the failed tasks of the current state",
    )
    def retry(
        machine_id: MachineIdPath, idempotency_key: IdempotencyKey = None
    ) -> Response[MachineOut]:
        return _json(202, _machine_json(service.retry(machine_id, caller=_caller(app))))

    @app.post(
        "/machines/<machine_id>/ttl",
        responses=_responses(
            200,
            MachineOut,
            400,
            403,
            404,
            409,
            413,
            503,
            bad_request="invalid_request: ttl is not a duration, is longer than the spec's "
            "max_ttl, or the machine's spec has no lifecycle",
        ),
        summary="set a machine's ttl, counted from now (extend or shorten its life)",
    )
    def set_ttl(
        machine_id: MachineIdPath,
        body: Annotated[SetTtlRequest, Body()],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[MachineOut]:
        machine = service.set_ttl(machine_id, body.ttl, caller=_caller(app))
        return _json(200, _machine_json(machine))


def openapi_document(app: ApiGatewayResolver) -> dict[str, Any]:
    """The OpenAPI document of ``app``, with Powertools' default 422 answers replaced by
    the API's own 400 (documented on each route)."""
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title="Statewright",
            version=__version__,
            description="Lifecycle state machines from Machine 1.0 specs (docs/api.md). "
            'Every error answers {"error": {"code", "message"}}.',
        )
    )
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document
