"""The HTTP proxy: uvicorn serving one plain ASGI app that forwards requests to replicas.

    client ──HTTP──▶ uvicorn (a thread of the driver, its own event loop)
                       │ HTTPProxy.__call__(scope, receive, send)
                       │   longest route prefix ─▶ route ─▶ least loaded replica (or queue, or 503)
                       │   replica.handle_http.remote(pickle((scope, body)))  ── await ref ──┐
                       ◀── status, headers, body (+ stream_next calls for a streamed one) ◀──┘

It runs in the driver process, so a request costs one round trip to a replica and nothing else.
Routes come from the controller: a long-poll (``listen_for_change``) brings every change within
milliseconds, and the serve API also pushes them after each change it makes. Nothing the proxy
answers can run code, deploy or stop anything: it only forwards requests to deployments and lists
the routes at ``/-/routes``. It listens on 127.0.0.1 unless ``serve.start(http_options=...)``.

Overload and failure:

- every replica at ``max_ongoing_requests``: the request waits in the route's queue; a full queue
  (``max_queued_requests``) answers 503 at once, so clients back off instead of timing out;
- no replica running (starting, being replaced, scaled to zero): the request waits up to
  ``NO_REPLICA_WAIT_S`` for one (503 if the deployment's deploy failed);
- the replica dies with the request in flight: it is dropped from the route, the controller is
  told, and the request is retried once on another replica (a streamed response only if none of
  it was sent yet);
- ``stop()`` is graceful: it stops accepting connections and lets requests in flight finish.

Request bodies are read whole before a request is forwarded, so their size is bounded:
``http_options={"max_request_body_bytes": N}`` (default 10 MiB, ``None`` for no limit). A body
declared larger (Content-Length) is refused with 413 before any of it is read; a chunked one is
refused as soon as it grows past the limit.
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

from raylite.serve import _streaming
from raylite.serve._common import (
    DEFAULT_KEEP_ALIVE_TIMEOUT_S,
    DEFAULT_MAX_REQUEST_BODY_BYTES,
    RouteTarget,
    route_matches,
)
from raylite.serve._http import JSON, TEXT, send_whole
from raylite.serve._router import ReplicaSet, ref_future

ROUTE_REFRESH_S = 1.0        # an unmatched path refreshes the routes at most this often
NO_REPLICA_WAIT_S = 60.0     # how long a request waits for a deployment with no running replica
QUEUE_REPORT_S = 0.1         # how often queue lengths go to the controller (autoscaling input)
LISTEN_TIMEOUT_S = 30.0


class _Route:
    """One route prefix: its deployment's replicas and the requests waiting for a free one."""

    __slots__ = ("name", "prefix", "replicas", "waiters", "expects_replicas")

    def __init__(self, prefix: str, target: RouteTarget):
        self.prefix = prefix
        self.name = target.name
        self.replicas = ReplicaSet(target.name, target.replicas, target.max_ongoing_requests,
                                   target.max_queued_requests)
        self.waiters: collections.deque = collections.deque()
        self.expects_replicas = target.expects_replicas

    def queued(self) -> int:
        return sum(1 for waiter in self.waiters if not waiter.done())


class _ReplicaGone(Exception):
    """The replica died (or was removed) before answering: the request may be retried."""


