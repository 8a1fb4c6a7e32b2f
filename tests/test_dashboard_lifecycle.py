"""The dashboard's life with init and shutdown: the printed URL, the next free port, turning it
off, another host (with a warning), and nothing left behind after shutdown."""

from __future__ import annotations

import socket
import threading

import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
psutil = pytest.importorskip("psutil")

import raylite
from raylite.dashboard import _server

import _support
from _support import free_port


def poll(condition, what: str, timeout_s: float = 20.0):
    return _support.poll(condition, what, timeout_s, interval_s=0.02,
                         ignore=(requests.ConnectionError,))


def get(url: str, host: str | None = None):
    session = requests.Session()
    session.trust_env = False
    return session.get(url, timeout=10, headers={"Host": host} if host else None)


def dashboard_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "raylite-dashboard"]


def port_is_free(port: int) -> bool:
    """No one listens there (closed connections may linger in TIME_WAIT: allowed)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        except OSError:
            return False
    return True


@pytest.fixture(autouse=True)
def _fresh():
    raylite.shutdown()
    yield
    raylite.shutdown()


def test_init_prints_the_url_serves_and_shutdown_stops_it(capfd):
    port = free_port()
    ctx = raylite.init(num_cpus=1, dashboard_port=port)
    assert f"View the dashboard at http://127.0.0.1:{port}" in capfd.readouterr().err
    assert ctx["webui_url"] == f"127.0.0.1:{port}" and ctx.dashboard_url == f"127.0.0.1:{port}"
    page = poll(lambda: (r := get(f"http://127.0.0.1:{port}/")).status_code == 200 and r,
                "the page")
    assert "<title>raylite dashboard</title>" in page.text
    raylite.shutdown()
    poll(lambda: not dashboard_threads(), "the dashboard thread to end", 5)
    assert port_is_free(port)
    with pytest.raises(requests.ConnectionError):
        get(f"http://127.0.0.1:{port}/api")


def test_default_port_is_8265_or_the_next_free_one():
    ctx = raylite.init(num_cpus=1)
    host, port = ctx["webui_url"].split(":")
    assert host == "127.0.0.1" and 8265 <= int(port) < 8265 + _server.PORT_TRIES


def test_taken_port_moves_to_the_next_free_one():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        ctx = raylite.init(num_cpus=1, dashboard_port=port)
        chosen = int(ctx["webui_url"].rsplit(":", 1)[1])
        assert port < chosen < port + _server.PORT_TRIES
        assert poll(lambda: get(f"http://127.0.0.1:{chosen}/api").status_code == 200,
                    "the dashboard on the next port")
    finally:
        taken.close()


def test_bind_first_free_checks_its_port():
    with pytest.raises(ValueError, match="dashboard_port"):
        _server.bind_first_free("127.0.0.1", 70000)
    with pytest.raises(ValueError, match="dashboard_port"):
        _server.bind_first_free("127.0.0.1", "8265")
    sock = _server.bind_first_free("127.0.0.1", 0)
    try:
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()


@pytest.mark.parametrize("how", ["argument", "environment", "local_mode"])
def test_turned_off_starts_nothing(how, monkeypatch, capfd):
    if how == "argument":
        ctx = raylite.init(num_cpus=1, include_dashboard=False)
    elif how == "environment":
        monkeypatch.setenv("RAYLITE_DASHBOARD", "0")
        ctx = raylite.init(num_cpus=1)
    else:
        ctx = raylite.init(local_mode=True)
    assert ctx["webui_url"] is None and ctx.dashboard_url == ""
    assert "View the dashboard" not in capfd.readouterr().err
    assert not dashboard_threads()
    from raylite import dashboard
    assert dashboard._current is None


def test_explicit_true_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("RAYLITE_DASHBOARD", "0")
    ctx = raylite.init(num_cpus=1, include_dashboard=True, dashboard_port=0)
    assert ctx["webui_url"] and len(dashboard_threads()) == 1


def test_another_host_warns_and_still_checks_the_host_header(capfd):
    ctx = raylite.init(num_cpus=1, dashboard_host="0.0.0.0", dashboard_port=0)
    err = capfd.readouterr().err
    port = int(ctx["webui_url"].rsplit(":", 1)[1])
    assert "warning" in err and f"0.0.0.0:{port}" in err and "other machines" in err
    url = f"http://127.0.0.1:{port}/api/cluster"
    assert poll(lambda: get(url).status_code == 200, "the dashboard on 0.0.0.0")
    assert get(url, host=f"evil.example:{port}").status_code == 403
    assert get(url, host=f"{socket.gethostname()}:{port}").status_code == 200
    own_ips = {address.address for addresses in psutil.net_if_addrs().values()
               for address in addresses if address.family == socket.AF_INET}
    for ip in own_ips:  # the machine's own addresses, as a browser on another machine sends them
        assert get(url, host=f"{ip}:{port}").status_code == 200, ip


def test_loopback_binding_does_not_warn(capfd):
    raylite.init(num_cpus=1, dashboard_port=0)
    assert "warning" not in capfd.readouterr().err


def test_shutdown_right_after_init_leaves_nothing():
    ctx = raylite.init(num_cpus=1, dashboard_port=0)
    port = int(ctx["webui_url"].rsplit(":", 1)[1])
    raylite.shutdown()  # the thread may still be importing FastAPI
    poll(lambda: not dashboard_threads(), "the dashboard thread to end", 10)
    assert port_is_free(port)


COST_PROBE = r"""
import json, sys, time, urllib.request
import psutil
import raylite
from raylite.core import _api
started = {}
(real_start, real_stop), = _api._runtime_hooks  # the dashboard's, registered by raylite
def timed(*args):
    t = time.perf_counter()
    try:
        return real_start(*args)
    finally:
        started["s"] = time.perf_counter() - t
_api._runtime_hooks[0] = (timed, real_stop)
ctx = raylite.init(num_cpus=1)
me = psutil.Process()
rss_init = me.memory_info().rss
for path in ("/", "/api/cluster", "/api/tasks", "/api/objects"):
    urllib.request.urlopen(f"http://{ctx.dashboard_url}{path}", timeout=60).read()
rss_open = me.memory_info().rss
raylite.shutdown()
print(json.dumps({"start_s": started["s"], "added_bytes": rss_open - rss_init}))
"""


def test_dashboard_costs_init_little_time_and_under_30_mb_once_opened():
    """The issue's budget: <= 0.2 s added to init, <= 30 MB (bench/dashboard.py measures both
    against a driver without it)."""
    import json
    import subprocess
    import sys
    psutil = pytest.importorskip("psutil")
    assert psutil
    out = subprocess.run([sys.executable, "-c", COST_PROBE], capture_output=True, text=True,
                         timeout=120, env={**__import__("os").environ, "RAYLITE_DASHBOARD": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    cost = json.loads(out.stdout.strip().splitlines()[-1])
    assert cost["start_s"] <= 0.2, cost
    assert cost["added_bytes"] <= 30 * (1 << 20), cost
