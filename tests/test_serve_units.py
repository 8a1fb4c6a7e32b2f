"""raylite.serve pieces that need no runtime: routing choices, lifecycle, batching, options."""

from __future__ import annotations

import asyncio

import pytest

from raylite import serve
from raylite.serve._common import (
    REPLICA_TRANSITIONS,
    DeploymentConfig,
    ReplicaState,
    RouteTarget,
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
    routes = {"/": RouteTarget("root", [], 1, 1, True), "/a": RouteTarget("a", [], 1, 1, True),
              "/a/b": RouteTarget("ab", [], 1, 1, True)}
    asyncio.run(proxy._apply(1, routes))
    assert proxy._match("/a/b/c").name == "ab"
    assert proxy._match("/a/bc").name == "a"
    assert proxy._match("/z").name == "root"


def test_proxy_404_lists_routes_without_a_runtime():
    from raylite.serve._proxy import HTTPProxy
    proxy = HTTPProxy("127.0.0.1", 0, controller=None)
    asyncio.run(proxy._apply(1, {"/m": RouteTarget("m", [], 1, 1, True)}))
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(proxy({"type": "http", "path": "/x", "method": "GET", "headers": []},
                      receive, send))
    assert sent[0]["status"] == 404
    assert b'"/m": "m"' in sent[1]["body"]


def test_proxy_queues_for_a_replica_only_when_one_can_come():
    from raylite.serve._proxy import HTTPProxy
    proxy = HTTPProxy("127.0.0.1", 0, controller=None)

    async def main():
        await proxy._apply(1, {"/m": RouteTarget("m", [], 1, 2, expects_replicas=True)})
        route = proxy._match("/m")
        waiting = asyncio.ensure_future(proxy._acquire(route))
        await asyncio.sleep(0)
        assert not waiting.done() and proxy.queued("m") == 1  # waits: a replica is starting
        await proxy._apply(2, {"/m": RouteTarget("m", [("r1", "actor")], 1, 2, True)})
        assert await waiting == "r1"
        second = asyncio.ensure_future(proxy._acquire(route))  # r1 is busy: queued
        third = asyncio.ensure_future(proxy._acquire(route))
        await asyncio.sleep(0)
        assert await proxy._acquire(route) is None  # max_queued_requests=2: full, 503
        proxy._release(route, "r1")
        assert await second == "r1" and not third.done()
        await proxy._apply(3, {"/m": RouteTarget("m", [], 1, 2, expects_replicas=False)})
        assert await third is None  # the deployment cannot start replicas: 503 now
        assert await proxy._acquire(route) is None

    asyncio.run(main())


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
    ({"num_replicas": 2, "autoscaling_config": {"max_replicas": 3}}, ValueError, "not both"),
    ({"autoscaling_config": {"max_replica": 3}}, ValueError, "did you mean 'max_replicas'"),
    ({"autoscaling_config": {"min_replicas": 3, "max_replicas": 2}}, ValueError,
     "min_replicas <= max_replicas"),
    ({"autoscaling_config": {"max_replicas": 2, "initial_replicas": 5}}, ValueError,
     "initial_replicas"),
    ({"autoscaling_config": {"max_replicas": 2, "target_ongoing_requests": 0}}, ValueError,
     "target_ongoing_requests must be a number > 0"),
    ({"autoscaling_config": [1, 2]}, TypeError, "must be a dict"),
    ({"health_check_period_s": 0}, ValueError, "health_check_period_s must be a number > 0"),
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
    assert [name for _, name, _, _ in order] == ["Leaf", "Root"]
    _, _, args, kwargs = order[1]
    assert isinstance(args[0], serve.DeploymentHandle) and args[0].deployment_name == "Leaf"
    assert kwargs["others"]["again"] is args[0]  # one node, one handle
    # the same deployment bound twice with other arguments: two deployments, named as Ray does
    order = _collect(Root.bind(Leaf.bind(1), Leaf.bind(2), Root.bind()), "app")
    assert [(name, args) for _, name, args, _ in order] == [
        ("Leaf", (1,)), ("Leaf_1", (2,)), ("Root_1", ()), ("Root", order[3][2])]
    assert [h.deployment_name for h in order[3][2]] == ["Leaf", "Leaf_1", "Root_1"]


def test_deployment_config_defaults_match_the_book():
    config = DeploymentConfig()
    assert (config.num_replicas, config.max_ongoing_requests, config.route_prefix) == (1, 100, None)


# ----- responses and pickling -----------------------------------------------------------------
def test_return_values_are_encoded_by_type():
    pytest.importorskip("starlette")
    from starlette.responses import JSONResponse

    from raylite.serve._http import encode_plain, respond
    from raylite.serve._streaming import ResponseStream
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [],
             "asgi": {"version": "3.0", "spec_version": "2.4"}}

    assert encode_plain("hi") == (200, [(b"content-type", b"text/plain; charset=utf-8")], b"hi")
    assert encode_plain(b"\x00")[1] == [(b"content-type", b"application/octet-stream")]
    assert encode_plain({"a": (1, 2)})[2] == b'{"a": [1, 2]}'
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode_plain(object())

    async def sent(value):
        stream = ResponseStream()
        await respond(value, scope, None, stream.send)
        return stream.status, stream.streaming, stream.take()

    assert asyncio.run(sent(JSONResponse({"b": 2}, status_code=202))) == (202, False, b'{"b":2}')
    assert asyncio.run(sent(x for x in ["a", b"b"])) == (200, True, b"ab")  # a generator streams


