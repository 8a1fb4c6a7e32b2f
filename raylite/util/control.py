"""The driver's private control channel, for libraries and command-line tools.

A library registers what its command may ask (``serve status``, ``serve deploy``) with
:func:`register`; the command connects with :func:`connect` and calls it by name. The channel
is a Unix socket in the session folder guarded by a key file (see raylite.core._control);
nothing is exposed over HTTP.

    register("serve.status", lambda: {...})          # in the driver
    with connect() as client:                         # in a CLI process
        print(client.call("serve.status"))
"""

from __future__ import annotations

from typing import Any, Callable

from raylite.core import _api
from raylite.core._control import ControlClient, running_sessions
from raylite.core._control import connect as _connect

__all__ = ["register", "connect", "running_sessions", "ControlClient"]


def register(name: str, handler: Callable[..., Any]) -> None:
    """Expose ``handler`` to local command-line tools as ``name`` (driver side, local runtime)."""
    backend = _api._backend()
    control = getattr(backend, "control", None)
    if control is None:
        raise RuntimeError("this runtime has no control channel (local_mode or a worker process); "
                           "register handlers from the driver of a local runtime")
    control.register(name, handler)


class _Session:
    def __init__(self, pid: int | None):
        self.client = _connect(pid)

    def __enter__(self) -> ControlClient:
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()


def connect(pid: int | None = None) -> _Session:
    """Connect to the newest running driver (or ``pid``); use as a context manager."""
    return _Session(pid)
