"""The scale-out backend: the raylite API on a Dask distributed cluster.

``raylite.init(address="dask://HOST:8786")`` connects a :class:`DaskBackend`; the same program
then runs on the cluster's workers. Inside tasks and actors a :class:`WorkerBackend` (the same
class, with the worker's client, seceding from the thread pool while it blocks) serves the API::

    raylite API ──▶ DaskBackend ──submit/scatter/gather──▶ Dask scheduler ──▶ Dask workers
                    (driver)                                                  run_task / ActorHost
                                                                              └─ WorkerBackend

How raylite's concepts map onto Dask:

    ObjectRef      a Dask key: ``ref._id`` is the key's bytes ("<name>-<32 hex>"), so any process
                   can look a ref up. Each process keeps the Dask Future of every key it holds a
                   ref to (RefTable, installed as the ref tracker) and releases it with its last
                   ref; refs nested in a task's arguments are pinned until the task finishes.
    task           client.submit(run_task, ...), pure=False, key naming the task; top-level refs
                   become Dask dependencies; num_returns=n adds n pick_item tasks; a task whose
                   refs are all dropped still runs (fire_and_forget), as in Ray.
    put            client.scatter({key: value})
    actor          client.submit(ActorHost, ..., actor=True); each call is a task on the actor's
                   worker that depends on the caller's previous unfinished call, so calls run in
                   order; errors of calls are returned as values so the chain keeps going.
    named actor    scheduler metadata ["raylite", "named", namespace, name]
    resources      Dask worker resources (``raylite start`` declares CPU/GPU/custom ones); one CPU
                   is one worker thread; a resource no worker has is reported, never a silent hang.

Not mapped (the engine has no equivalent): placement groups reserve nothing (bundles are only
checked against the workers), actor restarts (an actor whose worker dies is dead), and
``max_retries`` for lost workers (Dask retries those up to its ``allowed-failures`` setting).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time
from typing import Any

from raylite.core import _dask_remote as remote
from raylite.core import _refs
from raylite.core._ids import new_id
from raylite.core._refs import ObjectRef, collect_refs
from raylite.core._task import pack_args
from raylite.exceptions import (ActorDiedError, GetTimeoutError, TaskCancelledError, TaskError,
                                WorkerCrashedError, make_task_error)

DEFAULT_PORT = 8786
CONNECT_TIMEOUT_S = 10.0
_INFO_TTL_S = 5.0


def _new_key(name: str) -> str:
    return f"{name}-{os.urandom(16).hex()}"


# ==========================================================================================
# references: the Dask Future behind every ObjectRef alive in this process
# ==========================================================================================
class _Entry:
    __slots__ = ("count", "future", "pins", "actor")

    def __init__(self, future: Any, pins: list | None = None, actor: str | None = None):
        self.count = 0
        self.future = future
        self.pins = pins
        self.actor = actor


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

    def register(self, object_id: bytes, future: Any, pins: list | None = None,
                 actor: str | None = None) -> None:
        with self.lock:
            self.entries[object_id] = _Entry(future, pins, actor)

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

    def drain(self) -> None:
        """Release the Futures of refs dropped since the last call."""
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
                    dropped.append(entry)
        if dropped:
            from distributed import fire_and_forget
            for entry in dropped:  # Ray runs a task even when every ref to it is dropped
                if entry.future is not None and not entry.future.done():
                    fire_and_forget(entry.future)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.pinned.clear()


# ==========================================================================================
# the backend (driver side; WorkerBackend below is the same inside workers)
# ==========================================================================================
class DaskBackend:
    """The raylite API on a Dask cluster, through one ``distributed.Client``."""

    kind = "dask"

    def __init__(self, client: Any, namespace: str | None, owns_client: bool = True,
                 address: str | None = None):
        self.client = client
        self.namespace = namespace
        self.owns_client = owns_client
        self.address = address or client.scheduler.address
        self.table = RefTable(client)
        self.lock = threading.Lock()
        self.blobs: dict[bytes, bytes] = {}
        self.captured: list = []  # Futures of refs captured in functions' closures and globals
        self.actors: dict[str, Any] = {}  # actor key -> Future (actors created here, or seen)
        self.owned_actors: set[str] = set()
        self.actor_addresses: dict[str, str] = {}
        self.address_checked: dict[str, float] = {}
        self.last_call: dict[str, Any] = {}  # actor key -> this caller's last call (order)
        self.killed: set[str] = set()
        self.groups: dict[bytes, dict] = {}
        self.resource_cache: dict[frozenset, dict | None] = {}
        self.warned: set = set()
        self.info: dict | None = None
        self.info_time = 0.0

    # ----- connecting -----------------------------------------------------------------------
    @classmethod
    def connect(cls, address: Any, namespace: str | None,
                timeout: float | None = None) -> "DaskBackend":
        """Connect to the scheduler at ``address`` (or adopt a ``distributed.Client``)."""
        from distributed import Client
        if isinstance(address, Client):
            backend = cls(address, namespace, owns_client=False)
        else:
            target = scheduler_address(address)
            if timeout is None:
                timeout = float(os.environ.get("RAYLITE_CONNECT_TIMEOUT", CONNECT_TIMEOUT_S))
            _probe(target, address, timeout)
            try:
                client = Client(target, timeout=timeout, set_as_default=False)
            except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, Dask's own
                raise ConnectionError(_unreachable(address, exc)) from None
            backend = cls(client, namespace, owns_client=True, address=target)
        _refs.set_tracker(backend.table)
        return backend

    def context_info(self) -> dict:
        info = self._scheduler_info(refresh=True)
        host = _host_of(self.address)
        if not info.get("workers"):
            print(f"raylite: warning: the Dask cluster at {self.address} has no workers yet; "
                  "tasks wait until one joins (raylite start --address ...).",
                  file=sys.stderr, flush=True)
        dashboard = None
        if "dashboard" in (info.get("services") or {}):
            try:
                dashboard = self.client.dashboard_link
            except Exception:  # noqa: BLE001
                dashboard = None
        return {
            "node_ip_address": host, "raylet_ip_address": host, "redis_address": None,
            "gcs_address": self.address, "object_store_address": None,
            "raylet_socket_name": None, "webui_url": dashboard, "session_dir": None,
            "metrics_export_port": None, "node_id": info.get("id", self.address),
            "namespace": self.namespace, "address": "dask://" + self.address.split("://")[-1],
            "dask_scheduler_address": self.address,
        }

    def shutdown(self) -> None:
        """Disconnect from the cluster (the cluster itself keeps running)."""
        self.table.clear()
        self.captured.clear()
        self.actors.clear()
        self.last_call.clear()
        _refs.set_tracker(None)
        if self.owns_client:
            try:
                self.client.close(timeout=10)
            except Exception:  # noqa: BLE001 - the scheduler may be gone already
                pass

    def blocking(self):
        import contextlib
        return contextlib.nullcontext()

    def current_namespace(self) -> str | None:
        return self.namespace

    # ----- tasks ----------------------------------------------------------------------------
    def submit_task(self, function, args, kwargs, options, resources, placement) -> list:
        self.table.drain()
        name = options.get("name") or function._name
        num_returns = options.get("num_returns", 1)
        deps, payload, pins = self._pack(args, kwargs, name)
        retries, retry = _retry_policy(options)
        future = self.client.submit(
            remote.run_task, function._function_id, self._blob(function._function_id,
                                                               function._function,
                                                               function._source),
            name, payload, num_returns, retry, self.current_namespace(), *deps,
            key=_new_key(name), pure=False, retries=retries,
            resources=self._resources(resources, name))
        if pins:
            self.table.pin(future, pins)
        return self._returns(future, num_returns)

    def _pack(self, args: tuple, kwargs: dict, name: str) -> tuple[list, Any, list | None]:
        """Payload bytes with top-level refs swapped for Dep(i), their Futures, nested refs."""
        deps: list = []

        def swap(value):
            if type(value) is ObjectRef:
                deps.append(self.table.future(value._id))
                return remote.Dep(len(deps) - 1)
            return value
        if any(type(a) is ObjectRef for a in args):
            args = tuple(swap(a) for a in args)
        if kwargs and any(type(v) is ObjectRef for v in kwargs.values()):
            kwargs = {k: swap(v) for k, v in kwargs.items()}
        payload, _top, contained = pack_args(args, kwargs, name, None, new_id)
        pins = [self.table.future(object_id) for object_id in contained] if contained else None
        return deps, payload, pins

    def _blob(self, function_id: bytes, function: Any, source: str | None) -> bytes:
        blob = self.blobs.get(function_id)
        if blob is None:
            from raylite.core._serialization import dumps_function
            _pickle_by_value(function)
            with collect_refs() as captured:
                blob = dumps_function(function, source)
            self.captured.extend(self.table.future(object_id) for object_id in captured)
            self.blobs[function_id] = blob
        return blob

    def _returns(self, future: Any, num_returns: int, actor: str | None = None) -> list:
        if num_returns == 1:
            return [self._ref(future, actor)]
        if num_returns == 0:
            from distributed import fire_and_forget
            fire_and_forget(future)
            return []
        return [self._ref(self.client.submit(remote.pick_item, future, i,
                                             key=f"{future.key}-{i}", pure=False), actor)
                for i in range(num_returns)]

    def _ref(self, future: Any, actor: str | None = None) -> ObjectRef:
        object_id = future.key.encode()
        self.table.register(object_id, future, actor=actor)
        return ObjectRef(object_id)

    # ----- resources ------------------------------------------------------------------------
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
            with self.blocking():
                self.info = dict(self.client.scheduler_info(n_workers=-1))
            self.info_time = time.monotonic()
            self.resource_cache.clear()
        return self.info

    # ----- objects --------------------------------------------------------------------------
    def put(self, value: Any) -> ObjectRef:
        self.table.drain()
        stored, contained = _for_store(value)
        key = _new_key("put")
        with self.blocking():
            future = self.client.scatter({key: stored}, hash=False)[key]
        pins = [self.table.future(object_id) for object_id in contained] if contained else None
        object_id = key.encode()
        self.table.register(object_id, future, pins)
        return ObjectRef(object_id)

    def get(self, refs: list, timeout: float | None) -> list:
        self.table.drain()
        futures = [self.table.future(ref._id) for ref in refs]
        error = None
        with self.blocking():
            if timeout is not None:
                done = self.client.sync(_wait_for, futures, len(futures), timeout)
                if done < len(futures):
                    raise GetTimeoutError(
                        f"get timed out after {timeout} s: {len(futures) - done} of "
                        f"{len(futures)} object(s) not ready")
            try:
                values = self.client.gather(futures)
            except BaseException as exc:  # noqa: BLE001 - translated below
                error = self._translate(exc, futures)
        if error is not None:
            raise error
        return [remote.unwrap(v) for v in values]

    def wait(self, refs: list, num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list, list]:
        self.table.drain()
        futures = [self.table.future(ref._id) for ref in refs]
        with self.blocking():
            self.client.sync(_wait_for, futures, num_returns, timeout)
        ready, not_ready = [], []
        for ref, future in zip(refs, futures):
            (ready if future.done() and len(ready) < num_returns else not_ready).append(ref)
        return ready, not_ready

    def cancel(self, object_id: bytes, force: bool) -> None:
        future = self.table.future(object_id)
        if not future.done():
            self.client.cancel([future], force=True, reason="cancelled with raylite.cancel")

    def _translate(self, exc: BaseException, futures: list) -> BaseException:
        """The raylite error for what Dask raised while gathering."""
        from concurrent.futures import CancelledError
        from distributed import KilledWorker
        if isinstance(exc, TaskError):
            return exc
        key = getattr(exc, "key", None) or getattr(exc, "task", None)
        if not isinstance(key, str):
            failed = [f for f in futures if f.status in ("error", "cancelled")]
            key = failed[0].key if failed else "task"
        actor = self.table.actor_of(key)
        if isinstance(exc, CancelledError):
            if actor is not None:
                reason = "was killed" if actor in self.killed else "is gone"
                return ActorDiedError(f"{_name_of(key)}: the actor {reason} (its call {key} "
                                      "was cancelled)")
            return TaskCancelledError(f"{_name_of(key)} was cancelled ({key})")
        if isinstance(exc, KilledWorker):
            return WorkerCrashedError(f"{_name_of(key)}: the Dask workers running it died "
                                      f"({exc}); raise the scheduler's allowed-failures to retry "
                                      "more")
        if isinstance(exc, RuntimeError) and "Actor was lost" in str(exc):
            return ActorDiedError(f"{_name_of(key)}: the actor's worker died ({exc})")
        return make_task_error(exc, _name_of(key), 0, "")

    # ----- actors ---------------------------------------------------------------------------
    def create_actor(self, actor_class, args, kwargs, options, resources, placement,
                     actor_options) -> bytes:
        self.table.drain()
        class_name = actor_class._name
        ordered = actor_options.get("max_concurrency", 1) == 1 and not actor_options.get("is_async")
        key = _new_key(class_name) + ("" if ordered else "-concurrent")
        name = actor_options.get("name")
        namespace = actor_options.get("namespace") or self.current_namespace() or "default"
        if name:
            self._check_name_free(name, namespace)
        deps, payload, pins = self._pack(args, kwargs, f"{class_name}.__init__")
        spec = {"namespace": namespace, "max_concurrency": actor_options.get("max_concurrency", 1),
                "is_async": bool(actor_options.get("is_async"))}
        future = self.client.submit(
            remote.ActorHost, actor_class._function_id,
            self._blob(actor_class._function_id, actor_class._cls, actor_class._source),
            class_name, payload, spec, *deps, key=key, actor=True, pure=False,
            resources=self._resources(resources, f"{class_name}.__init__"))
        if pins:
            self.table.pin(future, pins)
        self.actors[key] = future
        self.owned_actors.add(key)
        if name:
            self.client.set_metadata(["raylite", "named", namespace, name], {
                "key": key, "class_name": class_name, "meta": actor_options.get("meta") or {}})
        if actor_options.get("lifetime") == "detached":
            self.client.publish_dataset(future, name=f"raylite-actor-{key}")
        return key.encode()

    def submit_actor_call(self, actor_id, class_name, method, args, kwargs, num_returns,
                          options) -> list:
        self.table.drain()
        actor_key = actor_id.decode()
        name = options.get("name") or f"{class_name}.{method}"
        if actor_key in self.killed:
            return [self._error_ref(ActorDiedError(f"{name}: the actor was killed"), actor_key)
                    for _ in range(max(1, num_returns))]
        payload, _top, contained = pack_args(args, kwargs, name, None, new_id)
        actor = self._actor_future(actor_key)
        with self.lock:  # one caller's calls run in the order they were made
            previous = None
            if not actor_key.endswith("-concurrent"):
                previous = self.last_call.get(actor_key)
                if previous is not None and previous.done():
                    previous = None
            where = self._actor_address(actor_key, actor)
            future = self.client.submit(
                remote.call_actor, actor, method, name, payload, num_returns, previous,
                key=_new_key(name), pure=False, workers=where,
                allow_other_workers=where is not None)
            if not actor_key.endswith("-concurrent"):
                self.last_call[actor_key] = future
        if contained:
            self.table.pin(future, [self.table.future(object_id) for object_id in contained])
        return self._returns(future, num_returns, actor_key)

    def _error_ref(self, error: BaseException, actor: str | None) -> ObjectRef:
        key = _new_key("error")
        with self.blocking():
            future = self.client.scatter({key: remote.Failed(error)}, hash=False)[key]
        return self._ref(future, actor)

    def _actor_future(self, key: str) -> Any:
        future = self.actors.get(key)
        if future is None:  # a handle made elsewhere: refer to the key without owning it
            from distributed import Future
            future = self.actors[key] = Future(key, self.client)
        return future

    def _actor_address(self, key: str, future: Any) -> list | None:
        """The actor's worker, once known (calls go there; one who_has query per actor)."""
        address = self.actor_addresses.get(key)
        if address is not None:
            return [address]
        if key in self.owned_actors and not future.done():
            return None
        now = time.monotonic()
        if now - self.address_checked.get(key, 0.0) < 1.0:
            return None
        self.address_checked[key] = now
        try:
            with self.blocking():
                holders = self.client.who_has([future]).get(key) or ()
        except Exception:  # noqa: BLE001
            holders = ()
        if holders:
            self.actor_addresses[key] = holders[0]
            return [holders[0]]
        return None

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        key = actor_id.decode()
        self.killed.add(key)
        self.last_call.pop(key, None)
        future = self._actor_future(key)
        address = self._actor_address(key, future)
        if address:
            try:
                with self.blocking():
                    self.client.run(remote.kill_actor_here, key, workers=address)
            except Exception:  # noqa: BLE001 - the worker may be gone already
                pass
        self.client.cancel([future], force=True, reason="actor killed with raylite.kill")
        self.actors.pop(key, None)
        self._forget_names(key)

    def _check_name_free(self, name: str, namespace: str) -> None:
        entry = self.client.get_metadata(["raylite", "named", namespace, name], None)
        if entry and entry.get("key") not in self.killed:
            raise ValueError(f"an actor named {name!r} already exists in namespace "
                             f"{namespace!r}; use get_actor({name!r}) or "
                             f".options(name={name!r}, get_if_exists=True)")

    def _forget_names(self, key: str) -> None:
        try:
            named = self.client.get_metadata(["raylite", "named"], {}) or {}
        except Exception:  # noqa: BLE001
            return
        for namespace, names in named.items():
            for name, entry in (names or {}).items():
                if entry and entry.get("key") == key:
                    self.client.set_metadata(["raylite", "named", namespace, name], None)
        if key in self.owned_actors:
            try:
                self.client.unpublish_dataset(f"raylite-actor-{key}")
            except Exception:  # noqa: BLE001 - it was not detached
                pass

    def get_actor(self, name: str, namespace: str | None):
        namespace = namespace or self.current_namespace() or "default"
        entry = self.client.get_metadata(["raylite", "named", namespace, name], None)
        if not entry or entry.get("key") in self.killed:
            names = self.client.get_metadata(["raylite", "named", namespace], {}) or {}
            live = sorted(n for n, e in names.items() if e)
            raise ValueError(f"Failed to look up actor with name {name!r} in namespace "
                             f"{namespace!r}: no live actor has that name (named actors there: "
                             f"{', '.join(live) or 'none'}). Create it with "
                             "Cls.options(name=...).remote() first.")
        return entry["key"].encode(), entry["class_name"], entry["meta"]

    def local_actor(self, key: str) -> Any:
        return None

    # ----- introspection --------------------------------------------------------------------
    def cluster_resources(self) -> dict:
        total: dict[str, float] = {}
        for worker in self._scheduler_info(refresh=True).get("workers", {}).values():
            for name, amount in _worker_resources(worker).items():
                total[name] = total.get(name, 0.0) + amount
        return total

    def available_resources(self) -> dict:
        try:
            with self.blocking():
                used = self.client.run_on_scheduler(_used_resources)
        except Exception:  # noqa: BLE001 - raylite not importable on the scheduler
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
        group_id = new_id()
        workers = list(self._scheduler_info(refresh=True).get("workers", {}).values())
        capacities = [_worker_resources(w) for w in workers]
        fits = [[i for i, c in enumerate(capacities) if all(c.get(k, 0) >= v for k, v in b.items())]
                for b in bundles]
        feasible = all(fits)
        if strategy == "STRICT_PACK":
            total = {k: sum(b.get(k, 0) for b in bundles) for b in bundles for k in b}
            feasible = any(all(c.get(k, 0) >= v for k, v in total.items()) for c in capacities)
        elif strategy == "STRICT_SPREAD":
            feasible = feasible and len(workers) >= len(bundles)
        if not feasible:
            print(f"raylite: warning: placement group {name or group_id.hex()} ({strategy}, "
                  f"{bundles}) does not fit the Dask workers "
                  f"({'; '.join(_format_resources(c) for c in capacities) or 'none'}); its "
                  "tasks run anyway, wherever they fit (Dask reserves nothing).",
                  file=sys.stderr, flush=True)
        self.groups[group_id] = {"bundles": bundles, "strategy": strategy, "name": name,
                                 "state": "CREATED"}
        return group_id, self.put(True)

    def remove_placement_group(self, group_id: bytes) -> None:
        if group_id in self.groups:
            self.groups[group_id]["state"] = "REMOVED"

    def placement_group_table(self) -> dict:
        return {group_id.hex(): {"placement_group_id": group_id.hex(), **info}
                for group_id, info in self.groups.items()}


