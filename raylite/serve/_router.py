"""Choosing a replica for each call, and waiting on many calls at once.

    proxy / handle ─▶ ReplicaSet.choose() ─▶ replica.method.remote(...) ─▶ ObjectRef ─▶ ref.future()
                            ▲                                                          │ completed by
                            └──────────────── ReplicaSet.release(replica) ◀─ callback ─┘ the runtime

A ``ReplicaSet`` is one process's view of a deployment's running replicas with the number of
calls it has in flight on each; ``choose`` picks the least loaded one (ties rotate), or None when
every replica is at ``max_ongoing_requests``.

Waiting costs no thread: the runtime completes each ref's Future itself, in the driver and in
workers alike (a worker's runtime client is told by the driver when an object is sealed), and
``ref_future`` / ``on_ready`` hand the outcome to an event loop or a callback.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any


class ReplicaSet:
    """The running replicas of one deployment and this process's calls in flight on each."""

    def __init__(self, name: str, replicas: list[tuple[str, Any]], max_ongoing_requests: int,
                 max_queued_requests: int, version: int = 0):
        self.name = name
        self.lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.handles: dict[str, Any] = {}
        self.order: list[str] = []
        self.max_ongoing_requests = max_ongoing_requests
        self.max_queued_requests = max_queued_requests
        self.version = version
        self._rotation = 0
        self.update(replicas, max_ongoing_requests, max_queued_requests, version)

    def update(self, replicas: list[tuple[str, Any]], max_ongoing_requests: int,
               max_queued_requests: int, version: int) -> None:
        """Install a new replica list, keeping the counts of replicas that stay."""
        with self.lock:
            self.handles = dict(replicas)
            self.order = [replica_id for replica_id, _ in replicas]
            self.in_flight = {r: self.in_flight.get(r, 0) for r in self.order}
            self.max_ongoing_requests = max_ongoing_requests
            self.max_queued_requests = max_queued_requests
            self.version = version

    def choose(self, enforce_limit: bool = True) -> str | None:
        """The least loaded replica (and count the call on it), or None if all are full."""
        with self.lock:
            order = self.order
            if not order:
                return None
            n = len(order)
            start = self._rotation = (self._rotation + 1) % n
            best, best_load = None, None
            for i in range(n):
                replica_id = order[(start + i) % n]
                load = self.in_flight[replica_id]
                if best_load is None or load < best_load:
                    best, best_load = replica_id, load
                    if load == 0:
                        break
            if enforce_limit and best_load >= self.max_ongoing_requests:
                return None
            self.in_flight[best] = best_load + 1
            return best

    def drop(self, replica_id: str) -> None:
        """Stop choosing a replica found dead (the controller's next list replaces it)."""
        with self.lock:
            remaining = [(r, h) for r, h in self.handles.items() if r != replica_id]
        self.update(remaining, self.max_ongoing_requests, self.max_queued_requests, self.version)

    def release(self, replica_id: str) -> None:
        with self.lock:
            count = self.in_flight.get(replica_id)
            if count:
                self.in_flight[replica_id] = count - 1

class _LoopInbox:
    """Results handed to one event loop from other threads, settled in batches: one wake-up of
    the loop for all the results that arrive while it is busy, not one per result."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.items: collections.deque = collections.deque()
        self.scheduled = False

    def put(self, future: asyncio.Future, source: Any) -> None:
        """From any thread: settle ``future`` with the outcome of the done ``source``."""
        self.items.append((future, source))
        if not self.scheduled:
            self.scheduled = True
            try:
                self.loop.call_soon_threadsafe(self.drain)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def drain(self) -> None:
        self.scheduled = False  # before taking items: one put after this schedules again
        items = self.items
        while items:
            future, source = items.popleft()
            if future.done():
                continue
            error = source.exception()
            if error is None:
                future.set_result(source.result())
            else:
                future.set_exception(error)


_inboxes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def ref_future(ref: Any) -> asyncio.Future:
    """An asyncio future (of the running loop) for a ref, completed by the runtime itself.

    Unlike ``await ref``, cancelling it leaves the runtime's own future alone: the proxy cancels
    waits (a client that left, a server stopping), and the runtime must still be able to complete
    what it started. The runtime completes futures without a thread per ref, in any process.
    """
    loop = asyncio.get_running_loop()
    inbox = _inboxes.get(loop)
    if inbox is None:
        inbox = _inboxes[loop] = _LoopInbox(loop)
    future = loop.create_future()
    ref.future().add_done_callback(functools.partial(inbox.put, future))
    return future


def on_ready(ref: Any, callback: Callable[[bool, Any], None]) -> None:
    """Call ``callback(ok, value)`` once ``ref`` is ready (from the runtime's thread that
    completes futures; keep it short)."""
    def done(source: Any) -> None:
        error = source.exception()
        try:
            callback(error is None, source.result() if error is None else error)
        except Exception:  # noqa: BLE001 - a bad callback must not break the runtime's thread
            import traceback
            traceback.print_exc()
    ref.future().add_done_callback(done)
