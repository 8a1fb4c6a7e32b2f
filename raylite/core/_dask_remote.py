"""The half of the Dask backend that runs inside Dask workers: task and actor wrappers.

Every raylite task is one Dask task running :func:`run_task`; every actor is a Dask actor
holding an :class:`ActorHost`, and each actor method call is one Dask task running
:func:`call_actor` on the actor's worker::

    driver: f.remote(x, ref) ──client.submit(run_task, fid, blob, "f", payload, ..., ref's future)──▶
    worker: run_task ──▶ install the WorkerBackend (raylite API inside the task) ──▶
            load f (cached per function id) ──▶ unpack payload, Dep(0) := ref's value ──▶ f(x, value)

    driver: a.m.remote(x) ──client.submit(call_actor, actor, "m", ..., previous call of a)──▶
    worker: call_actor ──▶ ActorHost.call ──▶ instance.m(x)   (errors are *returned* as Failed,
            so the next call, which depends on this one to keep the caller's order, still runs)

A task that blocks in ``raylite.get``/``wait`` secedes from the worker's thread pool
(:func:`leave_thread_pool`), so tasks waiting on nested tasks cannot starve the worker of threads.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import pickle
import threading
import time
import traceback
from typing import Any

from raylite.core._refs import ObjectRef
from raylite.core._serialization import loads_function
from raylite.core._task import unpack_args
from raylite.exceptions import ActorDiedError, TaskError, make_task_error

_CORE_DIR = os.path.dirname(os.path.abspath(__file__))
PROTOCOL = 1  # bump when the wrappers' signatures change: drivers and workers must agree
_local = threading.local()  # .namespace of the running task, .upstream: an argument's error


# ==========================================================================================
# values that travel through Dask
# ==========================================================================================
class Dep:
    """Placeholder for the i-th top-level ObjectRef argument; Dask passes its value along."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __reduce__(self):
        return (Dep, (self.index,))


class Failed:
    """An actor call's error, stored as the call's *value* so that later calls still run."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error

    def __reduce__(self):
        return (Failed, (self.error,))


class Pickled:
    """A put() value pickled by the caller with cloudpickle (so classes defined in the caller's
    own modules travel by value); unpickled where it is used. Buffers stay out of band."""

    __slots__ = ("buffers", "data")

    def __init__(self, data: bytes, buffers: list):
        self.data = data
        self.buffers = buffers

    def __reduce__(self):
        return (Pickled, (self.data, [pickle.PickleBuffer(b) for b in self.buffers]))

    def load(self) -> Any:
        return pickle.loads(self.data, buffers=self.buffers)

    @property
    def nbytes(self) -> int:
        return len(self.data) + sum(memoryview(b).nbytes for b in self.buffers)


try:  # Dask's memory accounting (spilling) needs the real size of the wrapped value
    from dask.sizeof import sizeof as _sizeof
    _sizeof.register(Pickled)(lambda value: value.nbytes)
except Exception:  # noqa: BLE001, S110 - pragma: no cover - dask without sizeof
    pass


def unwrap(value: Any) -> Any:
    """The user's value of something Dask stored: raises Failed errors, loads Pickled values."""
    kind = type(value)
    if kind is Failed:
        raise value.error
    if kind is Pickled:
        return value.load()
    return value


# ==========================================================================================
# running user code
# ==========================================================================================
_functions: dict[bytes, Any] = {}


def load_function(function_id: bytes, blob: bytes) -> Any:
    """The function or class pickled in ``blob``, unpickled once per worker process."""
    function = _functions.get(function_id)
    if function is None:
        function = _functions[function_id] = loads_function(blob)
    return function


