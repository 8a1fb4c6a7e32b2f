"""The replica: an async actor that holds one copy of a deployment's function or class.

    proxy ──handle_http(pickled scope, body)──▶ ServeReplica ──▶ user function / __call__ /
                                                     │            FastAPI app (@serve.ingress)
          ◀── pickled (status, headers, body) ───────┘   return value → HTTP response
    handle ──handle_call(method, *args)──▶ ServeReplica ──▶ user method ──▶ value

User code that is ``async def`` runs on the actor's event loop; plain functions run in a thread
pool, so a slow synchronous model does not stop the replica from taking other requests. At most
``max_ongoing_requests`` requests run at once; others wait in the replica.

An exception in user code becomes, over HTTP, a 500 whose body carries an error id; the same id
is printed to stderr with the traceback. Over a handle the caller gets the exception itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import json
import os
import pickle
import sys
import traceback
import uuid
from typing import Any

_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_JSON = [(b"content-type", b"application/json")]
_OCTETS = [(b"content-type", b"application/octet-stream")]


class ReplicaContext:
    """What ``serve.get_replica_context()`` returns inside a replica."""

    def __init__(self, deployment: str, replica_tag: str, servable_object: Any = None,
                 app_name: str | None = None):
        self.deployment = deployment
        self.replica_tag = replica_tag
        self.replica_id = replica_tag
        self.servable_object = servable_object
        self.app_name = app_name

    def __repr__(self) -> str:
        return f"ReplicaContext(deployment={self.deployment!r}, replica_tag={self.replica_tag!r})"


_context: ReplicaContext | None = None


def get_replica_context() -> ReplicaContext:
    """The deployment and replica this code runs in; raises outside a replica."""
    if _context is None:
        raise RuntimeError("serve.get_replica_context() only works inside a deployment's replica")
    return _context


class ServeReplica:
    """The actor behind each replica (created by the controller, never by users)."""

    def __init__(self, deployment_name: str, replica_id: str, definition: tuple, config: dict):
        global _context
        from raylite.serve._common import loads_callable
        blob, init_args, init_kwargs = definition
        target = loads_callable(blob)
        self._name = deployment_name
        self._config = config
        self._ongoing = 0
        self._drained: asyncio.Event | None = None
        self._slots = asyncio.Semaphore(config["max_ongoing_requests"])
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._asgi_app = None
        _context = ReplicaContext(deployment_name, replica_id, app_name=config.get("app_name"))
        if inspect.isclass(target):
            self._function = None
            self._instance = target(*init_args, **init_kwargs)
            app = getattr(target, "_serve_asgi_app", None)
            if app is not None:
                self._asgi_app = _bind_class_based_views(app, target, self._instance)
        else:
            if init_args or init_kwargs:
                raise TypeError(f"deployment {deployment_name!r} is a function: it takes no "
                                "init arguments (got some in .bind()/.deploy())")
            self._function = target
            self._instance = None
        _context.servable_object = self._instance
        if config.get("user_config") is not None and not hasattr(self._instance, "reconfigure"):
            raise ValueError(f"deployment {deployment_name!r} was given a user_config, but it "
                             "has no reconfigure(self, config) method to receive it")

    # ----- lifecycle (called by the controller) ---------------------------------------------
    async def ready(self) -> dict:
        """Finish starting (apply ``user_config``); the controller then marks us RUNNING."""
        if self._config.get("user_config") is not None:
            await self.reconfigure(self._config["user_config"])
        return {"pid": os.getpid()}

    async def reconfigure(self, user_config: Any) -> None:
        method = getattr(self._instance, "reconfigure", None)
        if method is None:
            raise ValueError(f"deployment {self._name!r} has no reconfigure(self, config) method "
                             "to receive its user_config")
        self._config["user_config"] = user_config
        await self._call_user(method, user_config)

    async def prepare_for_shutdown(self, timeout_s: float) -> int:
        """Wait (up to ``timeout_s``) for requests in progress to finish; returns those left."""
        if self._ongoing:
            self._drained = asyncio.Event()
            try:
                await asyncio.wait_for(self._drained.wait(), timeout_s)
            except asyncio.TimeoutError:
                pass
        return self._ongoing

    async def stats(self) -> dict:
        return {"ongoing": self._ongoing, "pid": os.getpid()}

    # ----- requests ---------------------------------------------------------------------------
    async def handle_http(self, payload: bytes) -> bytes:
        """One HTTP request from the proxy: pickled (scope, body) in, pickled
        (status, headers, body) out."""
        scope, body = pickle.loads(payload)
        self._ongoing += 1
        try:
            async with self._slots:
                response = await self._serve_http(scope, body)
        except Exception as exc:  # noqa: BLE001 - any failure becomes a 500 with an error id
            response = self._error_response(exc)
        finally:
            self._request_done()
        return pickle.dumps(response, protocol=5)

    async def handle_call(self, method_name: str, /, *args: Any, **kwargs: Any) -> Any:
        """A call through a DeploymentHandle: ``handle.remote(...)`` or ``handle.method.remote``."""
        self._ongoing += 1
        try:
            async with self._slots:
                return await self._call_user(self._method(method_name), *args, **kwargs)
        finally:
            self._request_done()

    def _request_done(self) -> None:
        self._ongoing -= 1
        if self._ongoing == 0 and self._drained is not None:
            self._drained.set()

    def _method(self, method_name: str):
        if self._function is not None:
            if method_name != "__call__":
                raise AttributeError(f"deployment {self._name!r} is a function; it has no method "
                                     f"{method_name!r} (call the handle itself)")
            return self._function
        method = getattr(self._instance, method_name, None)
        if method is None or not callable(method):
            raise AttributeError(f"deployment {self._name!r} has no method {method_name!r}")
        return method

    async def _serve_http(self, scope: dict, body: bytes) -> tuple:
        if self._asgi_app is not None:
            return await run_asgi(self._asgi_app, scope, body)
        from starlette.requests import Request
        request = Request(scope, _receiver(body))
        value = await self._call_user(self._method("__call__"), request)
        return await encode_response(value, scope)

    async def _call_user(self, function, *args: Any, **kwargs: Any) -> Any:
        if _is_async(function):
            value = function(*args, **kwargs)
        else:
            if self._executor is None:
                workers = max(1, min(self._config["max_ongoing_requests"], 32))
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    workers, thread_name_prefix=f"serve-{self._name}")
            value = await asyncio.get_running_loop().run_in_executor(
                self._executor, functools.partial(function, *args, **kwargs))
        if inspect.isawaitable(value):
            value = await value
        return value

    def _error_response(self, exc: BaseException) -> tuple:
        error_id = uuid.uuid4().hex[:12]
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        print(f"serve: a request to deployment {self._name!r} failed (error id {error_id}):\n"
              f"{trace}", file=sys.stderr, flush=True)
        text = (f"Internal Server Error: deployment {self._name!r} raised {type(exc).__name__} "
                f"(error id {error_id}; the server's log has the traceback)")
        return 500, _TEXT, text.encode()


def _is_async(function: Any) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    call = getattr(type(function), "__call__", None)  # a callable object with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _receiver(body: bytes):
    """An ASGI ``receive`` that hands over the whole body once, then waits forever."""
    delivered = False

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays connected until the response is sent
        return {"type": "http.disconnect"}

    return receive


async def run_asgi(app: Any, scope: dict, body: bytes) -> tuple:
    """Run an ASGI app (FastAPI, Starlette, a Response) on one request; collect its response."""
    start: dict = {}
    chunks: list[bytes] = []

    async def send(message: dict) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            start.update(message)
        elif kind == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await app(scope, _receiver(body), send)
    if not start:
        raise RuntimeError("the ASGI app returned without sending a response")
    return start["status"], [(bytes(k), bytes(v)) for k, v in start.get("headers", [])], \
        b"".join(chunks)


async def encode_response(value: Any, scope: dict) -> tuple:
    """A deployment's return value as (status, headers, body): str is text, dict/list JSON,
    bytes an octet stream, and a Starlette Response passes through as it is."""
    if isinstance(value, str):
        return 200, _TEXT, value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return 200, _OCTETS, bytes(value)
    if _is_starlette_response(value):
        return await run_asgi(value, scope, b"")
    return 200, _JSON, json.dumps(value, default=_json_default, ensure_ascii=False).encode()


def _is_starlette_response(value: Any) -> bool:
    if "starlette" not in type(value).__module__ and "fastapi" not in type(value).__module__ \
            and not hasattr(value, "raw_headers"):
        return False
    from starlette.responses import Response
    return isinstance(value, Response)


def _json_default(value: Any) -> Any:
    for method in ("model_dump", "dict"):  # pydantic v2, v1
        dump = getattr(value, method, None)
        if callable(dump) and hasattr(value, "__fields__" if method == "dict" else "model_fields"):
            return dump(mode="json") if method == "model_dump" else dump()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    import dataclasses
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"the deployment returned {type(value).__name__} {value!r:.60}, which is "
                    "not JSON serializable; return a str, bytes, dict, list or a Starlette "
                    "Response")


def _bind_class_based_views(app: Any, cls: type, instance: Any) -> Any:
    """Make the FastAPI routes that are methods of ``cls`` call them on ``instance``.

    ``@app.get`` inside a class registers the plain function, which FastAPI would treat as
    taking a query parameter named ``self``; each such route is rebuilt with the bound method,
    keeping every other setting of the route (path, methods, response model, status code...).
    """
    try:
        from fastapi.routing import APIRoute
    except ImportError:  # a plain Starlette/ASGI app: nothing to bind
        return app
    names = {}
    for klass in reversed(cls.__mro__):
        for name, member in vars(klass).items():
            names[id(member)] = name
    parameters = [p for p in inspect.signature(APIRoute.__init__).parameters
                  if p not in ("self", "path", "endpoint")]
    router = getattr(app, "router", None)
    if router is None:
        return app
    changed = False
    for index, route in enumerate(list(router.routes)):
        if not isinstance(route, APIRoute) or id(route.endpoint) not in names:
            continue
        name = names[id(route.endpoint)]
        if getattr(cls, name, None) is not route.endpoint:
            continue
        options = {p: getattr(route, p) for p in parameters if hasattr(route, p)}
        router.routes[index] = APIRoute(route.path, getattr(instance, name), **options)
        changed = True
    if changed:
        app.openapi_schema = None
        mark = getattr(router, "_mark_routes_changed", None)
        if callable(mark):
            mark()
    return app
