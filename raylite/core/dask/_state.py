"""What ``raylite start`` records about the cluster it started, read back by ``init(address="auto")``.

    ~/.raylite/cluster.json   (or $RAYLITE_STATE_DIR; the folder is mode 0700, the file 0600)
        {"address": "tls://127.0.0.1:8786", "processes": [{"role": "scheduler", "pid": ...}, ...]}

The command line (``raylite start / stop / status``) writes it; the Dask backend reads it, so the
runtime never imports the command line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from raylite.core._stale import pid_alive

STATE_FILE = "cluster.json"


def state_root() -> Path:
    """``$RAYLITE_STATE_DIR`` or ``~/.raylite`` (not created)."""
    return Path(os.environ.get("RAYLITE_STATE_DIR") or Path.home() / ".raylite")


def state_dir() -> Path:
    """``$RAYLITE_STATE_DIR`` or ``~/.raylite``, created with mode 0700."""
    path = state_root()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    (path / "logs").mkdir(mode=0o700, exist_ok=True)
    return path


def read_state() -> dict | None:
    path = state_dir() / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write_state(state: dict) -> None:
    path = state_dir() / STATE_FILE
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=2)
    os.replace(temporary, path)


def recorded_address() -> str | None:
    """The scheduler address `raylite start --head` recorded here, if that scheduler still runs.

    For ``raylite.init(address="auto")``: Ray connects "auto" to the cluster `ray start` started.
    """
    state = read_state()
    if not state or not state.get("address"):
        return None
    schedulers = [p for p in state.get("processes", []) if p.get("role") == "scheduler"]
    if schedulers and not any(alive(p["pid"]) for p in schedulers):
        return None
    return state["address"]


def alive(pid: int) -> bool:
    """Whether a process runs (reaping it first if it is an exited child of ours)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    if not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
