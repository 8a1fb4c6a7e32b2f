"""The HTTP proxy: uvicorn serving one plain ASGI app that forwards requests to replicas.

    client ──HTTP──▶ uvicorn (a thread of the driver, its own event loop)
                       │ HTTPProxy.__call__(scope, receive, send)
                       │   longest route prefix ─▶ route ─▶ least loaded replica (or queue, or 503)
                       │   replica.handle_http.remote(pickle((scope, body)))  ── ObjectRef ──┐
                       ◀── status, headers, body ◀── RefWatcher (one thread, ray.wait) ◀────┘

It runs in the driver process, so a request costs one round trip to a replica and nothing else.
Routes come from the controller; the serve API pushes them here after every change (and an
unmatched path refreshes them at most once a second). Nothing the proxy answers can run code,
deploy or stop anything: it only forwards requests to deployments and lists the routes at
``/-/routes``. It listens on 127.0.0.1 unless ``serve.start(http_options={"host": ...})``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import pickle
import socket
import sys
import threading
import time
import uuid
from typing import Any

from raylite.serve._common import route_matches
from raylite.serve._router import ReplicaSet, watcher

_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_JSON = [(b"content-type", b"application/json")]
ROUTE_REFRESH_S = 1.0


class _Route:
    """One route prefix: its deployment's replicas and the requests waiting for a free one."""

    __slots__ = ("name", "prefix", "replicas", "waiters")

    def __init__(self, prefix: str, name: str, replicas: ReplicaSet):
        self.prefix = prefix
        self.name = name
        self.replicas = replicas
        self.waiters: collections.deque = collections.deque()


