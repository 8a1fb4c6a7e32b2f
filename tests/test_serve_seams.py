"""Serve code of Ray 2.2 and today's 2.x, written from Ray's documentation examples:
``ray.get`` and ``await`` on what handles return, one deployment bound twice in one
application, the ``ray.serve.handle`` / ``config`` / ``schema`` modules, dict and query-param
responses as JSON, and ``@serve.batch`` on an async generator streaming each caller's chunks."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import raylite as ray  # noqa: E402
from raylite import serve  # noqa: E402
from raylite.serve.config import AutoscalingConfig, HTTPOptions, ProxyLocation  # noqa: E402
from raylite.serve.handle import (DeploymentHandle, DeploymentResponse,  # noqa: E402
                                  DeploymentResponseGenerator)
from raylite.serve.schema import ApplicationStatus, LoggingConfig  # noqa: E402


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class Model:
    def __init__(self, weight: int):
        self.weight = weight

    def predict(self, x: int) -> int:
        return self.weight * x

    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class Ensemble:
    def __init__(self, first: DeploymentHandle, second: DeploymentHandle):
        self.first, self.second = first, second

    async def __call__(self, x: int) -> list:
        return [await self.first.predict.remote(x), await self.second.predict.remote(x)]


def test_ray_get_and_await_on_handle_results(serve_url):
    handle = serve.run(Model.bind(3), name="models", route_prefix=None)
    assert isinstance(handle, DeploymentHandle)
    response = handle.predict.remote(2)
    assert isinstance(response, DeploymentResponse)
    assert ray.get(response) == 6                                    # Ray 2.2's handles
    assert ray.get([handle.predict.remote(i) for i in range(3)]) == [0, 3, 6]
    assert ray.get([handle.predict.remote(1), ray.put("plain ref")]) == [3, "plain ref"]

    async def awaited():
        return await handle.predict.remote(5)
    assert asyncio.run(awaited()) == 15
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(handle.slow.remote(5), timeout=0.05)
    with pytest.raises(TypeError, match="ObjectRef"):
        ray.get([response, 42])


def test_one_deployment_bound_twice_gets_distinct_names(serve_url):
    handle = serve.run(Ensemble.bind(Model.bind(2), Model.bind(10)), name="ensemble",
                       route_prefix=None)
    assert handle.remote(3).result() == [6, 30]
    deployments = serve.status().applications["ensemble"].deployments
    assert set(deployments) == {"Ensemble", "Model", "Model_1"}
    assert serve.status().applications["ensemble"].status == ApplicationStatus.RUNNING


def test_dict_and_query_params_are_sent_as_json(serve_url):
    @serve.deployment(ray_actor_options={"num_cpus": 0.25})
    class Echo:
        def __call__(self, request):
            if request.url.path.endswith("/params"):
                return request.query_params
            return {"path": request.url.path, "numbers": [1, 2]}

    serve.run(Echo.bind(), name="echo", route_prefix="/echo")
    reply = requests.get(f"{serve_url}/echo/params?name=ray&n=2", timeout=30)
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"name": "ray", "n": "2"}
    reply = requests.get(f"{serve_url}/echo", timeout=30)
    assert reply.json() == {"path": "/echo", "numbers": [1, 2]}


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class StreamingBatcher:
    """Ray's "streaming batched requests" example: one generator serves a batch of callers,
    each step yielding one chunk per caller (StopIteration once a caller has all of its)."""

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.5)
    async def generate_numbers(self, max_list):
        for i in range(max(max_list)):
            yield [str(i) if requested > i else StopIteration for requested in max_list]
            await asyncio.sleep(0.01)

    async def __call__(self, request):
        from starlette.responses import StreamingResponse
        count = int(request.query_params.get("max", "5"))
        return StreamingResponse(self.generate_numbers(count), media_type="text/plain")


def test_batched_async_generator_streams_each_callers_chunks(serve_url):
    serve.run(StreamingBatcher.bind(), name="numbers", route_prefix="/numbers")

    def fetch(count):
        with requests.get(f"{serve_url}/numbers?max={count}", stream=True, timeout=60) as reply:
            return [chunk.decode() for chunk in reply.iter_content(chunk_size=None)]

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(fetch, [3, 6, 1]))
    assert ["".join(chunks) for chunks in results] == ["012", "012345", "0"]
    assert max(len(chunks) for chunks in results) > 1  # streamed, not one body


def test_batched_generator_by_handle_and_errors(serve_url):
    @serve.deployment(ray_actor_options={"num_cpus": 0.25})
    class Words:
        @serve.batch(max_batch_size=2, batch_wait_timeout_s=0.2)
        async def spell(self, words):
            for i in range(max(len(w) for w in words)):
                yield [w[i] if i < len(w) else StopIteration for w in words]

        async def __call__(self, word):
            async for letter in self.spell(word):
                yield letter

        @serve.batch(max_batch_size=2)
        async def broken(self, items):
            yield [1, 2, 3]  # not one chunk per caller

        async def check(self, item):
            return [x async for x in self.broken(item)]

    handle = serve.run(Words.bind(), name="words", route_prefix=None)
    generator = handle.options(stream=True).remote("ray")
    assert isinstance(generator, DeploymentResponseGenerator)
    assert list(generator) == ["r", "a", "y"]
    with pytest.raises(TypeError, match="one chunk per caller"):
        handle.check.remote("x").result()


def test_config_and_schema_types():
    from raylite.serve._api import _http_options
    assert _http_options(HTTPOptions(port=8123)) == {"port": 8123}
    assert AutoscalingConfig(min_replicas=1, max_replicas=3).max_replicas == 3
    assert ProxyLocation("EveryNode") is ProxyLocation.EveryNode
    assert LoggingConfig(log_level="DEBUG").log_level == "DEBUG"

    @serve.deployment(logging_config=LoggingConfig())   # Ray's defaults: nothing to apply
    class Logged:
        pass
    assert Logged.name == "Logged"
    with pytest.raises(ValueError, match="logging_config=.* is not implemented in raylite"):
        serve.deployment(logging_config=LoggingConfig(log_level="DEBUG"))(Logged.func_or_class)
