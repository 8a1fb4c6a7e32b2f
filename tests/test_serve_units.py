"""raylite.serve pieces that need no runtime: routing choices, lifecycle, batching, options."""

from __future__ import annotations

import asyncio

import pytest

from raylite import serve
from raylite.serve._common import (
    REPLICA_TRANSITIONS,
    DeploymentConfig,
    ReplicaState,
    dumps_callable,
    loads_callable,
    route_matches,
)
from raylite.serve._controller import _Replica
from raylite.serve._router import ReplicaSet


# ----- choosing replicas --------------------------------------------------------------------
def test_replica_set_picks_least_loaded_and_respects_the_limit():
    replicas = ReplicaSet("d", [("a", "A"), ("b", "B")], max_ongoing_requests=2,
                          max_queued_requests=0)
    picks = [replicas.choose() for _ in range(4)]
    assert sorted(picks) == ["a", "a", "b", "b"]  # spread evenly
    assert replicas.choose() is None  # both at max_ongoing_requests
    assert replicas.choose(enforce_limit=False) in ("a", "b")  # handles may exceed it
    replicas.release("b")
    replicas.release("b")
    assert replicas.choose() == "b"
    replicas.update([("b", "B"), ("c", "C")], 2, 0, version=1)
    assert replicas.in_flight == {"b": 1, "c": 0}  # counts of replicas that stay are kept
    assert replicas.choose() == "c"
    replicas.release("gone")  # a replica removed meanwhile: ignored


def test_replica_set_without_replicas_chooses_nothing():
    assert ReplicaSet("d", [], 5, 5).choose() is None


@pytest.mark.parametrize("prefix, path, expected", [
    ("/", "/anything", True), ("/model", "/model", True), ("/model", "/model/x", True),
    ("/model", "/modelx", False), ("/model", "/", False), ("/a/b", "/a", False),
])
def test_route_prefix_matching(prefix, path, expected):
    assert route_matches(prefix, path) is expected


def test_proxy_matches_the_longest_prefix():
    from raylite.serve._proxy import HTTPProxy
    proxy = HTTPProxy("127.0.0.1", 0, controller=None)
    routes = {"/": ("root", [], 1, 1), "/a": ("a", [], 1, 1), "/a/b": ("ab", [], 1, 1)}
    asyncio.run(proxy._apply(1, routes))
    assert proxy._match("/a/b/c").name == "ab"
    assert proxy._match("/a/bc").name == "a"
    assert proxy._match("/z").name == "root"


def test_proxy_404_lists_routes_without_a_runtime():
    from raylite.serve._proxy import HTTPProxy
    proxy = HTTPProxy("127.0.0.1", 0, controller=None)
    asyncio.run(proxy._apply(1, {"/m": ("m", [], 1, 1)}))
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(proxy({"type": "http", "path": "/x", "method": "GET", "headers": []},
                      receive, send))
    assert sent[0]["status"] == 404
    assert b'"/m": "m"' in sent[1]["body"]


# ----- replica lifecycle ----------------------------------------------------------------------
def test_replica_lifecycle_allows_only_listed_transitions():
    replica = _Replica("d#1", actor=None)
    assert replica.state is ReplicaState.STARTING
    replica.transition(ReplicaState.RUNNING)
    with pytest.raises(AssertionError, match="RUNNING -> STARTING"):
        replica.transition(ReplicaState.STARTING)
    replica.transition(ReplicaState.UNHEALTHY, "died")
    replica.transition(ReplicaState.STOPPING)
    assert replica.error == "died"
    assert REPLICA_TRANSITIONS[ReplicaState.STOPPING] == frozenset()


# ----- batching -------------------------------------------------------------------------------
def test_batch_groups_calls_and_returns_each_its_own_result():
    sizes = []

    class Model:
        @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.05)
        async def predict(self, items):
            sizes.append(len(items))
            return [item * 10 for item in items]

    async def main():
        model = Model()
        return await asyncio.gather(*[model.predict(i) for i in range(10)])

    assert asyncio.run(main()) == [i * 10 for i in range(10)]
    assert sum(sizes) == 10 and max(sizes) == 4


def test_batch_reports_a_wrong_number_of_results_to_every_caller():
    @serve.batch(max_batch_size=8)
    async def broken(items):
        return items[:1]

    async def main():
        return await asyncio.gather(broken(1), broken(2), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, TypeError) and "one result per item" in str(r) for r in results)