# ==========================================================================================
# inside a worker
# ==========================================================================================
class _TaskInfo:
    """``get_runtime_context().get_task_id()`` inside a Dask task: the task's key."""

    actor_id_hex = None

    @property
    def running(self) -> bytes | None:
        from distributed.utils import thread_state
        key = getattr(thread_state, "key", None)
        return key.encode() if isinstance(key, str) else None


class WorkerBackend(DaskBackend):
    """The raylite API inside a Dask task or actor, through the worker's own client."""

    kind = "worker"

    def __init__(self, client: Any, dask_worker: Any):
        super().__init__(client, None, owns_client=False)
        self.dask_worker = dask_worker
        self.worker = _TaskInfo()
        host = getattr(dask_worker, "ip", None) or _host_of(dask_worker.address)
        self.context = {
            "node_ip_address": host, "node_id": dask_worker.address, "namespace": None,
            "worker_id": str(dask_worker.name), "address": "dask://" + self.address.split("://")[-1],
            "webui_url": None, "session_dir": None,
        }
        self._start_draining()

    def _start_draining(self) -> None:
        from tornado.ioloop import PeriodicCallback
        callback = PeriodicCallback(self.table.drain, 1000)
        self.dask_worker.periodic_callbacks["raylite-refs"] = callback
        self.dask_worker.loop.add_callback(callback.start)

    def api(self, name: str, *args) -> Any:
        return getattr(self, name)(*args)

    def blocking(self):
        return remote.blocking()

    def current_namespace(self) -> str | None:
        return remote.current_namespace()

    def local_actor(self, key: str) -> Any:
        return self.dask_worker.state.actors.get(key)

    def shutdown(self) -> None:
        pass  # the worker's client belongs to Dask


