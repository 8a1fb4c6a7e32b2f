"""The cluster ``raylite start`` starts belongs to its owner, as real processes prove it.

A cluster started with ``raylite start --head`` (mutual TLS; credentials mode 0600 in a state
folder mode 0700) runs work for a process of its owner that finds the credentials, and refuses,
quickly, a process without them: a plain-TCP client, a TLS client with another CA, on the
scheduler's port and on every worker and nanny port. Where the test runs as root it also
creates a second OS user and tries as that user. Every port binds 127.0.0.1. ``--insecure``
is plain TCP and says so. Connecting to a port that accepts and says nothing fails within
RAYLITE_CONNECT_TIMEOUT, and Ctrl-C ends the attempt at once.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")
pytest.importorskip("cryptography")
psutil = pytest.importorskip("psutil")

ROOT = Path(__file__).resolve().parents[1]
REFUSED_WITHIN_S = 20.0
SECOND_USER = "raylite-sectest"


def _cli(*args: str, state_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAYLITE_STATE_DIR=str(state_dir), PYTHONPATH=str(ROOT))
    env.pop("RAYLITE_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "raylite.cli._cluster", *args], check=False,
                          capture_output=True, text=True, timeout=timeout, env=env)


def _python(code: str, state_dir: Path | str, timeout: float = 60, **env_extra: str):
    env = dict(os.environ, RAYLITE_STATE_DIR=str(state_dir), PYTHONPATH=str(ROOT), **env_extra)
    env.pop("RAYLITE_ADDRESS", None)
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False,
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(state dir, scheduler address, cluster.json) of a TLS cluster with one worker."""
    state_dir = tmp_path_factory.mktemp("state")
    os.chmod(state_dir, 0o700)
    head = _cli("start", "--head", "--port", "0", "--num-cpus", "1", "--host", "127.0.0.1",
                "--include-dashboard", "false", "--idle-timeout", "120", state_dir=state_dir)
    assert head.returncode == 0, head.stdout + head.stderr
    state = json.loads((state_dir / "cluster.json").read_text())
    yield state_dir, state["address"], state
    stopped = _cli("stop", state_dir=state_dir)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def _listening(state: dict) -> list[tuple[str, str, int]]:
    """(role, ip, port) of every listening socket of the cluster's processes and children."""
    out = []
    for record in state["processes"]:
        process = psutil.Process(record["pid"])
        for member in [process, *process.children(recursive=True)]:
            for conn in member.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    out.append((record["role"], conn.laddr.ip, conn.laddr.port))
    return out


def test_head_makes_private_credentials_and_a_tls_address(cluster):
    state_dir, address, _ = cluster
    assert address.startswith("tls://127.0.0.1:")
    folder = state_dir / "tls"
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["ca.crt", "ca.key", "node.crt", "node.key"]
    assert all(stat.S_IMODE((folder / n).stat().st_mode) == 0o600 for n in names)


def test_every_port_binds_the_host_it_was_told(cluster):
    """The scheduler, its HTTP server (even with --no-dashboard), the nanny, the worker and the
    worker's HTTP server all listen on 127.0.0.1 only."""
    listening = _listening(cluster[2])
    roles = {role for role, _, _ in listening}
    assert roles == {"scheduler", "worker"} and len(listening) >= 5, listening
    assert all(ip == "127.0.0.1" for _, ip, _ in listening), listening


def test_a_process_of_the_owner_with_the_credentials_runs_work(cluster):
    state_dir, address, _ = cluster
    done = _python("""
        import os, raylite
        raylite.init()  # RAYLITE_ADDRESS=auto: the cluster `raylite start` recorded
        @raylite.remote
        def whoami():
            return os.getuid()
        print("RAN AS", raylite.get(whoami.remote(), timeout=30))
    """, state_dir, RAYLITE_ADDRESS="auto")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"RAN AS {os.getuid()}" in done.stdout
    status = _cli("status", state_dir=state_dir)
    assert status.returncode == 0 and address in status.stdout, status.stderr


