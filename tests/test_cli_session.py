"""`raylite status / memory / timeline` against a running driver, over the private channel."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap

import pytest

DRIVER = textwrap.dedent("""
    import sys, numpy as np, raylite
    raylite.init(num_cpus=2)
    @raylite.remote
    def make(n):
        return np.ones(n)
    @raylite.remote
    class Tracker:
        def ping(self):
            return 1
    tracker = Tracker.options(name="tracker").remote()
    refs = [make.remote(200_000) for _ in range(3)]
    raylite.get(refs + [tracker.ping.remote()])
    node = raylite.core._api._backend_obj
    print(node.session_dir, flush=True)
    sys.stdin.read()
""")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raylite.cli._raylite", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def driver():
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    session_dir = proc.stdout.readline().strip()
    yield proc, session_dir
    proc.stdin.close()
    proc.wait(timeout=30)


def test_status_shows_resources_workers_actors(driver):
    proc, _ = driver
    out = _cli("status", "--pid", str(proc.pid))
    assert out.returncode == 0, out.stderr
    assert f"driver pid {proc.pid}" in out.stdout
    assert "CPU" in out.stdout and "IDLE" in out.stdout
    assert "Tracker" in out.stdout and "tracker" in out.stdout and "ALIVE" in out.stdout


def test_memory_lists_objects_with_sizes_and_makers(driver):
    proc, _ = driver
    out = _cli("memory", "--pid", str(proc.pid))
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if " make" in line]
    assert len(rows) == 3 and all("shared memory" in r and "1600" in r for r in rows)


def test_timeline_writes_chrome_trace(driver, tmp_path):
    proc, _ = driver
    target = tmp_path / "trace.json"
    out = _cli("timeline", "--pid", str(proc.pid), "-o", str(target))
    assert out.returncode == 0, out.stderr
    events = json.loads(target.read_text())
    assert {e["name"] for e in events} >= {"make", "Tracker.ping"}
    assert all(e["ph"] == "X" and e["dur"] >= 0 for e in events)


def test_channel_is_private_and_needs_the_key(driver):
    proc, session_dir = driver
    assert stat.S_IMODE(os.stat(session_dir).st_mode) == 0o700
    sock_path = os.path.join(session_dir, "control.sock")
    assert stat.S_IMODE(os.stat(os.path.join(session_dir, "control.key")).st_mode) == 0o600
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(sock_path)
        s.sendall(b"x" * 32)  # a wrong key
        reply = s.recv(1024)
    assert b"bad key" in reply


def test_no_driver_running_is_a_clear_error():
    out = _cli("status", "--pid", "1")
    assert out.returncode == 1 and "no running raylite driver" in out.stderr
