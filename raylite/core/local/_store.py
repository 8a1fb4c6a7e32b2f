"""The driver's object table: where every object is, who holds it, and when it is freed.

An entry is PENDING until its task reports, then READY with its bytes either inline (small) or
in a file under the session's /dev/shm folder (large). Entries count references: live ObjectRefs
in the driver, borrowing workers, tasks in flight that take it as an argument, and objects that
contain it. At zero the entry is freed (its file unlinked; readers that mapped it keep their
pages until they let go).

When shared memory holds more than ``limit`` bytes, the least recently used objects are moved
to the spill folder on disk, and moved back when read. An object whose file vanished is rebuilt
by re-running the task that made it (its lineage) when there is one.

This module does no locking of its own: the node calls it under its lock.
"""

from __future__ import annotations

import collections
import os
import shutil
from typing import Any

from raylite.core.local import _protocol as wire

PENDING, READY, FREED = 0, 1, 2


class Entry:
    __slots__ = ("state", "data", "path", "size", "refs", "is_error", "contained", "lineage",
                 "waiters", "spilled", "owner_pid", "producer")

    def __init__(self, lineage: Any = None):
        self.state = PENDING
        self.data: bytes | None = None
        self.path: str | None = None
        self.size = 0
        self.refs = 0
        self.is_error = False
        self.contained: tuple | list = ()  # ids it holds references to
        self.lineage = lineage
        self.waiters: list | None = None
        self.spilled: str | None = None
        self.owner_pid = 0
        self.producer: Any = None  # the process whose reply will seal it (actor calls sent)


