"""Object references on Dask: each ObjectRef is a Dask key, held alive by a Dask Future.

``ref._id`` is the key's bytes ("<name>-<32 hex>"), so any process can look a ref up by its id.
The :class:`RefTable` is the process's ref tracker (``_refs.set_tracker``)::

    ObjectRef created ──add──▶ entry(count += 1, Future)     unknown key: adopt it (a Future plus
    ObjectRef dropped ──_refs queue──drain──▶ count -= 1      "client desires key" to the scheduler)
                                             └ 0: release the Future (fire_and_forget if not done)

The ref of an actor call starts *local*: its entry holds the call's result (a thread Future set
by the reply, :mod:`~raylite.core.dask._calls`) and no Dask Future. ``get``/``wait`` read it
there. It is *materialized* (scattered to Dask under its key) the first time Dask needs it:
passed to a task, held in an object, returned from a task::

    local entry ──future() / materialize()──▶ wait for the reply ──scatter({key: value})──▶ Future
"""

from __future__ import annotations

import collections
import itertools
import os
import threading
import time
from typing import Any

from raylite.core import _refs

_KEY_PREFIX = os.urandom(8).hex()
_LINGER_S = 2.0  # how long the refs in an actor call's arguments are held after the call
_key_counter = itertools.count()


def _new_key(name: str) -> str:
    """A unique Dask key naming the task: "<name>-<32 hex>" (this process's prefix + a count)."""
    return f"{name}-{_KEY_PREFIX}{next(_key_counter):016x}"


# ==========================================================================================
# references: the Dask Future behind every ObjectRef alive in this process
# ==========================================================================================
class _Entry:
    __slots__ = ("actor", "count", "future", "local", "pending", "pins")

    def __init__(self, future: Any, pins: list | None = None, actor: str | None = None):
        self.count = 0
        self.future = future
        self.pins = pins
        self.actor = actor
        self.pending = False  # a task still in the submission buffer (future not yet made)
        self.local: Any = None  # an actor call's result (thread Future), until materialized


class RefTable:
    """The process's ref tracker: ObjectRef lifetimes hold Dask Futures.

    ``add`` runs whenever an ObjectRef is created (also while unpickling one that arrived in a
    value); a ref this process has not seen is *adopted*: a Future plus a "client desires this
    key" message, so the key stays alive while the ref does. Dropped refs are drained from
    ``_refs``' queue on the next API call (and once a second on workers).
    """

    def __init__(self, client: Any):
        self.client = client
        self.lock = threading.Lock()
        self.entries: dict[bytes, _Entry] = {}
        self.pinned: dict[str, tuple] = {}  # task key -> (task future, futures of nested refs)
        self.flush: Any = None  # the backend's submission-buffer flush, for pending entries
        self.before_block: Any = lambda: None  # the backend's leave_thread_pool
        self.on_release: Any = lambda object_id: None  # the last ref (or actor handle) went
        self.lingering: collections.deque = collections.deque()  # (until, futures)

    def register(self, object_id: bytes, future: Any, pins: list | None = None,
                 actor: str | None = None) -> _Entry:
        entry = _Entry(future, pins, actor)
        with self.lock:
            self.entries[object_id] = entry
        return entry

    def register_local(self, object_id: bytes, result: Any, actor: str) -> None:
        """The ref of an actor call: its value arrives in ``result`` (a thread Future)."""
        entry = _Entry(None, None, actor)
        entry.local = result
        with self.lock:
            self.entries[object_id] = entry

    def waitable(self, object_id: bytes) -> Any:
        """What get/wait wait on: the local result of an actor call, else the Dask Future."""
        entry = self.entries.get(object_id)
        if entry is not None and entry.local is not None:
            return entry.local
        return self.future(object_id)

    def materialize(self, object_ids: list) -> None:
        """Store the local results among these refs in Dask, under their keys (one scatter).

        Waits for calls still running (outside the worker's thread pool).
        """
        with self.lock:
            todo = [(object_id, entry) for object_id in object_ids
                    if (entry := self.entries.get(object_id)) is not None
                    and entry.local is not None and entry.future is None]
        if not todo:
            return
        from concurrent.futures import wait
        if not all(entry.local.done() for _, entry in todo):
            self.before_block()
            wait([entry.local for _, entry in todo])
        data = {object_id.decode(): entry.local.result() for object_id, entry in todo}
        futures = self.client.scatter(data, hash=False)
        with self.lock:
            for object_id, entry in todo:
                if entry.future is None:
                    entry.future = futures[object_id.decode()]

    def add(self, object_id: bytes) -> None:
        with self.lock:
            entry = self.entries.get(object_id)
            if entry is not None:
                entry.count += 1
                return
        future = self.adopt(object_id)
        with self.lock:
            entry = self.entries.setdefault(object_id, _Entry(future))
            entry.count += 1

    def adopt(self, object_id: bytes) -> Any:
        from distributed import Future
        try:
            key = object_id.decode()
        except UnicodeDecodeError:
            return None  # not a Dask-backed ref (made by another runtime)
        client = self.client
        known = key in client.futures
        future = Future(key, client)
        if not known:
            client._send_to_scheduler({"op": "client-desires-keys", "keys": [key],
                                       "client": client.id})
        return future

    def future(self, object_id: bytes) -> Any:
        with self.lock:
            entry = self.entries.get(object_id)
        if entry is not None and entry.pending:
            self.flush()
        if entry is not None and entry.future is None and entry.local is not None:
            self.materialize([object_id])
        if entry is not None and entry.future is not None:
            return entry.future
        future = self.adopt(object_id)
        if future is None:
            raise ValueError(f"ObjectRef({object_id.hex()}) does not belong to this Dask "
                             "cluster (it was made by another raylite runtime)")
        with self.lock:
            entry = self.entries.setdefault(object_id, _Entry(future))
            if entry.count == 0:
                entry.count = 1  # a ref that escaped counting (unpickled before install)
            entry.future = entry.future or future
            return entry.future

    def actor_of(self, key: str) -> str | None:
        entry = self.entries.get(key.encode())
        return entry.actor if entry is not None else None

    def pin(self, future: Any, pins: list) -> None:
        with self.lock:
            self.pinned[future.key] = (future, pins)

    def linger(self, futures: list | None) -> None:
        """Hold these Futures a little longer: the receiver of an actor call may still be
        telling the scheduler that it holds them too (on another connection than ours)."""
        if futures:
            self.lingering.append((time.monotonic() + _LINGER_S, futures))

    def drain(self) -> None:
        """Release the Futures of refs dropped since the last call."""
        if self.lingering:
            now = time.monotonic()
            try:
                while self.lingering[0][0] < now:
                    self.lingering.popleft()
            except IndexError:
                pass
        if self.pinned:
            with self.lock:
                for key in [k for k, (f, _) in self.pinned.items() if f.done()]:
                    del self.pinned[key]
        ids = _refs.drain_released()
        if not ids:
            return
        dropped = []
        with self.lock:
            for object_id in ids:
                entry = self.entries.get(object_id)
                if entry is None:
                    continue
                entry.count -= 1
                if entry.count <= 0:
                    del self.entries[object_id]
                    dropped.append((object_id, entry))
        if dropped:
            from distributed import fire_and_forget
            if any(entry.pending for _, entry in dropped):
                self.flush()
            for object_id, entry in dropped:  # Ray runs a task even when every ref is dropped
                if entry.future is not None and not entry.future.done():
                    fire_and_forget(entry.future)
                self.on_release(object_id)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.pinned.clear()
            self.lingering.clear()
