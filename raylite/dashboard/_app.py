"""The ASGI app: a FastAPI app of GET endpoints, wrapped in a guard that enforces the rules.

    request ─▶ _Guard: Host allowed? (else 403)   GET or HEAD? (else 405)
                  │    adds no-store / nosniff / CSP / frame-deny headers, never any CORS header
                  ▼
             FastAPI: GET /               the page (index.html, next to this file)
                      GET /api/...        JSON from _views.Views

Nothing here runs code, submits work, or stops or deletes anything: every endpoint reads.

The Host check stops DNS rebinding: a page from evil.example whose name is re-pointed at
127.0.0.1 sends ``Host: evil.example``. Rebinding needs a DNS name, so IP literals and
``localhost`` are allowed on any port (SSH and editor port forwarding change the port), as are
this machine's names when serving on all interfaces and the names in the allow-list
(``RAYLITE_DASHBOARD_ALLOWED_HOSTS``, comma-separated); every other name gets 403.
Imported only in the dashboard's thread (fastapi is not imported by ``init``).
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
from typing import Any

from raylite.dashboard._views import Views

ALLOWED_METHODS = ("GET", "HEAD")
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"content-security-policy",
     (b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
      b"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
      b"frame-ancestors 'none'")),
]
ENDPOINTS = {
    "/api/cluster": "resources, utilisation, object store, driver",
    "/api/workers": "worker processes: pid, state, current task, memory",
    "/api/tasks": "tasks by state, live tasks, recent executions, recent failures with tracebacks",
    "/api/actors": "actors: class, name, state, pid, pending calls",
    "/api/objects": "object store: totals by location (shared memory, spilled, inline), "
                    "the largest objects",
    "/api/tune": "Tune experiments under the results folder, with their trials",
    "/api/tune/{experiment}?metric=NAME": "one experiment: trials and a metric per iteration",
    "/api/rllib": "RLlib training curves (episode reward per iteration)",
    "/api/serve": "Serve deployments and their replicas' health",
    "/api/timeline": "finished task executions as a Chrome trace (open it in Perfetto)",
}


ALLOWED_HOSTS_VARIABLE = "RAYLITE_DASHBOARD_ALLOWED_HOSTS"


def allowed_names(host: str, extra: Any = None) -> frozenset[str]:
    """The DNS names (lower case, any port) a Host header may carry besides IP literals and
    ``localhost``: this machine's names when serving on all interfaces, ``extra`` and the
    comma-separated names in RAYLITE_DASHBOARD_ALLOWED_HOSTS."""
    names = {"localhost"}
    if host in ("0.0.0.0", "::", ""):
        import socket
        names.update({socket.gethostname().lower(), socket.getfqdn().lower()})
    elif not _is_ip(host):
        names.add(host.lower())
    listed = list(extra or []) + os.environ.get(ALLOWED_HOSTS_VARIABLE, "").split(",")
    names.update(name.strip().lower().rstrip(".") for name in listed if name.strip())
    return frozenset(names)


def host_allowed(header: str, names: frozenset[str]) -> bool:
    """Whether a Host header value (``name``, ``name:port``, ``[v6]:port``) may be served."""
    header = header.strip().lower()
    if not header:
        return False
    if header.startswith("["):  # [IPv6] or [IPv6]:port
        literal, bracket, rest = header[1:].partition("]")
        if not bracket or (rest and not (rest[0] == ":" and _is_port(rest[1:]))):
            return False
        return _is_ip(literal)
    name, colon, port = header.rpartition(":") if ":" in header else (header, "", "")
    if colon and not _is_port(port):
        return False
    return _is_ip(name) or name.rstrip(".") in names


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_port(text: str) -> bool:
    return text.isdigit() and 0 < int(text) <= 65535


class _Guard:
    """Pure ASGI middleware in front of everything (it also answers the requests it refuses)."""

    def __init__(self, app: Any, names: frozenset[str]):
        self.app = app
        self.names = names

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # websockets: none served
            await send({"type": "websocket.close", "code": 1008})
            return
        host = ""
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.decode("latin-1").strip().lower()
                break
        if not host_allowed(host, self.names):
            await _plain(send, 403, "403 Forbidden: the Host header names no address of this "
                         "dashboard (open it as http://127.0.0.1:PORT or http://localhost:PORT, "
                         f"or add the name to {ALLOWED_HOSTS_VARIABLE})")
            return
        if scope["method"] not in ALLOWED_METHODS:
            await _plain(send, 405, "405 Method Not Allowed: the dashboard is read-only",
                         [(b"allow", b"GET, HEAD")])
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ())
                           if not k.lower().startswith(b"access-control-")]
                message = {**message, "headers": headers + SECURITY_HEADERS}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _plain(send: Any, status: int, text: str, extra: list | None = None) -> None:
    body = text.encode() + b"\n"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]
                + (extra or []) + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": body})


def _finite(value: Any) -> Any:
    """NaN and infinities become null: browsers' JSON.parse rejects them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_json(value: Any) -> bytes:
    try:
        return json.dumps(value, allow_nan=False, default=str, separators=(",", ":")).encode()
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False, default=str,
                          separators=(",", ":")).encode()


def _endpoint(view: Any, json_response: Any) -> Any:
    def endpoint() -> Any:
        return json_response(view())
    endpoint.__name__ = view.__name__
    return endpoint


def make_app(node: Any, host: str, port: int, url: str, history: Any = None,
             allowed_hosts: Any = None) -> Any:
    """The whole ASGI app for ``node``, served at ``host:port``; ``history`` holds the
    utilisation samples the server thread takes; ``allowed_hosts``: more DNS names to serve."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import HTMLResponse, Response

    views = Views(node, url, history)
    with open(os.path.join(os.path.dirname(__file__), "index.html"), "rb") as f:
        page = f.read()
    app = FastAPI(title="raylite dashboard", docs_url=None, redoc_url=None, openapi_url=None)

    def json_response(value: Any) -> Response:
        return Response(to_json(value), media_type="application/json")

    def get(path: str):
        return app.api_route(path, methods=list(ALLOWED_METHODS), include_in_schema=False)

    @get("/")
    def index() -> Response:
        return HTMLResponse(page)

    @get("/api")
    def api_index() -> Response:
        return json_response({"endpoints": ENDPOINTS, "read_only": True})

    simple = {"/api/cluster": views.cluster, "/api/workers": views.workers,
              "/api/tasks": views.tasks, "/api/actors": views.actors,
              "/api/objects": views.objects, "/api/tune": views.tune,
              "/api/rllib": views.rllib, "/api/serve": views.serve,
              "/api/timeline": views.timeline}
    for path, view in simple.items():
        get(path)(_endpoint(view, json_response))

    @get("/api/tune/{experiment}")
    def tune_experiment(experiment: str, metric: str | None = None) -> Response:
        found = views.tune_experiment(experiment, metric)
        if found is None:
            root = views.tune_files.root_dir()
            raise HTTPException(404, f"no experiment {experiment!r} under {root}")
        return json_response(found)

    return _Guard(app, allowed_names(host, allowed_hosts))
