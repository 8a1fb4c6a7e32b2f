"""Serve's ``http_options`` beyond host and port do what Ray documents, or are refused:
``root_path`` mounts every route under a prefix, ``request_timeout_s`` answers 408 past it,
``middlewares`` wrap the proxy, ``keep_alive_timeout_s`` reaches uvicorn, ``num_cpus`` (a hint
for Ray's proxy actor) is warned about once, and a bad value is one clear error."""

from __future__ import annotations

import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("uvicorn")
starlette_middleware = pytest.importorskip("starlette.middleware")

import raylite
from raylite import serve
from raylite.serve import _api
from _support import free_port


class StampMiddleware:
    """A plain ASGI middleware that adds a response header."""

    def __init__(self, app, header: bytes = b"x-stamp", value: bytes = b"1"):
        self.app, self.header, self.value = app, header, value

    async def __call__(self, scope, receive, send):
        async def stamped(message):
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []),
                                                 (self.header, self.value)])
            await send(message)
        await self.app(scope, receive, stamped)


@pytest.fixture(scope="module")
def base():
    raylite.shutdown()
    raylite.init(num_cpus=2, include_dashboard=False)  # one CPU for each deployment's replica
    port = free_port()
    serve.start(http_options={
        "port": port, "root_path": "/api", "request_timeout_s": 1.0, "keep_alive_timeout_s": 7,
        "middlewares": [starlette_middleware.Middleware(StampMiddleware, value=b"yes")]})

    @serve.deployment
    class Where:
        async def __call__(self, request):
            return {"path": request.scope["path"], "root_path": request.scope["root_path"]}

    @serve.deployment
    class Slow:
        async def __call__(self, request):
            import asyncio
            await asyncio.sleep(4)  # the deployment's work, longer than the proxy's limit
            return "late"

    serve.run(Where.bind(), name="where", route_prefix="/where")
    serve.run(Slow.bind(), name="slow", route_prefix="/slow")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
    raylite.shutdown()


def test_root_path_mounts_every_route_under_it(base):
    answer = requests.get(f"{base}/api/where", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"path": "/api/where", "root_path": "/api/where"}
    outside = requests.get(f"{base}/where", timeout=30)
    assert outside.status_code == 404 and "/api" in outside.text


def test_middlewares_wrap_the_proxy(base):
    assert requests.get(f"{base}/api/where", timeout=30).headers.get("x-stamp") == "yes"


def test_request_timeout_answers_408_and_frees_the_replica(base):
    answer = requests.get(f"{base}/api/slow", timeout=30)
    assert answer.status_code == 408
    assert "request_timeout_s" in answer.text and "'Slow'" in answer.text
    route = next(r for r in _api._current().proxy._routes.values() if r.name == "Slow")
    assert sum(route.replicas.in_flight.values()) == 0, "a timed-out request kept its replica slot"


def test_keep_alive_timeout_reaches_uvicorn(base):
    assert _api._current().proxy._server.config.timeout_keep_alive == 7


@pytest.mark.parametrize("options, message", [
    ({"root_path": "api"}, "root_path must be a path"),
    ({"request_timeout_s": 0}, "request_timeout_s must be a number of seconds > 0"),
    ({"keep_alive_timeout_s": "long"}, "keep_alive_timeout_s must be a number"),
    ({"middlewares": ["cors"]}, "must be a starlette.middleware.Middleware"),
    ({"location": "Everywhere"}, "location must be one of"),
    ({"root_pth": "/x"}, "did you mean 'root_path'"),
])
def test_bad_http_options_are_one_clear_error(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _api._proxy_options(options) if "root_pth" not in options else \
            _api._http_options(options)


def test_num_cpus_is_a_hint_warned_about_once(capsys, monkeypatch):
    monkeypatch.setattr(_api, "_warned_num_cpus", False)
    _api._proxy_options({"num_cpus": 2})
    _api._proxy_options({"num_cpus": 2})
    assert capsys.readouterr().err.count("num_cpus is a hint") == 1


def test_deployment_options_raylite_lacks_are_refused_or_warned_once(capsys, monkeypatch):
    from raylite.serve import _deployment
    monkeypatch.setattr(_deployment, "_warned_hints", set())

    def model():
        return "ok"
    with pytest.raises(ValueError, match="placement_group_bundles=.* is not implemented"):
        serve.deployment(placement_group_bundles=[{"CPU": 1}])(model)
    serve.deployment(placement_group_bundles=None)(model)          # the default: fine
    serve.deployment(max_replicas_per_node=1)(model)
    serve.deployment(max_replicas_per_node=2)(model)
    assert capsys.readouterr().err.count("max_replicas_per_node is a hint") == 1
    with pytest.raises(ValueError, match="external_scaler_enabled"):
        serve.run(serve.deployment(model).bind(), external_scaler_enabled=True)
