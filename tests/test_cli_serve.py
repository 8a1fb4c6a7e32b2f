"""The `serve` command end to end: start, deploy a config, status, HTTP, shutdown."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
import requests
from _support import free_port as _free_port

APP = textwrap.dedent("""
    from raylite import serve

    @serve.deployment
    class Greeter:
        def __init__(self):
            self.greeting = "hello"

        def reconfigure(self, config):
            self.greeting = config["greeting"]

        def __call__(self, request):
            return f"{self.greeting} {request.query_params.get('name', 'world')}"

    app = Greeter.bind()
    scaled_app = Greeter.options(name="Scaled").bind()
""")


def _serve(cwd, *args, timeout=90):
    return subprocess.run([sys.executable, "-m", "raylite.cli._serve", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    work = tmp_path_factory.mktemp("serve_app")
    (work / "greeter_app.py").write_text(APP)
    port = _free_port()
    out = _serve(work, "start", "--port", str(port))
    assert out.returncode == 0, out.stderr
    yield work, port
    _serve(work, "shutdown")


def test_deploy_config_then_http_and_status(instance):
    work, port = instance
    (work / "config.yaml").write_text(textwrap.dedent("""
        applications:
          - name: greet
            import_path: greeter_app:app
            route_prefix: /greet
            deployments:
              - name: Greeter
                num_replicas: 2
                user_config: {greeting: hi}
                health_check_period_s: 1
                graceful_shutdown_timeout_s: 5
          - name: scaled
            import_path: greeter_app:scaled_app
            route_prefix: /scaled
            deployments:
              - name: Scaled
                autoscaling_config: {min_replicas: 0, max_replicas: 1, initial_replicas: 0}
    """))
    out = _serve(work, "deploy", "config.yaml")
    assert out.returncode == 0, out.stderr
    reply = requests.get(f"http://127.0.0.1:{port}/greet?name=book", timeout=10)
    assert reply.status_code == 200 and reply.text == "hi book"
    out = _serve(work, "status")
    assert out.returncode == 0, out.stderr
    assert "Greeter" in out.stdout and "HEALTHY" in out.stdout and "2 running" in out.stdout
    assert "Scaled" in out.stdout and "autoscaling 0..1, target 0" in out.stdout


def test_deploy_bad_config_names_the_problem(instance):
    work, _ = instance
    (work / "bad.yaml").write_text("applications:\n  - name: x\n    import_path: greeter_app:nope\n")
    out = _serve(work, "deploy", "bad.yaml")
    assert out.returncode == 1 and "no attribute 'nope'" in out.stderr
    (work / "bad2.yaml").write_text("applications:\n  - import_path: greeter_app:app\n"
                                    "    deployments: [{name: Greeter, replicas: 2}]\n")
    out = _serve(work, "deploy", "bad2.yaml")
    assert out.returncode == 1 and "replicas" in out.stderr and "num_replicas" in out.stderr


def test_http_cannot_control_serve(instance):
    work, port = instance
    for method in ("DELETE", "POST", "PUT"):
        reply = requests.request(method, f"http://127.0.0.1:{port}/-/routes", timeout=10)
        assert reply.status_code in (404, 405)
    assert _serve(work, "status").returncode == 0  # still running


def test_shutdown_then_commands_say_nothing_runs(instance):  # last: stops the instance
    work, port = instance
    assert _serve(work, "shutdown").returncode == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the instance exits after answering
        out = _serve(work, "status")
        if out.returncode == 1:
            break
    assert out.returncode == 1 and "serve start" in out.stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/greet", timeout=5)
