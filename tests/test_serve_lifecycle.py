"""raylite.serve replicas over their lifetime: killed, unhealthy, autoscaled, drained.

A 2-CPU runtime and one proxy on a free port, as in test_serve.py. Nothing here sleeps to wait:
tests wait on events or poll a condition with a deadline.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import threading
import time

import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import raylite
from raylite import serve
from _support import Gate, poll as _poll


@pytest.fixture
def port(serve_port):
    return serve_port


@pytest.fixture
def url(serve_url):
    return serve_url


def _replicas(name: str) -> list[dict]:
    info = serve.status().deployments.get(name)
    return info["replicas"] if info else []


def _running_pids(name: str) -> set[int]:
    return {r["pid"] for r in _replicas(name) if r["state"] == "RUNNING"}


# ----- failures -------------------------------------------------------------------------------
def test_replica_killed_under_load_loses_no_request(url):
    """SIGKILL one of two replicas while a steady stream of requests runs: every request gets
    a 200 (those in flight on the dead replica are retried once on the other) and the
    deployment is back to two replicas."""

    @serve.deployment(route_prefix="/steady", num_replicas=2)
    class Steady:
        async def __call__(self, request):
            import asyncio
            await asyncio.sleep(0.005)  # some work, so requests are in flight at the kill
            return {"pid": os.getpid()}

    Steady.deploy()
    before = _running_pids("Steady")
    assert len(before) == 2
    statuses, pids = [], []
    lock = threading.Lock()
    warmed_up, stop = threading.Event(), threading.Event()
    at_kill: list[int] = []  # how many answers had come when the replica was killed

    def client():
        with requests.Session() as session:
            while not stop.is_set():
                response = session.get(f"{url}/steady", timeout=30)
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 200:
                        pids.append(response.json()["pid"])
                    if len(statuses) >= 40 and set(pids) >= before:  # both replicas serve
                        warmed_up.set()
                    if at_kill and len(statuses) >= at_kill[0] + 60 \
                            and set(pids[at_kill[0]:]) - before:  # so does the new one
                        stop.set()

    def two_without(victim):
        running = _running_pids("Steady")  # one snapshot: the status keeps changing
        return running if len(running) == 2 and victim not in running else None

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        clients = [pool.submit(client) for _ in range(4)]
        try:
            assert warmed_up.wait(30), "the clients never got going"
            victim = sorted(before)[0]
            os.kill(victim, signal.SIGKILL)
            with lock:
                at_kill.append(len(statuses))
            replaced = _poll(lambda: two_without(victim), "a replacement replica")
            assert stop.wait(60), "the clients stopped making progress after the kill"
        finally:
            stop.set()  # the clients end even when an assertion failed
        for future in clients:
            future.result()
    assert statuses and set(statuses) == {200}, f"non-200 answers: {set(statuses)}"
    assert len(replaced) == 2 and victim not in replaced
    assert serve.status().deployments["Steady"]["status"] == "HEALTHY"


def test_handle_calls_on_a_killed_replica_are_retried_once(url):
    """Calls through a DeploymentHandle that are in flight on a replica killed with SIGKILL
    are answered by the other replica, as HTTP requests are."""
    gate = Gate.remote()

    @serve.deployment(num_replicas=2, max_ongoing_requests=8)
    class Held:
        def __init__(self, gate):
            self.gate = gate

        async def __call__(self, x):
            await self.gate.wait.remote()
            return x, os.getpid()

    handle = serve.run(Held.bind(gate), route_prefix="/held")
    before = _running_pids("Held")
    assert len(before) == 2
    responses = [handle.remote(i) for i in range(8)]
    _poll(lambda: raylite.get(gate.waiting.remote()) == 8, "all calls to reach a replica")
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)   # its calls can never finish there
    raylite.get(gate.open.remote())
    results = [r.result(timeout_s=60) for r in responses]
    assert [x for x, _ in results] == list(range(8))
    assert victim not in {pid for _, pid in results}


def test_dead_replica_is_replaced_and_requests_wait_for_it(url):
    @serve.deployment(route_prefix="/mortal")
    def mortal(request):
        return {"pid": os.getpid()}

    mortal.deploy()
    first = requests.get(f"{url}/mortal").json()["pid"]
    (replica,) = serve._api._state.proxy._routes["/mortal"].replicas.handles.values()
    raylite.kill(replica)
    response = requests.get(f"{url}/mortal", timeout=60)  # waits for the replacement
    assert response.status_code == 200 and response.json()["pid"] != first
    _poll(lambda: serve.status().deployments["mortal"]["status"] == "HEALTHY",
          "the deployment to be healthy again")


@pytest.mark.parametrize("failure", ["raises", "hangs"])
def test_unhealthy_replica_is_replaced(url, failure, capfd):
    @serve.deployment(route_prefix="/fragile", health_check_period_s=0.1,
                      health_check_timeout_s=0.5)
    class Fragile:
        def __init__(self, failure):
            self.failure = failure
            self.broken = False

        def break_it(self):
            self.broken = True

        def check_health(self):
            if self.broken and self.failure == "raises":
                raise RuntimeError("lost the GPU")
            if self.broken:
                threading.Event().wait()

        def __call__(self, request):
            return {"pid": os.getpid()}

    Fragile.deploy(failure)
    first = requests.get(f"{url}/fragile").json()["pid"]
    serve.get_deployment_handle("Fragile").break_it.remote().result(timeout_s=10)
    _poll(lambda: _running_pids("Fragile") - {first, None}, "a replacement replica")
    assert requests.get(f"{url}/fragile").json()["pid"] != first
    log = []

    def logged():
        log.append(capfd.readouterr().err)
        expected = "lost the GPU" if failure == "raises" else "health check within 0.5 s"
        return expected in "".join(log)

    _poll(logged, "the reason in the log")


@raylite.remote(num_cpus=0)
class Counter:
    def __init__(self):
        self.count = 0

    def next(self):
        self.count += 1
        return self.count

    def value(self):
        return self.count


def test_replica_that_fails_to_restart_backs_off_and_reports(url):
    @serve.deployment(route_prefix="/flaky")
    class Flaky:
        def __init__(self, counter):
            if raylite.get(counter.next.remote()) > 1:  # every replica after the first fails
                raise RuntimeError("the model file is gone")

        async def __call__(self, request):
            return "ok"

    counter = Counter.remote()
    Flaky.deploy(counter)
    assert requests.get(f"{url}/flaky").text == "ok"
    (replica,) = serve._api._state.proxy._routes["/flaky"].replicas.handles.values()
    raylite.kill(replica)
    def failure_reported():
        info = serve.status().deployments["Flaky"]  # one snapshot
        return info if "the model file is gone" in info["message"] else None

    info = _poll(failure_reported, "the failure in the status")
    assert info["status"] == "UNHEALTHY" and "retrying in" in info["message"]
    response = requests.get(f"{url}/flaky", timeout=30)
    assert response.status_code == 503 and "no running replicas" in response.text  # no waiting
    _poll(lambda: raylite.get(counter.value.remote()) >= 4, "more tries, backing off")
    raylite.kill(counter)


# ----- draining -------------------------------------------------------------------------------
def _hold_one_request(url: str, path: str, gate, pool):
    """Start a request that waits on the gate inside the replica; returns its future."""
    future = pool.submit(requests.get, f"{url}{path}", timeout=60)
    _poll(lambda: raylite.get(gate.waiting.remote()) >= 1, "the request to reach the replica")
    return future


def test_delete_drains_requests_in_flight(url):
    gate = Gate.remote()

    @serve.deployment(route_prefix="/draining", graceful_shutdown_timeout_s=30)
    class Draining:
        def __init__(self, gate):
            self.gate = gate

        async def __call__(self, request):
            await self.gate.wait.remote()
            return "finished"

    serve.run(Draining.bind(gate), name="draining", route_prefix="/draining")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        in_flight = _hold_one_request(url, "/draining", gate, pool)
        deleting = pool.submit(serve.delete, "draining")
        _poll(lambda: requests.get(f"{url}/-/routes").json() == {}, "the route to go")
        assert requests.get(f"{url}/draining").status_code == 404  # no new requests
        assert not in_flight.done() and not deleting.done()  # the old one is still served
        raylite.get(gate.open.remote())
        assert in_flight.result().status_code == 200 and in_flight.result().text == "finished"
        deleting.result(timeout=30)
    assert serve.status().deployments == {}
    raylite.kill(gate)


def test_redeploy_drains_old_replicas_while_new_ones_serve(url):
    gate = Gate.remote()

    @serve.deployment(route_prefix="/versions", version="1")
    class Versioned:
        def __init__(self, gate, answer):
            self.gate, self.answer = gate, answer

        async def __call__(self, request):
            if request.query_params.get("wait"):
                await self.gate.wait.remote()
            return self.answer

    Versioned.deploy(gate, "v1")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        in_flight = _hold_one_request(url, "/versions?wait=1", gate, pool)
        Versioned.options(version="2").deploy(gate, "v2")
        assert requests.get(f"{url}/versions").text == "v2"
        assert not in_flight.done()
        raylite.get(gate.open.remote())
        assert in_flight.result().text == "v1"  # finished by the old replica
    _poll(lambda: serve.status().deployments["Versioned"]["replica_states"] == {"RUNNING": 1},
          "the old replica to stop")
    raylite.kill(gate)


def test_drain_gives_up_after_graceful_shutdown_timeout(url):
    gate = Gate.remote()

    @serve.deployment(route_prefix="/stuck", graceful_shutdown_timeout_s=0.2)
    class Stuck:
        def __init__(self, gate):
            self.gate = gate

        async def __call__(self, request):
            await self.gate.wait.remote()
            return "never"

    Stuck.deploy(gate)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = _hold_one_request(url, "/stuck", gate, pool)
        started = time.monotonic()
        Stuck.delete()
        assert time.monotonic() - started < 10
        assert in_flight.result().status_code == 503  # killed after the timeout, no retry left
    raylite.kill(gate)


def test_shutdown_finishes_requests_in_flight(port, url):
    gate = Gate.remote()

    @serve.deployment(route_prefix="/last")
    class Last:
        def __init__(self, gate):
            self.gate = gate

        async def __call__(self, request):
            await self.gate.wait.remote()
            return "served to the end"

    Last.deploy(gate)
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            in_flight = _hold_one_request(url, "/last", gate, pool)
            stopping = pool.submit(serve.shutdown)

            def refused():
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return False
                except OSError:
                    return True

            _poll(refused, "the proxy to stop taking connections")
            assert not in_flight.done() and not stopping.done()
            raylite.get(gate.open.remote())
            response = in_flight.result()
            assert response.status_code == 200 and response.text == "served to the end"
            stopping.result(timeout=30)
        assert not serve.status().deployments
    finally:
        raylite.kill(gate)
        serve.start(http_options={"port": port})


# ----- autoscaling ----------------------------------------------------------------------------
FAST_AUTOSCALING = {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 1,
                    "metrics_interval_s": 0.05, "look_back_period_s": 0.3,
                    "upscale_delay_s": 0.1, "downscale_delay_s": 0.5}


def test_autoscaling_scales_up_under_load_and_down_when_idle(url):
    gate = Gate.remote()

    @serve.deployment(route_prefix="/auto", autoscaling_config=FAST_AUTOSCALING)
    class Auto:
        def __init__(self, gate):
            self.gate = gate

        async def __call__(self, request):
            if request.query_params.get("wait"):
                await self.gate.wait.remote()
            return {"pid": os.getpid()}

    Auto.deploy(gate)
    assert Auto.num_replicas == "auto"
    assert serve.status().deployments["Auto"]["replica_states"] == {"RUNNING": 1}
    proxy_route = serve._api._state.proxy._routes["/auto"]
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        held = [pool.submit(requests.get, f"{url}/auto?wait=1", timeout=60) for _ in range(4)]
        _poll(lambda: raylite.get(gate.waiting.remote()) == 4, "four requests in flight")
        _poll(lambda: len(_running_pids("Auto")) == 2 and len(proxy_route.replicas.order) == 2,
              "a second replica under load")
        assert serve.status().deployments["Auto"]["target_replicas"] == 2
        held.append(pool.submit(requests.get, f"{url}/auto?wait=1", timeout=60))  # to the new one
        _poll(lambda: raylite.get(gate.waiting.remote()) == 5, "the fifth request in flight")
        raylite.get(gate.open.remote())
        answers = [f.result() for f in held]
    assert all(a.status_code == 200 for a in answers)
    assert answers[-1].json()["pid"] not in {a.json()["pid"] for a in answers[:4]}
    _poll(lambda: serve.status().deployments["Auto"]["replica_states"] == {"RUNNING": 1},
          "back to one replica when idle")
    raylite.kill(gate)


def test_autoscaling_from_zero_replicas(url):
    config = dict(FAST_AUTOSCALING, min_replicas=0, initial_replicas=0)

    @serve.deployment(route_prefix="/lazy", autoscaling_config=config)
    def lazy(request):
        return "woke up"

    lazy.deploy()
    assert serve.status().deployments["lazy"]["replica_states"] == {}
    response = requests.get(f"{url}/lazy", timeout=60)  # waits while a replica starts
    assert response.status_code == 200 and response.text == "woke up"
    _poll(lambda: serve.status().deployments["lazy"]["replica_states"] == {},
          "back to zero replicas when idle")
