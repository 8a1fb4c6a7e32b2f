"""HTTP inside a replica: the request a deployment gets, and its return value as a response.

    proxy's (scope, body) ──▶ ServeRequest (a Starlette Request) ──▶ user code ──▶ return value
                                                                                      │
        str → text/plain · bytes → octet-stream · dict/list/... → JSON ◀──────────────┤
        a Starlette Response (StreamingResponse too) → run as it is ◀──────────────────┤
        a generator (sync or async) → streamed, one chunk per item ◀───────────────────┘

Errors are answered by what caused them: a missing query parameter
(``request.query_params["query"]``) or a body that is not JSON (``await request.json()``) is the
client's mistake, a 400 whose message names it; an ``HTTPException`` raised by user code keeps its
status and detail; anything else is a 500 that carries only an error id (the traceback goes to
the server's log under the same id, never to the client).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import sys
import traceback
import uuid
from collections.abc import Mapping
from typing import Any

TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
JSON = [(b"content-type", b"application/json")]
OCTETS = [(b"content-type", b"application/octet-stream")]


class BadRequest(Exception):
    """A request the deployment cannot read: answered with 400 and this message."""

    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class MissingQueryParameter(BadRequest, KeyError):
    """``request.query_params[name]`` of a parameter the request does not have (a KeyError
    too, so code that catches KeyError keeps working)."""

    def __init__(self, name: str, present: list[str]):
        listed = ", ".join(repr(p) for p in present) if present else "none"
        super().__init__(f"missing query parameter {name!r} (the request has: {listed}); "
                         f"add ?{name}=... to the URL")
        self.name = name


class InvalidJSONBody(BadRequest, ValueError):
    """``await request.json()`` of a body that is not JSON (a ValueError too)."""


_request_class: type | None = None


def make_request(scope: dict, receive) -> Any:
    """The Starlette Request a function deployment gets, with client errors typed as above."""
    global _request_class
    if _request_class is None:
        _request_class = _build_request_class()
    return _request_class(scope, receive)


def _build_request_class() -> type:
    from starlette.datastructures import QueryParams
    from starlette.requests import Request

    class StrictQueryParams(QueryParams):
        def __getitem__(self, key: Any) -> str:
            try:
                return super().__getitem__(key)
            except KeyError:
                raise MissingQueryParameter(key, list(self.keys())) from None

    class ServeRequest(Request):
        """A Starlette Request whose client errors answer 400 instead of 500."""

        @property
        def query_params(self) -> QueryParams:
            if not hasattr(self, "_query_params"):
                self._query_params = StrictQueryParams(self.scope["query_string"])
            return self._query_params

        async def json(self) -> Any:
            if not hasattr(self, "_json"):
                body = await self.body()
                try:
                    self._json = json.loads(body)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise InvalidJSONBody(f"the request body is not valid JSON ({exc}); send "
                                          "a JSON document with content-type "
                                          "application/json") from None
            return self._json

    return ServeRequest


def receiver(body: bytes):
    """An ASGI ``receive`` that hands over the whole body once, then waits until cancelled."""
    delivered = False

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays connected until the response is sent
        return {"type": "http.disconnect"}

    return receive


# ----- return values --------------------------------------------------------------------------
def as_asgi_app(value: Any) -> Any:
    """The ASGI app that sends a return value which is a Response or a generator (streamed,
    one chunk per item), or None for a plain value (see ``encode_plain``)."""
    if inspect.isgenerator(value) or inspect.isasyncgen(value):
        return _streaming_response(value)
    if is_starlette_response(value):
        return value
    return None


async def respond(value: Any, scope: dict, receive, send) -> None:
    """Send a deployment's return value as the response (through ASGI ``send``)."""
    app = as_asgi_app(value)
    if app is not None:
        await app(scope, receive, send)
        return
    status, headers, body = encode_plain(value)
    await send_whole(send, status, headers, body)


def encode_plain(value: Any) -> tuple[int, list, bytes]:
    """A return value that is not a Response: str is text, bytes an octet stream, anything
    else JSON (dicts, lists, numbers, pydantic models, dataclasses, numpy arrays)."""
    if isinstance(value, str):
        return 200, TEXT, value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return 200, OCTETS, bytes(value)
    return 200, JSON, json.dumps(value, default=_json_default, ensure_ascii=False).encode()


async def send_whole(send, status: int, headers: list, body: bytes) -> None:
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def is_starlette_response(value: Any) -> bool:
    module = type(value).__module__
    if "starlette" not in module and "fastapi" not in module and not hasattr(value, "raw_headers"):
        return False
    from starlette.responses import Response
    return isinstance(value, Response)


def _streaming_response(generator: Any) -> Any:
    """A generator's items as a chunked text response, each item sent as it is produced."""
    from starlette.responses import StreamingResponse

    def chunk(item: Any) -> bytes:
        if isinstance(item, (bytes, bytearray, memoryview)):
            return bytes(item)
        if isinstance(item, str):
            return item.encode()
        raise TypeError(f"a streaming deployment yielded {type(item).__name__} {item!r:.60}; "
                        "yield str or bytes")

    if inspect.isasyncgen(generator):
        async def chunks():
            async for item in generator:
                yield chunk(item)
    else:
        def chunks():
            for item in generator:
                yield chunk(item)
    return StreamingResponse(chunks(), media_type="text/plain; charset=utf-8")


def _json_default(value: Any) -> Any:
    for method in ("model_dump", "dict"):  # pydantic v2, v1
        dump = getattr(value, method, None)
        if callable(dump) and hasattr(value, "__fields__" if method == "dict" else "model_fields"):
            return dump(mode="json") if method == "model_dump" else dump()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Mapping):  # request.query_params, headers, any read-only mapping
        return dict(value.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"the deployment returned {type(value).__name__} {value!r:.60}, which is "
                    "not JSON serializable; return a str, bytes, dict, list or a Starlette "
                    "Response")


# ----- errors ---------------------------------------------------------------------------------
def error_response(exc: BaseException, deployment: str) -> tuple[int, list, bytes]:
    """The response for an exception raised while serving a request (see the module doc)."""
    if isinstance(exc, BadRequest):
        return exc.status_code, JSON, json.dumps({"detail": exc.message}).encode()
    multipart = getattr(sys.modules.get("starlette.formparsers"), "MultiPartException", None)
    if multipart is not None and isinstance(exc, multipart):  # from await request.form()
        return 400, JSON, json.dumps({"detail": f"the form data cannot be read: {exc}"}).encode()
    http_exception = _http_exception_class()
    if http_exception is not None and isinstance(exc, http_exception):
        headers = [(k.lower().encode(), str(v).encode())
                   for k, v in (getattr(exc, "headers", None) or {}).items()]
        body = json.dumps({"detail": exc.detail}, default=str).encode()
        return exc.status_code, JSON + headers, body
    error_id = uuid.uuid4().hex[:12]
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    print(f"serve: a request to deployment {deployment!r} failed (error id {error_id}):\n"
          f"{trace}", file=sys.stderr, flush=True)
    text = (f"Internal Server Error: deployment {deployment!r} raised {type(exc).__name__} "
            f"(error id {error_id}; the server's log has the traceback)")
    return 500, TEXT, text.encode()


def _http_exception_class() -> type | None:
    starlette_exceptions = sys.modules.get("starlette.exceptions")
    return getattr(starlette_exceptions, "HTTPException", None)