class ObjectTable:
    """Object entries with reference counts, spilling and restore."""

    def __init__(self, shm_dir: str, spill_dir: str, limit: int):
        self.shm_dir = shm_dir
        self.spill_dir = spill_dir
        self.limit = limit
        self.entries: dict[bytes, Entry] = {}
        self.in_memory: collections.OrderedDict[bytes, int] = collections.OrderedDict()  # LRU
        self.shm_bytes = 0
        self.spilled_bytes = 0
        self.spill_count = 0
        self.restore_count = 0
        self.on_free = None  # callback(entry) -> ids its lineage held, when an entry is freed
        self.on_release = None  # callback(object_id) when an id's last reference goes (actors)

    # ----- creation -------------------------------------------------------------------------
    def create(self, object_id: bytes, refs: int = 0, lineage: Any = None) -> Entry:
        entry = self.entries.get(object_id)
        if entry is None:
            entry = self.entries[object_id] = Entry(lineage)
        elif lineage is not None:
            entry.lineage = lineage
        entry.refs += refs
        return entry

    def seal(self, object_id: bytes, data: bytes | None, path: str | None, size: int,
             is_error: bool, contained: list[bytes]) -> list:
        """Mark an object READY; returns the waiters to notify."""
        entry = self.entries.get(object_id)
        if entry is None or entry.state == FREED:
            # nobody holds it any more (dropped before it was computed): discard the bytes
            if path:
                _unlink(path)
            return []
        if entry.state == READY:
            if path and path != entry.path:
                _unlink(path)  # a duplicate from a retried task
            return []
        entry.state = READY
        entry.data, entry.path, entry.size, entry.is_error = data, path, size, is_error
        for oid in contained:
            self.incref(oid)
        # a generator task's end object already holds the items it yielded (core/_generators.py)
        entry.contained = [*entry.contained, *contained] if entry.contained else (contained or ())
        if path:
            self.in_memory[object_id] = size
            self.shm_bytes += size
            self._make_room(exclude=object_id)
        waiters, entry.waiters = entry.waiters, None
        return waiters or []

    # ----- reference counting ---------------------------------------------------------------
    def add(self, object_id: bytes) -> None:
        """Tracker hook: a new ObjectRef in the driver."""
        self.create(object_id, 1)

    def incref(self, object_id: bytes, n: int = 1) -> None:
        entry = self.entries.get(object_id)
        if entry is None:
            entry = self.create(object_id)
        entry.refs += n

    def decref(self, object_id: bytes) -> None:
        """Drop one reference; frees what nothing holds any more, iteratively (a chain of
        thousands of dependent tasks must not recurse)."""
        pending = [object_id]
        while pending:
            oid = pending.pop()
            entry = self.entries.get(oid)
            if entry is None:
                continue
            entry.refs -= 1
            if entry.refs <= 0 and not entry.waiters:
                pending.extend(self._free(oid, entry))

    def _free(self, object_id: bytes, entry: Entry) -> list[bytes]:
        """Forget an entry; returns the ids it held references to."""
        del self.entries[object_id]
        was_pending = entry.state == PENDING
        entry.state = FREED
        if entry.path:
            size = self.in_memory.pop(object_id, None)
            if size is not None:
                self.shm_bytes -= size
            _unlink(entry.path)
        if entry.spilled:
            self.spilled_bytes -= entry.size
            _unlink(entry.spilled)
        entry.data = None
        held = list(entry.contained)
        if entry.lineage is not None and self.on_free is not None:
            held += self.on_free(entry)
        if was_pending and self.on_release is not None:
            self.on_release(object_id)
        return held

    # ----- reading --------------------------------------------------------------------------
    def location(self, object_id: bytes) -> tuple:
        """Where to read a READY object: (kind, data), kinds as declared in ``_protocol``."""
        entry = self.entries[object_id]
        if entry.data is not None:
            return (wire.INLINE_ERROR if entry.is_error else wire.INLINE, entry.data)
        if entry.spilled:
            self._restore(object_id, entry)
        else:
            self.in_memory.move_to_end(object_id)
        return (wire.SHARED_ERROR if entry.is_error else wire.SHARED, entry.path)

    def inline_location(self, object_id: bytes) -> tuple | None:
        """``location`` of a READY object held inline, else None. Safe without the node's lock
        for an object the caller holds a reference to: its inline bytes never change."""
        entry = self.entries.get(object_id)
        if entry is None or entry.state != READY or entry.data is None:
            return None
        return (wire.INLINE_ERROR if entry.is_error else wire.INLINE, entry.data)

    def mark_lost(self, object_id: bytes, path: str) -> bool:
        """A reader found ``path`` missing. True when the entry went back to PENDING for rebuild."""
        entry = self.entries.get(object_id)
        if entry is None or entry.state != READY or entry.path != path:
            return False  # already moved or rebuilt by someone else
        size = self.in_memory.pop(object_id, None)
        if size is not None:
            self.shm_bytes -= size
        for oid in entry.contained:
            self.decref(oid)
        entry.contained = ()
        entry.state, entry.path, entry.data = PENDING, None, None
        return True

    # ----- spilling -------------------------------------------------------------------------
    def _make_room(self, exclude: bytes | None = None, need: int = 0) -> None:
        if self.limit <= 0:
            return
        for object_id in list(self.in_memory):
            if self.shm_bytes + need <= self.limit:
                return
            if object_id != exclude:
                self._spill(object_id, self.entries[object_id])

    def _spill(self, object_id: bytes, entry: Entry) -> None:
        os.makedirs(self.spill_dir, mode=0o700, exist_ok=True)
        target = os.path.join(self.spill_dir, object_id.hex())
        try:
            shutil.copyfile(entry.path, target)
        except FileNotFoundError:
            return  # lost; a reader will find out and rebuild it
        _unlink(entry.path)
        self.shm_bytes -= self.in_memory.pop(object_id)
        entry.spilled = target
        self.spilled_bytes += entry.size
        self.spill_count += 1

    def _restore(self, object_id: bytes, entry: Entry) -> None:
        self._make_room(need=entry.size)
        shutil.copyfile(entry.spilled, entry.path)
        _unlink(entry.spilled)
        entry.spilled = None
        self.spilled_bytes -= entry.size
        self.in_memory[object_id] = entry.size
        self.shm_bytes += entry.size
        self.restore_count += 1

    def stats(self) -> dict[str, Any]:
        return {"objects": len(self.entries), "shm_bytes": self.shm_bytes,
                "spilled_bytes": self.spilled_bytes, "spill_count": self.spill_count,
                "restore_count": self.restore_count, "limit": self.limit}


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
