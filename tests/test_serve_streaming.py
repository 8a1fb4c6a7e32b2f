"""Streamed responses through the proxy: chunk by chunk as the replica makes them, never
buffered whole; a client that leaves stops the replica's producer."""

from __future__ import annotations


import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import raylite
from raylite import serve
from _support import Gate, poll as _poll


@pytest.fixture
def url(serve_url):
    return serve_url


def test_streaming_response_arrives_chunk_by_chunk(url):
    gate = Gate.remote()

    @serve.deployment(route_prefix="/stream")
    class Streamer:
        def __init__(self, gate):
            self.gate = gate

        async def __call__(self, request):
            from starlette.responses import StreamingResponse

            async def chunks():
                yield "first\n"
                await self.gate.wait.remote()  # the rest only after the test has the first
                yield "second\n"
                yield "third\n"

            return StreamingResponse(chunks(), media_type="text/plain", headers={"x-kind": "s"})

    Streamer.deploy(gate)
    with requests.get(f"{url}/stream", stream=True, timeout=20) as response:
        assert response.status_code == 200 and response.headers["x-kind"] == "s"
        assert response.headers.get("transfer-encoding") == "chunked"
        pieces = response.iter_content(chunk_size=None)
        assert next(pieces) == b"first\n"  # would time out if the proxy buffered the body
        raylite.get(gate.open.remote())
        assert b"".join(pieces) == b"second\nthird\n"
    raylite.kill(gate)


def test_stream_head_goes_out_before_its_first_chunk(url):
    """Server-sent events that wait for their first event: the client has the head at once."""
    gate = Gate.remote()

    @serve.deployment(route_prefix="/events")
    class Events:
        def __init__(self, gate):
            self.gate = gate

        async def __call__(self, request):
            from starlette.responses import StreamingResponse

            async def events():
                await self.gate.wait.remote()
                yield "data: hello\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

    Events.deploy(gate)
    with requests.get(f"{url}/events", stream=True, timeout=20) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raylite.get(gate.open.remote())  # only now is there a first event
        assert response.content == b"data: hello\n\n"
    raylite.kill(gate)


def test_generator_deployment_streams_its_items(url):
    @serve.deployment(route_prefix="/count")
    def count(request):
        for i in range(int(request.query_params["n"])):
            yield f"{i}\n"

    count.deploy()
    response = requests.get(f"{url}/count?n=5", timeout=20)
    assert response.status_code == 200 and response.text == "0\n1\n2\n3\n4\n"
    assert response.headers.get("transfer-encoding") == "chunked"


def test_client_leaving_stops_the_stream(url):
    @serve.deployment(route_prefix="/forever")
    class Forever:
        async def __call__(self, request):
            import asyncio

            async def ticks():
                while True:
                    yield "tick\n"
                    await asyncio.sleep(0.01)

            from starlette.responses import StreamingResponse
            return StreamingResponse(ticks())

    Forever.deploy()
    (replica,) = serve._api._state.proxy._routes["/forever"].replicas.handles.values()
    with requests.get(f"{url}/forever", stream=True, timeout=20) as response:
        pieces = response.iter_content(chunk_size=None)
        assert next(pieces).startswith(b"tick") and next(pieces).startswith(b"tick")
        stats = raylite.get(replica.stats.remote())
        assert (stats["ongoing"], stats["streams"]) == (1, 1)
    # the client closed the connection: the proxy cancels the stream in the replica
    _poll(lambda: raylite.get(replica.stats.remote())["streams"] == 0, "the stream to stop")
    assert raylite.get(replica.stats.remote())["ongoing"] == 0
    assert requests.get(f"{url}/-/healthz").text == "success"


def test_stream_that_fails_midway_is_cut_not_completed(url):
    @serve.deployment(route_prefix="/breaks")
    def breaks(request):
        yield "partial\n"
        raise RuntimeError("the generator broke")

    breaks.deploy()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{url}/breaks", timeout=20).content  # noqa: B018 - reading it fails
    assert requests.get(f"{url}/-/healthz").text == "success"


def test_leaving_a_streaming_handle_call_early_stops_the_generator(url):
    @serve.deployment(route_prefix=None)
    class Ticker:
        async def ticks(self):
            import asyncio
            i = 0
            while True:
                yield i
                i += 1
                await asyncio.sleep(0.001)

    handle = serve.run(Ticker.bind(), name="ticker", route_prefix=None).options(stream=True)
    from raylite.serve import _handle
    replica = _handle._replica_set("Ticker").handles[_handle._replica_set("Ticker").order[0]]
    for i in handle.ticks.remote():
        if i == 3:
            assert raylite.get(replica.stats.remote())["streams"] == 1
            break
    _poll(lambda: raylite.get(replica.stats.remote())["streams"] == 0, "the generator to stop")
    assert raylite.get(replica.stats.remote())["ongoing"] == 0
