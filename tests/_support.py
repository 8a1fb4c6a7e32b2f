"""Helpers the test modules share: a free loopback port, and waiting on a condition (never a
fixed sleep)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, Callable

import pytest

import raylite


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def poll(condition: Callable[[], Any], what: str, timeout_s: float = 20.0,
         ignore: tuple[type[BaseException], ...] = (), interval_s: float = 0.01) -> Any:
    """``condition()``'s first truthy value; fails the test after ``timeout_s``, naming ``what``.

    Exceptions of the ``ignore`` types count as "not yet" (a server still starting, a key not
    there yet); the last one is shown if time runs out.
    """
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except ignore as exc:
            value, last_error = None, exc
        if value:
            return value
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}"
                + (f" (last error: {last_error!r})" if last_error else ""))



@raylite.remote(num_cpus=0)
class Gate:
    """A cross-process event: deployments and tasks ``wait()`` on it, the test ``open()``s it,
    and ``waiting()`` counts who waits."""

    def __init__(self):
        self.event = asyncio.Event()
        self.waiters = 0

    async def wait(self):
        self.waiters += 1
        await self.event.wait()
        return True

    async def open(self):
        self.event.set()

    async def waiting(self):
        return self.waiters


@raylite.remote
class Counter:
    """A shared count, for counting what ran where (constructions, calls)."""

    def __init__(self):
        self.count = 0

    def add(self, n):
        self.count += n
        return self.count

    def value(self):
        return self.count