def test_ingress_app_with_state_survives_pickling():
    fastapi = pytest.importorskip("fastapi")
    app = fastapi.FastAPI()
    app.state.counter = 3

    @serve.ingress(app)
    class Api:
        pass

    restored = loads_callable(dumps_callable(Api))
    assert restored._serve_asgi_app.state.counter == 3


# ----- autoscaling ----------------------------------------------------------------------------
def _policy(**options):
    from raylite.serve._autoscaling import AutoscalingConfig, AutoscalingPolicy
    base = {"min_replicas": 1, "max_replicas": 5, "target_ongoing_requests": 2,
            "look_back_period_s": 10, "upscale_delay_s": 1, "downscale_delay_s": 3}
    return AutoscalingPolicy(AutoscalingConfig.parse({**base, **options}, "test"))


def test_autoscaling_wants_in_flight_over_target_clamped():
    policy = _policy()
    assert policy.desired(current=2) == 2  # no samples yet: no opinion
    policy.record(0.0, 7)
    assert policy.desired(current=1) == 4  # ceil(7 / 2)
    policy.record(0.5, 30)
    assert policy.desired(current=1) == 5  # max_replicas
    idle = _policy()
    idle.record(0.0, 0)
    assert idle.desired(current=3) == 1  # min_replicas


def test_autoscaling_waits_for_its_delays_and_resets_on_a_change_of_mind():
    policy = _policy()
    policy.record(0.0, 8)
    assert policy.decide(0.0, current=1) == 1
    assert policy.decide(0.9, current=1) == 1
    assert policy.decide(1.0, current=1) == 4  # wanted up for upscale_delay_s
    calm = _policy(look_back_period_s=0.1)
    calm.record(0.0, 8)
    assert calm.decide(0.0, current=1) == 1
    calm.record(0.5, 2)  # one replica is right after all: the clock resets
    assert calm.decide(0.6, current=1) == 1
    calm.record(0.7, 8)  # wants up again: the delay counts from here
    assert [calm.decide(t, current=1) for t in (0.7, 1.6, 1.7)] == [1, 1, 4]
    down = _policy(look_back_period_s=0.1)
    down.record(0.0, 0)
    assert [down.decide(t, current=4) for t in (0.0, 2.9, 3.0)] == [4, 4, 1]


def test_autoscaling_averages_over_the_look_back_period():
    policy = _policy(look_back_period_s=1.0)
    for t, total in ((0.0, 10), (0.5, 10), (1.0, 2), (1.6, 2)):
        policy.record(t, total)
    assert policy.average_ongoing() == 2  # the samples older than 1 s are gone
    assert policy.desired(current=3) == 1


def test_autoscaling_config_names_and_auto():
    from raylite.serve._autoscaling import AutoscalingConfig
    old_name = AutoscalingConfig.parse({"max_replicas": 3,
                                        "target_num_ongoing_requests_per_replica": 1}, "t")
    assert old_name.target_ongoing_requests == 1 and old_name.max_replicas == 3
    auto = serve.deployment(num_replicas="auto")(lambda request: "x")
    assert auto.num_replicas == "auto"
    assert (auto.autoscaling_config.min_replicas, auto.autoscaling_config.max_replicas) == (1, 100)
    tuned = serve.deployment(num_replicas="auto", autoscaling_config={"max_replicas": 4})(
        lambda request: "x")
    assert tuned.autoscaling_config.max_replicas == 4
    assert tuned.autoscaling_config.target_ongoing_requests == 2
    fixed = tuned.options(num_replicas=2)
    assert (fixed.num_replicas, fixed.autoscaling_config) == (2, None)


# ----- streaming ------------------------------------------------------------------------------
def test_response_stream_hands_over_chunks_in_order_and_the_end():
    from raylite.serve._streaming import DONE, MORE, ResponseStream, StreamRegistry

    async def main():
        stream = ResponseStream()
        await stream.send({"type": "http.response.start", "status": 200, "headers": []})
        await stream.send({"type": "http.response.body", "body": b"a", "more_body": True})
        await stream.wait_head()  # streaming: the head is ready before the end
        assert stream.take() == b"a" and not stream.finished
        registry = StreamRegistry()
        task = asyncio.get_running_loop().create_task(asyncio.sleep(0))
        stream_id = registry.add(stream, task)
        waiting = asyncio.ensure_future(registry.next(stream_id))
        await asyncio.sleep(0)
        assert not waiting.done()  # nothing new yet
        await stream.send({"type": "http.response.body", "body": b"b", "more_body": True})
        assert await waiting == (b"b", MORE)
        await stream.send({"type": "http.response.body", "body": b"c", "more_body": False})
        assert await registry.next(stream_id) == (b"c", DONE)
        assert len(registry) == 0
        with pytest.raises(KeyError, match="no open response stream"):
            await registry.next(stream_id)

    asyncio.run(main())


def test_a_head_without_a_body_goes_out_after_a_grace_period():
    from raylite.serve._streaming import ResponseStream

    async def main():
        stream = ResponseStream()
        await stream.send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.wait_for(stream.wait_head(grace_s=0.01), 5)  # returns: nothing came
        assert stream.streaming and stream.head_sent and not stream.finished

    asyncio.run(main())


def test_stream_registry_cancels_streams_nobody_reads():
    from raylite.serve._streaming import ResponseStream, StreamRegistry

    async def main():
        registry = StreamRegistry()
        task = asyncio.get_running_loop().create_task(asyncio.Event().wait())
        registry.add(ResponseStream(), task)
        assert registry.sweep() == 0  # just opened
        import time
        assert registry.sweep(now=time.monotonic() + 61.0) == 1
        await asyncio.sleep(0)
        assert task.cancelled() and len(registry) == 0

    asyncio.run(main())
