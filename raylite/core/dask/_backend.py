"""The scale-out backend: the raylite API on a Dask distributed cluster.

``raylite.init(address="dask://HOST:8786")`` connects a :class:`DaskBackend`; the same program
then runs on the cluster's workers. Inside tasks and actors a :class:`WorkerBackend` (the same
class, with the worker's client, seceding from the thread pool while it blocks) serves the API::

    raylite API ──▶ DaskBackend ──submit/scatter/gather──▶ Dask scheduler ──▶ Dask workers
                    (driver)                                                  run_task / ActorHost
                                                                              └─ WorkerBackend

How raylite's concepts map onto Dask (the modules beside this one hold the details):

    ObjectRef      a Dask key ("<name>-<32 hex>", ``ref._id`` is its bytes), kept alive by a
                   Future in every process holding a ref to it                  _refs.py
    task           run_task in a Dask task, pure=False, keyed by the task's name; top-level refs
                   become Dask dependencies, nested ones travel as refs; num_returns=n adds n
                   pick_item tasks; tasks submitted one by one go out in batches (one
                   client.map per run of like tasks), like client.map            _remote.py
    put            client.scatter({key: value})
    actor          a Dask actor holding an ActorHost (its key is the actor id)   _actors.py
                   its worker's side: call order, threads, event loop, kill      _host.py
    actor call     a direct call (Dask's actor RPC, no task): queued in the caller's order,
                   numbered, sent at once; the result stays with the caller until Dask needs
                   it (then it is scattered under the ref's key)                 _calls.py
    resources      Dask worker resources (``raylite start`` declares CPU/GPU/custom ones); one CPU
                   is one worker thread; a resource no worker has is reported    _cluster.py
    errors         a task raises its TaskError (Dask marks it erred, dependents too); actor calls
                   return theirs as values (``Failed``), so later calls still run

Not mapped (the engine has no equivalent): placement groups reserve nothing (bundles are only
checked against the workers; so ``placement_group_capture_child_tasks`` has nothing to capture
into and is ignored, and ``get_current_placement_group()`` is None in a Dask task), ``cancel`` cannot stop a task that is already running (Dask
cannot interrupt a running task: it is marked cancelled and its result dropped), an actor call
cannot be cancelled (kill the actor), and ``max_retries`` for lost workers (Dask retries those
up to its ``allowed-failures`` setting). ``max_restarts`` restarts an actor whose worker died
only while the process that created it runs (it is the one that asks Dask to run it again).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import wait as thread_wait
from typing import Any

from raylite.core.dask import _remote as remote
from raylite.core import _refs
from raylite.core.dask._actors import ActorsMixin
from raylite.core.dask._cluster import ClusterMixin
from raylite.core.dask._connect import open_client, scheduler_address, unreachable  # noqa: F401
from raylite.core.dask._pickling import _for_store, _pickle_by_value, pickle_arguments_by_value
from raylite.core.dask._refs import RefTable, _new_key
from raylite.core._ids import new_id
from raylite.core._refs import ObjectRef, collect_refs
from raylite.core._backend import Backend, settle
from raylite.core._task import pack_args
from raylite.exceptions import (
    ActorDiedError,
    GetTimeoutError,
    TaskCancelledError,
    TaskError,
    WorkerCrashedError,
    make_task_error,
)

_BATCH = 1000  # tasks per client.map at most
_BATCH_DELAY_S = 0.002  # a buffered task waits at most this long before it is sent


# ==========================================================================================
# the backend (driver side; WorkerBackend below is the same inside workers)
# ==========================================================================================
class DaskBackend(ActorsMixin, ClusterMixin, Backend):
    """The raylite API on a Dask cluster, through one ``distributed.Client``."""

    #: generator calls run to their end in the Dask task; their items' refs come with the end
    runs_generators = "at_end"

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
        self.channels: dict[str, Any] = {}  # actor key -> ActorChannel (this process's calls)
        self.restartable: dict[str, dict] = {}  # actor key -> restart record (owned actors)
        self.watcher: Any = None  # the PeriodicCallback restarting lost actors
        self.killed: set[str] = set()
        self.kept_actors: set[str] = set()  # named and detached: not ended with their handles
        self.groups: dict[bytes, dict] = {}
        self.resource_cache: dict[frozenset, dict | None] = {}
        self.warned: set = set()
        self.info: dict | None = None
        self.info_time = 0.0
        self.job_env: dict | None = None  # the runtime_env installed on the cluster
        self.env_plugin: str | None = None  # its plugins' name, when this process installed it
        # tasks submitted one by one are sent to the scheduler in batches (one client.map per
        # run of tasks of the same function and options), like client.map: flushed when a
        # batch is full, when anything needs their futures, and 2 ms after the first one
        self.batching = self.kind == "dask"
        self.buffer: list = []
        self.buffer_lock = threading.RLock()
        self.table.flush = self.flush
        self.table.before_block = self.leave_thread_pool
        self.table.on_release = self.release_actor

    # ----- connecting -----------------------------------------------------------------------
    @classmethod
    def connect(cls, address: Any, namespace: str | None,
                timeout: float | None = None, runtime_env: dict | None = None) -> DaskBackend:
        """Connect to the scheduler at ``address`` (or adopt a ``distributed.Client``).

        Addresses, credentials and the bounded handshake: ``_connect``."""
        from distributed import Client
        if isinstance(address, Client):
            backend = cls(address, namespace, owns_client=False)
        else:
            client, target = open_client(address, timeout)
            backend = cls(client, namespace, owns_client=True, address=target)
        if runtime_env:  # the whole cluster's: core/dask/_runtime_env.py
            from raylite.core.dask._runtime_env import install
            try:
                backend.env_plugin = install(backend.client, runtime_env)
            except BaseException:
                backend.shutdown()
                raise
            backend.job_env = runtime_env
        _refs.set_tracker(backend.table)
        return backend

    def memory_folder(self) -> str:
        raise ValueError("memory:// URIs are folders in one machine's shared memory, and on a "
                         "Dask cluster raylite's tasks run on other machines, which cannot see "
                         "them; use s3://, gs:// or a folder every machine mounts")

    def context_info(self) -> dict:
        try:
            info = self._scheduler_info(refresh=True)
        except Exception as exc:  # noqa: BLE001 - the scheduler went away right after connecting
            raise ConnectionError(unreachable(self.address, self.address, exc)) from None
        host = _host_of(self.address)
        if not info.get("workers"):
            print(f"raylite: warning: the Dask cluster at {self.address} has no workers yet; "
                  "tasks wait until one joins (raylite start --address ...).",
                  file=sys.stderr, flush=True)
        else:
            self._check_workers()
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

    def _check_workers(self) -> None:
        """Warn when workers cannot import raylite, or run another version of it."""
        expected = remote.worker_protocol()
        try:
            found = self.client.run(remote.worker_protocol, on_error="return")
        except Exception as exc:  # noqa: BLE001 - a check, never a failure
            found = {"(all workers)": exc}
        for address, got in found.items():
            if isinstance(got, BaseException) and "No module named 'raylite" in str(got):
                problem = "cannot import raylite; install it in every worker's environment"
            elif isinstance(got, BaseException):
                problem = (f"cannot run this program's raylite worker code ({got}); it probably "
                           "runs another raylite version: restart the workers with this one")
            elif tuple(got) != expected:
                problem = (f"runs raylite {got[0]} (protocol {got[1]}), this program "
                           f"{expected[0]} (protocol {expected[1]}); restart the workers with "
                           "the same version")
            else:
                continue
            print(f"raylite: warning: Dask worker {address} {problem}.", file=sys.stderr,
                  flush=True)

    def shutdown(self) -> None:
        """Disconnect from the cluster (the cluster itself keeps running)."""
        with self.buffer_lock:
            self.buffer.clear()
        if self.watcher is not None:
            self.client.loop.add_callback(self.watcher.stop)
        self.table.clear()
        self.captured.clear()
        self.actors.clear()
        self.channels.clear()
        _refs.set_tracker(None)
        if self.env_plugin is not None:
            from raylite.core.dask._runtime_env import uninstall
            try:
                uninstall(self.client, self.env_plugin)
            except Exception:  # noqa: BLE001, S110 - the cluster may be gone already
                pass
            self.env_plugin = None
        if self.owns_client:
            try:
                self.client.close(timeout=10)
            except Exception:  # noqa: BLE001, S110
                pass

    def leave_thread_pool(self) -> None:
        """Before waiting on other tasks (a no-op here; WorkerBackend secedes)."""

    def current_namespace(self) -> str | None:
        return self.namespace

    # ----- tasks ----------------------------------------------------------------------------
    def submit_task(self, function, args, kwargs, options, resources, placement) -> list:
        self.table.drain()
        name = options.get("name") or function._name
        if "runtime_env" in options:
            from raylite.core.dask._runtime_env import check_same_env
            check_same_env(self.job_env, options, name)
        num_returns = options.get("num_returns", 1)
        deps, payload, pins = self._pack(args, kwargs, name)
        retries, retry = _retry_policy(options)
        blob = self._blob(function._function_id, function._function, function._source)
        restrictions = self._resources(resources, name)
        key = _new_key(name)
        if self.batching and num_returns == 1:
            object_id = key.encode()
            entry = self.table.register(object_id, None)
            entry.pending = True
            group = (function._function_id, name, retries, retry,
                     tuple(sorted(restrictions.items())) if restrictions else None)
            with self.buffer_lock:
                self.buffer.append((group, entry, key, blob, payload, deps, pins))
                size = len(self.buffer)
            if size >= _BATCH:
                self.flush()
            elif size == 1:
                self.client.loop.add_callback(self._arm_flush)
            return [ObjectRef(object_id)]
        future = self.client.submit(
            remote.run_task, function._function_id, blob, name, payload, num_returns, retry,
            self.current_namespace(), deps, key=key, pure=False, retries=retries,
            resources=restrictions)
        if pins:
            self.table.pin(future, pins)
        return self._returns(future, num_returns)

    def flush(self) -> None:
        """Send the buffered tasks to the scheduler: one client.map per run of like tasks."""
        with self.buffer_lock:
            batch, self.buffer = self.buffer, []
            for group, run in itertools.groupby(batch, key=lambda item: item[0]):
                self._send_run(group, list(run))

    def _send_run(self, group: tuple, run: list) -> None:
        function_id, name, retries, retry, restrictions = group
        n = len(run)
        keys = [item[2] for item in run]
        try:
            futures = self.client.map(
                remote.run_task, [function_id] * n, [run[0][3]] * n, [name] * n,
                [item[4] for item in run], [1] * n, [retry] * n,
                [self.namespace] * n, [item[5] for item in run], key=keys, pure=False,
                retries=retries, resources=dict(restrictions) if restrictions else None)
        except Exception as exc:  # noqa: BLE001
            error = make_task_error(exc, name, os.getpid(), "")
            futures = [self.client.submit(remote.raise_error, error, key=key, pure=False)
                       for key in keys]
        with self.table.lock:
            for item, future in zip(run, futures):
                entry = item[1]
                entry.future = future
                entry.pending = False
        for item, future in zip(run, futures):
            if item[6]:
                self.table.pin(future, item[6])

    def _arm_flush(self) -> None:  # on the client's event loop
        self.client.loop.call_later(_BATCH_DELAY_S, self._flush_soon)

    def _flush_soon(self) -> None:  # on the client's event loop: never wait for the lock here
        if not self.buffer_lock.acquire(blocking=False):
            self.client.loop.call_later(_BATCH_DELAY_S, self._flush_soon)
            return
        try:
            self.flush()
        finally:
            self.buffer_lock.release()

    def _pack(self, args: tuple, kwargs: dict, name: str) -> tuple[list, Any, list | None]:
        """Payload bytes with top-level refs swapped for Dep(i), their Futures, nested refs."""
        deps: list = []

        def swap(value):
            if type(value) is ObjectRef:
                deps.append(self.table.future(value._id))
                return remote.Dep(len(deps) - 1)
            return value
        top = [a._id for a in args if type(a) is ObjectRef]
        top += [v._id for v in (kwargs or {}).values() if type(v) is ObjectRef]
        if top:
            self.table.materialize(top)  # actor calls' results, stored in Dask first
            args = tuple(swap(a) for a in args)
            kwargs = {k: swap(v) for k, v in kwargs.items()} if kwargs else kwargs
        pickle_arguments_by_value(args, kwargs)
        payload, _top, contained = pack_args(args, kwargs, name, None, new_id)
        pins = None
        if contained:
            self.table.materialize(contained)
            pins = [self.table.future(object_id) for object_id in contained]
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

    def _returns(self, future: Any, num_returns: int) -> list:
        if self.kind == "worker":
            remote.note_submitted(future)
        if num_returns == 1:
            return [self._ref(future)]
        if num_returns == 0:
            from distributed import fire_and_forget
            fire_and_forget(future)
            return []
        return [self._ref(self.client.submit(remote.pick_item, future, i,
                                             key=f"{future.key}-{i}", pure=False))
                for i in range(num_returns)]

    def _ref(self, future: Any) -> ObjectRef:
        object_id = future.key.encode()
        self.table.register(object_id, future)
        return ObjectRef(object_id)

    # ----- objects --------------------------------------------------------------------------
    def put(self, value: Any) -> ObjectRef:
        self.table.drain()
        stored, contained = _for_store(value)
        key = _new_key("put")
        future = self.client.scatter({key: stored}, hash=False)[key]
        pins = None
        if contained:
            self.table.materialize(contained)
            pins = [self.table.future(object_id) for object_id in contained]
        object_id = key.encode()
        self.table.register(object_id, future, pins)
        return ObjectRef(object_id)

    def get(self, refs: list, timeout: float | None) -> list:
        self.table.drain()
        items = [self.table.waitable(ref._id) for ref in refs]
        if not all(item.done() for item in items):
            self.leave_thread_pool()
        futures = [item for item in items if type(item) is not ThreadFuture]
        if timeout is not None:
            done = self._wait_for(items, len(items), timeout)
            if done < len(items):
                raise GetTimeoutError(f"get timed out after {timeout} s: {len(items) - done} "
                                      f"of {len(items)} object(s) not ready")
        else:
            thread_wait([item for item in items if type(item) is ThreadFuture])
        gathered, error = iter(()), None
        if futures:
            try:
                gathered = iter(self.client.gather(futures))
            except Exception as exc:  # noqa: BLE001 - every failure is translated to raylite's
                error = self._translate(exc, futures)
            if error is not None:
                raise error
        return [remote.unwrap(item.result() if type(item) is ThreadFuture else next(gathered))
                for item in items]

    def future(self, ref: ObjectRef) -> concurrent.futures.Future:
        """A Future completed by the Dask (or actor-call) future's own done-callback."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.table.drain()
        item = self.table.waitable(ref._id)

        def done(_: Any) -> None:
            if future.cancelled():
                return
            try:
                value = self.get([ref], None)[0]
            except BaseException as exc:  # noqa: BLE001 - the awaiting caller gets it
                settle(future, exc, True)
                return
            settle(future, value, False)
        item.add_done_callback(done)
        return future

    def current_task_id(self) -> bytes | None:
        worker = getattr(self, "worker", None)  # set in WorkerBackend only
        return worker.running if worker is not None else None

    def wait(self, refs: list, num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list, list]:
        self.table.drain()
        items = [self.table.waitable(ref._id) for ref in refs]
        if sum(item.done() for item in items) < num_returns and timeout != 0:
            self.leave_thread_pool()
            self._wait_for(items, num_returns, timeout)
        ready, not_ready = [], []
        for ref, item in zip(refs, items):
            (ready if item.done() and len(ready) < num_returns else not_ready).append(ref)
        return ready, not_ready

    def _wait_for(self, items: list, num_returns: int, timeout: float | None) -> int:
        """Wait until ``num_returns`` of these Dask or thread Futures are done; how many are."""
        if all(type(item) is ThreadFuture for item in items):  # actor calls only: no event loop
            deadline = None if timeout is None else time.monotonic() + timeout
            pending = [item for item in items if not item.done()]
            while len(items) - len(pending) < num_returns:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                _, left = thread_wait(pending, remaining, return_when=FIRST_COMPLETED)
                pending = list(left)
            return len(items) - len(pending)
        return self.client.sync(_wait_for, items, num_returns, timeout)

    def cancel(self, object_id: bytes, force: bool) -> None:
        """Cancel a task: a queued one never runs; a running one is marked cancelled at once
        (``get`` raises TaskCancelledError) but runs on to its end, its result dropped: Dask
        cannot interrupt a running task, with or without ``force``."""
        item = self.table.waitable(object_id)
        if type(item) is ThreadFuture:
            if not item.done():
                raise TypeError("cancel() of an actor method call is not supported on the Dask "
                                "backend (the call may already be running on the actor); stop "
                                "the actor with raylite.kill(handle) instead")
            return
        if not item.done():
            self.client.cancel([item], force=True, reason="cancelled with raylite.cancel")

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
        if isinstance(exc, ImportError) and "raylite" in str(exc):
            exc = ImportError(f"{exc}: install raylite (the same version) on every Dask worker")
        return make_task_error(exc, _name_of(key), 0, "")

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
    owns_runtime = False  # raylite.shutdown() in a task leaves the worker's client alone

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

    @property
    def job_env(self) -> dict | None:
        """The runtime_env installed on the cluster now (a later job may install another)."""
        from raylite.core.dask._runtime_env import job_env_here
        return job_env_here()

    @job_env.setter
    def job_env(self, value: Any) -> None:
        pass  # read from the worker's environment, which the cluster's env plugin sets

    def leave_thread_pool(self) -> None:
        remote.leave_thread_pool()

    def current_namespace(self) -> str | None:
        return remote.current_namespace()

    def shutdown(self) -> None:
        pass  # the worker's client belongs to Dask


# ==========================================================================================
# helpers
# ==========================================================================================
def _host_of(address: str) -> str:
    rest = address.split("://")[-1]
    return rest.rsplit(":", 1)[0].strip("[]")


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


async def _wait_for(futures: list, num_returns: int, timeout: float | None) -> int:
    """Wait (on the client's loop) until ``num_returns`` futures are done; returns how many are.

    ``futures``: Dask Futures and thread Futures (the results of actor calls)."""
    waiting = {_when_done(f) if type(f) is ThreadFuture else
               asyncio.ensure_future(f._state.wait()) for f in futures if not f.done()}
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


def _when_done(result: ThreadFuture) -> asyncio.Future:
    """An asyncio Future set when a thread Future is done (cancelling it leaves the thread
    Future alone, unlike asyncio.wrap_future's)."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake(_):
        loop.call_soon_threadsafe(lambda: waiter.done() or waiter.set_result(None))
    result.add_done_callback(wake)
    return waiter
