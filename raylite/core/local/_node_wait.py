"""The node's waiting side, mixed into ``Node``: get, wait and futures of objects.

A caller blocked in ``get`` on objects that one process will produce (calls to one actor, tasks
sent to one worker) borrows that process's channel from the I/O thread (``Channel.borrow``) and
handles what it sends itself (``_read_replies``), so the reply wakes the caller directly instead
of the I/O thread, which would then wake the caller. If someone else seals the objects meanwhile
(a task moved to another worker finishes there), the caller's own pipe wakes it (``_Waiter``).
Other waits register a ``_Waiter`` whose event or callback the sealing thread fires.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from raylite.core import _refs
from raylite.core._backend import settle as _settle
from raylite.core.local import _protocol as wire
from raylite.core.local._store import READY
from raylite.core._task import pack_value, unpack_value
from raylite.exceptions import GetTimeoutError, ObjectLostError

if TYPE_CHECKING:
    from raylite.core.local._node_io import _Process

READ_SLICE_S = 0.2  # a caller reading its replies (Node._read_replies) looks up at least this often


class _Waiter:
    """Counts objects still to come; fires when ``target`` of them are ready: calls
    ``callback``, or sets ``event`` (made by the waiting thread when it needs one)."""

    __slots__ = ("target_left", "event", "callback", "ids", "reader", "wake_fd")

    def __init__(self, ids: list[bytes], need: int, callback: Callable | None = None):
        self.ids = ids
        self.target_left = need
        self.event: threading.Event | None = None
        self.callback = callback
        self.reader: int | None = None  # a thread reading a channel for these objects ...
        self.wake_fd: int | None = None  # ... and its wake-up pipe (Node._read_replies)

    def ready(self, object_id: bytes) -> None:
        self.target_left -= 1
        if self.target_left == 0:
            if self.callback is not None:
                self.callback(self)
            elif self.event is not None:
                self.event.set()
            if self.wake_fd is not None and threading.get_ident() != self.reader:
                try:  # sealed by another thread (a task moved to another worker, say)
                    os.write(self.wake_fd, b"x")
                except OSError:
                    pass


class _WakePipe:
    """A thread's pipe, written to wake it while it reads a channel (closed with the thread)."""

    def __init__(self):
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)

    def __del__(self):
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass


_thread_pipes = threading.local()


def _wake_pipe() -> _WakePipe:
    pipe = getattr(_thread_pipes, "pipe", None)
    if pipe is None:
        pipe = _thread_pipes.pipe = _WakePipe()
    return pipe


WATCH = "watch"


class _Watch:
    """A Future wanted for an object, queued with the submissions (``Node.future``)."""

    __slots__ = ("ref", "future")
    kind = WATCH

    def __init__(self, ref: _refs.ObjectRef, future: concurrent.futures.Future):
        self.ref = ref
        self.future = future


