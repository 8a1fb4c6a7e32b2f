"""`serve run --non-blocking`: the application goes to a background instance (started when
none runs) and the command returns; the application keeps serving until `serve shutdown`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from _support import free_port

requests = pytest.importorskip("requests")

APP = textwrap.dedent("""
    from raylite import serve

    @serve.deployment(ray_actor_options={"num_cpus": 0.25})
    def hello(request):
        return {"hello": request.query_params.get("name", "world")}

    app = hello.bind()
""")


def _serve(cwd, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "raylite.cli._serve", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_run_non_blocking_returns_and_keeps_serving(tmp_path):
    (tmp_path / "hello_app.py").write_text(APP)
    port = free_port()
    try:
        out = _serve(tmp_path, "run", "--non-blocking", "hello_app:app", "--port", str(port))
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"http://127.0.0.1:{port}/" in out.stdout and "serve shutdown" in out.stdout
        reply = requests.get(f"http://127.0.0.1:{port}/?name=ray", timeout=30)
        assert reply.json() == {"hello": "ray"}
        # a second non-blocking run goes to the same instance
        out = _serve(tmp_path, "run", "--non-blocking", "hello_app:app", "--route-prefix",
                     "/again")
        assert out.returncode == 0, out.stdout + out.stderr
        assert requests.get(f"http://127.0.0.1:{port}/again", timeout=30).json() == {
            "hello": "world"}
        out = _serve(tmp_path, "run", "--non-blocking", "hello_app:nothing")
        assert out.returncode == 2 and "no attribute 'nothing'" in out.stderr
    finally:
        _serve(tmp_path, "shutdown")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the instance exits after answering
        if _serve(tmp_path, "status").returncode == 1:
            break
    assert _serve(tmp_path, "status").returncode == 1