def test_batch_checks_its_arguments():
    with pytest.raises(ValueError, match="max_batch_size"):
        serve.batch(max_batch_size=0)
    with pytest.raises(ValueError, match="batch_wait_timeout_s"):
        serve.batch(batch_wait_timeout_s=-1)


# ----- @serve.deployment options -------------------------------------------------------------
def test_deployment_options_and_defaults():
    @serve.deployment
    def model(request):
        return "x"

    assert (model.name, model.route_prefix, model.num_replicas) == ("model", "/model", 1)
    assert model.max_ongoing_requests == 100
    copy = model.options(name="other", num_replicas=3, max_concurrent_queries=7,
                         route_prefix=None)
    assert (copy.name, copy.num_replicas, copy.max_ongoing_requests, copy.route_prefix) == \
        ("other", 3, 7, None)
    assert model.num_replicas == 1  # options() leaves the original alone
    with pytest.raises(RuntimeError, match="cannot be called directly"):
        model(None)


@pytest.mark.parametrize("options, error, match", [
    ({"num_replica": 2}, TypeError, "did you mean 'num_replicas'"),
    ({"route_prefix": "model"}, ValueError, "starting with '/'"),
    ({"route_prefix": "/model/"}, ValueError, "must not end with '/'"),
    ({"num_replicas": 0}, ValueError, "num_replicas must be an int >= 1"),
    ({"num_replicas": "auto"}, NotImplementedError, "autoscaling"),
    ({"ray_actor_options": {"num_cpu": 1}}, ValueError, "did you mean 'num_cpus'"),
    ({"max_ongoing_requests": 2, "max_concurrent_queries": 3}, ValueError, "same setting"),
    ({"user_config": {"a": 1}}, ValueError, "needs a class deployment"),
])
def test_deployment_rejects_bad_options(options, error, match):
    with pytest.raises(error, match=match):
        serve.deployment(**options)(lambda request: "x")


def test_ingress_needs_a_class():
    with pytest.raises(TypeError, match="decorates a class"):
        serve.ingress(lambda scope, receive, send: None)(lambda: None)


def test_application_graph_deploys_dependencies_first_as_handles():
    from raylite.serve._api import _collect

    @serve.deployment
    class Leaf:
        pass

    @serve.deployment
    class Root:
        pass

    leaf = Leaf.bind()
    order = _collect(Root.bind(leaf, others={"again": leaf}), "app")
    assert [d.name for d, _, _ in order] == ["Leaf", "Root"]
    _, args, kwargs = order[1]
    assert isinstance(args[0], serve.DeploymentHandle) and args[0].deployment_name == "Leaf"
    assert kwargs["others"]["again"] is args[0]  # one node, one handle
    with pytest.raises(ValueError, match="two different deployments named 'Leaf'"):
        _collect(Root.bind(Leaf.bind(), Leaf.bind()), "app")


def test_deployment_config_defaults_match_the_book():
    config = DeploymentConfig()
    assert (config.num_replicas, config.max_ongoing_requests, config.route_prefix) == (1, 100, None)


# ----- responses and pickling -----------------------------------------------------------------
def test_return_values_are_encoded_by_type():
    pytest.importorskip("starlette")
    from starlette.responses import JSONResponse

    from raylite.serve._replica import encode_response
    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}

    def encode(value):
        return asyncio.run(encode_response(value, scope))

    assert encode("hi") == (200, [(b"content-type", b"text/plain; charset=utf-8")], b"hi")
    assert encode(b"\x00")[1] == [(b"content-type", b"application/octet-stream")]
    assert encode({"a": (1, 2)})[2] == b'{"a": [1, 2]}'
    status, _, body = encode(JSONResponse({"b": 2}, status_code=202))
    assert (status, body) == (202, b'{"b":2}')
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode(object())


def test_ingress_app_with_state_survives_pickling():
    fastapi = pytest.importorskip("fastapi")
    app = fastapi.FastAPI()
    app.state.counter = 3

    @serve.ingress(app)
    class Api:
        pass

    restored = loads_callable(dumps_callable(Api))
    assert restored._serve_asgi_app.state.counter == 3
