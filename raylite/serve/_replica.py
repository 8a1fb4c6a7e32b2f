"""The replica: an async actor that holds one copy of a deployment's function or class.

    proxy ──handle_http(pickled scope, body)──▶ ServeReplica ──▶ user function / __call__ /
                                                     │            FastAPI app (@serve.ingress)
          ◀── pickled (status, headers, body, stream id or None) ──┘
          ──stream_next(stream id)──▶ (more body, MORE | DONE | FAILED)     (streamed responses)
    handle ──handle_call(method, *args)──▶ ServeReplica ──▶ user method ──▶ value
           ──handle_call_stream(method, *args)──▶ (first items, MORE | DONE, stream id)
             ──stream_next(stream id)──▶ more items            (a generator method, stream=True)
    controller ──ready / reconfigure / check_health / stats / prepare_for_shutdown──▶ lifecycle
               ──wait_for_shutdown──▶ (pending while the replica lives: fails when it dies)

User code that is ``async def`` runs on the actor's event loop; plain functions run in a thread
pool, so a slow synchronous model does not stop the replica from taking other requests. At most
``max_ongoing_requests`` requests run at once; others wait in the replica. A streamed response
holds its slot until its last chunk is pulled.

Errors in user code become HTTP responses as ``_http`` describes (400 for a bad request, 500 with
an error id otherwise); over a handle the caller gets the exception itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import os
import pickle
import sys
import traceback
from typing import Any

from raylite.serve import _http
from raylite.serve._streaming import DONE, ItemStream, ResponseStream, StreamRegistry


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
        self._shutdown: asyncio.Event | None = None
        self._streams = StreamRegistry()
        self._tasks: set[asyncio.Task] = set()  # requests in progress (asyncio keeps weak refs)
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

    async def check_health(self) -> None:
        """Run the user's ``check_health()`` if the class has one (raising means unhealthy).

        A synchronous one runs on its own thread, not the request pool, so a replica busy with
        long requests still answers. Also cancels streams whose reader went away.
        """
        self._streams.sweep()
        method = getattr(self._instance, "check_health", None)
        if method is None:
            return
        if _is_async(method):
            await method()
        else:
            await asyncio.get_running_loop().run_in_executor(None, method)

    async def stats(self) -> dict:
        """What autoscaling reads: requests running or waiting here, open streams."""
        return {"ongoing": self._ongoing, "streams": len(self._streams), "pid": os.getpid()}

    async def wait_for_shutdown(self) -> None:
        """Pending until ``prepare_for_shutdown``: if this replica's process dies first, the call
        fails at once, which is how the controller notices a dead replica without polling."""
        if self._shutdown is None:
            self._shutdown = asyncio.Event()
        await self._shutdown.wait()

    async def prepare_for_shutdown(self, timeout_s: float) -> int:
        """Wait (up to ``timeout_s``) for requests in progress to finish; returns those left."""
        if self._shutdown is None:
            self._shutdown = asyncio.Event()
        self._shutdown.set()
        if self._ongoing:
            self._drained = asyncio.Event()
            try:
                await asyncio.wait_for(self._drained.wait(), timeout_s)
            except asyncio.TimeoutError:
                pass
        return self._ongoing

    # ----- requests ---------------------------------------------------------------------------
    async def handle_http(self, payload: bytes) -> bytes:
        """One HTTP request from the proxy: pickled (scope, body) in; pickled (status, headers,
        body, stream_id) out. ``stream_id`` is None for a complete response; otherwise the body
        so far is only the start and the rest comes from ``stream_next(stream_id)``.

        A function or ``__call__`` that returns a plain value (str, bytes, JSON) is answered
        right here; an ASGI app (``@serve.ingress``) or a returned Response or generator runs in
        a task of its own, since it may go on streaming after this call has answered.
        """
        scope, body = pickle.loads(payload)
        receive = _http.receiver(body)
        self._ongoing += 1
        await self._slots.acquire()
        handed_over = False  # to the task that runs an ASGI app: it releases the slot
        try:
            app = self._asgi_app
            if app is None:
                try:
                    request = _http.make_request(scope, receive)
                    value = await self._call_user(self._method("__call__"), request)
                    app = _http.as_asgi_app(value)
                    if app is None:
                        return _pack(*_http.encode_plain(value), None)
                except Exception as exc:  # noqa: BLE001 - any failure becomes a response
                    return _pack(*_http.error_response(exc, self._name), None)
            handed_over = True
            return await self._run_asgi(app, scope, receive)
        finally:
            if not handed_over:
                self._slots.release()
                self._request_done()

    async def _run_asgi(self, app: Any, scope: dict, receive) -> bytes:
        """Run an ASGI app in a task; answer with its whole response, or with its head and a
        stream id as soon as it streams. The task frees the request slot when it ends."""
        response = ResponseStream()
        task = asyncio.get_running_loop().create_task(self._drive(app, scope, receive, response))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await response.wait_head()
        if not response.streaming or response.finished and not response.error:
            return _pack(response.status, response.headers, response.take(), None)
        stream_id = self._streams.add(response, task)
        return _pack(response.status, response.headers, response.take(), stream_id)

    async def _drive(self, app: Any, scope: dict, receive, response: ResponseStream) -> None:
        try:
            try:
                await app(scope, receive, response.send)
            except asyncio.CancelledError:
                response.fail("cancelled")
                raise
            except Exception as exc:  # noqa: BLE001 - any failure becomes a response
                self._fail_response(response, exc)
            if not response.finished:
                self._fail_response(response, RuntimeError(
                    "the deployment's ASGI app returned without finishing its response"))
        finally:
            self._slots.release()
            self._request_done()

    async def stream_next(self, stream_id: int) -> tuple[Any, str]:
        """What a stream produced since the last call, waiting for something: body bytes of a
        streamed response, or a list of items of a streaming handle call."""
        return await self._streams.next(stream_id)

    async def stream_cancel(self, stream_id: int) -> bool:
        """The reader of a stream went away: stop producing it."""
        return self._streams.cancel(stream_id)

    def _fail_response(self, response: ResponseStream, exc: BaseException) -> None:
        if not response.head_sent:
            response.replace_with(*_http.error_response(exc, self._name))
            return
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        print(f"serve: deployment {self._name!r} failed after its response had started; the "
              f"client gets a truncated response:\n{trace}", file=sys.stderr, flush=True)
        response.fail(f"{type(exc).__name__}: {exc}")

    async def handle_call(self, method_name: str, /, *args: Any, **kwargs: Any) -> Any:
        """A call through a DeploymentHandle: ``handle.remote(...)`` or ``handle.method.remote``."""
        self._ongoing += 1
        try:
            async with self._slots:
                return await self._call_user(self._method(method_name), *args, **kwargs)
        finally:
            self._request_done()

    async def handle_call_stream(self, method_name: str, /, *args: Any,
                                 **kwargs: Any) -> tuple[list, str, int | None]:
        """A streaming handle call (``handle.options(stream=True)``) of a generator method:
        ``(first items, MORE | DONE, stream id)``; ``stream_next(stream id)`` gives the rest."""
        self._ongoing += 1
        await self._slots.acquire()
        handed_over = False
        try:
            generator = await self._call_user(self._method(method_name), *args, **kwargs)
            if not (inspect.isgenerator(generator) or inspect.isasyncgen(generator)):
                raise TypeError(f"handle.options(stream=True) needs a generator method (one "
                                f"that yields), but {self._name}.{method_name} returned "
                                f"{type(generator).__name__}; call it without stream=True")
            stream = ItemStream()
            task = asyncio.get_running_loop().create_task(self._pump(generator, stream))
            handed_over = True
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            items, state = await stream.next_chunks()
            if state == DONE:
                return items, state, None
            return items, state, self._streams.add(stream, task)
        finally:
            if not handed_over:
                self._slots.release()
                self._request_done()

    async def _pump(self, generator: Any, stream: ItemStream) -> None:
        """Move a generator's items into a stream (a sync generator steps on the pool)."""
        try:
            if inspect.isasyncgen(generator):
                async for item in generator:
                    stream.put(item)
            else:
                loop, end = asyncio.get_running_loop(), object()
                while (item := await loop.run_in_executor(
                        self._pool(), next, generator, end)) is not end:
                    stream.put(item)
            stream.finish()
        except asyncio.CancelledError:
            stream.fail("cancelled")
            raise
        except Exception as exc:  # noqa: BLE001 - the caller gets it after the items before it
            stream.finish(exc)
        finally:
            self._slots.release()
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

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        """The threads that run synchronous user code (at most max_ongoing_requests, 32)."""
        if self._executor is None:
            workers = max(1, min(self._config["max_ongoing_requests"], 32))
            self._executor = concurrent.futures.ThreadPoolExecutor(
                workers, thread_name_prefix=f"serve-{self._name}")
        return self._executor

    async def _call_user(self, function, *args: Any, **kwargs: Any) -> Any:
        if _is_async(function):
            value = function(*args, **kwargs)
        else:
            value = await asyncio.get_running_loop().run_in_executor(
                self._pool(), functools.partial(function, *args, **kwargs))
        if inspect.isawaitable(value):
            value = await value
        return value


def _pack(status: int, headers: list, body: bytes, stream_id: int | None) -> bytes:
    return pickle.dumps((status, headers, body, stream_id), protocol=5)


def _is_async(function: Any) -> bool:
    """Whether calling ``function`` is cheap enough for the event loop: it returns a coroutine
    or an async generator without running user code."""
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        return True
    call = getattr(type(function), "__call__", None)  # a callable object with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


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
