"""Read-only views of a local Node that its own introspection methods do not give.

Every function here takes the node and reads a copy of what it needs through
``node.snapshot(copy)`` (the copy is made on the node's I/O thread between two batches, so the
dashboard never contends for the node's lock), then does the slow part (unpickling, /proc
reads) on its own thread. Nothing here changes the node.

    tasks_now(node)        live tasks: name, state, worker pid          (scheduler table)
    actor_rows(node)       actors with id, pending calls, death cause   (actor records)
    finished_tasks(node)   totals and the most recent executions        (timeline deque)
    FailureLog             recent failures with their tracebacks        (error objects in the store)
    utilisation_sample     one point of the utilisation-over-time plot  (resource pool, store)
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import os
import threading
import time
from typing import Any

_RECENT_TASKS = 50
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def tasks_now(node: Any, limit: int = 200) -> list[dict[str, Any]]:
    """Tasks the scheduler holds (waiting, ready, running), oldest first, at most ``limit``."""
    def copy(node: Any) -> list[dict[str, Any]]:
        processes = node.processes
        rows = []
        for task in node.scheduler.tasks.values():
            process = processes.get(task.worker_id) if task.worker_id is not None else None
            rows.append({"task_id": task.task_id.hex(), "name": task.name,
                         "state": task.state.value, "attempt": task.attempt,
                         "pid": process.pid if process is not None else None})
            if len(rows) >= limit:
                break
        return rows
    return node.snapshot(copy)


def actor_rows(node: Any) -> list[dict[str, Any]]:
    """Every actor the node knows, alive or dead, with its queue and process."""
    rows = node.actor_rows()  # a snapshot copied by the node
    for row in rows:
        row["rss_bytes"] = process_rss(row["pid"]) if row["state"] != "DEAD" else None
    return rows


def finished_tasks(node: Any, recent: int = _RECENT_TASKS) -> dict[str, Any]:
    """Totals of finished executions (ok / failed, by name) and the most recent ones."""
    events = node.snapshot(lambda node: list(node.task_events))  # a C-level copy
    ok = failed = 0
    by_name: dict[str, list[int]] = {}
    for name, _pid, _start, _duration, success in events:
        counts = by_name.get(name)
        if counts is None:
            counts = by_name[name] = [0, 0, 0.0]
        if success:
            ok += 1
            counts[0] += 1
        else:
            failed += 1
            counts[1] += 1
        counts[2] += _duration
    latest = [{"name": name, "pid": pid, "start": start, "duration_s": duration, "ok": success}
              for name, pid, start, duration, success in events[-recent:]]
    latest.reverse()
    names = [{"name": name, "finished": c[0], "failed": c[1],
              "mean_s": c[2] / max(1, c[0] + c[1])} for name, c in by_name.items()]
    names.sort(key=lambda row: -(row["finished"] + row["failed"]))
    return {"finished": ok, "failed": failed, "recent": latest, "by_name": names[:50]}


class FailureLog:
    """The most recent task failures with their tracebacks.

    A failed task leaves an error object in the store for as long as someone holds its ref; each
    scan picks up the new ones (at most every ``interval_s``) and keeps them here, so a failure
    stays listed after its ref is gone. Scans are driven by requests: no page open, no work.
    """

    def __init__(self, keep: int = 50, interval_s: float = 1.0):
        self.failures: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self.seen: set[bytes] = set()
        self.keep = keep
        self.interval_s = interval_s
        self.last_scan = -1e9
        self._lock = threading.Lock()  # two browser tabs poll from two server threads

    def recent(self, node: Any) -> list[dict[str, Any]]:
        """Newest first."""
        with self._lock:
            if time.monotonic() - self.last_scan >= self.interval_s:
                self.last_scan = time.monotonic()
                self._scan(node)
            return list(reversed(self.failures.values()))

    def _scan(self, node: Any) -> None:
        seen = self.seen

        def copy(node: Any) -> tuple[list, list]:
            found = []
            actors = node.actors
            for object_id, entry in node.store.entries.items():
                if entry.is_error and object_id not in seen and object_id not in actors:
                    lineage = entry.lineage
                    found.append((object_id, entry.data, entry.path,
                                  lineage.name if lineage is not None else ""))
            recent = list(itertools.islice(reversed(node.task_events), 5000)) if found else []
            return found, recent
        found, recent = node.snapshot(copy)
        for object_id, data, path, made_by in found:
            self.seen.add(object_id)
            if data is None and path is not None:
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
            if data is None:
                continue
            key = hashlib.sha1(data).hexdigest()  # a task's returns (and its dependents) share it
            if key in self.failures:
                continue
            row = self.failures[key] = describe_error(data, made_by)
            for name, pid, start, duration, ok in recent:  # when it ran, from the timeline
                if not ok and name == row["task"] and (row["pid"] is None or pid == row["pid"]):
                    row["at"], row["duration_s"] = start + duration, duration
                    break
            while len(self.failures) > self.keep:
                self.failures.popitem(last=False)
        if len(self.seen) > 10 * self.keep + 10_000:
            self.seen = node.snapshot(lambda node: {oid for oid in seen if oid in node.store.entries})


def describe_error(data: bytes, made_by: str) -> dict[str, Any]:
    """Unpickle an error object's bytes into what the page shows."""
    from raylite.core._task import unpack_value
    row = {"task": made_by, "pid": None, "type": "", "message": "", "traceback": "",
           "at": time.time(), "duration_s": None}
    try:
        error = unpack_value("e", data)
    except Exception as exc:  # noqa: BLE001 - a class the driver cannot import, for one
        row["type"] = "unreadable error"
        row["message"] = f"{type(exc).__name__}: {exc}"
        return row
    cause = getattr(error, "cause", None)
    row["task"] = getattr(error, "task_name", "") or made_by
    row["pid"] = getattr(error, "pid", None) or None
    row["type"] = type(cause).__name__ if cause is not None else type(error).__name__
    row["message"] = str(cause if cause is not None else error)[:2000]
    row["traceback"] = (getattr(error, "remote_traceback", "") or "")[-20_000:]
    return row


def utilisation_sample(node: Any) -> list[float]:
    """[time, % of CPUs in use, % of GPUs in use, % of the object store's memory in use]."""
    total, available, shm_bytes, limit = node.snapshot(lambda node: (
        dict(node.scheduler.pool.total), node.scheduler.available(), node.store.shm_bytes,
        node.store.limit))

    def used(name: str) -> float:
        amount = total.get(name, 0.0)
        return round(100.0 * (amount - available.get(name, 0.0)) / amount, 1) if amount else 0.0

    return [round(time.time(), 2), used("CPU"), used("GPU"),
            round(100.0 * shm_bytes / limit, 1) if limit else 0.0]


def process_rss(pid: int | None) -> int | None:
    """Resident memory of a process in bytes, from /proc (None where it cannot be read)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None
