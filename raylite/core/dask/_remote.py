"""The half of the Dask backend that runs inside Dask workers: the task wrapper and its helpers.

Every raylite task is one Dask task running :func:`run_task` (actors are in
:mod:`~raylite.core.dask._host`)::

    driver: f.remote(x, ref) ──client.submit(run_task, fid, blob, "f", payload, ..., ref's future)──▶
    worker: run_task ──▶ install the WorkerBackend (raylite API inside the task) ──▶
            load f (cached per function id) ──▶ unpack payload, Dep(0) := ref's value ──▶ f(x, value)

Errors of actor calls travel as values (:class:`Failed`), so that a failed call does not fail
the ones after it. A task that blocks in ``raylite.get``/``wait`` secedes from the worker's
thread pool (:func:`leave_thread_pool`), so tasks waiting on nested tasks cannot starve the
worker of threads.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import threading
import time
import traceback
from typing import Any

from raylite.core import _generators
from raylite.core._serialization import loads_function
from raylite.core._task import unpack_args
from raylite.exceptions import ActorDiedError, TaskError, make_task_error

_CORE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # raylite/core
PROTOCOL = 2  # bump when the wrappers' signatures change: drivers and workers must agree
_local = threading.local()  # of the running task: .namespace, .upstream (an argument's error),
#                              .submitted (its tasks), .calls (its actor calls)


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
        value = value.load()
        if type(value) is Failed:  # an error a generator yielded in place of an item
            raise value.error
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


def resolve_deps(payload: Any, deps: tuple) -> tuple[tuple, dict]:
    """The arguments of a task, each ``Dep(i)`` replaced by the value of dependency i."""
    args, kwargs = unpack_args(payload)
    if not deps:
        return args, kwargs

    def value(item):
        if type(item) is not Dep:
            return item
        try:
            return unwrap(deps[item.index])
        except TaskError as exc:
            mark_upstream(exc)
            raise
    return tuple(value(a) for a in args), {k: value(v) for k, v in kwargs.items()}


def mark_upstream(error: BaseException) -> None:
    """``error`` is an argument's: the running task passes it on unchanged (as in Ray)."""
    _local.upstream = error


def check_returns(value: Any, num_returns: int, name: str) -> Any:
    if num_returns <= 1:
        return value
    if not isinstance(value, (list, tuple)) or len(value) != num_returns:
        raise ValueError(f"{name} was declared with num_returns={num_returns} but returned "
                         f"{type(value).__name__} {value!r:.60}; return a tuple or list of "
                         f"{num_returns} values.")
    return tuple(value)


def _call_user(function, args, kwargs) -> Any:
    stream = _generators.pop_stream(kwargs)  # a generator call: core/_generators.py
    value = function(*args, **kwargs)
    if stream is not None:
        return _generators.drain(value, stream, None, put_item)
    if asyncio.iscoroutine(value):
        value = asyncio.run(value)
    return value


def put_item(end_id: Any, object_id: bytes, value: Any, is_error: bool) -> Any:
    """Store an item a generator yielded (Dask picks the key: the ref goes into the end value)."""
    return worker_backend().put(Failed(value) if is_error else value)


# ==========================================================================================
# what a running task or actor call submitted
# ==========================================================================================
def enter_call(namespace: str | None) -> None:
    """A task or actor call starts on this thread."""
    _local.upstream = None
    _local.namespace = namespace
    _local.submitted = []
    _local.calls = []


def set_namespace(namespace: str | None) -> None:
    """The namespace of what runs on this thread (an async actor's event loop)."""
    _local.namespace = namespace


def leave_call() -> None:
    """A task or actor call ends on this thread (its return value is computed)."""
    _local.upstream = None
    _confirm_submitted()


def note_submitted(future: Any) -> None:
    """Remember a task the running task submitted (see :func:`_confirm_submitted`)."""
    submitted = getattr(_local, "submitted", None)
    if submitted is not None:
        submitted.append(future)


def note_call(results: list, object_ids: list) -> None:
    """Remember an actor call the running task made: its results and its refs' ids."""
    calls = getattr(_local, "calls", None)
    if calls is not None:
        calls.append((results, object_ids))


def _confirm_submitted() -> None:
    """Before a task reports done: the work it started is known, and its refs can leave.

    * Tasks it submitted travel on the worker client's connection, its completion on the
      worker's own: wait until the scheduler knows them, so that nobody who sees this task done
      can get ahead of them.
    * Actor calls it made finish first, so that a caller who then asks the actor sees them
      (the book's Example 2-10 counts the increments its tasks sent an actor right after them).
    * Refs of those calls still alive now (in the return value, in an actor's state) are
      materialized, so that other processes can look them up in Dask.
    """
    submitted, _local.submitted = getattr(_local, "submitted", None), None
    calls, _local.calls = getattr(_local, "calls", None), None
    if submitted:
        wait_until_known(submitted[0].client, [future.key for future in submitted])
    if not calls:
        return
    from concurrent.futures import wait
    leave_thread_pool()
    wait([result for results, _ in calls for result in results], timeout=30)
    backend = _installed
    if backend is not None:
        backend.table.drain()
        try:
            backend.table.materialize([i for _, ids in calls for i in ids])
        except Exception:  # noqa: BLE001, S110 - a ref that cannot be stored fails where it is read
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
    enter_call(namespace)
    try:
        function = load_function(function_id, blob)
        args, kwargs = resolve_deps(payload, deps)
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
        return check_returns(value, num_returns, name)
    except BaseException as exc:  # noqa: BLE001
        error = task_error(exc, name)
        raise error
    finally:
        leave_call()


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
            from raylite.core.dask._backend import WorkerBackend
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