class HTTPProxy:
    """The ASGI app and the uvicorn server thread around it."""

    def __init__(self, host: str, port: int, controller: Any):
        self.host = host
        self.requested_port = port
        self.port = port
        self._controller = controller
        self._routes: dict[str, _Route] = {}        # by prefix
        self._prefixes: list[str] = []              # longest first
        self._routes_version = -1
        self._last_refresh = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    # ----- lifecycle --------------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> None:
        """Bind the port and serve in a background thread; returns once it accepts connections."""
        import uvicorn

        sock = _bind(self.host, self.requested_port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self, log_config=None, log_level="warning", lifespan="off",
                                access_log=False, proxy_headers=False, server_header=False,
                                timeout_graceful_shutdown=2)
        started = self._started

        class _Server(uvicorn.Server):
            async def startup(self, sockets=None):
                await super().startup(sockets=sockets)
                started.set()

        self._server = _Server(config)
        self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True,
                                        name="serve-http-proxy")
        self._thread.start()
        if not started.wait(timeout_s) or self._error is not None:
            raise RuntimeError(f"the Serve HTTP proxy did not start on {self.host}:{self.port}: "
                               f"{self._error!r}")

    def _serve(self, sock: socket.socket) -> None:
        try:
            import uvloop
            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._server.serve(sockets=[sock]))
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
        finally:
            self._started.set()
            sock.close()
            loop.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout_s)
        self._server = None

    # ----- routes -----------------------------------------------------------------------------
    def update_routes(self, version: int, routes: dict, timeout_s: float = 10.0) -> None:
        """Install the controller's routes (from any thread; applied on the proxy's loop)."""
        if self._loop is None or self._loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self._apply(version, routes), self._loop)
        future.result(timeout_s)

    async def _apply(self, version: int, routes: dict) -> None:
        if version < self._routes_version:
            return
        self._routes_version = version
        self._last_refresh = time.monotonic()
        old = {route.name: route for route in self._routes.values()}
        new: dict[str, _Route] = {}
        for prefix, (name, replicas, max_ongoing, max_queued) in routes.items():
            route = old.pop(name, None)
            if route is None:
                route = _Route(prefix, name, ReplicaSet(name, replicas, max_ongoing, max_queued))
            else:
                route.prefix = prefix
                route.replicas.update(replicas, max_ongoing, max_queued, version)
            new[prefix] = route
            self._wake_waiters(route)
        for route in old.values():  # deleted deployments: their queued requests get a 503
            while route.waiters:
                waiter = route.waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
        self._routes = new
        self._prefixes = sorted(new, key=len, reverse=True)

    async def _refresh(self) -> None:
        self._last_refresh = time.monotonic()
        try:
            version, routes = await watcher().watch_async(self._controller.get_routes.remote())
        except Exception:  # noqa: BLE001 - the controller is gone (shutting down)
            return
        await self._apply(version, routes)

    def _match(self, path: str) -> _Route | None:
        for prefix in self._prefixes:
            if route_matches(prefix, path):
                return self._routes[prefix]
        return None

    def queued(self, name: str) -> int:
        """How many requests wait at the proxy for a replica of deployment ``name``."""
        for route in self._routes.values():
            if route.name == name:
                return sum(1 for w in route.waiters if not w.done())
        return 0

    # ----- requests ---------------------------------------------------------------------------
    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        path = scope["path"]
        if path.startswith("/-/"):
            if scope.get("method", "GET") not in ("GET", "HEAD"):
                await _respond(send, 405, _TEXT, b"the proxy's own paths are read-only: GET or HEAD")
                return
            await self._builtin(path, send)
            return
        route = self._match(path)
        if route is None and time.monotonic() - self._last_refresh > ROUTE_REFRESH_S:
            await self._refresh()
            route = self._match(path)
        if route is None:
            await _respond(send, 404, _JSON, json.dumps({
                "detail": f"no deployment serves path {path!r}",
                "routes": {r.prefix: r.name for r in self._routes.values()}}).encode())
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        replica_id = await self._acquire(route)
        if replica_id is None:
            await self._overloaded(route, send)
            return
        try:
            status, headers, content = await self._forward(route, replica_id, scope, body)
        finally:
            self._release(route, replica_id)
        await _respond(send, status, headers, content)

    async def _forward(self, route: _Route, replica_id: str, scope: dict, body: bytes) -> tuple:
        replicas = route.replicas
        with replicas.lock:
            actor = replicas.handles.get(replica_id)
        sub_scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": scope.get("http_version", "1.1"), "method": scope["method"],
            "scheme": scope.get("scheme", "http"), "path": scope["path"],
            "raw_path": scope.get("raw_path"), "query_string": scope.get("query_string", b""),
            "root_path": scope.get("root_path", "") + ("" if route.prefix == "/" else route.prefix),
            "headers": list(scope.get("headers", ())), "client": scope.get("client"),
            "server": scope.get("server"),
        }
        try:
            if actor is None:
                raise RuntimeError(f"replica {replica_id} was removed")
            ref = actor.handle_http.remote(pickle.dumps((sub_scope, body), protocol=5))
            return pickle.loads(await watcher().watch_async(ref))
        except Exception as exc:  # noqa: BLE001 - the replica died or could not be reached
            return self._replica_failure(route, replica_id, exc)

    def _replica_failure(self, route: _Route, replica_id: str, exc: BaseException) -> tuple:
        error_id = uuid.uuid4().hex[:12]
        print(f"serve: the proxy could not get a response from replica {replica_id} of "
              f"deployment {route.name!r} (error id {error_id}): {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        import raylite
        if isinstance(exc, raylite.exceptions.ActorDiedError):
            replicas = route.replicas
            with replicas.lock:
                remaining = [(r, h) for r, h in replicas.handles.items() if r != replica_id]
            replicas.update(remaining, replicas.max_ongoing_requests,
                            replicas.max_queued_requests, replicas.version)
            try:
                self._controller.replica_failed.remote(route.name, replica_id, str(exc))
            except Exception:  # noqa: BLE001 - the controller is gone too
                pass
        text = (f"Internal Server Error: a replica of deployment {route.name!r} failed "
                f"(error id {error_id}; the server's log has details)")
        return 500, _TEXT, text.encode()

    async def _acquire(self, route: _Route) -> str | None:
        """A replica with a free slot; else wait in the route's queue; None if that is full."""
        replicas = route.replicas
        chosen = replicas.choose()
        if chosen is not None or not replicas.order:
            return chosen
        if len(route.waiters) >= replicas.max_queued_requests:
            return None
        waiter = asyncio.get_running_loop().create_future()
        route.waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                self._release(route, waiter.result())
            raise

    def _release(self, route: _Route, replica_id: str) -> None:
        route.replicas.release(replica_id)
        self._wake_waiters(route)

    @staticmethod
    def _wake_waiters(route: _Route) -> None:
        waiters = route.waiters
        while waiters:
            if waiters[0].done():
                waiters.popleft()
                continue
            chosen = route.replicas.choose()
            if chosen is None:
                return
            waiters.popleft().set_result(chosen)

    async def _overloaded(self, route: _Route, send) -> None:
        replicas = route.replicas
        if not replicas.order:
            text = f"Service Unavailable: deployment {route.name!r} has no running replicas"
        else:
            text = (f"Service Unavailable: all {len(replicas.order)} replica(s) of deployment "
                    f"{route.name!r} are at max_ongoing_requests="
                    f"{replicas.max_ongoing_requests} and {len(route.waiters)} request(s) are "
                    f"queued (max_queued_requests={replicas.max_queued_requests}); retry later")
        await _respond(send, 503, _TEXT, text.encode())

    async def _builtin(self, path: str, send) -> None:
        if path == "/-/routes":
            body = json.dumps({r.prefix: r.name for r in self._routes.values()}).encode()
            await _respond(send, 200, _JSON, body)
        elif path == "/-/healthz":
            await _respond(send, 200, _TEXT, b"success")
        else:
            await _respond(send, 404, _TEXT, b"Not Found: /-/routes and /-/healthz are the "
                                             b"proxy's own paths")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"the Serve HTTP proxy cannot listen on {host}:{port} "
                      f"({exc.strerror}); is another server using the port? Pass "
                      "serve.start(http_options={'port': ...}) to pick another one") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def _read_body(receive) -> bytes | None:
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send, status: int, headers: list, body: bytes) -> None:
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
