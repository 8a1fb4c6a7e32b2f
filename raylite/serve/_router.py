"""Choosing a replica for each call, and waiting on many calls at once.

    proxy / handle ─▶ ReplicaSet.choose() ─▶ replica.method.remote(...) ─▶ ObjectRef ─▶ RefWatcher
                            ▲                                                          │ one thread:
                            └──────────────── ReplicaSet.release(replica) ◀─ callback ─┘ ray.wait

A ``ReplicaSet`` is one process's view of a deployment's running replicas with the number of
calls it has in flight on each; ``choose`` picks the least loaded one (ties rotate), or None when
every replica is at ``max_ongoing_requests``.

``RefWatcher`` is one thread that waits on many pending replica calls with a single
``ray.wait`` and hands each result to its callback, so awaiting a call costs no thread of its own.
A call submitted while the thread is already waiting is noticed when that wait returns: at the
latest after ``tick`` seconds, which starts at 1 ms after new work and doubles while nothing
happens, up to 20 ms (1 s for the "lifetimes" watcher of refs that stay pending on purpose).
Each process has one per kind, used where the runtime cannot complete futures by itself (in
actors); the proxy, in the driver, awaits ``ref_future`` instead.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any

import raylite

MIN_TICK_S = 0.001
MAX_TICK_S = 0.02
LIFETIME_TICK_S = 1.0


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

    def total_in_flight(self) -> int:
        with self.lock:
            return sum(self.in_flight.values())


class _AsyncTarget:
    """Deliver a result to an asyncio future, batched per event loop."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future):
        self.loop = loop
        self.future = future


def _settle(batch: list) -> None:
    for future, ok, value in batch:
        if not future.done():
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


class RefWatcher:
    """One thread that waits on many ObjectRefs and calls back with ``(ok, value)`` for each."""

    def __init__(self, max_tick_s: float = MAX_TICK_S):
        self.max_tick_s = max_tick_s
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._pending: dict[Any, list] = {}
        self._fresh = False
        self._thread: threading.Thread | None = None

    def watch(self, ref: Any, callback: Callable[[bool, Any], None] | _AsyncTarget) -> None:
        """Call ``callback(ok, value)`` from the watcher thread once ``ref`` is ready."""
        with self._lock:
            targets = self._pending.get(ref)
            if targets is None:
                self._pending[ref] = [callback]
            else:
                targets.append(callback)
            self._fresh = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="serve-ref-watcher",
                                                daemon=True)
                self._thread.start()
            self._wakeup.notify()

    def watch_async(self, ref: Any) -> asyncio.Future:
        """An asyncio future (of the running loop) that gets ``ref``'s value or exception."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.watch(ref, _AsyncTarget(loop, future))
        return future

    def _run(self) -> None:
        tick = MIN_TICK_S
        while True:
            with self._lock:
                while not self._pending:
                    self._wakeup.wait()
                refs = list(self._pending)
                if self._fresh:
                    self._fresh, tick = False, MIN_TICK_S
            try:
                ready, _ = raylite.wait(refs, num_returns=1, timeout=tick)
                if ready and len(refs) > 1:
                    ready, _ = raylite.wait(refs, num_returns=len(refs), timeout=0)
            except Exception as exc:  # noqa: BLE001 - e.g. refs of a runtime that was shut down
                self._deliver([(ref, False, exc) for ref in refs])
                continue
            if not ready:
                tick = min(tick * 2, self.max_tick_s)
                continue
            self._deliver(self._fetch(ready))

    @staticmethod
    def _fetch(ready: list) -> list[tuple]:
        try:
            return [(ref, True, value) for ref, value in zip(ready, raylite.get(ready))]
        except Exception:  # noqa: BLE001 - at least one failed: take them one by one
            results = []
            for ref in ready:
                try:
                    results.append((ref, True, raylite.get(ref)))
                except Exception as exc:  # noqa: BLE001
                    results.append((ref, False, exc))
            return results

    def _deliver(self, results: list[tuple]) -> None:
        by_loop: dict[Any, list] = {}
        with self._lock:
            targets = [(self._pending.pop(ref, ()), ok, value) for ref, ok, value in results]
        for callbacks, ok, value in targets:
            for callback in callbacks:
                if type(callback) is _AsyncTarget:
                    by_loop.setdefault(callback.loop, []).append((callback.future, ok, value))
                else:
                    try:
                        callback(ok, value)
                    except Exception:  # noqa: BLE001 - a bad callback must not stop the thread
                        import traceback
                        traceback.print_exc()
        for loop, batch in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, batch)
            except RuntimeError:  # the loop was closed meanwhile
                pass


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
    what it started. Where the runtime completes futures without threads (the driver), this costs
    no thread; use ``RefWatcher`` in other processes.
    """
    loop = asyncio.get_running_loop()
    inbox = _inboxes.get(loop)
    if inbox is None:
        inbox = _inboxes[loop] = _LoopInbox(loop)
    future = loop.create_future()
    ref.future().add_done_callback(functools.partial(inbox.put, future))
    return future


_watchers: dict[str, RefWatcher] = {}
_watcher_lock = threading.Lock()


def watcher(kind: str = "calls") -> RefWatcher:
    """This process's RefWatcher for ``kind``: "calls" (results expected soon: a new ref is
    noticed within MAX_TICK_S) or "lifetimes" (refs that stay pending for a replica's life and
    only matter when they fail: a new one is noticed within LIFETIME_TICK_S, a failure at once)."""
    found = _watchers.get(kind)
    if found is None:
        with _watcher_lock:
            found = _watchers.get(kind)
            if found is None:
                found = _watchers[kind] = RefWatcher(
                    MAX_TICK_S if kind == "calls" else LIFETIME_TICK_S)
    return found