class WaitingMixin:
    """Getting, waiting for and watching objects (mixed into the Node; see the module doc)."""

    def get(self, refs: list, timeout: float | None) -> list:
        ids = [r._id for r in refs]
        locations = self._wait_locations(ids, timeout)
        values = []
        for oid, (kind, data) in zip(ids, locations):
            if kind == wire.INLINE:  # no file that could have vanished
                values.append(unpack_value(kind, data))
                continue
            kind, value = self._read(oid, kind, data, timeout)
            if kind in wire.ERROR_KINDS:
                raise value
            values.append(value)
        return values

    def _read(self, object_id: bytes, kind: str, data: Any, timeout: float | None) -> tuple:
        """(kind, value) of an object; a vanished file is rebuilt (or reported lost) first."""
        for _ in range(5):
            try:
                return kind, unpack_value(kind, data)
            except FileNotFoundError:
                with self.lock:
                    self._object_lost(object_id, data)
                kind, data = self._wait_locations([object_id], timeout)[0]
        raise ObjectLostError(f"object {object_id.hex()} keeps vanishing from shared memory")

    def _wait_locations(self, ids: list[bytes], timeout: float | None) -> list[tuple]:
        with self.lock:
            self._drain_refs()
            waiter = self._add_waiter(ids, len(ids), None)
            if waiter is None:
                return [self._location_or_lost(oid) for oid in ids]
            producer = self._sole_producer(ids)
            if producer is None:
                waiter.event = threading.Event()
            else:
                waiter.reader, waiter.wake_fd = threading.get_ident(), _wake_pipe().w
        if not self._await(waiter, producer, timeout):
            with self.lock:
                self._remove_waiter(waiter)
            missing = sum(1 for oid in ids if self.store.entries.get(oid) is None
                          or self.store.entries[oid].state != READY)
            raise GetTimeoutError(f"get timed out after {timeout} s: {missing} of {len(ids)} "
                                  "object(s) not ready yet")
        if len(ids) == 1:  # one small value (a call's reply): read it without the lock
            location = self.store.inline_location(ids[0])
            if location is not None:
                return [location]
        with self.lock:
            entries = self.store.entries
            locations = []
            for oid in ids:
                entry = entries.get(oid)
                if entry is not None and entry.data is not None:  # inline: ``location``'s fast case
                    locations.append((wire.INLINE_ERROR if entry.is_error else wire.INLINE,
                                      entry.data))
                else:
                    locations.append(self._location_or_lost(oid))
            return locations

    def _sole_producer(self, ids: list[bytes]) -> "_Process | None":
        """The one process whose replies should seal every pending object of ``ids`` (calls to
        one actor, tasks sent to one worker), or None (under the lock)."""
        entries = self.store.entries
        producer = None
        for oid in ids:
            entry = entries[oid]
            if entry.state != READY:
                if entry.producer is None or (producer is not None and entry.producer is not producer):
                    return None
                producer = entry.producer
        return producer

    def _await(self, waiter: _Waiter, producer: "_Process | None", timeout: float | None) -> bool:
        """Block until ``waiter`` fires; False if ``timeout`` passed first. With a ``producer``
        the thread reads that process's replies itself (``_read_replies``); otherwise, or if
        somebody else reads them now, it waits for whoever seals the objects to wake it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if producer is not None:
            if self._read_replies(producer, waiter, deadline):
                return True
            with self.lock:
                if waiter.target_left <= 0:
                    return True
                waiter.event, waiter.wake_fd = threading.Event(), None
        return waiter.event.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _read_replies(self, process: "_Process", waiter: _Waiter, deadline: float | None) -> bool:
        """Borrow ``process``'s channel from the I/O thread and handle what it sends until
        ``waiter`` fires: the caller of a synchronous actor call is woken by the reply itself,
        with no hop through the I/O thread. False if it could not (someone else reads the
        channel, the process ended, the deadline passed): then the caller waits as usual."""
        channel = process.channel
        if not channel.borrow():
            return False
        wake_fd = _wake_pipe().r  # written when another thread seals the objects meanwhile
        try:
            while waiter.target_left > 0:
                if self.stopping:
                    return False
                wait_s = READ_SLICE_S if deadline is None else min(
                    READ_SLICE_S, deadline - time.monotonic())
                if wait_s <= 0:
                    return False
                if not channel.wait_readable(wait_s, wake_fd):
                    continue  # look again: ``stopping``, the deadline, the waiter
                messages = channel.receive()
                if messages is None:
                    return False  # its process ended: the I/O thread takes that up
                if messages:
                    self._handle_messages(process, messages)
            return True
        finally:
            channel.give_back()

    def _location_or_lost(self, object_id: bytes) -> tuple:
        entry = self.store.entries.get(object_id)
        if entry is None:
            return (wire.INLINE_ERROR, pack_value(ObjectLostError(
                f"object {object_id.hex()} was freed: no reference to it was alive (was the "
                "ObjectRef rebuilt from its id after being dropped?)"), self.shm_dir, object_id)[1])
        return self.store.location(object_id)

    def _add_waiter(self, ids: list[bytes], need: int, callback) -> _Waiter | None:
        """Register a waiter on the pending ones among ``ids`` (under the lock)."""
        entries = self.store.entries
        pending = []
        for oid in ids:
            entry = entries.get(oid)
            if entry is None:
                raise ValueError(f"ObjectRef {oid.hex()} is unknown to this runtime: it belongs to "
                                 "a runtime that was shut down, or was never created here")
            if entry.state != READY:
                pending.append(entry)
        need = need - (len(ids) - len(pending))
        if need <= 0:
            return None
        waiter = _Waiter(ids, need, callback)
        for entry in pending:
            if entry.waiters is None:
                entry.waiters = [waiter]
            else:
                entry.waiters.append(waiter)
        return waiter

    def _remove_waiter(self, waiter: _Waiter) -> None:
        for oid in waiter.ids:
            entry = self.store.entries.get(oid)
            if entry is not None and entry.waiters and waiter in entry.waiters:
                entry.waiters.remove(waiter)

    def future(self, ref: _refs.ObjectRef) -> concurrent.futures.Future:
        """A Future completed when the object is sealed: no thread waits for it, nor for the
        lock: the request joins the submission queue, after the call that makes the object."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.submissions.append(_Watch(ref, future))
        if self.lock.try_enter():  # entering registered it
            self.lock.release()
        return future

    def _watch(self, watch: "_Watch") -> None:
        """Complete ``watch.future`` once its object is sealed (under the lock)."""
        ref, future = watch.ref, watch.future

        def complete(waiter: _Waiter | None = None) -> None:
            kind, data = self._location_or_lost(ref._id)
            if kind not in (wire.INLINE, wire.INLINE_ERROR):  # in shared memory: read it off the I/O thread
                self._futures_pool().submit(self._complete_future, future, ref)
                return
            if future.cancelled():  # the awaiting caller gave up (e.g. its asyncio task ended)
                return
            try:  # small and inline: unpickling is cheaper than a thread hop
                value = unpack_value(kind, data)
            except BaseException as exc:  # noqa: BLE001
                _settle(future, exc, error=True)
                return
            _settle(future, value, error=kind == wire.INLINE_ERROR)

        try:
            waiter = self._add_waiter([ref._id], 1, complete)
        except ValueError as exc:  # a ref of another runtime
            _settle(future, exc, error=True)
            return
        if waiter is None:
            complete()

    def _complete_future(self, future: concurrent.futures.Future, ref: _refs.ObjectRef) -> None:
        if future.cancelled():
            return
        try:
            value = self.get([ref], None)[0]
        except BaseException as exc:  # noqa: BLE001 - the awaiting caller gets it
            _settle(future, exc, error=True)
            return
        _settle(future, value, error=False)

    def _futures_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        """One thread that reads values for completed futures, off the I/O thread."""
        if self._future_pool is None:
            self._future_pool = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="raylite-futures")
        return self._future_pool

    def wait(self, refs: list, num_returns: int, timeout: float | None,
             fetch_local: bool = True) -> tuple[list, list]:
        ids = [r._id for r in refs]
        with self.lock:
            self._drain_refs()
            waiter = self._add_waiter(ids, num_returns, None)
            if waiter is not None:
                waiter.event = threading.Event()
        if waiter is not None:
            waiter.event.wait(timeout)
            with self.lock:
                self._remove_waiter(waiter)
        with self.lock:
            entries = self.store.entries
            ready_ids = [oid for oid in ids if entries[oid].state == READY][:num_returns]
        ready_set = set(ready_ids)
        return [r for r in refs if r._id in ready_set], [r for r in refs if r._id not in ready_set]