def user_traceback(exc: BaseException) -> str:
    """The traceback as the user's code sees it: raylite's and Dask's own frames left out."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(_CORE_DIR) and "/distributed/" not in f.filename]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def task_error(exc: BaseException, name: str) -> BaseException:
    """The error a failed task or call reports: a TaskError that is also of ``type(exc)``."""
    if isinstance(exc, TaskError) and getattr(_local, "upstream", None) is exc:
        return exc  # an argument's error, passed on as it is (as in Ray)
    if isinstance(exc, ActorDiedError):
        return exc
    error = make_task_error(exc, name, os.getpid(), user_traceback(exc))
    try:
        import cloudpickle
        cloudpickle.dumps(error)
    except Exception:  # noqa: BLE001 - the exception itself cannot be pickled: keep its text
        substitute = RuntimeError(f"{type(exc).__name__}: {exc}")
        error = make_task_error(substitute, name, os.getpid(), user_traceback(exc))
    return error


def _resolve(payload: Any, deps: tuple) -> tuple[tuple, dict]:
    args, kwargs = unpack_args(payload)
    if not deps:
        return args, kwargs

    def value(item):
        if type(item) is not Dep:
            return item
        try:
            return unwrap(deps[item.index])
        except TaskError as exc:
            _local.upstream = exc
            raise
    return tuple(value(a) for a in args), {k: value(v) for k, v in kwargs.items()}


def _check_returns(value: Any, num_returns: int, name: str) -> Any:
    if num_returns <= 1:
        return value
    if not isinstance(value, (list, tuple)) or len(value) != num_returns:
        raise ValueError(f"{name} was declared with num_returns={num_returns} but returned "
                         f"{type(value).__name__} {value!r:.60}; return a tuple or list of "
                         f"{num_returns} values.")
    return tuple(value)


def _call_user(function, args, kwargs) -> Any:
    value = function(*args, **kwargs)
    if asyncio.iscoroutine(value):
        value = asyncio.run(value)
    return value


def _enter(namespace: str | None) -> None:
    _local.upstream = None
    _local.namespace = namespace
    _local.submitted = []


def note_submitted(future: Any, actor_call: bool = False) -> None:
    """Remember work a running task submitted (see :func:`_confirm_submitted`)."""
    submitted = getattr(_local, "submitted", None)
    if submitted is not None:
        submitted.append((future, actor_call))


def _confirm_submitted() -> None:
    """Before a task reports done: wait until the scheduler has the work the task submitted.

    Submissions travel on the worker client's connection, the task's completion on the worker's
    own; without this, a caller who sees the task done could get ahead of the task's own calls
    (the book's Example 2-10 counts the increments its tasks sent an actor right after them).
    """
    submitted, _local.submitted = getattr(_local, "submitted", None), None
    if not submitted:
        return
    futures = [future for future, _ in submitted]
    wait_until_known(futures[0].client, [future.key for future in futures])
    # Actor calls are Dask tasks that may run in any order with other callers' calls: let the
    # task's own calls finish first, so a caller who then asks the actor sees them (Example 2-10).
    calls = [future for future, actor_call in submitted if actor_call]
    if calls:
        from distributed import wait
        leave_thread_pool()
        try:
            wait(calls, timeout=30)
        except Exception:  # noqa: BLE001, S110 - a failed or slow call is the caller's to see
            pass


def wait_until_known(client: Any, keys: list, timeout: float = 30.0) -> None:
    """Wait until the scheduler has these keys (sent on another connection than the caller's)."""
    deadline = time.monotonic() + timeout
    try:
        while keys and time.monotonic() < deadline:
            status = client.sync(client.scheduler.get_task_status, keys=keys)
            keys = [key for key in keys if status.get(key) is None]
            if keys:
                time.sleep(0.002)
    except Exception:  # noqa: BLE001, S110 - best effort; the scheduler may be going away
        pass


def run_task(function_id: bytes, blob: bytes, name: str, payload: Any, num_returns: int,
             retry: bytes | None, namespace: str | None, deps: list) -> Any:
    """A raylite task, as Dask runs it.

    ``deps``: the values of the top-level ObjectRef arguments (Dask resolved their Futures);
    ``retry``: cloudpickled (max_retries, exception classes) for ``retry_exceptions=[...]``.
    """
    worker_backend()
    _enter(namespace)
    try:
        function = load_function(function_id, blob)
        args, kwargs = _resolve(payload, deps)
        attempts, limit, classes = 0, 0, ()
        if retry is not None:
            import cloudpickle
            limit, classes = cloudpickle.loads(retry)
        while True:
            try:
                value = _call_user(function, args, kwargs)
                break
            except Exception as exc:
                if not isinstance(exc, classes) or (limit != -1 and attempts >= limit):
                    raise
                attempts += 1
        return _check_returns(value, num_returns, name)
    except BaseException as exc:  # noqa: BLE001
        error = task_error(exc, name)
        raise error
    finally:
        _local.upstream = None
        _confirm_submitted()


def pick_item(value: Any, index: int) -> Any:
    """Return ``index`` of a task's result tuple (one Dask task per extra return value)."""
    return value if type(value) is Failed else value[index]


def raise_error(error: BaseException) -> None:
    raise error


# ==========================================================================================
# blocking inside a task: leave the worker's thread pool while waiting
# ==========================================================================================
def leave_thread_pool() -> None:
    """Before a wait that needs other tasks to progress: secede from the worker's thread pool.

    The task keeps running outside the pool (the worker starts another thread in its place,
    the way Ray lends a blocked task's CPU out) and never rejoins: rejoining would wait for a
    pool thread to come free, which could be never. Outside Dask task threads (actor threads,
    the driver) and when already seceded, this does nothing.
    """
    from distributed import threadpoolexecutor as tpe
    from distributed.utils import thread_state
    if getattr(thread_state, "key", None) is None or getattr(thread_state, "actor", False) or \
            not getattr(tpe.thread_state, "proceed", False):
        return
    from distributed import secede
    secede()


# ==========================================================================================
# actors
# ==========================================================================================
class ActorHost:
    """What Dask holds as the actor: the user's instance, its concurrency and kill switch."""

    def __init__(self, class_id: bytes, blob: bytes, class_name: str, payload: Any, spec: dict,
                 *deps: Any):
        worker_backend()
        self.class_name = class_name
        self.namespace = spec.get("namespace")
        self.max_concurrency = spec.get("max_concurrency", 1)
        self.is_async = spec.get("is_async", False)
        self.killed = False
        self.running: set[int] = set()
        self.guard = threading.Lock()
        self.slots = threading.BoundedSemaphore(self.max_concurrency)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.executor = None
        _enter(self.namespace)
        try:
            cls = load_function(class_id, blob)
            args, kwargs = _resolve(payload, deps)
            self.instance = cls(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001
            raise task_error(exc, f"{class_name}.__init__")
        finally:
            _local.upstream = None
            _confirm_submitted()
        if self.is_async:
            self.loop = asyncio.new_event_loop()
            self.async_slots = None
            threading.Thread(target=self.loop.run_forever, daemon=True,
                             name=f"raylite-actor-{class_name}").start()

    # ----- running a call -------------------------------------------------------------------
    def call(self, method: str, name: str, payload: Any, num_returns: int) -> Any:
        """Run one method call; errors come back as Failed values."""
        if self.killed:
            return Failed(ActorDiedError(f"{name}: the actor was killed"))
        _enter(self.namespace)
        try:
            args, kwargs = self._resolve_args(payload)
            bound = getattr(self.instance, method)
            if self.is_async:
                value = self._call_async(bound, args, kwargs)
            else:
                value = self._call_sync(bound, args, kwargs)
            return _check_returns(value, num_returns, name)
        except _Killed:
            return Failed(ActorDiedError(f"{name}: the actor was killed while running it"))
        except BaseException as exc:  # noqa: BLE001
            return Failed(task_error(exc, name))
        finally:
            _local.upstream = None
            _confirm_submitted()

    async def remote_call(self, method: str, name: str, payload: Any, num_returns: int) -> Any:
        """Entry point for calls that reach the actor from another worker (through Dask's RPC)."""
        if self.executor is None:
            from concurrent.futures import ThreadPoolExecutor
            self.executor = ThreadPoolExecutor(max(2, self.max_concurrency),
                                               thread_name_prefix="raylite-actor-call")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.call, method, name, payload,
                                          num_returns)

    @staticmethod
    def _resolve_args(payload: Any) -> tuple[tuple, dict]:
        args, kwargs = unpack_args(payload)
        refs = [a for a in args if type(a) is ObjectRef]
        refs += [v for v in kwargs.values() if type(v) is ObjectRef]
        if not refs:
            return args, kwargs
        try:
            values = dict(zip(refs, worker_backend().get(refs, None)))
        except TaskError as exc:
            _local.upstream = exc
            raise
        args = tuple(values[a] if type(a) is ObjectRef else a for a in args)
        kwargs = {k: values[v] if type(v) is ObjectRef else v for k, v in kwargs.items()}
        return args, kwargs

    def _call_sync(self, bound, args, kwargs) -> Any:
        if self.max_concurrency > 1:
            leave_thread_pool()  # a threaded actor's calls may wait on each other
            with self.slots:
                return self._run_tracked(bound, args, kwargs)
        if not self.slots.acquire(blocking=False):
            leave_thread_pool()  # another caller's call runs: wait outside the pool
            self.slots.acquire()
        try:
            return self._run_tracked(bound, args, kwargs)
        finally:
            self.slots.release()

    def _run_tracked(self, bound, args, kwargs) -> Any:
        ident = threading.get_ident()
        with self.guard:
            if self.killed:
                raise _Killed()
            self.running.add(ident)
        try:
            value = bound(*args, **kwargs)
        finally:
            with self.guard:
                self.running.discard(ident)
                if self.killed:  # drop an interruption that arrived too late to matter
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
        if asyncio.iscoroutine(value):
            value = asyncio.run(value)
        return value

    def _call_async(self, bound, args, kwargs) -> Any:
        async def run():
            if self.async_slots is None:
                self.async_slots = asyncio.Semaphore(self.max_concurrency)
            async with self.async_slots:
                value = bound(*args, **kwargs)
                if asyncio.iscoroutine(value):
                    value = await value
                return value
        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        leave_thread_pool()
        try:
            return future.result()
        except asyncio.CancelledError:
            raise _Killed() from None

    # ----- kill -------------------------------------------------------------------------------
    def kill(self) -> None:
        """Stop taking calls and interrupt the ones running (raises in their threads)."""
        with self.guard:
            self.killed = True
            for ident in self.running:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident),
                                                           ctypes.py_object(_Killed))
        if self.loop is not None:
            loop = self.loop

            def stop():
                for task in asyncio.all_tasks(loop):
                    task.cancel()
                loop.call_soon(loop.stop)
            loop.call_soon_threadsafe(stop)


