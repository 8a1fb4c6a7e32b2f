"""Serve's edges against bad input: request bodies past the limit get 413, ``serve run`` on a busy
port says so in one line, and a misspelt application name gets a "did you mean"."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("uvicorn")

import raylite
from raylite import serve
from _support import free_port

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 4096


@pytest.fixture(scope="module")
def url():
    raylite.shutdown()
    raylite.init(num_cpus=1, include_dashboard=False)
    port = free_port()
    serve.start(http_options={"port": port, "max_request_body_bytes": LIMIT})

    @serve.deployment
    class Size:
        async def __call__(self, request):
            return {"size": len(await request.body())}

    serve.run(Size.bind(), route_prefix="/size")
    yield f"http://127.0.0.1:{port}/size"
    serve.shutdown()
    raylite.shutdown()


def _raw(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Send a raw request; the reply up to the server closing (or 10 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_bodies_up_to_the_limit_pass_larger_ones_get_413(url):
    assert requests.post(url, data=b"x" * LIMIT, timeout=30).json() == {"size": LIMIT}
    refused = requests.post(url, data=b"x" * (LIMIT + 1), timeout=30)
    assert refused.status_code == 413
    assert "Payload Too Large" in refused.text and str(LIMIT) in refused.text
    assert "max_request_body_bytes" in refused.text

    def chunks():  # chunked transfer encoding: no Content-Length to check first
        for _ in range(3):
            yield b"y" * 2000
    chunked = requests.post(url, data=chunks(), timeout=30)
    assert chunked.status_code == 413
    assert requests.post(url, data=b"z" * 10, timeout=30).json() == {"size": 10}  # still serving


def test_a_declared_huge_body_is_refused_before_it_is_sent(url):
    """Content-Length says 1 GB and nothing follows: the 413 comes at once, nothing is read."""
    port = int(url.split(":")[2].split("/")[0])
    reply = _raw(port, b"POST /size HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Content-Length: 1000000000\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]


def test_the_default_limit_is_10_mib_and_bad_values_are_refused():
    from raylite.serve._common import DEFAULT_MAX_REQUEST_BODY_BYTES
    from raylite.serve._proxy import HTTPProxy
    assert DEFAULT_MAX_REQUEST_BODY_BYTES == 10 * 2**20
    assert HTTPProxy("127.0.0.1", 0, None).max_body_bytes == 10 * 2**20
    for bad in ("10MB", -1, 1.5, True):
        with pytest.raises(ValueError, match="max_request_body_bytes must be an int"):
            serve.start(http_options={"max_request_body_bytes": bad})


APP = textwrap.dedent("""
    from raylite import serve

    @serve.deployment
    def hello(request):
        return "hello"

    app = hello.bind()
""")


def _serve_cli(cwd: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "raylite.cli._serve", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_serve_run_on_a_busy_port_says_so_in_one_line(tmp_path):
    (tmp_path / "hello_app.py").write_text(APP)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = _serve_cli(tmp_path, "run", "hello_app:app", "--port", str(port))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0]
    assert "in use" in lines[0]


def test_serve_run_of_a_misspelt_application_suggests_the_name(tmp_path):
    (tmp_path / "hello_app.py").write_text(APP)
    done = _serve_cli(tmp_path, "run", "hello_app:ap")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "has no attribute 'ap'" in lines[0] and "did you mean 'app'" in lines[0]
