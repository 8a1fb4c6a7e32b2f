"""The dashboard's lifecycle: bind a port now, import and serve in a daemon thread, on demand.

    init() ─▶ start(node)  binds 127.0.0.1:8265 (or the next free port), returns the URL at once
                 └─▶ thread "raylite-dashboard":
                        until the first connection: sample utilisation once a second (cheap)
                        on the first connection:    import fastapi + uvicorn, build the app, serve
    shutdown() ─▶ stop()   wakes the waiting thread, or asks uvicorn to exit, and waits briefly

Binding in the caller's thread makes the printed URL true (the port is ours). Importing FastAPI
costs about a second of CPU and ~25 MB; deferring it to the first visit keeps it off ``init``'s
path and out of the first tasks' way (the import would hold the GIL the runtime's I/O thread
needs), and a driver whose dashboard nobody opens never pays it. The first visit waits for the
import: its connection sits in the listen backlog until uvicorn accepts it.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import select
import socket
import sys
import threading
from typing import Any

PORT_TRIES = 100
HISTORY_POINTS = 600      # one a second: the last ten minutes of utilisation
SAMPLE_INTERVAL_S = 1.0
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Dashboard:
    """One dashboard server for one node."""

    def __init__(self, node: Any, host: str, port: int, allowed_hosts: Any = None):
        self.node = node
        self.host = host
        self.allowed_hosts = list(allowed_hosts or [])
        self.sock = bind_first_free(host, port)
        self.port = self.sock.getsockname()[1]
        shown = "127.0.0.1" if host in ("0.0.0.0", "", "localhost") else host
        shown = f"[{shown}]" if ":" in shown else shown
        self.url = f"http://{shown}:{self.port}"
        self.history: collections.deque = collections.deque(maxlen=HISTORY_POINTS)
        self.server: Any = None
        self.error: BaseException | None = None
        self.serving = threading.Event()   # set once uvicorn accepts connections
        self.done = threading.Event()      # set when the thread has finished
        self._lock = threading.Lock()
        self._stopping = False
        self._closed = False               # the thread closed its socket and pipe
        self._wake_r, self._wake_w = os.pipe()
        self.thread = threading.Thread(target=self._run, name="raylite-dashboard", daemon=True)

    def start(self) -> str:
        self.thread.start()
        return self.url

    # ----- the thread -------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if not self._wait_for_first_visit():
                return
            import asyncio
            server = self._make_server()
            with self._lock:
                if self._stopping:
                    return
                self.server = server
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._serve(server))
            finally:
                loop.close()
        except BaseException as exc:  # noqa: BLE001 - reported once on stderr, init goes on
            self.error = exc
            if not self._stopping:
                print(f"raylite: the dashboard stopped: {type(exc).__name__}: {exc}",
                      file=sys.stderr, flush=True)
        finally:
            with self._lock:
                self._closed = True
                self.sock.close()
                os.close(self._wake_r)
                os.close(self._wake_w)
            self.serving.set()
            self.done.set()

    def _wait_for_first_visit(self) -> bool:
        """Sample utilisation until a connection arrives (True) or stop() is called (False)."""
        timeout_s = 0.05  # the first sample soon, but not while init() is still running
        while not self._stopping:
            readable, _, _ = select.select([self.sock, self._wake_r], [], [], timeout_s)
            if self._wake_r in readable or self._stopping:
                return False
            if readable:
                return True
            from raylite.dashboard._node_views import utilisation_sample
            self._sample(utilisation_sample)
            timeout_s = SAMPLE_INTERVAL_S
        return False

    def _sample(self, utilisation_sample: Any) -> None:
        try:
            self.history.append(utilisation_sample(self.node))
        except Exception:  # noqa: BLE001, S110 - the node is going away; stop() follows
            pass

    async def _serve(self, server: Any) -> None:
        import asyncio

        from raylite.dashboard._node_views import utilisation_sample

        async def sample_forever() -> None:
            while True:
                await asyncio.sleep(SAMPLE_INTERVAL_S)
                self._sample(utilisation_sample)

        sampler = asyncio.ensure_future(sample_forever())
        try:
            await server.serve(sockets=[self.sock])
        finally:
            sampler.cancel()

    def _make_server(self) -> Any:
        import uvicorn

        from raylite.dashboard._app import make_app
        app = make_app(self.node, self.host, self.port, self.url, self.history,
                       self.allowed_hosts)
        config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False,
                                lifespan="off", ws="none", loop="asyncio", http="h11",
                                proxy_headers=False, server_header=False, date_header=False,
                                timeout_graceful_shutdown=1, limit_concurrency=64)
        serving = self.serving

        class _Server(uvicorn.Server):
            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets=sockets)
                serving.set()

        return _Server(config)

    # ----- from other threads -----------------------------------------------------------------
    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop serving (or waiting); waits up to ``timeout_s`` for in-flight requests."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            server = self.server
            if server is None and not self._closed:
                os.write(self._wake_w, b"x")  # wake the thread out of its wait
        if server is not None:
            server.should_exit = True
            if threading.current_thread() is not self.thread:
                self.thread.join(timeout_s)
                if self.thread.is_alive():
                    server.force_exit = True

    def wait_serving(self, timeout_s: float) -> bool:
        """True once the server accepts connections (for tests and scripts)."""
        return self.serving.wait(timeout_s) and self.error is None and not self.done.is_set()


def bind_first_free(host: str, port: int, tries: int = PORT_TRIES) -> socket.socket:
    """A listening socket on ``host`` at ``port``, or the next free port above it."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"dashboard_port must be an integer from 0 to 65535, got {port!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bind_host = "127.0.0.1" if host == "localhost" else host
    last_error: OSError | None = None
    for candidate in ([0] if port == 0 else range(port, min(port + tries, 65536))):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind_host, candidate))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        sock.setblocking(False)
        return sock
    raise OSError(f"the dashboard found no free port on {host} from {port} to "
                  f"{port + tries - 1} ({last_error}); pass init(dashboard_port=...) or "
                  "include_dashboard=False")


def dependencies_missing() -> list[str]:
    """The packages the dashboard needs that are not installed (checked without importing)."""
    return [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]


def is_loopback(host: str) -> bool:
    return host in _LOOPBACK or host.startswith("127.")
