"""Resources and introspection on Dask: what the workers have, and what a request maps to.

A Dask worker is a raylite node. Its resources are what it declares (``raylite start`` declares
``CPU=<threads>``, GPU and custom ones) plus its memory limit; a worker that declares no CPU has
as many CPUs as threads. One CPU is one worker thread, which Dask hands out anyway, so requests of
up to one CPU need no Dask restriction; the rest become Dask resource restrictions, and a request
no worker can meet is reported (the task waits for such a worker to join, as in Ray).
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import Future as ThreadFuture
from typing import Any

from raylite.core.dask._refs import _new_key
from raylite.core._ids import new_id
from raylite.core._refs import ObjectRef

_INFO_TTL_S = 5.0
_GROUP_CHECK_MS = 1000  # how often a placement group that does not fit is checked again


class ClusterMixin:
    """The resource and introspection half of DaskBackend (it provides client, put, ...)."""

    def _resources(self, resources: dict | None, name: str) -> dict | None:
        """Dask resource restrictions for a raylite request (None: any worker thread will do)."""
        if not resources:
            return None
        signature = frozenset(resources.items())
        if signature in self.resource_cache and time.monotonic() - self.info_time < _INFO_TTL_S:
            return self.resource_cache[signature]
        workers = self._scheduler_info().get("workers", {})
        out = _dask_resources(resources, workers.values())
        if not _feasible(out, resources, workers.values()):
            workers = self._scheduler_info(refresh=True).get("workers", {})
            out = _dask_resources(resources, workers.values())
            if not _feasible(out, resources, workers.values()):
                self._warn_infeasible(name, resources, workers)
        self.resource_cache[signature] = out
        return out

    def _warn_infeasible(self, name: str, resources: dict, workers: dict) -> None:
        signature = (name, frozenset(resources.items()))
        if signature in self.warned:
            return
        self.warned.add(signature)
        have = "; ".join(f"{address} {_format_resources(_worker_resources(w))}"
                         for address, w in workers.items()) or "none"
        missing = [r for r in resources if r not in ("CPU", "memory") and
                   not any(r in (w.get("resources") or {}) for w in workers.values())]
        what = (f"no Dask worker has the resource {', '.join(repr(m) for m in missing)}"
                if missing else "no single Dask worker has that much")
        print(f"raylite: warning: {name} needs {_format_resources(resources)}, but {what} "
              f"(workers: {have}). It waits until such a worker joins: start one with "
              f"`raylite start --address {self.address.split('://')[-1]} --resources "
              f"'{{\"{(missing or list(resources))[0]}\": 1}}'` (or `dask worker --resources`).",
              file=sys.stderr, flush=True)

    def _scheduler_info(self, refresh: bool = False) -> dict:
        if refresh or self.info is None or time.monotonic() - self.info_time > _INFO_TTL_S:
            self.info = dict(self.client.scheduler_info(n_workers=-1))
            self.info_time = time.monotonic()
            self.resource_cache.clear()
        return self.info

    def cluster_resources(self) -> dict:
        total: dict[str, float] = {}
        for worker in self._scheduler_info(refresh=True).get("workers", {}).values():
            for name, amount in _worker_resources(worker).items():
                total[name] = total.get(name, 0.0) + amount
        return total

    def available_resources(self) -> dict:
        try:
            used = self.client.run_on_scheduler(_used_resources)
        except Exception:  # noqa: BLE001
            used = {}
        free: dict[str, float] = {}
        for address, worker in self._scheduler_info(refresh=True).get("workers", {}).items():
            busy = used.get(address, {})
            counts = (worker.get("metrics") or {}).get("task_counts") or {}
            running = busy.get("_running", counts.get("executing", 0))
            for name, amount in _worker_resources(worker).items():
                taken = busy.get(name, 0.0)
                if name == "CPU":
                    taken = max(taken, min(running, amount))
                free[name] = free.get(name, 0.0) + max(0.0, amount - taken)
        return free

    def nodes(self) -> list:
        out = []
        for address, worker in self._scheduler_info(refresh=True).get("workers", {}).items():
            alive = worker.get("status", "running") == "running"
            out.append({
                "NodeID": address, "Alive": alive, "alive": alive,
                "NodeManagerAddress": worker.get("host"), "NodeManagerHostname": worker.get("host"),
                "NodeName": str(worker.get("name", address)), "Resources": _worker_resources(worker),
                "DaskWorkerAddress": address, "nthreads": worker.get("nthreads"),
            })
        return out

    def create_placement_group(self, bundles, strategy, name):
        """A placement group on Dask: its bundles are *checked*, never reserved.

        Dask has no reservations: the group's tasks and actors run wherever their own resources
        fit, alongside other work. What ``ready()`` says is honest about that: its ref resolves
        (to True) once the workers' resources can hold every bundle together under the
        strategy (STRICT_PACK: all on one worker; STRICT_SPREAD: each on its own worker; PACK
        and SPREAD: anywhere), which is at once on a cluster that fits. When no combination of
        workers fits, a warning names the bundles and the workers, and the ref waits until
        workers that fit join (checked once a second), as Ray's pending groups do.
        """
        group_id = new_id()
        label = name or group_id.hex()
        ready: ThreadFuture = ThreadFuture()
        self.groups[group_id] = {"bundles": bundles, "strategy": strategy, "name": name,
                                 "state": "PENDING", "ready": ready}
        workers = self._scheduler_info(refresh=True).get("workers", {})
        if bundles_fit(bundles, strategy, workers):
            self._group_ready(group_id)
        else:
            capacities = "; ".join(f"{address} {_format_resources(_worker_resources(w))}"
                                   for address, w in workers.items()) or "none"
            print(f"raylite: warning: placement group {label} ({strategy}, bundles {bundles}) "
                  f"does not fit the Dask workers ({capacities}); its ready() waits until workers "
                  "that fit join (`raylite start --address ...`). Dask reserves nothing: tasks "
                  "placed in the group run wherever their own resources fit.",
                  file=sys.stderr, flush=True)
            from tornado.ioloop import PeriodicCallback
            checker = PeriodicCallback(lambda: self._check_group(group_id), _GROUP_CHECK_MS)
            self.groups[group_id]["checker"] = checker
            self.client.loop.add_callback(checker.start)
        object_id = _new_key("placement_group_ready").encode()
        self.table.register_local(object_id, ready, None)
        return group_id, ObjectRef(object_id)

    def _group_ready(self, group_id: bytes) -> None:
        group = self.groups[group_id]
        group["state"] = "CREATED"
        if not group["ready"].done():
            group["ready"].set_result(True)
        checker = group.pop("checker", None)
        if checker is not None:
            checker.stop()

    async def _check_group(self, group_id: bytes) -> None:  # on the client's event loop
        group = self.groups.get(group_id)
        if group is None or group["state"] != "PENDING":
            return
        info = await self.client.scheduler.identity(n_workers=-1)
        if bundles_fit(group["bundles"], group["strategy"], info.get("workers", {})):
            self._group_ready(group_id)

    def remove_placement_group(self, group_id: bytes) -> None:
        group = self.groups.get(group_id)
        if group is not None:
            group["state"] = "REMOVED"
            checker = group.pop("checker", None)
            if checker is not None:
                self.client.loop.add_callback(checker.stop)

    def placement_group_table(self) -> dict:
        shown = ("bundles", "strategy", "name", "state")
        return {group_id.hex(): {"placement_group_id": group_id.hex(),
                                 **{k: info[k] for k in shown}}
                for group_id, info in self.groups.items()}


def bundles_fit(bundles: list[dict], strategy: str, workers: dict) -> bool:
    """Whether the workers' resources can hold all ``bundles`` at once under ``strategy``."""
    capacities = [_worker_resources(w) for w in workers.values()]
    if strategy == "STRICT_PACK":
        total: dict[str, float] = {}
        for bundle in bundles:
            for key, amount in bundle.items():
                total[key] = total.get(key, 0.0) + amount
        return any(_holds(c, total) for c in capacities)
    return _assign(sorted(bundles, key=lambda b: -sum(b.values())), capacities,
                   distinct=strategy == "STRICT_SPREAD", used=set())