ATTACK = """
    import asyncio, os, pwd, sys, time
    from distributed import Client
    from distributed.comm import connect
    from distributed.security import Security
    import raylite
    if os.environ.get("BECOME_USER"):  # the interpreter lives in root's home: import, then drop
        import raylite.core.dask._backend, raylite.core._api, raylite.cli._cluster
        import distributed.comm.tcp, cryptography.x509
        import cryptography.hazmat.primitives.asymmetric.rsa
        user = pwd.getpwnam(os.environ["BECOME_USER"])
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
        assert os.getuid() == user.pw_uid and os.geteuid() == user.pw_uid
        print("RUNNING AS", os.getuid())
    address, marker, ports = sys.argv[1], sys.argv[2], sys.argv[3:]
    plain = "tcp://" + address.split("://")[1]
    host = address.split("://")[1].rsplit(":", 1)[0]

    def attack():
        open(marker, "w").write(str(os.getuid()))

    def attempt(what, make):
        start = time.monotonic()
        try:
            client = make()
        except Exception as exc:
            print(f"REFUSED {what} after {time.monotonic() - start:.1f}s: {type(exc).__name__}")
            return
        try:
            client.run_on_scheduler(attack)
            client.submit(attack, pure=False).result(timeout=10)
        finally:
            client.close()
        print(f"ACCEPTED {what}")

    try:
        open(os.path.join(os.environ["TLS_FOLDER"], "node.key")).read()
        print("KEY WAS READABLE")
    except OSError as exc:
        print(f"CANNOT READ THE KEY: {type(exc).__name__}")
    try:
        raylite.init(address=address)
        print("ACCEPTED raylite.init")
    except Exception as exc:
        print(f"REFUSED raylite.init: {type(exc).__name__}")
    attempt("plain tcp", lambda: Client(plain, timeout=5, set_as_default=False))
    attempt("tls with another CA", lambda: Client(address, security=Security.temporary(),
                                                   timeout=5, set_as_default=False))
    async def identity(target, **kwargs):
        comm = await asyncio.wait_for(connect(target, timeout=5, **kwargs), 10)
        await comm.write({"op": "identity"})
        return await asyncio.wait_for(comm.read(), 10)

    for port in ports:
        foreign = Security.temporary().get_connection_args("client")
        for scheme, kwargs in (("tcp", {}), ("tls", foreign)):
            try:
                asyncio.run(identity(f"{scheme}://{host}:{port}", **kwargs))
                print(f"ACCEPTED {scheme} on port {port}")
            except Exception as exc:
                print(f"REFUSED {scheme} on port {port}: {type(exc).__name__}")
"""


def _dask_ports(state: dict) -> list[str]:
    """The cluster's Dask ports (scheduler, nanny, worker): all but the HTTP servers."""
    listening = _listening(state)
    http = set()
    for _, _, port in listening:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
                sock.settimeout(2)
                if sock.recv(16).startswith(b"HTTP/"):
                    http.add(port)
        except OSError:
            pass
    return [str(port) for _, _, port in listening if port not in http]


def _assert_all_refused(done: subprocess.CompletedProcess, marker: Path, ports: list[str]):
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ACCEPTED" not in out, out
    assert "KEY WAS READABLE" not in out and "CANNOT READ THE KEY" in out, out
    assert "REFUSED raylite.init: ConnectionError" in out, out
    assert "REFUSED plain tcp" in out and "REFUSED tls with another CA" in out, out
    assert out.count("REFUSED tcp on port") == len(ports) >= 3, out
    assert out.count("REFUSED tls on port") == len(ports), out
    assert not marker.exists()


def test_a_process_without_the_credentials_cannot_submit_work(cluster, tmp_path):
    """Same user, but no credentials in its state folder: every way in is refused, fast."""
    state_dir, address, state = cluster
    marker = tmp_path / "ran"
    ports = _dask_ports(state)
    empty = tmp_path / "empty-state"
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(ATTACK), address, str(marker),
                           *ports], capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, RAYLITE_STATE_DIR=str(empty), PYTHONPATH=str(ROOT),
                                   TLS_FOLDER=str(empty / "tls")))
    _assert_all_refused(done, marker, ports)
    assert time.monotonic() - start < REFUSED_WITHIN_S * 3


def _can_make_a_user() -> bool:
    return os.geteuid() == 0 and bool(shutil.which("useradd"))


@pytest.mark.skipif(not _can_make_a_user(), reason="needs root with useradd to create a second "
                    "OS user (the no-credentials test covers the rest)")
def test_a_second_os_user_cannot_submit_work(cluster, tmp_path):
    """Another user of this machine can reach 127.0.0.1 but not the owner's credentials. (The
    Python interpreter may live in root's home, which the new user cannot read: the attacking
    process imports what it needs as root, then becomes that user for good before it tries.)"""
    state_dir, address, state = cluster
    created = False
    try:
        pwd.getpwnam(SECOND_USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        SECOND_USER], check=True, capture_output=True)
        created = True
    try:
        _attack_as_second_user(state_dir, address, state, tmp_path)
    finally:
        if created:
            subprocess.run(["userdel", SECOND_USER], check=False, capture_output=True)