class _Killed(BaseException):
    """Raised inside a running actor call when the actor is killed."""


def call_actor(actor: Any, method: str, name: str, payload: Any, num_returns: int,
               previous: Any = None) -> Any:
    """An actor method call, as Dask runs it (``previous``: the caller's last call, for order).

    ``actor`` is the actor's key once the caller knows the actor's worker (the call is sent
    there), else the actor's Future, which Dask resolves to a proxy once the actor exists.
    """
    backend = worker_backend()
    host = backend.local_actor(actor if isinstance(actor, str) else actor.key)
    if host is not None:
        return host.call(method, name, payload, num_returns)
    if isinstance(actor, str):  # sent to the actor's worker, but the actor is not there
        return Failed(ActorDiedError(f"{name}: the actor is gone (killed, or its worker died)"))
    try:  # the actor lives on another worker: call it through Dask's actor RPC
        leave_thread_pool()
        return actor.remote_call(method, name, payload, num_returns).result()
    except Exception as exc:  # noqa: BLE001
        return Failed(ActorDiedError(f"{name}: could not reach the actor ({exc})"))


def kill_actor_here(key: str, dask_worker: Any = None) -> bool:
    """Run on the actor's worker by ``client.run``: interrupt and stop the actor."""
    host = dask_worker.state.actors.get(key) if dask_worker is not None else None
    if isinstance(host, ActorHost):
        host.kill()
        return True
    return False


# ==========================================================================================
# the raylite API inside a worker
# ==========================================================================================
_installed: Any = None
_install_lock = threading.Lock()


def worker_backend() -> Any:
    """This worker process's WorkerBackend, created and attached to the API on first use."""
    backend = _installed
    if backend is not None:
        return backend
    return _install()


def _install() -> Any:
    global _installed
    with _install_lock:
        if _installed is None:
            from distributed import get_client, get_worker

            from raylite.core import _api, _refs
            from raylite.core._dask import WorkerBackend
            backend = WorkerBackend(get_client(), get_worker())
            current = _api._backend_obj
            if current is None or getattr(current, "kind", "") == "worker":
                _api.attach_worker(backend)  # raylite.get/remote/put inside tasks use it
                _refs.set_tracker(backend.table)
            _installed = backend
        return _installed


def worker_protocol() -> tuple:
    """What a worker runs (checked by drivers when they connect, through ``client.run``)."""
    import raylite
    return (raylite.__version__, PROTOCOL)


def current_namespace() -> str | None:
    return getattr(_local, "namespace", None)
