"""The public core API: init, remote, get, put, wait and friends.

Everything here talks to one *backend* object, the seam between the API and the machinery: a
``raylite.core._backend.Backend`` (the local runtime, a worker's client of it, local mode, or a
Dask cluster; that module lists them). This module never asks which kind it has. The libraries
(data, tune, train, serve, rllib) only ever use this module's functions, never a backend.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import os
import threading
import time
from typing import Any, Callable

from raylite._suggest import did_you_mean
from raylite.core import _generators
from raylite.core._options import warn_once
from raylite.core._refs import ObjectRef
from raylite.core._remote import (ActorClass, ActorHandle, ActorMethod,  # noqa: F401 (re-exported)
                                  RemoteFunction, method, remote)

_lock = threading.RLock()
_backend_obj: Any = None
_context: "RuntimeInfo | None" = None


# ==========================================================================================
# init / shutdown
# ==========================================================================================
INIT_ARGS = frozenset({
    "address", "num_cpus", "num_gpus", "resources", "object_store_memory", "local_mode",
    "ignore_reinit_error", "include_dashboard", "dashboard_host", "dashboard_port", "namespace",
    "runtime_env", "log_to_driver", "logging_level", "logging_format", "configure_logging",
    "job_config", "_system_config", "_temp_dir", "_memory", "_node_ip_address",
    "storage", "labels", "_plasma_directory",
})


# init() arguments Ray has that raylite does not implement: refused unless empty (they would
# change what the program does), or, where Ray treats them as tuning, warned about once.
INIT_NOT_IMPLEMENTED = {
    "job_config": "job configs are not implemented in raylite (use namespace= for named actors)",
    "storage": "cluster storage is not implemented in raylite: give Tune and Train a "
               "storage_path instead",
    "labels": "node labels are not implemented in raylite",
    "_plasma_directory": "the object store lives in /dev/shm (or the temp folder without it) "
                         "and its folder cannot be chosen",
    "_temp_dir": "session folders live in the system temp folder: set TMPDIR to move them",
    "_system_config": "Ray's internal system config has no raylite equivalent",
}
INIT_HINTS = {
    "logging_level": "raylite configures no logging",
    "logging_format": "raylite configures no logging",
    "configure_logging": "raylite configures no logging",
    "_node_ip_address": "the local runtime is always 127.0.0.1",
}


def _check_init_args(kwargs: dict) -> None:
    for key, value in kwargs.items():
        if key in INIT_NOT_IMPLEMENTED and value not in (None, {}, [], ""):
            raise ValueError(f"init({key}={value!r:.80}) is not supported: "
                             f"{INIT_NOT_IMPLEMENTED[key]}.")
        if key in INIT_HINTS and value is not None:
            warn_once(f"init:{key}", f"init({key}=...) is accepted and ignored "
                                     f"({INIT_HINTS[key]}).")


class RuntimeInfo(dict):
    """What ``init`` returns: reads like Ray's dict (``ctx["node_id"]``) and its context object
    (``ctx.dashboard_url``, ``ctx.address_info``); ``with raylite.init():`` shuts down on exit."""

    @property
    def address_info(self) -> dict:
        return dict(self)

    @property
    def dashboard_url(self) -> str:
        return self.get("webui_url") or ""

    def disconnect(self) -> None:
        shutdown()

    def __enter__(self) -> "RuntimeInfo":
        return self

    def __exit__(self, *exc) -> None:
        shutdown()


def init(address: str | None = None, *, num_cpus: float | None = None,
         num_gpus: float | None = None, resources: dict[str, float] | None = None,
         object_store_memory: int | None = None, local_mode: bool = False,
         ignore_reinit_error: bool = False, namespace: str | None = None,
         log_to_driver: bool = True, **kwargs: Any) -> RuntimeInfo:
    """Start raylite on this machine (or connect to a cluster with ``address``).

    Args:
        address: ``None`` starts a local runtime. ``"auto"``/``"local"`` too, unless
            RAYLITE_ADDRESS names a cluster.
        num_cpus: CPUs to schedule on (default: all cores); also the number of worker processes.
        num_gpus: GPUs to schedule on (default: those the machine has).
        resources: custom resources, e.g. ``{"accelerator": 2}``.
        object_store_memory: bytes of shared memory before objects spill to disk.
        local_mode: run every task inline in this process, for debuggers.
        ignore_reinit_error: make a second ``init`` a no-op instead of an error.
        namespace: namespace for named actors.
        runtime_env: the job's runtime environment (env_vars, working_dir, py_modules, pip,
            excludes, config), which every task and actor inherits; see raylite.runtime_env.

    Example:
        >>> import raylite as ray
        >>> ctx = ray.init(num_cpus=2)
        >>> ray.get(ray.put(1))
        1
        >>> ray.shutdown()
    """
    global _backend_obj, _context
    for key in kwargs:
        if key not in INIT_ARGS:
            raise TypeError(f"init() got an unexpected keyword argument {key!r}"
                            f"{did_you_mean(key, INIT_ARGS | {'num_cpus', 'num_gpus'})}")
    _check_init_args(kwargs)
    job_env = None
    if kwargs.get("runtime_env") is not None:
        from raylite.core._runtime_env import normalize
        job_env = normalize(kwargs["runtime_env"], "init()")
    with _lock:
        if _backend_obj is not None:
            if ignore_reinit_error:
                return _context
            raise RuntimeError("raylite.init() was called twice: the runtime is already running. "
                               "Call raylite.shutdown() first, or pass ignore_reinit_error=True.")
        namespace = namespace or f"anonymous-{os.urandom(4).hex()}"
        address = _cluster_address(address)
        _refuse_ray_client(address)
        if address is not None and not local_mode:
            if num_cpus is not None or num_gpus is not None or resources:
                raise ValueError("num_cpus / num_gpus / resources describe a local runtime; a "
                                 "cluster's resources are its workers' (raylite start "
                                 "--num-cpus ...). Drop them, or drop address=.")
            from raylite.core.dask._backend import DaskBackend  # the scale-out backend
            backend = DaskBackend.connect(address, namespace, runtime_env=job_env)
            context = RuntimeInfo(backend.context_info())
            _backend_obj, _context = backend, context
            _register_exit_hook()
            return _context
        total = _node_resources(num_cpus, num_gpus, resources, kwargs.get("_memory"))
        if local_mode:
            from raylite.core.inline import InlineBackend
            backend = InlineBackend(total, namespace, runtime_env=job_env)
        else:
            from raylite.core.local._node import Node
            backend = Node(total, object_store_memory or _default_store_memory(), namespace,
                           log_to_driver=log_to_driver, runtime_env=job_env)
        _backend_obj = backend
        _register_exit_hook()
        source = backend.dashboard_source()
        webui_url = None if source is None else _run_start_hooks(source, kwargs)
        _context = RuntimeInfo(backend.context_info(), webui_url=webui_url)
        return _context


# What starts and stops with a local runtime besides it (the dashboard): registered by the
# top-level package, so the core imports nothing above it.
_runtime_hooks: list[tuple[Callable[[Any, dict], "str | None"], Callable[[], None]]] = []


def add_runtime_hook(on_start: Callable[[Any, dict], "str | None"],
                     on_stop: Callable[[], None]) -> None:
    """``on_start(source, init_kwargs)`` runs after a runtime that has a dashboard source
    starts (it may return the dashboard's "host:port"); ``on_stop()`` runs first in shutdown."""
    _runtime_hooks.append((on_start, on_stop))


def _run_start_hooks(source: Any, kwargs: dict) -> str | None:
    url = None
    for on_start, _ in _runtime_hooks:
        url = on_start(source, kwargs) or url
    return url


def _cluster_address(address: Any) -> Any:
    """None for a local runtime, else the cluster to connect to (RAYLITE_ADDRESS, or the one
    ``raylite start`` recorded when address="auto")."""
    if address == "local":
        return None
    if address in (None, "auto"):
        explicit = os.environ.get("RAYLITE_ADDRESS") or None
        if explicit is not None or address is None:
            return explicit
        from raylite.core.dask._state import recorded_address
        recorded = recorded_address()
        if recorded is None:
            raise ConnectionError("init(address='auto') found no running cluster: start one with "
                                  "`raylite start --head`, or set RAYLITE_ADDRESS")
        return recorded
    return address


def _refuse_ray_client(address: Any) -> None:
    if isinstance(address, str) and address.lower().startswith("ray://"):
        raise ValueError(
            f"init(address={address!r}): raylite has no Ray Client (ray://). It runs either "
            "locally, init() (or address='local'), or on a Dask cluster: start one with "
            "`raylite start --head`, then init(address='dask://HOST:8786') or "
            "init(address='auto').")


def _node_resources(num_cpus, num_gpus, resources, memory) -> dict[str, float]:
    if num_cpus is not None and (not isinstance(num_cpus, (int, float)) or num_cpus < 0):
        raise ValueError(f"init(num_cpus=...) must be a non-negative number, got {num_cpus!r}")
    if num_gpus is not None and (not isinstance(num_gpus, (int, float)) or num_gpus < 0):
        raise ValueError(f"init(num_gpus=...) must be a non-negative number, got {num_gpus!r}")
    total = {"CPU": float(os.cpu_count() or 1 if num_cpus is None else num_cpus)}
    gpus = _detect_gpus() if num_gpus is None else num_gpus
    if gpus:
        total["GPU"] = float(gpus)
    total["memory"] = float(memory or _total_memory() * 0.7)
    for name, amount in (resources or {}).items():
        if name in ("CPU", "GPU"):
            raise ValueError(f"pass {name} as init(num_{name.lower()}s=...), not in resources=")
        if not isinstance(amount, (int, float)) or amount < 0:
            raise ValueError(f"resource {name!r} must be a non-negative number, got {amount!r}")
        total[name] = float(amount)
    return total


def _detect_gpus() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 << 30


def _default_store_memory() -> int:
    limit = int(_total_memory() * 0.3)
    try:
        st = os.statvfs("/dev/shm")
        limit = min(limit, int(st.f_bavail * st.f_frsize * 0.9))
    except OSError:
        pass
    return max(limit, 64 << 20)


_exit_hook_registered = False


def _register_exit_hook() -> None:
    """Shut down when the driver exits without calling shutdown(), as the book's scripts do,
    and when it is asked to stop with SIGTERM (unless the program handles SIGTERM itself)."""
    global _exit_hook_registered
    if not _exit_hook_registered:
        import atexit
        atexit.register(shutdown)
        _exit_hook_registered = True
    import signal
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM: the normal shutdown, then die of SIGTERM as the default handler would."""
    import signal
    try:
        shutdown()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def shutdown() -> None:
    """Stop the runtime: workers, actors and shared memory are gone afterwards. Idempotent."""
    global _backend_obj, _context
    for _, on_stop in _runtime_hooks:  # first, while the runtime they read still runs
        on_stop()
    with _lock:
        backend, _backend_obj, _context = _backend_obj, None, None
    if backend is not None and backend.owns_runtime:
        backend.shutdown()


def is_initialized() -> bool:
    return _backend_obj is not None


def _backend() -> Any:
    backend = _backend_obj
    if backend is None:
        init()
        backend = _backend_obj
    return backend


def attach_worker(client: Any) -> None:
    """Inside a worker process: route the API to the driver."""
    global _backend_obj, _context
    _backend_obj = client
    _context = RuntimeInfo(client.context)


# ==========================================================================================
# objects
# ==========================================================================================
def get(object_refs, *, timeout: float | None = None):
    """Wait for and return the value(s) of an ObjectRef or a list of them.

    Raises the task's exception (an instance of both TaskError and the original class),
    GetTimeoutError after ``timeout`` seconds.
    """
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"timeout must be a non-negative number of seconds or None, got {timeout!r}")
    if type(object_refs) is ObjectRef:
        return _backend().get([object_refs], timeout)[0]
    if isinstance(object_refs, (list, tuple)):
        for i, ref in enumerate(object_refs):
            if type(ref) is not ObjectRef:
                if _stands_for_a_value(ref):
                    return _get_mixed(list(object_refs), timeout)
                raise TypeError(_not_a_ref("get", ref, f" (item {i} of the list)"))
        if not object_refs:
            return []
        return _backend().get(list(object_refs), timeout)
    if _stands_for_a_value(object_refs):
        return object_refs._raylite_get(timeout)
    raise TypeError(_not_a_ref("get", object_refs, ""))


def _stands_for_a_value(value: Any) -> bool:
    """A library's future that ``get`` accepts as Ray's does (Serve's DeploymentResponse, the
    ObjectRef of Ray 2.2's handles): it has ``_raylite_get(timeout)``."""
    return hasattr(type(value), "_raylite_get")


def _get_mixed(values: list, timeout: float | None) -> list:
    deadline = None if timeout is None else time.monotonic() + timeout
    refs = [v for v in values if type(v) is ObjectRef]
    fetched = iter(_backend().get(refs, timeout) if refs else [])
    out = []
    for value in values:
        if type(value) is ObjectRef:
            out.append(next(fetched))
        elif _stands_for_a_value(value):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            out.append(value._raylite_get(left))
        else:
            raise TypeError(_not_a_ref("get", value, " (in the list)"))
    return out


def _not_a_ref(what: str, value: Any, where: str) -> str:
    hint = ""
    if isinstance(value, (RemoteFunction, ActorMethod)):
        hint = " You passed the remote function itself; call it with .remote(...) first."
    elif inspect.isgenerator(value):
        hint = " Pass a list, not a generator."
    elif isinstance(value, _generators.ObjectRefGenerator):
        hint = (" An ObjectRefGenerator gives one ObjectRef per yielded value: iterate it "
                "(for ref in gen: get(ref)), or use gen.completed() for the task's end.")
    return (f"{what}() expects an ObjectRef or a list of ObjectRefs, got "
            f"{type(value).__name__} {value!r:.60}{where}.{hint} ObjectRefs come from "
            "f.remote(...), actor.method.remote(...) and put(...).")


def put(value: Any) -> ObjectRef:
    """Store a value in the object store and return its ObjectRef."""
    if type(value) is ObjectRef:
        raise TypeError("put() of an ObjectRef is not allowed: it is already in the object store. "
                        "Pass the ObjectRef itself, or wrap it in a list to nest it.")
    try:
        return _backend().put(value)
    except TypeError:
        raise
    except Exception as exc:
        from raylite.core._serialization import describe_unpicklable
        if "pickle" in type(exc).__name__.lower() or "pickle" in str(exc).lower():
            raise TypeError(f"put() could not serialize {describe_unpicklable(value, 'the value')}: "
                            f"{exc}") from None
        raise


def wait(object_refs, *, num_returns: int = 1, timeout: float | None = None,
         fetch_local: bool = True) -> tuple[list, list]:
    """Return (ready, not_ready): the first ``num_returns`` refs done, within ``timeout`` s."""
    if not isinstance(object_refs, (list, tuple)):
        raise TypeError(f"wait() expects a list of ObjectRefs, got {type(object_refs).__name__}")
    generators = False
    for i, ref in enumerate(object_refs):
        if type(ref) is not ObjectRef:
            if isinstance(ref, _generators.ObjectRefGenerator):
                generators = True
                continue
            raise TypeError(_not_a_ref("wait", ref, f" (item {i} of the list)"))
    if len({r if type(r) is ObjectRef else id(r) for r in object_refs}) != len(object_refs):
        raise ValueError("wait() got the same ObjectRef more than once; pass each ref once")
    if not isinstance(num_returns, int) or num_returns < 1 or num_returns > len(object_refs):
        if not object_refs and num_returns == 1:
            return [], []
        raise ValueError(f"num_returns must be between 1 and the number of refs "
                         f"({len(object_refs)}), got {num_returns!r}")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be >= 0 or None, got {timeout!r}")
    if generators:  # a generator is ready when next() would not block (core/_generators.py)
        return _generators.wait(_backend(), list(object_refs), num_returns, timeout, fetch_local)
    return _backend().wait(list(object_refs), num_returns, timeout, fetch_local)


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task behind a ref; ``get`` of it then raises TaskCancelledError."""
    if isinstance(object_ref, _generators.ObjectRefGenerator):
        object_ref = object_ref._task_ref()
    if type(object_ref) is not ObjectRef:
        raise TypeError(_not_a_ref("cancel", object_ref, ""))
    _backend().cancel(object_ref._id, force)


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Stop an actor at once (its pending calls fail with ActorDiedError)."""
    if not isinstance(actor, ActorHandle):
        raise TypeError(f"kill() expects an actor handle, got {type(actor).__name__}; to stop a "
                        "task use cancel(ref)")
    _backend().kill_actor(actor._actor_id, no_restart)


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """The handle of the live actor created with ``.options(name=name)``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"get_actor() needs a non-empty actor name, got {name!r}")
    actor_id, class_name, meta = _call("get_actor", name, namespace)
    return ActorHandle(actor_id, class_name, meta)


def _call(name: str, *args):
    return getattr(_backend(), name)(*args)


def ref_future(ref: ObjectRef) -> concurrent.futures.Future:
    """A Future for a ref, completed when the object is ready, with no thread waiting for it:
    in the driver, in a worker, in local mode and on Dask alike."""
    return _backend().future(ref)


# ==========================================================================================
# introspection
# ==========================================================================================
def cluster_resources() -> dict[str, float]:
    """All resources of the cluster: {'CPU': 2.0, 'memory': ..., ...}."""
    return _call("cluster_resources")


def available_resources() -> dict[str, float]:
    """Resources not held by running tasks and actors right now."""
    return _call("available_resources")


def nodes() -> list[dict]:
    """One dict per node: NodeID, Alive, NodeManagerAddress, Resources."""
    return _call("nodes")


def get_gpu_ids() -> list[int]:
    """The GPU ids assigned to the current task or actor.

    In a raylite worker these are the scheduler's assignment, even when a library (Train's
    torch backend) has since widened CUDA_VISIBLE_DEVICES to the machine's GPUs; elsewhere (the
    driver, a Dask worker) they are read from CUDA_VISIBLE_DEVICES.
    """
    assigned = _backend_obj.assigned_gpu_ids() if _backend_obj is not None else None
    if assigned is not None:   # in a raylite worker process: the scheduler's assignment
        return list(assigned)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return [int(x) for x in visible.split(",") if x.strip().lstrip("-").isdigit() and int(x) >= 0]


class RuntimeContext:
    """What ``get_runtime_context()`` returns: ids of the current job, node, task, actor."""

    def __init__(self, info: dict, backend: Any):
        self._info = info
        self._backend = backend

    def get_job_id(self) -> str:
        return self._info.get("job_id") or "01"

    def get_node_id(self) -> str:
        return self._info.get("node_id", "")

    def get_worker_id(self) -> str:
        return self._info.get("worker_id", "driver")

    def get_task_id(self) -> str | None:
        running = self._backend.current_task_id()
        return running.hex() if running else None

    def get_actor_id(self) -> str | None:
        return self._backend.current_actor_id()

    def get_assigned_resources(self) -> dict:
        return {}

    def get_placement_group_id(self) -> str | None:
        """The hex id of the placement group the current task or actor runs in (None: none)."""
        context = self._backend.placement_context()
        return context[0].hex() if context is not None else None

    @property
    def should_capture_child_tasks_in_placement_group(self) -> bool:
        """Whether tasks and actors started here land in the current placement group."""
        context = self._backend.placement_context()
        return bool(context and context[1])

    current_placement_group_id = property(get_placement_group_id)

    @property
    def runtime_env(self) -> dict:
        """The runtime env the current task, actor or driver runs in ({} for none)."""
        prepared = getattr(self._backend, "parent_env", None)
        if prepared:
            return dict(prepared["env"])
        return dict(getattr(self._backend, "job_env", None) or {})

    def get_runtime_env_string(self) -> str:
        import json
        return json.dumps(self.runtime_env)

    @property
    def namespace(self) -> str:
        return self._info.get("namespace", "")

    def get(self) -> dict:
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(),
                "namespace": self.namespace, "task_id": self.get_task_id()}

    job_id = property(get_job_id)
    node_id = property(get_node_id)
    task_id = property(get_task_id)
    actor_id = property(get_actor_id)


def get_runtime_context() -> RuntimeContext:
    backend = _backend()
    return RuntimeContext(dict(_context or {}), backend)


def timeline(filename: str | None = None) -> list[dict]:
    """Task executions as Chrome-trace events (not recorded yet: returns what the runtime has)."""
    events = list(_backend().timeline_events())
    if filename:
        import json
        with open(filename, "w") as f:
            json.dump(events, f)
    return events

