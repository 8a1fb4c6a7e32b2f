"""ObjectRef: a handle to a value in the object store, and the per-process reference tracker.

Every live ``ObjectRef`` counts as a reference to its object. Creating one reports to this
process's tracker at once; dropping one is queued (``__del__`` may run anywhere, even while a lock
is held) and the queue is drained by the runtime. The driver's tracker is its object store; a
worker's tracker turns the first and last local reference into borrow/release messages.

While a value is being pickled, ``collect_refs`` records the refs inside it, so the object
that contains them can keep them alive (refs nested in lists and dicts travel as refs).
"""

from __future__ import annotations

import collections
import threading
from typing import Any

_released: collections.deque = collections.deque()
_local = threading.local()


class _NullTracker:
    def add(self, object_id: bytes) -> None:
        pass


_tracker: Any = _NullTracker()


def set_tracker(tracker: Any) -> None:
    """Install the process's reference tracker (``None`` restores the no-op one)."""
    global _tracker
    _tracker = tracker if tracker is not None else _NullTracker()
    _released.clear()


def drain_released() -> list[bytes]:
    """Pop the ids of refs dropped since the last call (thread-safe)."""
    out = []
    pop = _released.popleft
    try:
        while True:
            out.append(pop())
    except IndexError:
        return out


class ObjectRef:
    """A reference to an object in the store: returned by ``.remote()`` and ``put``.

    Hashable, comparable, awaitable (``await ref`` in asyncio code) and convertible to a
    ``concurrent.futures.Future`` with ``ref.future()``.
    """

    __slots__ = ("_id", "__weakref__")

    def __init__(self, object_id: bytes, *, _track: bool = True):
        self._id = object_id
        if _track:
            _tracker.add(object_id)

    def __del__(self):
        try:
            _released.append(self._id)
        except Exception:  # interpreter shutdown
            pass

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def __hash__(self) -> int:
        return hash(self._id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __repr__(self) -> str:
        return f"ObjectRef({self._id.hex()})"

    def __reduce__(self):
        collected = getattr(_local, "collected", None)
        if collected is not None:
            collected.append(self._id)
        return (_rebuild_ref, (self._id,))

    def future(self):
        """A ``concurrent.futures.Future`` that completes with this object's value."""
        from raylite.core import _api
        return _api.ref_future(self)

    def __await__(self):
        import asyncio
        return asyncio.wrap_future(self.future()).__await__()


def _rebuild_ref(object_id: bytes) -> ObjectRef:
    return ObjectRef(object_id)


class collect_refs:
    """Context manager: records the ids of ObjectRefs pickled inside the block, in order."""

    def __enter__(self) -> list[bytes]:
        self._outer = getattr(_local, "collected", None)
        self.ids: list[bytes] = []
        _local.collected = self.ids
        return self.ids

    def __exit__(self, *exc) -> None:
        _local.collected = self._outer
