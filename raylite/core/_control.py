"""The session's private control channel: how ``raylite status``, ``serve status`` and friends
reach a running driver.

    CLI process ──connect──▶ <session dir>/control.sock (Unix socket, folder mode 0700)
                 ──key────▶ checked against <session dir>/control.key (mode 0600)
                 ──(name, args)──▶ handler registered by the core or a library ──▶ reply

There is no TCP port and no HTTP endpoint: only a process of the same user that can read the
key file can ask anything, and it can only call the handlers registered here. Running drivers
are listed in ``~/.raylite/sessions/<pid>.json`` (mode 0600) so the CLI can find them.
"""

from __future__ import annotations

import hmac
import json
import os
import pickle
import socket
import struct
import threading
from typing import Any, Callable

_LEN = struct.Struct("<I")
SESSIONS_DIR = os.path.join(os.path.expanduser("~"), ".raylite", "sessions")


def _send(sock: socket.socket, value: Any) -> None:
    body = pickle.dumps(value, protocol=5)
    sock.sendall(_LEN.pack(len(body)) + body)


def _recv(sock: socket.socket) -> Any:
    header = _recv_exact(sock, 4)
    return pickle.loads(_recv_exact(sock, _LEN.unpack(header)[0]))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise ConnectionError("control channel closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class ControlServer:
    """Serves registered handlers to authenticated local clients, one thread per connection."""

    def __init__(self, session_dir: str, info: dict[str, Any]):
        from raylite.core._socket_path import socket_path
        self.path = socket_path(session_dir, "control.sock")  # elsewhere if TMPDIR is too long
        self.key = os.urandom(32)
        key_path = os.path.join(session_dir, "control.key")
        fd = os.open(key_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.key)
        self.handlers: dict[str, Callable] = {}
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o600)
        self.sock.listen(16)
        self.record = os.path.join(SESSIONS_DIR, f"{os.getpid()}.json")
        os.makedirs(SESSIONS_DIR, mode=0o700, exist_ok=True)
        fd = os.open(self.record, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({**info, "pid": os.getpid(), "socket": self.path, "key_file": key_path}, f)
        self.closed = False
        threading.Thread(target=self._accept, name="raylite-control", daemon=True).start()

    def register(self, name: str, handler: Callable) -> None:
        """Make ``handler(*args)`` callable as ``name`` by clients (libraries add theirs)."""
        self.handlers[name] = handler

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name="raylite-control-conn").start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                if not hmac.compare_digest(_recv_exact(conn, 32), self.key):
                    _send(conn, (False, "bad key"))
                    return
                conn.settimeout(None)
                while True:
                    name, args = _recv(conn)
                    handler = self.handlers.get(name)
                    if handler is None:
                        _send(conn, (False, f"unknown request {name!r}; known: "
                                            f"{', '.join(sorted(self.handlers))}"))
                        continue
                    try:
                        _send(conn, (True, handler(*args)))
                    except Exception as exc:  # the caller gets the error, the driver goes on
                        _send(conn, (False, f"{type(exc).__name__}: {exc}"))
            except (ConnectionError, OSError, EOFError, pickle.UnpicklingError):
                return

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        from raylite.core._socket_path import release
        try:
            os.unlink(self.record)
        except FileNotFoundError:
            pass
        release(self.path)


class ControlClient:
    """A connection to a running driver's control channel."""

    def __init__(self, record: dict[str, Any], timeout: float = 10.0):
        self.record = record
        with open(record["key_file"], "rb") as f:
            key = f.read()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(record["socket"])
        self.sock.sendall(key)

    def call(self, name: str, *args: Any) -> Any:
        _send(self.sock, (name, args))
        ok, value = _recv(self.sock)
        if not ok:
            raise RuntimeError(value)
        return value

    def close(self) -> None:
        self.sock.close()


def running_sessions() -> list[dict[str, Any]]:
    """Records of drivers that are alive now, newest first (stale records are removed)."""
    out = []
    try:
        names = os.listdir(SESSIONS_DIR)
    except OSError:
        return out
    for name in names:
        path = os.path.join(SESSIONS_DIR, name)
        try:
            with open(path) as f:
                record = json.load(f)
            os.kill(record["pid"], 0)
        except ProcessLookupError:
            _remove(path)
            continue
        except (OSError, ValueError, KeyError):
            continue
        if os.path.exists(record.get("socket", "")):
            out.append(record)
    return sorted(out, key=lambda r: r.get("started", 0), reverse=True)


def connect(pid: int | None = None) -> ControlClient:
    """Connect to the newest running driver (or the one with ``pid``)."""
    sessions = [s for s in running_sessions() if pid is None or s["pid"] == pid]
    if not sessions:
        which = f"with pid {pid}" if pid else "on this machine"
        raise ConnectionError(f"no running raylite driver {which}: start one with "
                              "raylite.init() in your program (it stays reachable while it runs)")
    return ControlClient(sessions[0])


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