def _holds(capacity: dict, bundle: dict) -> bool:
    return all(capacity.get(key, 0.0) >= amount for key, amount in bundle.items())


def _assign(bundles: list[dict], capacities: list[dict], distinct: bool, used: set) -> bool:
    """Backtracking: place each bundle on a worker with room left (distinct: one per worker)."""
    if not bundles:
        return True
    bundle, rest = bundles[0], bundles[1:]
    for index, capacity in enumerate(capacities):
        if (distinct and index in used) or not _holds(capacity, bundle):
            continue
        left = {k: v - bundle.get(k, 0.0) for k, v in capacity.items()}
        if _assign(rest, capacities[:index] + [left] + capacities[index + 1:], distinct,
                   used | {index}):
            return True
    return False


def _worker_resources(worker: dict) -> dict[str, float]:
    """A worker's resources as raylite names them: CPU (declared, else its threads), memory, ..."""
    declared = dict(worker.get("resources") or {})
    out = {"CPU": float(declared.pop("CPU", worker.get("nthreads", 1)))}
    if worker.get("memory_limit"):
        out["memory"] = float(declared.pop("memory", worker["memory_limit"]))
    out.update({k: float(v) for k, v in declared.items()})
    return out


def _dask_resources(resources: dict, workers) -> dict | None:
    """Map a raylite request onto Dask worker resources.

    One CPU is one worker thread, which Dask hands out anyway: ``CPU <= 1`` needs no
    restriction. Larger CPU requests, GPU and custom resources become Dask restrictions when
    some worker declares them (a request for an undeclared resource stays, so the task waits
    for such a worker, and the caller warns). ``memory`` is only a restriction where declared.
    """
    declared = set()
    for worker in workers:
        declared.update((worker.get("resources") or {}).keys())
    out = {}
    for name, amount in resources.items():
        if name == "CPU" and (amount <= 1 or "CPU" not in declared):
            continue
        if name == "memory" and "memory" not in declared:
            continue
        out[name] = float(amount)
    return out or None


def _feasible(restrictions: dict | None, resources: dict, workers) -> bool:
    workers = list(workers)
    if not workers:
        return False
    cpus = resources.get("CPU", 0)
    for worker in workers:
        have = _worker_resources(worker)
        if cpus > have["CPU"]:
            continue
        if all((worker.get("resources") or {}).get(k, 0) >= v
               for k, v in (restrictions or {}).items()):
            return True
    return False


def _format_resources(resources: dict) -> str:
    parts = []
    for name, amount in resources.items():
        if name == "memory":
            parts.append(f"memory={amount / 2**30:.1f}GiB")
        else:
            parts.append(f"{name}={amount:g}")
    return "{" + ", ".join(parts) + "}"


def _used_resources(dask_scheduler: Any = None) -> dict:
    """Run on the scheduler: resources in use and tasks running, per worker."""
    out = {}
    for address, ws in dask_scheduler.workers.items():
        used = dict(getattr(ws, "used_resources", {}) or {})
        used["_running"] = len(getattr(ws, "processing", ()))
        out[address] = used
    return out