# ==========================================================================================
# helpers
# ==========================================================================================
def scheduler_address(address: str) -> str:
    """'dask://h:p', 'tcp://h:p', 'h:p' or 'h' -> the scheduler address Dask expects."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"address must be 'dask://HOST:PORT', 'tcp://HOST:PORT', 'HOST:PORT' or "
                         f"a distributed.Client, got {address!r}")
    text = address.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text
    elif scheme == "dask":
        scheme = "tcp"
    if scheme not in ("tcp", "tls", "ucx", "inproc", "ws", "wss"):
        raise ValueError(f"unsupported address scheme {scheme!r} in {address!r}; use "
                         "'dask://HOST:PORT' (or 'tcp://HOST:PORT')")
    if scheme in ("tcp", "tls") and ":" not in rest.rsplit("]", 1)[-1]:
        rest = f"{rest}:{DEFAULT_PORT}"
    return f"{scheme}://{rest}"


def _host_of(address: str) -> str:
    rest = address.split("://")[-1]
    return rest.rsplit(":", 1)[0].strip("[]")


def _probe(target: str, address: Any, timeout: float) -> None:
    """Fail fast (and clearly) when nothing listens at a TCP address."""
    if not target.startswith(("tcp://", "tls://")):
        return
    host, _, port = target.split("://", 1)[1].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise ConnectionError(_unreachable(address, exc)) from None


def _unreachable(address: Any, exc: BaseException) -> str:
    return (f"could not connect to a Dask scheduler at {address!r} ({type(exc).__name__}: "
            f"{exc}). Is a cluster running there? Start one on this machine with "
            "`raylite start --head` (it prints the address to use), or with `dask scheduler` and "
            "`dask worker`; then call raylite.init(address=\"dask://HOST:8786\") or "
            "export RAYLITE_ADDRESS=dask://HOST:8786.")


def _name_of(key: str) -> str:
    from dask.utils import key_split
    try:
        return key_split(key)
    except Exception:  # noqa: BLE001
        return str(key)


def _retry_policy(options: dict) -> tuple[int, bytes | None]:
    """(Dask retries, cloudpickled (max_retries, classes) for run_task's own retry loop)."""
    retry_exceptions = options.get("retry_exceptions", False)
    max_retries = options.get("max_retries", 3)
    if not retry_exceptions or max_retries == 0:
        return 0, None
    if retry_exceptions is True:
        return (max_retries if max_retries >= 0 else 1_000_000), None
    import cloudpickle
    classes = tuple(retry_exceptions)
    for cls in classes:
        _pickle_by_value(cls)
    return 0, cloudpickle.dumps((max_retries, classes))


_checked_modules: set[str] = set()


def _pickle_by_value(obj: Any) -> None:
    """Pickle the module of ``obj`` by value when the workers probably cannot import it.

    Functions and classes defined in the user's own files (a test module, a helper next to a
    script) are not installed on the cluster; cloudpickle sends those modules' code along.
    Modules of installed packages (site-packages, the standard library) and raylite itself go
    by reference.
    """
    name = getattr(obj, "__module__", None)
    if not name or name == "__main__" or name in _checked_modules:
        return
    _checked_modules.add(name)
    if name.partition(".")[0] in ("raylite", "dask", "distributed", "cloudpickle"):
        return
    module = sys.modules.get(name)
    filename = getattr(module, "__file__", None)
    if module is None or not filename:
        return
    filename = os.path.realpath(filename)
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    if any(filename.startswith(p + os.sep) for p in prefixes) or "site-packages" in filename:
        return
    import cloudpickle
    try:
        cloudpickle.register_pickle_by_value(module)
    except (ValueError, TypeError):
        pass


def _for_store(value: Any) -> tuple[Any, list[bytes]]:
    """What put() scatters, and the ids of the refs inside the value (to keep them alive)."""
    from raylite.core._serialization import _PLAIN
    kind = type(value)
    if kind in _PLAIN:
        return value, []
    module = kind.__module__.partition(".")[0]
    if module in ("numpy", "pandas", "pyarrow") and getattr(value, "dtype", None) != object:
        return value, []  # Dask's own zero-copy serializers; cannot contain refs
    import cloudpickle
    _pickle_by_value(kind)
    buffers: list = []
    with collect_refs() as contained:
        data = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return remote.Pickled(data, [b.raw() for b in buffers]), list(contained)


async def _wait_for(futures: list, num_returns: int, timeout: float | None) -> int:
    """Wait (on the client's loop) until ``num_returns`` futures are done; returns how many are."""
    waiting = {asyncio.ensure_future(f._state.wait()) for f in futures if not f.done()}
    done = len(futures) - len(waiting)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while done < num_returns and waiting:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            finished, waiting = await asyncio.wait(waiting, timeout=remaining,
                                                   return_when=asyncio.FIRST_COMPLETED)
            if not finished:
                break
            done += len(finished)
    finally:
        for task in waiting:
            task.cancel()
    return sum(1 for f in futures if f.done())


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
