"""The dashboard's JSON API against a live 2-CPU runtime, and its security rules.

One runtime for the module (with a small object store, so objects spill); every test polls the
API with a deadline until it shows what the runtime did, and fails if it never does.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import raylite
import _support
from _support import free_port

METHODS_THAT_WRITE = ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")


def poll(condition, what: str, timeout_s: float = 20.0):
    return _support.poll(condition, what, timeout_s, interval_s=0.02,
                         ignore=(requests.ConnectionError, KeyError))


class Dashboard:
    def __init__(self, url: str, port: int, results: str):
        self.url = url
        self.port = port
        self.results = results
        self.http = requests.Session()
        self.http.trust_env = False  # never through a proxy

    def get(self, path: str, **kwargs):
        return self.http.get(self.url + path, timeout=10, **kwargs)

    def json(self, path: str):
        response = self.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        return response.json()


@pytest.fixture(scope="module")
def dash(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    results = str(tmp_path_factory.mktemp("results"))
    patch.setenv("RAYLITE_RESULTS_DIR", results)
    patch.setenv("RAYLITE_DASHBOARD_ALLOWED_HOSTS", " dash.internal.example , Proxy.Example. ")
    raylite.shutdown()
    port = free_port()
    ctx = raylite.init(num_cpus=2, dashboard_port=port, object_store_memory=48 << 20)
    dashboard = Dashboard(f"http://127.0.0.1:{port}", port, results)
    assert ctx["webui_url"] == f"127.0.0.1:{port}" and ctx.dashboard_url == f"127.0.0.1:{port}"
    poll(lambda: dashboard.get("/api").status_code == 200, "the dashboard to serve")
    yield dashboard
    raylite.shutdown()
    patch.undo()


# ----- what the runtime has ---------------------------------------------------------------------
def test_page_and_endpoint_index(dash):
    page = dash.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "raylite dashboard" in page.text and "/api/tasks" in page.text
    endpoints = dash.json("/api")["endpoints"]
    for path in ("/api/cluster", "/api/workers", "/api/tasks", "/api/actors", "/api/objects",
                 "/api/tune", "/api/serve", "/api/rllib", "/api/timeline"):
        assert path in endpoints
        assert dash.get(path).status_code == 200, path


def test_cluster_workers_and_tasks_show_a_running_task(dash, tmp_path):
    release = tmp_path / "release"

    @raylite.remote
    def hold_a_cpu(path):
        deadline = time.time() + 30
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.01)
        return "released"

    ref = hold_a_cpu.remote(str(release))
    try:
        cluster = poll(lambda: (c := dash.json("/api/cluster"))["usage"]["CPU"]["used"] >= 1 and c,
                       "a CPU in use")
        assert cluster["resources"] == raylite.cluster_resources()
        assert cluster["usage"]["CPU"]["total"] == 2.0 and cluster["driver"]["pid"] == os.getpid()
        workers = poll(lambda: [w for w in dash.json("/api/workers")["workers"]
                                if w["task"] == "hold_a_cpu"], "the worker running hold_a_cpu")
        assert workers[0]["state"] == "BUSY" and workers[0]["rss_bytes"] > 1 << 20
        live = dash.json("/api/tasks")["live"]
        assert [t["state"] for t in live if t["name"] == "hold_a_cpu"] == ["RUNNING"]
        assert dash.json("/api/tasks")["by_state"].get("RUNNING") == 1
    finally:
        release.touch()
    assert raylite.get(ref) == "released"


def test_tasks_by_function_and_a_failure_with_its_traceback(dash):
    token = uuid.uuid4().hex[:8]

    @raylite.remote
    def square(x):
        return x * x

    @raylite.remote
    def parse_record(line):
        raise ValueError(f"cannot parse record {line!r}")

    assert raylite.get([square.remote(i) for i in range(12)])[-1] == 121
    ref = parse_record.remote(f"row-{token}")
    with pytest.raises(ValueError):
        raylite.get(ref)

    def failure():
        tasks = dash.json("/api/tasks")
        found = [f for f in tasks["failures"] if token in f["message"]]
        counts = {row["name"]: row for row in tasks["by_name"]}
        return found and counts.get("square", {}).get("finished", 0) >= 12 and (found[0], tasks)

    row, tasks = poll(failure, "the failure and the finished squares")
    assert row["task"] == "parse_record" and row["type"] == "ValueError" and row["pid"]
    assert "Traceback (most recent call last)" in row["traceback"]
    assert "in parse_record" in row["traceback"] and "raise ValueError" in row["traceback"]
    assert {r["name"]: r["failed"] for r in tasks["by_name"]}["parse_record"] >= 1
    assert tasks["by_state"]["FAILED"] >= 1 and tasks["by_state"]["FINISHED"] >= 12
    assert any(r["name"] == "square" and r["ok"] for r in tasks["recent"])
    del ref  # the error object goes; the failure stays listed
    assert any(token in f["message"] for f in dash.json("/api/tasks")["failures"])


def test_actors_alive_then_dead(dash):
    @raylite.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def incr(self):
            self.n += 1
            return self.n

    counter = Counter.options(name="dash-counter").remote()
    assert raylite.get(counter.incr.remote()) == 1

    def row(state):
        rows = [a for a in dash.json("/api/actors")["actors"] if a["name"] == "dash-counter"]
        return rows and rows[0]["state"] == state and rows[0]

    alive = poll(lambda: row("ALIVE"), "the actor to show as ALIVE")
    assert alive["class"] == "Counter" and alive["pid"] and alive["rss_bytes"] > 1 << 20
    raylite.kill(counter)
    dead = poll(lambda: row("DEAD"), "the killed actor to show as DEAD")
    assert dead["death_cause"]


def test_objects_with_sizes_and_spilling(dash):
    np = pytest.importorskip("numpy")
    refs = [raylite.put(np.full(20 << 20, i, dtype=np.uint8)) for i in range(3)]  # 60 MiB > 48
    ids = {ref.hex() for ref in refs}

    def spilled():
        objects = dash.json("/api/objects")
        return objects["by_where"].get("spilled", {}).get("count", 0) >= 1 and objects

    objects = spilled() or poll(spilled, "a spilled object")
    big = [row for row in objects["largest"] if row["size"] >= 20 << 20]
    assert len(big) == 3 and {row["where"] for row in big} <= {"shared memory", "spilled"}
    assert all(row["made_by"] == "put" and row["refs"] >= 1 for row in big)
    assert objects["store"]["spilled_bytes"] >= 20 << 20 and objects["store"]["spill_count"] >= 1
    assert ids <= {row["object_id"] for row in objects["largest"]}
    del refs


def test_tune_experiment_trials_and_metric_series(dash):
    from raylite import tune

    def trainable(config):
        for step in range(4):
            tune.report(loss=config["lr"] / (step + 1), episode_reward_mean=step * config["lr"])

    tune.run(trainable, name="dash_sweep", metric="loss", mode="min", verbose=0,
             config={"lr": tune.grid_search([1.0, 2.0])})
    listed = dash.json("/api/tune")
    assert listed["root"] == os.path.realpath(dash.results) or listed["root"] == dash.results
    experiment = next(e for e in listed["experiments"] if e["name"] == "dash_sweep")
    assert experiment["metric"] == "loss" and experiment["mode"] == "min"
    assert experiment["status_counts"] == {"TERMINATED": 2}
    assert sorted(t["params"]["lr"] for t in experiment["trials"]) == [1.0, 2.0]
    assert all(t["iterations"] == 4 and t["last"]["loss"] == t["params"]["lr"] / 4
               for t in experiment["trials"])
    detail = dash.json("/api/tune/dash_sweep?metric=loss")
    lines = detail["series"]["lines"]
    assert len(lines) == 2 and all([p[0] for p in line["points"]] == [1, 2, 3, 4] for line in lines)
    assert sorted(line["points"][0][1] for line in lines) == [1.0, 2.0]
    assert "episode_reward_mean" in detail["experiment"]["metrics"]
    curves = dash.json("/api/rllib")["curves"]
    curve = next(c for c in curves if c["experiment"] == "dash_sweep")
    assert curve["metric"] == "episode_reward_mean" and len(curve["lines"]) == 2
    assert dash.get("/api/tune/no-such-experiment").status_code == 404
    for sneaky in ("%2E%2E", "..%2F..%2Fetc", "%2Fetc"):
        assert dash.get("/api/tune/" + sneaky).status_code == 404, sneaky


def test_serve_deployments_with_replica_health(dash):
    from raylite import serve
    from raylite.serve import _api as serve_api
    if serve_api._state is None:  # the dashboard asks Serve nothing, and never starts it
        assert dash.json("/api/serve")["running"] is False
        assert serve_api._state is None
    serve.start(http_options={"port": free_port()})
    try:
        @serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0})
        def greeter(request):
            return {"hello": "dashboard"}

        greeter.deploy()

        def healthy():
            rows = [d for d in dash.json("/api/serve")["deployments"] if d["name"] == "greeter"]
            return rows and rows[0]["healthy_replicas"] == 2 and rows[0]

        row = poll(healthy, "the greeter deployment with 2 healthy replicas")
        assert row["status"] == "HEALTHY" and row["replicas"] == 2
        assert row["route_prefix"] == "/greeter"
        assert list(dash.json("/api/serve")["proxies"].values()) == ["HEALTHY"]
    finally:
        serve.shutdown()


def test_timeline_is_a_chrome_trace(dash):
    @raylite.remote
    def traced():
        return 1

    raylite.get(traced.remote())
    events = poll(lambda: [e for e in dash.json("/api/timeline") if e["name"] == "traced"],
                  "the traced task in the timeline")
    assert events[0]["ph"] == "X" and events[0]["dur"] >= 0 and events[0]["args"]["ok"] is True


# ----- security: read-only, Host checked, no CORS, loopback only --------------------------------
def test_only_get_and_head_are_allowed(dash):
    paths = ["/", "/api", "/api/tasks", "/api/actors", "/api/tune/dash_sweep", "/api/serve",
             "/no/such/path"]
    for path in paths:
        for method in METHODS_THAT_WRITE:
            response = dash.http.request(method, dash.url + path, timeout=10, data=b"{}")
            assert response.status_code == 405, (method, path, response.status_code)
            assert response.headers["allow"] == "GET, HEAD"
    head = dash.http.head(dash.url + "/api/cluster", timeout=10)
    assert head.status_code == 200 and head.content == b""


def test_every_route_only_reads(dash):
    from raylite import dashboard
    app = dashboard._current.server.config.app.app  # the guard wraps the FastAPI app
    routes = [route for route in app.routes if hasattr(route, "methods")]
    assert len(routes) >= 10
    for route in routes:
        assert set(route.methods) <= {"GET", "HEAD"}, (route.path, route.methods)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert dash.get(path).status_code == 404, path


def test_host_names_that_could_be_rebound_are_refused(dash):
    """DNS rebinding needs a DNS name: names that are not localhost, this machine's or on the
    allow-list get 403; a request without Host too."""
    for host in ("evil.example", f"evil.example:{dash.port}", f"localhost.evil.example:{dash.port}",
                 f"127.0.0.1.evil.example:{dash.port}", f"dash.internal.example.evil:{dash.port}",
                 f"sub.localhost:{dash.port}", f"localhost:{dash.port}x", "[::1", "[evil]:80",
                 f"127.0.0.1:{dash.port}:1", ":80", "localhost:0"):
        response = dash.get("/api/cluster", headers={"Host": host})
        assert response.status_code == 403, host
        assert "Host" in response.text and "resources" not in response.text
        assert "RAYLITE_DASHBOARD_ALLOWED_HOSTS" in response.text
    with socket.create_connection(("127.0.0.1", dash.port), timeout=10) as sock:  # no Host at all
        sock.sendall(b"GET /api/cluster HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 403")


def test_ip_literals_localhost_and_allowed_names_are_served_on_any_port(dash):
    """Port forwarding (SSH, editors) changes the port; IP literals cannot be rebound."""
    for host in (f"127.0.0.1:{dash.port}", f"localhost:{dash.port}", f"LOCALHOST:{dash.port}",
                 "localhost:9000", "localhost", "localhost.", "127.0.0.1",
                 f"127.0.0.1:{dash.port + 1}",
                 "10.1.2.3:8080", f"[::1]:{dash.port}", "[::1]", f"0.0.0.0:{dash.port}",
                 "dash.internal.example", "dash.internal.example:8443", "PROXY.example:443"):
        response = dash.get("/api/cluster", headers={"Host": host})
        assert response.status_code == 200, host
        assert "resources" in response.text


def test_host_rule_and_allow_list_units(monkeypatch):
    from raylite.dashboard._app import allowed_names, host_allowed
    monkeypatch.delenv("RAYLITE_DASHBOARD_ALLOWED_HOSTS", raising=False)
    names = allowed_names("127.0.0.1")
    assert names == {"localhost"}
    assert host_allowed("192.168.1.20:8265", names) and host_allowed("[fe80::1]:1", names)
    assert not host_allowed("myhost:8265", names) and not host_allowed("", names)
    assert host_allowed(f"{socket.gethostname()}:1", allowed_names("0.0.0.0"))
    assert allowed_names("dash.example") == {"localhost", "dash.example"}  # served by name
    monkeypatch.setenv("RAYLITE_DASHBOARD_ALLOWED_HOSTS", "a.example,,B.example")
    names = allowed_names("127.0.0.1", ["c.example"])
    assert names == {"localhost", "a.example", "b.example", "c.example"}
    assert host_allowed("b.example:80", names) and not host_allowed("d.example:80", names)
    with pytest.raises(ValueError, match="allowed_hosts must be a list"):
        from raylite import dashboard
        dashboard.start(None, allowed_hosts="a.example")


def test_no_cors_headers(dash):
    origin = {"Origin": "http://evil.example"}
    for path in ("/", "/api/cluster", "/api/tasks"):
        response = dash.get(path, headers=origin)
        assert response.status_code == 200
        assert not [h for h in response.headers if h.lower().startswith("access-control-")], path
    preflight = dash.http.options(dash.url + "/api/cluster", timeout=10, headers={
        **origin, "Access-Control-Request-Method": "DELETE"})
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in {h.lower() for h in preflight.headers}
    page = dash.get("/")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_bound_to_loopback_only(dash):
    from raylite import dashboard
    assert dashboard._current.sock.getsockname()[0] == "127.0.0.1" or \
        dashboard._current.done.is_set()
    psutil = pytest.importorskip("psutil")
    listening = [c for c in psutil.Process().net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == dash.port]
    assert [c.laddr.ip for c in listening] == ["127.0.0.1"]
    addresses = {a.address for nic in psutil.net_if_addrs().values() for a in nic
                 if a.family == socket.AF_INET and not a.address.startswith("127.")}
    for address in addresses:  # not reachable on the machine's other addresses
        with pytest.raises(OSError):
            socket.create_connection((address, dash.port), timeout=2).close()


def test_requests_run_off_the_callers_thread(dash):
    threads = [t for t in threading.enumerate() if t.name == "raylite-dashboard"]
    assert len(threads) == 1 and threads[0].daemon
