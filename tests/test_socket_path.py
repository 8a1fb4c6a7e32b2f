"""``init()`` works whatever TMPDIR is: a Unix socket path may hold at most 107 bytes, so with a
long TMPDIR the control socket goes to a short private folder, and nothing is left behind."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from raylite.core import _socket_path

ROOT = Path(__file__).resolve().parents[1]

DRIVER = textwrap.dedent("""
    import os, tempfile, raylite
    from raylite.core._control import ControlClient, running_sessions
    raylite.init(num_cpus=1, include_dashboard=False)
    assert tempfile.gettempdir() == os.environ["TMPDIR"]

    @raylite.remote
    def add(a, b):
        return a + b
    assert raylite.get(add.remote(1, 2)) == 3
    [record] = [r for r in running_sessions() if r["pid"] == os.getpid()]
    client = ControlClient(record)
    print("STATUS", sorted(client.call("status"))[:1])
    client.close()
    print("SOCKET", record["socket"])
    raylite.shutdown()
""")


def test_init_with_a_long_tmpdir(tmp_path):
    long_tmp = tmp_path / ("t" * 60) / ("u" * 60)
    long_tmp.mkdir(parents=True)
    assert len(str(long_tmp)) > 107
    env = dict(os.environ, TMPDIR=str(long_tmp), PYTHONPATH=str(ROOT), HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "STATUS" in done.stdout
    socket = done.stdout.split("SOCKET ", 1)[1].split()[0]
    assert len(os.fsencode(socket)) <= 107 and not socket.startswith(str(long_tmp))
    assert not os.path.exists(os.path.dirname(socket))  # removed at shutdown


def test_a_short_session_folder_keeps_its_socket(tmp_path):
    assert _socket_path.socket_path("/tmp/s", "control.sock") == "/tmp/s/control.sock"
    long_dir = "/tmp/" + "x" * 120
    path = _socket_path.socket_path(long_dir, "control.sock")
    try:
        folder = os.path.dirname(path)
        assert len(path) <= 107 and os.path.basename(folder).startswith("raylite-sock-")
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    finally:
        _socket_path.release(path)
    assert not os.path.exists(folder)


def test_folders_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f"raylite-sock-{dead}-abcd"
    mine = tmp_path / f"raylite-sock-{os.getpid()}-abcd"
    stale.mkdir()
    mine.mkdir()
    _socket_path.remove_stale(str(tmp_path))
    assert not stale.exists() and mine.exists()
