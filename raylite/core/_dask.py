"""The scale-out backend: the raylite API on a Dask distributed cluster.

``raylite.init(address="dask://HOST:8786")`` connects a :class:`DaskBackend`; the same program
then runs on the cluster's workers. Inside tasks and actors a :class:`WorkerBackend` (the same
class, with the worker's client, seceding from the thread pool while it blocks) serves the API::

    raylite API ──▶ DaskBackend ──submit/scatter/gather──▶ Dask scheduler ──▶ Dask workers
                    (driver)                                                  run_task / ActorHost
                                                                              └─ WorkerBackend

How raylite's concepts map onto Dask (the modules beside this one hold the details):

    ObjectRef      a Dask key ("<name>-<32 hex>", ``ref._id`` is its bytes), kept alive by a
                   Future in every process holding a ref to it                  _dask_refs.py
    task           run_task in a Dask task, pure=False, keyed by the task's name; top-level refs
                   become Dask dependencies, nested ones travel as refs; num_returns=n adds n
                   pick_item tasks; tasks submitted one by one go out in batches (one
                   client.map per run of like tasks), like client.map            _dask_remote.py
    put            client.scatter({key: value})
    actor          a Dask actor holding an ActorHost; each call is a task on the actor's worker,
                   after the caller's previous unfinished call                   _dask_actors.py
    resources      Dask worker resources (``raylite start`` declares CPU/GPU/custom ones); one CPU
                   is one worker thread; a resource no worker has is reported    _dask_cluster.py
    errors         a task raises its TaskError (Dask marks it erred, dependents too); actor calls
                   return theirs as values (``Failed``), so later calls still run

Not mapped (the engine has no equivalent): placement groups reserve nothing (bundles are only
checked against the workers), actor restarts (an actor whose worker dies is dead), and
``max_retries`` for lost workers (Dask retries those up to its ``allowed-failures`` setting).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import sys
import threading
import time
from typing import Any

from raylite.core import _dask_remote as remote
from raylite.core import _refs
from raylite.core._dask_actors import ActorsMixin
from raylite.core._dask_cluster import ClusterMixin
from raylite.core._dask_refs import RefTable, _new_key
from raylite.core._ids import new_id
from raylite.core._refs import ObjectRef, collect_refs
from raylite.core._task import pack_args
from raylite.exceptions import (
    ActorDiedError,
    GetTimeoutError,
    TaskCancelledError,
    TaskError,
    WorkerCrashedError,
    make_task_error,
)

DEFAULT_PORT = 8786
CONNECT_TIMEOUT_S = 10.0
_BATCH = 1000  # tasks per client.map at most
_BATCH_DELAY_S = 0.002  # a buffered task waits at most this long before it is sent


# ==========================================================================================
# the backend (driver side; WorkerBackend below is the same inside workers)
# ==========================================================================================
class DaskBackend(ActorsMixin, ClusterMixin):
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
        # tasks submitted one by one are sent to the scheduler in batches (one client.map per
        # run of tasks of the same function and options), like client.map: flushed when a
        # batch is full, when anything needs their futures, and 2 ms after the first one
        self.batching = self.kind == "dask"
        self.buffer: list = []
        self.buffer_lock = threading.RLock()
        self.table.flush = self.flush

    # ----- connecting -----------------------------------------------------------------------
    @classmethod
    def connect(cls, address: Any, namespace: str | None,
                timeout: float | None = None) -> DaskBackend:
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
            except Exception as exc:  # noqa: BLE001
                raise ConnectionError(_unreachable(address, exc)) from None
            backend = cls(client, namespace, owns_client=True, address=target)
        _refs.set_tracker(backend.table)
        return backend

    def context_info(self) -> dict:
        try:
            info = self._scheduler_info(refresh=True)
        except Exception as exc:  # noqa: BLE001 - the scheduler went away right after connecting
            raise ConnectionError(_unreachable(self.address, exc)) from None
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
        self.table.clear()
        self.captured.clear()
        self.actors.clear()
        self.last_call.clear()
        _refs.set_tracker(None)
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
        if self.kind == "worker":
            remote.note_submitted(future, actor_call=actor is not None)
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

    # ----- objects --------------------------------------------------------------------------
    def put(self, value: Any) -> ObjectRef:
        self.table.drain()
        stored, contained = _for_store(value)
        key = _new_key("put")
        future = self.client.scatter({key: stored}, hash=False)[key]
        pins = [self.table.future(object_id) for object_id in contained] if contained else None
        object_id = key.encode()
        self.table.register(object_id, future, pins)
        return ObjectRef(object_id)

    def get(self, refs: list, timeout: float | None) -> list:
        self.table.drain()
        futures = [self.table.future(ref._id) for ref in refs]
        error = None
        if not all(f.done() for f in futures):
            self.leave_thread_pool()
        if timeout is not None:
            done = self.client.sync(_wait_for, futures, len(futures), timeout)
            if done < len(futures):
                raise GetTimeoutError(f"get timed out after {timeout} s: {len(futures) - done} "
                                      f"of {len(futures)} object(s) not ready")
        try:
            values = self.client.gather(futures)
        except Exception as exc:  # noqa: BLE001 - every failure is translated to raylite's
            error = self._translate(exc, futures)
        if error is not None:
            raise error
        return [remote.unwrap(v) for v in values]

    def wait(self, refs: list, num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list, list]:
        self.table.drain()
        futures = [self.table.future(ref._id) for ref in refs]
        if sum(f.done() for f in futures) < num_returns and timeout != 0:
            self.leave_thread_pool()
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

    def leave_thread_pool(self) -> None:
        remote.leave_thread_pool()

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