def _attack_as_second_user(state_dir: Path, address: str, state: dict, tmp_path: Path) -> None:
    user = pwd.getpwnam(SECOND_USER)
    assert user.pw_uid != os.getuid()
    work = tmp_path / "second-user"
    work.mkdir()
    os.chown(work, user.pw_uid, user.pw_gid)
    os.chmod(tmp_path, 0o755)
    ports = _dask_ports(state)
    marker = tmp_path / "ran"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), "PYTHONPATH": str(ROOT),
           "RAYLITE_STATE_DIR": str(state_dir), "TLS_FOLDER": str(state_dir / "tls"),
           "BECOME_USER": SECOND_USER}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(ATTACK), address, str(marker),
                           *ports], capture_output=True, text=True, timeout=120, check=False,
                          cwd=work, env=env)
    assert f"RUNNING AS {user.pw_uid}" in done.stdout, done.stdout + done.stderr[-3000:]
    _assert_all_refused(done, marker, ports)


def test_insecure_is_asked_for_and_warned(tmp_path):
    """--insecure: plain TCP, said twice (at start and when a client connects); this cluster
    also runs the Dask dashboard, which binds --host like every other port."""
    state_dir = tmp_path / "state"
    head = _cli("start", "--head", "--insecure", "--port", "0", "--num-cpus", "1",
                "--dashboard-port", "0", "--idle-timeout", "60", state_dir=state_dir)
    try:
        assert head.returncode == 0, head.stdout + head.stderr
        assert "warning: --insecure" in head.stderr and "without authentication" in head.stderr
        state = json.loads((state_dir / "cluster.json").read_text())
        address = state["address"]
        assert address.startswith("tcp://127.0.0.1:")
        assert not (state_dir / "tls").exists()
        listening = _listening(state)
        assert len(listening) >= 5 and all(ip == "127.0.0.1" for _, ip, _ in listening), listening
        done = _python(f"""
            import raylite
            raylite.init(address="{address}")
            print(raylite.get(raylite.put(7)))
        """, state_dir)
        assert done.returncode == 0 and done.stdout.strip() == "7", done.stderr
        assert f"raylite: warning: {address} is plain TCP" in done.stderr
    finally:
        _cli("stop", state_dir=state_dir)


# ==========================================================================================
# a port that accepts and says nothing
# ==========================================================================================
@pytest.fixture
def silent_server():
    """(port, event set on each accepted connection): accepts on 127.0.0.1, never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = threading.Event()
    held = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            accepted.set()
    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()
    for conn in held:
        conn.close()


@pytest.mark.parametrize("scheme", ["dask", "tcp"])
def test_a_silent_port_fails_within_the_connect_timeout(silent_server, tmp_path, scheme):
    port, _ = silent_server
    start = time.monotonic()
    done = _python(f"import raylite; raylite.init(address='{scheme}://127.0.0.1:{port}')",
                   tmp_path, timeout=60, RAYLITE_CONNECT_TIMEOUT="2")
    took = time.monotonic() - start
    assert done.returncode == 1 and took < 15, (took, done.stderr[-2000:])
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ConnectionError:") and f"127.0.0.1:{port}" in last
    assert "no Dask handshake within 2 s" in last and "RAYLITE_CONNECT_TIMEOUT" in last


def test_ctrl_c_ends_a_hanging_connect_at_once(silent_server, tmp_path):
    port, accepted = silent_server
    env = dict(os.environ, RAYLITE_STATE_DIR=str(tmp_path), PYTHONPATH=str(ROOT),
               RAYLITE_CONNECT_TIMEOUT="600")
    env.pop("RAYLITE_ADDRESS", None)
    process = subprocess.Popen(
        [sys.executable, "-c", f"import raylite; raylite.init(address='tcp://127.0.0.1:{port}')"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert accepted.wait(30), "the client never connected"
        process.send_signal(signal.SIGINT)
        start = time.monotonic()
        _, err = process.communicate(timeout=10)
        assert time.monotonic() - start < 5
        assert process.returncode != 0 and "KeyboardInterrupt" in err
    finally:
        process.kill()
        process.wait()


def test_raylite_address_auto_means_the_recorded_cluster(tmp_path):
    done = _python("import raylite; raylite.init()", tmp_path / "nothing-started",
                   RAYLITE_ADDRESS="auto")
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and last.startswith("ConnectionError:"), done.stderr[-2000:]
    assert "found no running cluster" in last and "raylite start --head" in last
