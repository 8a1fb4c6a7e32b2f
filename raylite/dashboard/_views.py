"""What each JSON endpoint returns, gathered from the node, the results folder and Serve.

Only reads. The node's own introspection (``status``, ``memory_table``, ``timeline_events``)
does most of the work; ``_node_views`` adds the few things it does not give. Serve is asked only
when this process already imported it and started it: the dashboard never starts Serve.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from raylite.dashboard import _node_views
from raylite.dashboard._tune_files import REWARD_KEYS, TuneFiles

_OBJECT_ROWS = 200


class _Cached:
    """A value recomputed at most every ``ttl_s``: several tabs polling cost one computation,
    and while one request recomputes it the others get the previous value instead of waiting."""

    def __init__(self, compute: Callable[[], Any], ttl_s: float):
        self.compute = compute
        self.ttl_s = ttl_s
        self.value: Any = None
        self.at = -1e9
        self.lock = threading.Lock()

    def get(self) -> Any:
        if time.monotonic() - self.at < self.ttl_s:
            return self.value
        if not self.lock.acquire(blocking=self.at < 0):  # busy: the last value will do
            return self.value
        try:
            if time.monotonic() - self.at >= self.ttl_s:
                self.value = self.compute()
                self.at = time.monotonic()
            return self.value
        finally:
            self.lock.release()


class Views:
    """The data behind the page, one method per endpoint."""

    def __init__(self, node: Any, url: str, history: collections.deque | None = None,
                 results_root: str | None = None):
        self.node = node
        self.url = url
        self.failures = _node_views.FailureLog()
        self.tune_files = TuneFiles(results_root)
        self._status = _Cached(node.status, 0.5)
        self._tune = _Cached(self._tune_summaries, 1.0)
        self._serve = _Cached(_ServeStatus(node).get, 2.0)  # each asks the controller actor
        self.history = history if history is not None else collections.deque(maxlen=600)

    # ----- the runtime ------------------------------------------------------------------------
    def cluster(self) -> dict[str, Any]:
        status = self._status.get()
        total, available = status["resources"], status["available"]
        usage = {name: {"total": amount, "used": max(0.0, amount - available.get(name, 0.0)),
                        "fraction": (amount - available.get(name, 0.0)) / amount if amount else 0.0}
                 for name, amount in total.items()}
        return {"node_id": status["node_id"], "uptime_s": status["uptime_s"],
                "resources": total, "available": available, "usage": usage,
                "workers": len(status["workers"]), "actors": len(status["actors"]),
                "tasks": status["tasks"], "object_store": status["objects"],
                "driver": {"pid": status["driver_pid"],
                           "rss_bytes": _node_views.process_rss(status["driver_pid"])},
                "dashboard_url": self.url, "time": time.time(),
                "history": {"columns": ["time", "CPU %", "GPU %", "object store %"],
                            "points": list(self.history)}}

    def workers(self) -> dict[str, Any]:
        rows = [dict(row, rss_bytes=_node_views.process_rss(row["pid"]))
                for row in self._status.get()["workers"]]
        return {"workers": rows}

    def tasks(self) -> dict[str, Any]:
        finished = _node_views.finished_tasks(self.node)
        return {"by_state": {**self._status.get()["tasks"], "FINISHED": finished["finished"],
                             "FAILED": finished["failed"]},
                "live": _node_views.tasks_now(self.node), "recent": finished["recent"],
                "by_name": finished["by_name"], "failures": self.failures.recent(self.node)}

    def actors(self) -> dict[str, Any]:
        rows = _node_views.actor_rows(self.node)
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        return {"actors": rows, "by_state": counts}

    def objects(self) -> dict[str, Any]:
        rows = self.node.memory_table()
        by_where: dict[str, dict[str, int]] = {}
        for row in rows:
            slot = by_where.setdefault(row["where"], {"count": 0, "bytes": 0})
            slot["count"] += 1
            slot["bytes"] += row["size"] or 0
        rows.sort(key=lambda row: -(row["size"] or 0))
        store = {**self.node.memory_summary(), "objects": len(rows)}  # as fresh as the rows
        return {"store": store, "by_where": by_where, "count": len(rows),
                "largest": rows[:_OBJECT_ROWS]}

    def timeline(self) -> list[dict[str, Any]]:
        return self.node.timeline_events()

    # ----- the libraries ----------------------------------------------------------------------
    def tune(self) -> dict[str, Any]:
        return {"root": self.tune_files.root_dir(), "experiments": self._tune.get()}

    def _tune_summaries(self) -> list[dict[str, Any]]:
        experiments = [summary for summary in map(self.tune_files.summary,
                                                   self.tune_files.experiment_dirs())
                       if summary["trials"]]  # other folders (checkpoints, ...) are not shown
        self.tune_files.forget_missing()
        return experiments

    def tune_experiment(self, name: str, metric: str | None) -> dict[str, Any] | None:
        path = self.tune_files.experiment_path(name)
        if path is None:
            return None
        summary = self.tune_files.summary(path)
        return {"experiment": summary,
                "series": self.tune_files.series(path, metric, summary=summary)}

    def rllib(self) -> dict[str, Any]:
        """Training curves: the episode reward of every experiment that reports one."""
        curves = []
        for summary in self._tune.get():
            if not summary["is_rllib"]:
                continue
            names = set(summary["metrics"])
            metric = next(key for key in REWARD_KEYS if key in names)
            series = self.tune_files.series(summary["path"], metric, summary=summary)
            curves.append({"experiment": summary["name"], "metric": metric,
                           "lines": series["lines"], "trials": summary["trials"]})
        return {"curves": curves}

    def serve(self) -> dict[str, Any]:
        return self._serve.get()


class _ServeStatus:
    """``serve.status()``, when Serve runs in this process; one call at a time, with a deadline."""

    def __init__(self, node: Any):
        self.node = node
        self.lock = threading.Lock()
        self.last: dict[str, Any] = {"running": False, "deployments": [], "proxies": {}}

    def get(self) -> dict[str, Any]:
        serve_api = sys.modules.get("raylite.serve._api")
        if serve_api is None or getattr(serve_api, "_state", None) is None:
            return {"running": False, "deployments": [], "proxies": {}}
        from raylite.core import _api
        if _api._backend_obj is not self.node:  # shutting down: never let a call start a runtime
            return self.last
        if not self.lock.acquire(blocking=False):  # a call is under way: show the last answer
            return self.last
        try:
            status = _call_with_deadline(sys.modules["raylite.serve"].status, 5.0)
            self.last = _serve_rows(status)
        except Exception as exc:  # noqa: BLE001 - shown on the page
            self.last = {**self.last, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            self.lock.release()
        return self.last


def _call_with_deadline(function: Callable[[], Any], timeout_s: float) -> Any:
    result: list = []

    def run() -> None:
        try:
            result.append((True, function()))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            result.append((False, exc))

    thread = threading.Thread(target=run, name="raylite-dashboard-serve", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not result:
        raise TimeoutError(f"serve.status() did not answer within {timeout_s:g} s")
    ok, value = result[0]
    if not ok:
        raise value
    return value


def _serve_rows(status: Any) -> dict[str, Any]:
    rows = []
    for name, info in sorted(status.deployments.items()):
        states = dict(info.get("replica_states") or {})
        running = states.get("RUNNING", 0)
        rows.append({"name": name, "app": info.get("app_name") or "", "status": info.get("status"),
                     "message": info.get("message") or "", "route_prefix": info.get("route_prefix"),
                     "replica_states": states, "healthy_replicas": running,
                     "replicas": sum(states.values())})
    return {"running": True, "deployments": rows, "proxies": dict(status.proxies),
            "applications": {name: app.get("status") for name, app in status.applications.items()}}
