"""``init(local_mode=True)``: every task and actor call runs at once, in the calling thread.

Made for debuggers: breakpoints in remote functions and actor methods hit in the driver, and
tracebacks are ordinary. Results still go through ObjectRefs so the program runs unchanged.
Values are not copied (as in Ray's local mode), so mutating an argument inside a task is
visible to the caller here but not on a real runtime. Resources and placement groups are only
bookkeeping here (nothing waits for them): a group is ready at once, tasks and actors placed in
one, or captured into one (``placement_group_capture_child_tasks``), run in the caller all the
same, and ``get_current_placement_group()`` is None, as in the driver.

A ``runtime_env`` applies around each call: its ``env_vars`` are set in this process's
environment and restored afterwards, and its ``working_dir`` and ``py_modules`` (copied once
into a temporary folder) lead ``sys.path`` during the call; the current directory does not
change. ``pip`` is refused: it needs worker processes started from a virtual environment.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import sys
import tempfile
import traceback
from typing import Any

from raylite.core import _generators, _ids, _refs
from raylite.core._backend import Backend
from raylite.core._refs import ObjectRef
from raylite.exceptions import ActorDiedError, TaskCancelledError, make_task_error


class _Tracker:
    def add(self, object_id: bytes) -> None:
        pass


class InlineBackend(Backend):
    """Local mode: a backend that runs everything in the caller's thread."""

    def __init__(self, resources: dict[str, float], namespace: str,
                 runtime_env: dict | None = None):
        self.job_env = runtime_env
        self.current_env = runtime_env  # the running call's (tasks inherit it)
        self._applied: dict | None = None  # the env now in os.environ and sys.path
        self.actor_envs: dict[bytes, dict | None] = {}
        self._env_dir: str | None = None
        _refuse_pip(runtime_env)
        self.total = dict(resources)
        self.namespace = namespace
        self.node_id = "local-mode"
        self.values: dict[bytes, tuple[bool, Any]] = {}  # id -> (is_error, value)
        self.actors: dict[bytes, Any] = {}
        self.actor_info: dict[bytes, tuple[str, dict]] = {}
        self.named: dict[tuple, bytes] = {}
        self.groups: dict[bytes, Any] = {}
        self.memory_dir: str | None = None  # memory:// URIs, made on first use
        _refs.set_tracker(_Tracker())

    # ----- work -----------------------------------------------------------------------------
    def submit_task(self, function, args, kwargs, options, resources, placement) -> list:
        n = options.get("num_returns", 1)
        name = options.get("name") or function._name
        env = self._env_for(options)
        with self._in_env(env):
            return self._run(function._function, args, kwargs, n, name)

    def create_actor(self, actor_class, args, kwargs, options, resources, placement,
                     actor_options) -> bytes:
        actor_id = _ids.new_id()
        name = actor_options.get("name")
        if name:
            key = (actor_options.get("namespace") or self.namespace, name)
            if key in self.named:
                raise ValueError(f"an actor named {name!r} already exists")
            self.named[key] = actor_id
        args, kwargs = self._resolve(args, kwargs)
        env = self.actor_envs[actor_id] = self._env_for(options)
        with self._in_env(env):
            self.actors[actor_id] = actor_class._cls(*args, **kwargs)
        self.actor_info[actor_id] = (actor_class._name, actor_class._meta)
        return actor_id

    def submit_actor_call(self, actor_id, class_name, method, args, kwargs, num_returns, options):
        instance = self.actors.get(actor_id)
        if instance is None:
            error = ActorDiedError(f"{class_name}.{method}: the actor was killed")
            return [self._store(True, error) for _ in range(max(1, num_returns))]
        with self._in_env(self.actor_envs.get(actor_id)):
            return self._run(getattr(instance, method), args, kwargs, num_returns,
                             f"{class_name}.{method}")

    # ----- runtime envs ---------------------------------------------------------------------
    def _env_for(self, options: dict) -> dict | None:
        from raylite.core._runtime_env import merge
        env = merge(self.current_env, options.get("runtime_env"))
        _refuse_pip(env)
        return env

    @contextlib.contextmanager
    def _in_env(self, env: dict | None):
        """Run a call in ``env``: its env_vars set and its folders first on sys.path, both
        restored afterwards."""
        if env is self._applied or not env:
            yield
            return
        from raylite.core._runtime_env_setup import prepare
        if self._env_dir is None:
            self._env_dir = tempfile.mkdtemp(prefix="raylite-local-mode-")
        prepared = prepare(env, self._env_dir)
        saved = {name: os.environ.get(name) for name in prepared["env_vars"]}
        saved_path, outer = list(sys.path), (self.current_env, self._applied)
        os.environ.update(prepared["env_vars"])
        sys.path[:0] = prepared["sys_path"]
        self.current_env = self._applied = env
        try:
            yield
        finally:
            self.current_env, self._applied = outer
            sys.path[:] = saved_path
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    runs_generators = True

    def put_item(self, end_id, object_id: bytes, value: Any, is_error: bool) -> None:
        """Store one item a generator yielded (core/_generators.py)."""
        self.values[object_id] = (is_error, value)

    def _run(self, fn, args, kwargs, num_returns: int, name: str) -> list:
        try:
            args, kwargs = self._resolve(args, kwargs)
            stream = _generators.pop_stream(kwargs)  # generator calls: core/_generators.py
            value = fn(*args, **kwargs)
            if stream is not None:
                value = _generators.drain(value, stream, None, self.put_item)
            elif asyncio.iscoroutine(value):
                value = asyncio.run(value)
        except BaseException as exc:  # noqa: BLE001 - surfaces from get(), as on a real runtime
            error = make_task_error(exc, name, os.getpid(), traceback.format_exc())
            return [self._store(True, error) for _ in range(max(1, num_returns))]
        if num_returns == 1:
            return [self._store(False, value)]
        values = list(value)
        if len(values) != num_returns:
            error = make_task_error(ValueError(
                f"{name} was declared with num_returns={num_returns} but returned {len(values)} values"),
                name, os.getpid(), "")
            return [self._store(True, error) for _ in range(num_returns)]
        return [self._store(False, v) for v in values]

    def _resolve(self, args, kwargs):
        args = tuple(self._value(a) if type(a) is ObjectRef else a for a in args)
        kwargs = {k: self._value(v) if type(v) is ObjectRef else v for k, v in kwargs.items()}
        return args, kwargs

    def _store(self, is_error: bool, value: Any) -> ObjectRef:
        object_id = _ids.new_id()
        self.values[object_id] = (is_error, value)
        return ObjectRef(object_id)

    def _value(self, ref: ObjectRef) -> Any:
        is_error, value = self.values[ref._id]
        if is_error:
            raise value
        return value

    # ----- objects --------------------------------------------------------------------------
    def put(self, value: Any) -> ObjectRef:
        return self._store(False, value)

    def get(self, refs: list, timeout: float | None) -> list:
        return [self._value(r) for r in refs]

    def wait(self, refs, num_returns, timeout, fetch_local):
        ready = [r for r in refs if r._id in self.values][:num_returns]  # all but unmade items
        return ready, [r for r in refs if r not in ready]

    def future(self, ref: ObjectRef) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(self._value(ref))
        except BaseException as exc:  # noqa: BLE001 - the awaiting caller gets it
            future.set_exception(exc)
        return future

    def cancel(self, object_id: bytes, force: bool) -> None:
        if object_id not in self.values:
            self.values[object_id] = (True, TaskCancelledError("cancelled"))

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        self.actors.pop(actor_id, None)

    def get_actor(self, name: str, namespace: str | None):
        actor_id = self.named.get((namespace or self.namespace, name))
        if actor_id is None or actor_id not in self.actors:
            raise ValueError(f"Failed to look up actor with name {name!r}: no live actor has that "
                             "name. Create it with Cls.options(name=...).remote() first.")
        class_name, meta = self.actor_info[actor_id]
        return actor_id, class_name, meta

    # ----- introspection --------------------------------------------------------------------
    def cluster_resources(self) -> dict:
        return dict(self.total)

    def available_resources(self) -> dict:
        return dict(self.total)

    def nodes(self) -> list:
        return [{"NodeID": self.node_id, "Alive": True, "NodeManagerAddress": "127.0.0.1",
                 "Resources": dict(self.total), "alive": True}]

    def create_placement_group(self, bundles, strategy, name):
        group_id = _ids.new_id()
        return group_id, self._store(False, True)

    def remove_placement_group(self, group_id: bytes) -> None:
        pass

    def placement_group_table(self) -> dict:
        return {}

    def context_info(self) -> dict:
        return {"node_ip_address": "127.0.0.1", "raylet_ip_address": "127.0.0.1",
                "redis_address": None, "gcs_address": None, "object_store_address": None,
                "raylet_socket_name": None, "webui_url": None, "session_dir": None,
                "metrics_export_port": None, "node_id": self.node_id,
                "namespace": self.namespace, "address": "local"}

    def memory_folder(self) -> str:
        """A folder named like the local runtime's session folders (``raylite-<pid>-...``
        under /dev/shm), so that the next init's sweep removes it if this process is killed."""
        if self.memory_dir is None:
            root = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
            self.memory_dir = tempfile.mkdtemp(prefix=f"raylite-{os.getpid()}-memory-", dir=root)
        return self.memory_dir

    def shutdown(self) -> None:
        self.values.clear()
        self.actors.clear()
        if self._env_dir is not None:
            shutil.rmtree(self._env_dir, ignore_errors=True)
        _refs.set_tracker(None)
        if self.memory_dir is not None:
            shutil.rmtree(self.memory_dir, ignore_errors=True)


def _refuse_pip(env: dict | None) -> None:
    if env and env.get("pip"):
        raise ValueError("runtime_env['pip'] is not supported in local mode "
                         "(init(local_mode=True)): its packages need worker processes started "
                         "from a virtual environment. Run without local_mode, or install the "
                         "packages into this Python.")