class HTTPProxy:
    """The ASGI app and the uvicorn server thread around it."""

    def __init__(self, host: str, port: int, controller: Any,
                 max_body_bytes: int | None = DEFAULT_MAX_REQUEST_BODY_BYTES, *,
                 root_path: str = "", request_timeout_s: float | None = None,
                 keep_alive_timeout_s: float = DEFAULT_KEEP_ALIVE_TIMEOUT_S,
                 middlewares: tuple = ()):
        self.host = host
        self.max_body_bytes = max_body_bytes
        self.root_path = root_path.rstrip("/")       # every route is mounted under it
        self.request_timeout_s = request_timeout_s   # end to end, then 408
        self.keep_alive_timeout_s = keep_alive_timeout_s
        self.middlewares = tuple(middlewares)        # Starlette Middleware(cls, *args, **kw)
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
        self._stopping = False
        self._reported_queues: dict[str, int] = {}
        self._report_pending = False

    # ----- lifecycle --------------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> None:
        """Bind the port and serve in a background thread; returns once it accepts connections."""
        import uvicorn

        sock = _bind(self.host, self.requested_port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._asgi_app(), log_config=None, log_level="warning",
                                lifespan="off", access_log=False, proxy_headers=False,
                                server_header=False, timeout_graceful_shutdown=2,
                                timeout_keep_alive=self.keep_alive_timeout_s)
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

    def _asgi_app(self) -> Any:
        """The proxy wrapped in the user's middlewares, the first one outermost (Starlette's
        order)."""
        app: Any = self
        for middleware in reversed(self.middlewares):
            cls, args, kwargs = middleware
            app = cls(app, *args, **kwargs)
        return app

    def _serve(self, sock: socket.socket) -> None:
        try:
            import uvloop
            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._main(sock))
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
        finally:
            self._started.set()
            sock.close()
            loop.close()

    async def _main(self, sock: socket.socket) -> None:
        listener = asyncio.get_running_loop().create_task(self._listen_for_routes())
        try:
            await self._server.serve(sockets=[sock])
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    def stop(self, graceful_timeout_s: float = 2.0) -> None:
        """Stop accepting connections, let requests in flight finish (up to
        ``graceful_timeout_s``), then stop the server thread."""
        if self._server is None:
            return
        self._stopping = True
        self._server.config.timeout_graceful_shutdown = max(0.1, graceful_timeout_s)
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(graceful_timeout_s + 5.0)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(5.0)
        self._server = None

    # ----- routes -----------------------------------------------------------------------------
    def update_routes(self, version: int, routes: dict, timeout_s: float = 10.0) -> None:
        """Install the controller's routes (from any thread; applied on the proxy's loop)."""
        if self._loop is None or self._loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self._apply(version, routes), self._loop)
        future.result(timeout_s)

    async def _apply(self, version: int, routes: dict[str, RouteTarget]) -> None:
        if version < self._routes_version:
            return
        self._routes_version = version
        self._last_refresh = time.monotonic()
        old = {route.name: route for route in self._routes.values()}
        new: dict[str, _Route] = {}
        for prefix, target in routes.items():
            target = RouteTarget(*target)
            route = old.pop(target.name, None)
            if route is None:
                route = _Route(prefix, target)
            else:
                route.prefix = prefix
                route.expects_replicas = target.expects_replicas
                route.replicas.update(target.replicas, target.max_ongoing_requests,
                                      target.max_queued_requests, version)
            new[prefix] = route
            self._wake_waiters(route)
            if not route.expects_replicas and not route.replicas.order:
                self._fail_waiters(route)  # none will come: 503 now rather than after a wait
        for route in old.values():  # deleted deployments: their queued requests get a 503,
            route.expects_replicas = False  # and a retry of one in flight gets no replica
            route.replicas.update([], route.replicas.max_ongoing_requests,
                                  route.replicas.max_queued_requests, version)
            self._fail_waiters(route)
        self._routes = new
        self._prefixes = sorted(new, key=len, reverse=True)

    async def _listen_for_routes(self) -> None:
        """Long-poll the controller: each change of routes or replicas arrives as it happens."""
        while not self._stopping and self._controller is not None:
            try:
                version, routes = await ref_future(self._controller.listen_for_change.remote(
                    self._routes_version, LISTEN_TIMEOUT_S))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the controller is gone or restarting
                if self._stopping:
                    return
                await asyncio.sleep(ROUTE_REFRESH_S)
                continue
            await self._apply(version, routes)

    async def _refresh(self) -> None:
        self._last_refresh = time.monotonic()
        try:
            version, routes = await ref_future(self._controller.get_routes.remote())
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
                return route.queued()
        return 0

    # ----- requests ---------------------------------------------------------------------------
    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        path = scope["path"]
        if self.root_path:
            if path != self.root_path and not path.startswith(self.root_path + "/"):
                await send_whole(send, 404, TEXT, (
                    f"Not Found: every route is under the root path {self.root_path!r}"
                ).encode())
                return
            scope = dict(scope, root_path=scope.get("root_path", "") + self.root_path)
            path = path[len(self.root_path):] or "/"
        if path.startswith("/-/"):
            if scope.get("method", "GET") not in ("GET", "HEAD"):
                await send_whole(send, 405, TEXT,
                                 b"the proxy's own paths are read-only: GET or HEAD")
                return
            await self._builtin(path, send)
            return
        route = self._match(path)
        if route is None and time.monotonic() - self._last_refresh > ROUTE_REFRESH_S:
            await self._refresh()
            route = self._match(path)
        if route is None:
            await send_whole(send, 404, JSON, json.dumps({
                "detail": f"no deployment serves path {path!r}",
                "routes": {r.prefix: r.name for r in self._routes.values()}}).encode())
            return
        try:
            body = await _read_body(receive, scope, self.max_body_bytes)
        except _BodyTooLarge as too_large:
            await send_whole(send, 413, TEXT + [(b"connection", b"close")], str(too_large).encode())
            return
        if body is None:
            return  # the client went away
        payload = pickle.dumps((_replica_scope(scope, route.prefix), body), protocol=5)
        if self.request_timeout_s is None:
            await self._handle(route, payload, receive, send)
            return
        started = []

        async def send_noting_start(message: dict) -> None:
            started.append(True)
            await send(message)
        try:
            await asyncio.wait_for(self._handle(route, payload, receive, send_noting_start),
                                   self.request_timeout_s)
        except asyncio.TimeoutError:
            if started:  # a streamed answer ran past the limit: it just ends there
                return
            await send_whole(send, 408, TEXT + [(b"connection", b"close")], (
                f"Request Timeout: deployment {route.name!r} did not answer within the proxy's "
                f"request_timeout_s of {self.request_timeout_s:g} s").encode())

    async def _handle(self, route: _Route, payload: bytes, receive, send) -> None:
        """Send the request to a replica, retrying once on another one if it dies."""
        for attempt in (1, 2):
            replica_id = await self._acquire(route)
            if replica_id is None:
                await self._unavailable(route, send)
                return
            try:
                actor, (status, headers, content, stream_id) = await self._forward(
                    route, replica_id, payload)
            except asyncio.CancelledError:  # request_timeout_s: the slot is free again
                self._release(route, replica_id)
                raise
            except _ReplicaGone as gone:
                self._release(route, replica_id)
                if attempt == 1:
                    print(f"serve: {gone}; retrying the request on another replica",
                          file=sys.stderr, flush=True)
                    continue
                await send_whole(send, 503, TEXT, (
                    f"Service Unavailable: two replicas of deployment {route.name!r} died "
                    "while serving this request; retry later").encode())
                return
            except Exception as exc:  # noqa: BLE001 - e.g. the call could not be sent
                self._release(route, replica_id)
                await send_whole(send, *self._failure(route, replica_id, exc))
                return
            if stream_id is None:
                self._release(route, replica_id)
                await send_whole(send, status, headers, content)
                return
            try:
                await self._relay_stream(route, replica_id, actor, stream_id,
                                         (status, headers, content), receive, send)
            finally:
                self._release(route, replica_id)
            return

    async def _forward(self, route: _Route, replica_id: str, payload: bytes) -> tuple:
        """(the replica's actor, its answer: status, headers, body, stream id or None)."""
        import raylite
        replicas = route.replicas
        with replicas.lock:
            actor = replicas.handles.get(replica_id)
        if actor is None:
            raise _ReplicaGone(f"replica {replica_id} of deployment {route.name!r} was removed")
        try:
            return actor, pickle.loads(await ref_future(actor.handle_http.remote(payload)))
        except raylite.exceptions.ActorDiedError as exc:
            self._drop_replica(route, replica_id, str(exc))
            raise _ReplicaGone(f"replica {replica_id} of deployment {route.name!r} died while "
                               f"serving a request ({exc})") from None

    async def _relay_stream(self, route: _Route, replica_id: str, actor: Any, stream_id: int,
                            head: tuple, receive, send) -> None:
        """Pass a streamed response on to the client chunk by chunk, as the replica makes it."""
        status, headers, first = head
        headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if first:
            await send({"type": "http.response.body", "body": first, "more_body": True})
        gone = asyncio.get_running_loop().create_task(_wait_disconnect(receive))
        state = _streaming.MORE
        try:
            while state == _streaming.MORE:
                poll = ref_future(actor.stream_next.remote(stream_id))
                await asyncio.wait({poll, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not poll.done():  # the client went away: stop the replica's producer
                    poll.cancel()
                    actor.stream_cancel.remote(stream_id)
                    return
                try:
                    data, state = poll.result()
                except Exception as exc:  # noqa: BLE001 - the replica died mid-stream
                    self._failure(route, replica_id, exc)
                    return  # uvicorn closes the connection: the client sees a cut response
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            if state == _streaming.FAILED:
                return  # the same: a truncated response, never a false end
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()

    def _drop_replica(self, route: _Route, replica_id: str, reason: str) -> None:
        """Stop routing to a replica that died, and tell the controller (it replaces it)."""
        route.replicas.drop(replica_id)
        if self._controller is not None:
            try:
                self._controller.replica_failed.remote(route.name, replica_id, reason)
            except Exception:  # noqa: BLE001 - the controller is gone too
                pass

    @staticmethod
    def _failure(route: _Route, replica_id: str, exc: BaseException) -> tuple:
        error_id = uuid.uuid4().hex[:12]
        print(f"serve: the proxy could not get a response from replica {replica_id} of "
              f"deployment {route.name!r} (error id {error_id}): {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        text = (f"Internal Server Error: a replica of deployment {route.name!r} failed "
                f"(error id {error_id}; the server's log has details)")
        return 500, TEXT, text.encode()

    # ----- waiting for a replica --------------------------------------------------------------
    async def _acquire(self, route: _Route) -> str | None:
        """A replica with a free slot; else wait in the route's queue; None if that is full
        (or no replica came within NO_REPLICA_WAIT_S, or the deployment cannot start any)."""
        replicas = route.replicas
        chosen = replicas.choose()
        if chosen is not None:
            return chosen
        empty = not replicas.order
        if empty and not route.expects_replicas:
            return None
        if len(route.waiters) >= replicas.max_queued_requests:
            return None
        waiter = asyncio.get_running_loop().create_future()
        route.waiters.append(waiter)
        self._queue_changed(urgent=empty)
        try:
            if empty:
                return await asyncio.wait_for(asyncio.shield(waiter), NO_REPLICA_WAIT_S)
            return await waiter
        except asyncio.TimeoutError:
            if waiter.done() and not waiter.cancelled():  # a replica came as time ran out
                return waiter.result()
            waiter.cancel()
            return None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                self._release(route, waiter.result())
            waiter.cancel()
            raise
        finally:
            self._queue_changed()

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

    @staticmethod
    def _fail_waiters(route: _Route) -> None:
        while route.waiters:
            waiter = route.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _queue_changed(self, urgent: bool = False) -> None:
        """Report queue lengths to the controller soon (autoscaling counts waiting requests)."""
        if self._report_pending or self._controller is None:
            return
        self._report_pending = True
        asyncio.get_running_loop().call_later(0 if urgent else QUEUE_REPORT_S, self._report)

    def _report(self) -> None:
        self._report_pending = False
        counts = {route.name: route.queued() for route in self._routes.values()}
        changed = {name: n for name, n in counts.items()
                   if n != self._reported_queues.get(name, 0)}
        if not changed:
            return
        self._reported_queues = {name: n for name, n in counts.items() if n}
        try:
            self._controller.record_queued.remote(changed)
        except Exception:  # noqa: BLE001 - the controller is gone (shutting down)
            pass

    async def _unavailable(self, route: _Route, send) -> None:
        replicas = route.replicas
        if not replicas.order:
            text = (f"Service Unavailable: deployment {route.name!r} has no running replicas"
                    + ("" if route.expects_replicas else " (its deploy failed; see serve "
                       "status)"))
        else:
            text = (f"Service Unavailable: all {len(replicas.order)} replica(s) of deployment "
                    f"{route.name!r} are at max_ongoing_requests="
                    f"{replicas.max_ongoing_requests} and {route.queued()} request(s) are "
                    f"queued (max_queued_requests={replicas.max_queued_requests}); retry later")
        await send_whole(send, 503, TEXT, text.encode())

    async def _builtin(self, path: str, send) -> None:
        if path == "/-/routes":
            body = json.dumps({r.prefix: r.name for r in self._routes.values()}).encode()
            await send_whole(send, 200, JSON, body)
        elif path == "/-/healthz":
            await send_whole(send, 200, TEXT, b"success")
        else:
            await send_whole(send, 404, TEXT, b"Not Found: /-/routes and /-/healthz are the "
                                              b"proxy's own paths")


def _replica_scope(scope: dict, prefix: str) -> dict:
    """The part of the ASGI scope a replica needs (picklable), mounted under the route prefix."""
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": scope.get("http_version", "1.1"), "method": scope["method"],
        "scheme": scope.get("scheme", "http"), "path": scope["path"],
        "raw_path": scope.get("raw_path"), "query_string": scope.get("query_string", b""),
        "root_path": scope.get("root_path", "") + ("" if prefix == "/" else prefix),
        "headers": list(scope.get("headers", ())), "client": scope.get("client"),
        "server": scope.get("server"),
    }


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


class _BodyTooLarge(Exception):
    def __init__(self, limit: int, size: int | None):
        told = f"{size} bytes" if size is not None else "more"
        super().__init__(
            f"Payload Too Large: the request body ({told}) is over the proxy's limit of {limit} "
            "bytes; the server's owner can raise it with serve.start(http_options="
            "{'max_request_body_bytes': N}) or `serve run/start --max-request-body-bytes N`")


async def _read_body(receive, scope: dict, limit: int | None) -> bytes | None:
    """The whole request body (None if the client went away); _BodyTooLarge past ``limit``."""
    if limit is not None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.strip().isdigit() and int(value) > limit:
                raise _BodyTooLarge(limit, int(value))
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise _BodyTooLarge(limit, None)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _wait_disconnect(receive) -> None:
    """Return once the client has gone away (ASGI ``http.disconnect``)."""
    while (await receive())["type"] != "http.disconnect":
        pass
