"""raylite.serve end to end: a 2-CPU runtime, one proxy on a free port, real HTTP requests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os

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


def test_book_example_1_8(url):
    """Example 1-8 as written, with a tiny function in place of the GPT-2 pipeline."""

    def pipeline(task, model):
        return lambda text, max_length: [{"generated_text": (text + " To serve.")[:max_length]}]

    @serve.deployment
    def model(request):
        language_model = pipeline("text-generation", model="gpt2")
        query = request.query_params["query"]
        return language_model(query, max_length=100)

    model.deploy()
    assert model.route_prefix == "/model" and model.url == f"{url}/model"
    query = "What's the meaning of life?"
    response = requests.get(f"{url}/model?query={query}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == [{"generated_text": "What's the meaning of life? To serve."}]
    assert "model" in serve.list_deployments()
    model.delete()
    assert requests.get(f"{url}/model?query=x").status_code == 404


def test_return_values_become_responses(url):
    from starlette.responses import PlainTextResponse

    @serve.deployment(route_prefix="/kinds")
    async def kinds(request):
        kind = request.query_params.get("kind")
        if kind == "post":
            return {"got": await request.json(), "method": request.method}
        return {"str": "plain text", "dict": {"a": 1}, "list": [1, 2], "bytes": b"\x00\x01",
                "response": PlainTextResponse("made", status_code=201, headers={"x-made": "yes"}),
                }[kind]

    kinds.deploy()
    text = requests.get(f"{url}/kinds?kind=str")
    assert (text.text, text.headers["content-type"]) == ("plain text", "text/plain; charset=utf-8")
    assert requests.get(f"{url}/kinds?kind=dict").json() == {"a": 1}
    assert requests.get(f"{url}/kinds?kind=list").json() == [1, 2]
    raw = requests.get(f"{url}/kinds?kind=bytes")
    assert (raw.content, raw.headers["content-type"]) == (b"\x00\x01", "application/octet-stream")
    made = requests.get(f"{url}/kinds/sub/path?kind=response")
    assert (made.status_code, made.text, made.headers["x-made"]) == (201, "made", "yes")
    posted = requests.post(f"{url}/kinds?kind=post", json={"x": [1, 2]})
    assert posted.json() == {"got": {"x": [1, 2]}, "method": "POST"}


# ----- classes, user_config, handles --------------------------------------------------------
def test_class_deployment_reconfigure_in_place(url):
    @serve.deployment(num_replicas=2, user_config={"threshold": 1}, version="v1",
                      route_prefix="/threshold")
    class Threshold:
        def __init__(self, base):
            self.base = base

        def reconfigure(self, config):
            self.threshold = config["threshold"]

        def __call__(self, request):
            return {"value": self.base + self.threshold, "pid": os.getpid()}

    Threshold.deploy(10)
    seen = {requests.get(f"{url}/threshold").json()["pid"] for _ in range(8)}
    assert len(seen) == 2  # both replicas take requests
    assert serve.status().deployments["Threshold"]["replica_states"] == {"RUNNING": 2}
    Threshold.options(user_config={"threshold": 5}).deploy(10)
    answers = [requests.get(f"{url}/threshold").json() for _ in range(8)]
    assert {a["value"] for a in answers} == {15}
    assert {a["pid"] for a in answers} <= seen  # same version: the same replicas, reconfigured
    assert serve.get_deployment("Threshold").user_config == {"threshold": 5}
    Threshold.options(version="v2").deploy(20)  # new code: new replicas (the old ones stop
    answers = [requests.get(f"{url}/threshold").json() for _ in range(4)]  # first: 2 CPUs)
    assert {a["value"] for a in answers} == {21} and not {a["pid"] for a in answers} & seen


def test_handles_compose_deployments(url):
    @serve.deployment
    class Adder:
        def __init__(self, amount):
            self.amount = amount

        def __call__(self, x):
            return x + self.amount

        async def times(self, x, factor=1):
            return x * factor

    @serve.deployment
    class Pipeline:
        def __init__(self, adder):
            self.adder = adder

        async def __call__(self, request):
            x = int(request.query_params["x"])
            added = await self.adder.remote(x)
            multiplied = await self.adder.times.remote(added, factor=3)
            chained = await self.adder.remote(self.adder.times.remote(x, factor=2))
            return {"added": added, "multiplied": multiplied, "chained": chained}

    handle = serve.run(Pipeline.bind(Adder.bind(100)), route_prefix="/pipeline")
    assert requests.get(f"{url}/pipeline?x=1").json() == {"added": 101, "multiplied": 303,
                                                          "chained": 102}
    adder = serve.get_deployment_handle("Adder")
    assert adder.times.remote(7, factor=2).result() == 14
    assert raylite.get(serve.get_deployment("Adder").get_handle().remote(1)) == 101
    async_handle = serve.get_deployment("Adder").get_handle(sync=False)
    assert raylite.get(asyncio.run(async_handle.times.remote(2, factor=5))) == 10
    assert isinstance(handle, serve.DeploymentHandle)
    with pytest.raises(AttributeError, match="no_such_method"):
        adder.no_such_method.remote().result(timeout_s=10)


def test_streaming_handle_yields_items_as_they_come(url):
    @serve.deployment
    class Words:
        def split(self, text):  # a plain generator: stepped on the replica's threads
            yield from text.split()

        async def countdown(self, n):
            for i in range(n, 0, -1):
                yield i
            raise ValueError("lift-off")

    @serve.deployment
    class Reader:
        def __init__(self, words):
            self.words = words.options(stream=True)

        async def __call__(self, text):
            return [word.upper() async for word in self.words.split.remote(text)]

    reader = serve.run(Reader.bind(Words.bind()), name="streams", route_prefix=None)
    words = serve.get_deployment_handle("Words").options(stream=True)
    assert list(words.split.remote("to serve models")) == ["to", "serve", "models"]
    assert reader.remote("a b").result(timeout_s=30) == ["A", "B"]
    got = []
    with pytest.raises(ValueError, match="lift-off"):
        for i in words.countdown.remote(3):
            got.append(i)
    assert got == [3, 2, 1]  # the items before the error
    with pytest.raises(TypeError, match="needs a generator method"):
        list(serve.get_deployment_handle("Reader").options(stream=True).remote("x"))


def test_ingress_fastapi_keeps_params_validation_and_docs(url):
    from fastapi import FastAPI

    app = FastAPI()

    @serve.deployment(route_prefix="/api")
    @serve.ingress(app)
    class Api:
        def __init__(self):
            self.greeting = "hello"

        @app.get("/items/{item_id}")
        def item(self, item_id: int, q: int = 0):
            return {"item_id": item_id, "q": q, "greeting": self.greeting}

        @app.post("/echo")
        async def echo(self, payload: dict):
            return payload

    serve.run(Api.bind(), name="api")
    assert requests.get(f"{url}/api/items/3?q=2").json() == {"item_id": 3, "q": 2,
                                                             "greeting": "hello"}
    bad = requests.get(f"{url}/api/items/three")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "item_id"]
    assert requests.get(f"{url}/api/items/3?q=x").status_code == 422
    assert requests.post(f"{url}/api/echo", json={"a": 1}).json() == {"a": 1}
    assert requests.get(f"{url}/api/missing").status_code == 404
    docs = requests.get(f"{url}/api/docs")
    assert docs.status_code == 200 and "/api/openapi.json" in docs.text
    schema = requests.get(f"{url}/api/openapi.json").json()
    assert "/items/{item_id}" in schema["paths"]
    params = schema["paths"]["/items/{item_id}"]["get"]["parameters"]
    assert {p["name"] for p in params} == {"item_id", "q"}  # no "self"


def test_batch_groups_concurrent_calls(url):
    @serve.deployment(route_prefix=None)
    class Vectorised:
        @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.25)
        async def __call__(self, numbers):
            return [(n * 2, len(numbers)) for n in numbers]

    handle = serve.run(Vectorised.bind(), name="batching", route_prefix=None)
    responses = [handle.remote(i) for i in range(16)]
    results = [r.result(timeout_s=30) for r in responses]
    assert [doubled for doubled, _ in results] == [2 * i for i in range(16)]
    sizes = [size for _, size in results]
    assert max(sizes) > 1 and max(sizes) <= 8


# ----- HTTP errors ----------------------------------------------------------------------------
def test_unknown_route_is_404_listing_routes(url):
    @serve.deployment(route_prefix="/known")
    def known(request):
        return "yes"

    known.deploy()
    assert requests.get(f"{url}/known/deeper").text == "yes"
    for path in ("/unknown", "/knownx"):
        response = requests.get(url + path)
        assert response.status_code == 404
        assert response.json()["routes"] == {"/known": "known"}
    assert requests.get(f"{url}/-/routes").json() == {"/known": "known"}


def test_exception_is_500_with_error_id_in_log(url, capfd):
    @serve.deployment(route_prefix="/fails")
    def fails(request):
        raise ValueError("the model broke")

    fails.deploy()
    response = requests.get(f"{url}/fails")
    assert response.status_code == 500
    assert "the model broke" not in response.text  # no internals leak to the client
    error_id = response.text.split("error id ")[1].split(";")[0]
    assert len(error_id) == 12
    log = []

    def logged():
        log.append(capfd.readouterr().err)
        text = "".join(log)
        return error_id in text and "ValueError: the model broke" in text

    _poll(logged, "the error id and traceback on stderr")


def test_bad_requests_are_4xx_with_a_message_never_500(url):
    from fastapi import FastAPI, HTTPException

    small = {"num_cpus": 0.5}  # three deployments on two CPUs

    @serve.deployment(route_prefix="/book", ray_actor_options=small)
    def book(request):  # Example 1-8's way of reading the query
        return {"query": request.query_params["query"]}

    @serve.deployment(route_prefix="/posted", ray_actor_options=small)
    async def posted(request):
        payload = await request.json()
        if payload.get("teapot"):
            raise HTTPException(status_code=418, detail="I'm a teapot")
        return payload

    app = FastAPI()

    @serve.deployment(route_prefix="/typed", ray_actor_options=small)
    @serve.ingress(app)
    class Typed:
        @app.post("/items")
        def create(self, item: dict, count: int):
            return {"item": item, "count": count}

    book.deploy()
    posted.deploy()
    Typed.deploy()
    missing = requests.get(f"{url}/book?qeury=typo")
    assert missing.status_code == 400
    assert "missing query parameter 'query'" in missing.json()["detail"]
    assert "'qeury'" in missing.json()["detail"]  # what the request did have
    not_json = requests.post(f"{url}/posted", data=b"{not json",
                             headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["detail"]
    teapot = requests.post(f"{url}/posted", json={"teapot": True})
    assert (teapot.status_code, teapot.json()) == (418, {"detail": "I'm a teapot"})
    assert requests.post(f"{url}/posted", json={"a": 1}).json() == {"a": 1}
    assert requests.post(f"{url}/typed/items?count=2", data=b"{oops",
                         headers={"content-type": "application/json"}).status_code == 422
    assert requests.post(f"{url}/typed/items?count=two", json={}).status_code == 422
    assert requests.post(f"{url}/typed/items?count=2", json={"a": 1}).json() == \
        {"item": {"a": 1}, "count": 2}


def test_full_replicas_and_queue_give_503(url):
    gate = Gate.remote()

    @serve.deployment(route_prefix="/slow", max_ongoing_requests=1, max_queued_requests=1)
    class Slow:
        def __init__(self, gate):
            self.gate = gate

        async def __call__(self, request):
            await self.gate.wait.remote()
            return "done"

    Slow.deploy(gate)
    proxy = serve._api._state.proxy
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(requests.get, f"{url}/slow", timeout=60)
        _poll(lambda: raylite.get(gate.waiting.remote()) == 1, "the first request to run")
        second = pool.submit(requests.get, f"{url}/slow", timeout=60)
        _poll(lambda: proxy.queued("Slow") == 1, "the second request to queue")
        rejected = requests.get(f"{url}/slow", timeout=10)
        assert rejected.status_code == 503
        assert "max_ongoing_requests=1" in rejected.text
        raylite.get(gate.open.remote())
        assert first.result().text == "done" and second.result().text == "done"
    raylite.kill(gate)


def test_constructor_failure_fails_deploy_and_shows_in_status(url):
    @serve.deployment(route_prefix="/broken")
    class Broken:
        def __init__(self):
            raise RuntimeError("no weights found")

    with pytest.raises(RuntimeError, match="no weights found"):
        Broken.deploy()
    info = serve.status().deployments["Broken"]
    assert info["status"] == "UNHEALTHY" and "no weights found" in info["message"]
    assert requests.get(f"{url}/broken").status_code == 503


# ----- 2.x applications -----------------------------------------------------------------------
def test_run_replaces_and_delete_removes_an_application(url):
    @serve.deployment
    class Greeter:
        def __init__(self, word):
            self.word = word

        def __call__(self, request):
            return self.word

    @serve.deployment
    def other(request):
        return "other"

    serve.run(Greeter.bind("first"), name="greet", route_prefix="/greet")
    assert requests.get(f"{url}/greet").text == "first"
    serve.run(other.bind(), name="greet", route_prefix="/greet")
    assert requests.get(f"{url}/greet").text == "other"
    assert "Greeter" not in serve.status().deployments  # replaced, not kept alongside
    assert serve.status().applications["greet"].status == "RUNNING"
    assert serve.get_app_handle("greet").remote(None).result() == "other"
    serve.delete("greet")
    assert requests.get(f"{url}/greet").status_code == 404
    assert serve.status().deployments == {}


def test_proxy_listens_on_loopback_only(url):
    proxy = serve._api._state.proxy
    addresses = {s.getsockname()[0] for server in proxy._server.servers for s in server.sockets}
    assert addresses == {"127.0.0.1"}
    assert requests.post(f"{url}/-/routes", data=b"deploy please").status_code == 405
    assert requests.get(f"{url}/-/routes").json() == {}
    assert requests.get(f"{url}/-/healthz").text == "success"
