"""The local runtime: the driver's side of one node, the I/O shell around the scheduler.

    user threads ──submit──▶ submission queue (no lock) ─┐
                 ──get/put/wait───────────────────────────┤
                                                          ▼
                              Node (under one lock) ──actions──▶ Channel.send ─▶ workers
                                       ▲                                              │
    I/O thread: selector over worker sockets and output pipes ◀──done/submit/get──────┘

Tasks and actor calls are not registered by the submitting thread: ``submit`` appends the spec to
a deque and returns its refs at once. If the lock is free the submitter registers it right away;
if not, the holder registers it when it lets go (see ``_NodeLock``): every queued spec, in
order, in one batch whose sends to each worker go out as one write. So the submit path never
waits for the lock.

A thread blocked in ``get`` on objects that one process will produce (calls to one actor, tasks
sent to one worker) borrows that process's channel from the I/O thread and handles what it
sends itself (``_read_replies``): the reply wakes the caller directly. If someone else seals the
objects meanwhile (a task moved to another worker), a pipe of the caller's wakes it.

The node owns the object table (``_store``), the scheduler (``_scheduler``), the worker and
actor processes, and the session folders: objects in /dev/shm/raylite-<pid>-<token>/ and spill
files in a private (0700) folder on disk. Processes are only ever started from the I/O thread,
which lives as long as the node, so the workers' parent-death signal is tied to the node's life.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from raylite.core import _ids, _refs
from raylite.core._backend import Backend
from raylite.core.local import _protocol as wire
from raylite.core.local._actors import ActorTable
from raylite.core.local._node_actors import ActorsMixin
from raylite.core.local._node_io import ProcessIOMixin
from raylite.core.local._node_wait import WATCH, WaitingMixin, _Watch
from raylite.core.local._scheduler import (Dispatch, Fail, GroupReady, Interrupt, PlacementGroup, Revoke,
                                     Scheduler, StartActor, StartWorker, StopWorker, Task,
                                     TaskState, Warn)
from raylite.core._serialization import serialize
from raylite.core._stale import remove_folders_of_dead_processes
from raylite.core.local._store import READY, ObjectTable
from raylite.core._task import (ACTOR_CALL, ACTOR_CREATE, TASK, SpecSubmitter, TaskSpec, pack_value)
from raylite.exceptions import (ActorDiedError, ObjectLostError,
                                TaskCancelledError, WorkerCrashedError, make_task_error)
if TYPE_CHECKING:
    from raylite.core.local._node_io import _Process

SHM_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


_LONE = (ACTOR_CALL, WATCH)  # queued alone, these need no batch


class _NodeLock:
    """The node's lock (re-entrant) and the submission queue's drain.

    Whoever enters it registers the queued submissions first, and whoever leaves it (the
    outermost level) registers those queued meanwhile, so the holder sees every task submitted
    before it took the lock and no queued task waits once the lock is free: a submitter that
    found the lock taken appended before trying, so the holder's exit sees its spec.
    """

    __slots__ = ("_lock", "_node", "_depth")

    def __init__(self, node: "Node"):
        self._lock = threading.RLock()
        self._node = node
        self._depth = 0  # changed only by the owning thread

    def __enter__(self) -> "_NodeLock":
        self._lock.acquire()
        self._entered()
        return self

    def owned(self) -> bool:
        """Whether the calling thread holds the lock."""
        return self._lock._is_owned()

    def try_enter(self) -> bool:
        """Enter if nobody holds the lock (then release() it); never waits."""
        if not self._lock.acquire(blocking=False):
            return False
        self._entered()
        return True

    def _entered(self) -> None:
        self._depth += 1
        if self._depth == 1 and self._node.submissions:
            try:
                self._node._register_submissions()
            except BaseException:
                self.release()
                raise

    def __exit__(self, *exc_info) -> None:
        self.release()

    def release(self) -> None:
        try:
            if self._depth == 1 and self._node.submissions:
                self._node._register_submissions()
        finally:
            self._depth -= 1
            self._lock.release()


class Node(ActorsMixin, ProcessIOMixin, WaitingMixin, SpecSubmitter, Backend):
    """The local runtime. One per driver process."""

    runs_generators = True  # its workers stream what generator tasks yield (core/_generators.py)

    def __init__(self, resources: dict[str, float], object_store_memory: int, namespace: str,
                 log_to_driver: bool = True, spill_dir: str | None = None,
                 runtime_env: dict | None = None):
        _cleanup_stale_sessions()
        token = os.urandom(6).hex()
        self.session_name = f"raylite-{os.getpid()}-{token}"
        self.shm_dir = os.path.join(SHM_ROOT, self.session_name)
        os.mkdir(self.shm_dir, 0o700)
        self.session_dir = tempfile.mkdtemp(prefix=f"raylite-session-{os.getpid()}-")
        os.chmod(self.session_dir, 0o700)
        self.namespace = namespace
        self.node_id = os.urandom(14).hex()
        self.job_id = os.urandom(2).hex()
        self.log_to_driver = log_to_driver
        self._init_runtime_envs(runtime_env)  # before the first workers start: they run in it
        self.submissions: collections.deque = collections.deque()  # specs (and _Watch) not yet registered
        self._registering = False
        self._corked: list = []  # channels whose sends are held back until the batch ends
        self._corking = 0  # depth of nested batches
        self.lock = _NodeLock(self)
        self.scheduler = Scheduler(resources)
        self.store = ObjectTable(self.shm_dir, spill_dir or os.path.join(self.session_dir, "spill"),
                                 object_store_memory)
        self.store.on_free = self._on_lineage_free
        self.store.on_release = self._on_handles_gone
        self.specs: dict[bytes, TaskSpec] = {}  # running or waiting tasks and calls, by task id
        self.functions: dict[bytes, bytes] = {}
        self.processes: dict[bytes, _Process] = {}
        self.actor_table = ActorTable()
        self.actors = self.actor_table.actors  # actor id -> ActorEntry
        self.actor_processes: dict[bytes, _Process] = {}  # actor id -> its current process
        self.actor_gpus: dict[bytes, list[int]] = {}
        self.groups: dict[bytes, PlacementGroup] = {}
        self.group_ready_ids: dict[bytes, bytes] = {}
        self.timers: list = []
        self._timer_seq = itertools.count()
        self.spawn_queue: list[Callable] = []
        self.task_events: collections.deque = collections.deque(maxlen=20_000)  # timeline (~4 MiB)
        self.stopping = False
        self._future_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self.started = time.time()
        _refs.set_tracker(self.store)
        self.io_thread = threading.Thread(target=self._io_loop, name="raylite-io", daemon=True)
        self.io_thread.start()
        with self.lock:
            self._act(self.scheduler.schedule())  # start the initial workers
        from raylite.core._control import ControlServer
        self.control = ControlServer(self.session_dir, {
            "started": self.started, "node_id": self.node_id, "namespace": namespace,
            "resources": resources})
        for name, handler in (("status", self.status), ("memory", self.memory_table),
                              ("timeline", self.timeline_events)):
            self.control.register(name, handler)

    # ======================================================================================
    # submission
    # ======================================================================================
    def submit(self, spec: TaskSpec, function_blob: bytes | None = None) -> list[_refs.ObjectRef]:
        if function_blob is not None and spec.function_id not in self.functions:
            self.functions.setdefault(spec.function_id, function_blob)
        if spec.kind == ACTOR_CREATE:  # synchronous: a name clash raises here, to the caller
            with self.lock:
                self._drain_refs()
                self._submit(spec, holder=True)
        else:  # queued; registered now if the lock is free, else by its holder on leaving
            self.submissions.append(spec)
            if self.lock.try_enter():  # entering registered it
                self.lock.release()
        ids = spec.return_ids
        if len(ids) == 1:
            return [_refs.ObjectRef(ids[0], _track=False)]
        return [_refs.ObjectRef(oid, _track=False) for oid in ids]

    def _register_submissions(self) -> None:
        """Register the queued specs and watches, in order (under the lock). A lone actor call
        (or watch), with nothing queued ahead of it, needs no batch: a call goes straight to its
        actor's channel."""
        if self._registering:
            return
        self._registering = True
        submissions = self.submissions
        try:
            if len(submissions) == 1 and not self._corking and submissions[0].kind in _LONE:
                self._register(submissions.popleft())
                return
            self._cork_begin()
            try:
                while submissions:
                    self._register(submissions.popleft())
            finally:
                self._cork_end()
        finally:
            self._registering = False

    def _register(self, spec: "TaskSpec | _Watch") -> None:
        if spec.kind is WATCH:
            self._watch(spec)
            return
        try:
            self._submit(spec, holder=True)
        except Exception as exc:  # noqa: BLE001 - e.g. an argument from a dead runtime
            self.specs.pop(spec.task_id, None)
            for oid in spec.return_ids:
                if oid not in self.store.entries:
                    self.store.create(oid, 1)
            self._seal_returns_with_error(spec, error=exc)

    def _cork_begin(self) -> None:
        """A batch begins: one scheduling pass at its end, one write per worker."""
        self._corking += 1
        self.scheduler.begin_batch()

    def _cork_end(self) -> None:
        """Schedule once for the whole batch, and send what it held back."""
        actions = self.scheduler.end_batch()
        if actions:
            self._act(actions)
        self._corking -= 1
        if self._corking == 0 and self._corked:
            corked, self._corked = self._corked, []
            for channel in corked:
                channel.uncork()

    def _batched(self, channel):
        """``channel``, holding its sends back until the current batch ends (if in one)."""
        if self._corking and channel.corked is None:
            channel.corked = []
            self._corked.append(channel)
        return channel

    def _submit(self, spec: TaskSpec, holder: bool) -> None:
        """Register a spec's return objects and route it (under the lock)."""
        if spec.function_blob is not None and spec.kind == TASK:
            self.functions.setdefault(spec.function_id, spec.function_blob)
            spec.function_blob = None
        store = self.store
        lineage = spec if spec.kind == TASK else None
        for oid in spec.return_ids:
            store.create(oid, 1 if holder else 0, lineage)
        for oid in spec.contained:
            store.incref(oid)  # pinned while the spec lives
        self.specs[spec.task_id] = spec
        if spec.kind == TASK:
            self._schedule_task(spec)
        elif spec.kind == ACTOR_CALL:  # the actor table sends, queues or fails it
            self._act(self.actor_table.call(spec.actor_id, spec))
        else:
            self._create_actor(spec)

    def _schedule_task(self, spec: TaskSpec) -> None:
        entries = self.store.entries
        pending = {oid for oid in spec.arg_ids if entries[oid].state != READY}
        failed = [oid for oid in spec.arg_ids if oid not in pending and entries[oid].is_error]
        if failed:
            self._seal_returns_with_error(spec, location=self.store.location(failed[0]))
            return
        self._act(self.scheduler.submit(self._task_of(spec), pending))

    def _task_of(self, spec: TaskSpec) -> Task:
        env = spec.runtime_env  # None: the job's, run by the default workers
        if env is not None:
            self.envs.setdefault(env["key"], env)
        return Task(spec.task_id, spec.name, spec.resources, spec.function_id, spec.max_retries,
                    spec.placement, spec, env="" if env is None else env["key"])

    # ======================================================================================
    # actions from the scheduler
    # ======================================================================================
    def _act(self, actions: list) -> None:
        handlers = self._action_handlers
        for action in actions:
            handlers[type(action)](self, action)

    def _a_dispatch(self, action: Dispatch) -> None:
        self._dispatch(action.task.payload, action.worker_id, action.gpu_ids)

    def _a_start_worker(self, action: StartWorker) -> None:
        if action.env:
            env = self.envs[action.env]
            self._spawn_later(lambda: self._spawn(env=env))
        else:
            self._spawn_later(self._spawn_task_worker)

    def _a_fail(self, action: Fail) -> None:
        self._fail_task(action.task.payload, action.reason, action.detail)

    def _a_start_actor(self, action: StartActor) -> None:
        actor_id = action.actor.actor_id
        self.actor_gpus[actor_id] = action.gpu_ids
        self._act(self.actor_table.resources_granted(actor_id))

    def _a_interrupt(self, action: Interrupt) -> None:
        self._interrupt(action.task, action.worker_id, action.force)

    def _a_revoke(self, action: Revoke) -> None:
        process = self.processes.get(action.worker_id)
        if process is not None:
            process.channel.send((wire.REVOKE, action.task.task_id))

    def _a_group_ready(self, action: GroupReady) -> None:
        ready_id = self.group_ready_ids.get(action.group.group_id)
        if ready_id is not None:
            self._seal_value(ready_id, True)

    def _a_stop_worker(self, action: StopWorker) -> None:
        process = self.processes.get(action.worker_id)
        if process is not None:
            process.retired = True
            process.channel.send((wire.EXIT,))

    def _a_warn(self, action: Warn) -> None:
        print(f"raylite: warning: {action.message}", file=sys.stderr, flush=True)

    _action_handlers = {
        Dispatch: _a_dispatch, StartWorker: _a_start_worker, Fail: _a_fail,
        StartActor: _a_start_actor, Interrupt: _a_interrupt, Revoke: _a_revoke,
        GroupReady: _a_group_ready, StopWorker: _a_stop_worker, Warn: _a_warn,
        **ActorsMixin._actor_action_handlers}

    def _dispatch(self, spec: TaskSpec, worker_id: bytes, gpu_ids: list[int]) -> None:
        process = self.processes[worker_id]
        entries = self.store.entries
        for oid in spec.return_ids:  # its reply should come on this channel (see Node.get)
            entry = entries.get(oid)
            if entry is not None:
                entry.producer = process
        channel = self._batched(process.channel)
        if spec.function_id not in process.functions:
            process.functions.add(spec.function_id)
            channel.send((wire.FUNCTION, spec.function_id, self.functions[spec.function_id]))
        resolved = self._locations(spec.arg_ids) if spec.arg_ids else None
        channel.send((wire.TASK, spec, resolved, gpu_ids))

    def _locations(self, object_ids: list[bytes]) -> dict:
        entries = self.store.entries
        out = {}
        for oid in object_ids:
            entry = entries.get(oid)
            if entry is not None and entry.state == READY:
                out[oid] = self.store.location(oid)
        return out

    def _fail_task(self, spec: TaskSpec, reason: str, detail: Any) -> None:
        self.specs.pop(spec.task_id, None)
        if reason == "dependency_failed":
            self._seal_returns_with_error(spec, location=self.store.location(detail))
            return
        if reason == "cancelled":
            error = TaskCancelledError(f"{spec.name} was cancelled")
        elif reason == "runtime_env_failed":
            from raylite.exceptions import RuntimeEnvSetupError
            error = RuntimeEnvSetupError(f"{spec.name} cannot run: {detail}")
        else:
            error = WorkerCrashedError(
                f"the worker running {spec.name} died (killed, out of memory, or crashed) and "
                f"{spec.max_retries} retries are spent; raise max_retries to retry more")
        self._seal_returns_with_error(spec, error=error)
        self._release_pins(spec)

    def _interrupt(self, task: Task, worker_id: bytes, force: bool) -> None:
        process = self.processes.get(worker_id)
        if process is None:
            return
        import signal
        if not force:  # in case the task has not started yet, the worker checks this first
            process.channel.send((wire.CANCEL, task.task_id))
        try:
            os.kill(process.pid, signal.SIGKILL if force else signal.SIGINT)
        except ProcessLookupError:
            return
        if not force:  # a signal that landed just before the task started is ignored: repeat
            def again() -> None:
                if task.state is TaskState.RUNNING and task.worker_id == worker_id:
                    self._interrupt(task, worker_id, False)
            self._add_timer(0.2, again)

    # ======================================================================================
    # objects
    # ======================================================================================
    def put(self, value: Any) -> _refs.ObjectRef:
        object_id = _ids.new_id()
        packed = pack_value(value, self.shm_dir, object_id)
        with self.lock:
            self.store.create(object_id, 1)
            self._seal(object_id, packed, is_error=False)
        return _refs.ObjectRef(object_id, _track=False)

    def _seal_value(self, object_id: bytes, value: Any) -> None:
        self._seal(object_id, pack_value(value, self.shm_dir, object_id), is_error=False)

    def _seal(self, object_id: bytes, packed: tuple, is_error: bool) -> None:
        if packed[0] in (wire.INLINE, wire.INLINE_ERROR):
            waiters = self.store.seal(object_id, packed[1], None, len(packed[1]), is_error, packed[2])
        else:
            waiters = self.store.seal(object_id, None, packed[1], packed[2], is_error, packed[3])
        for waiter in waiters:
            waiter.ready(object_id)
        if object_id in self.scheduler.waiting_on:
            if is_error:
                self._act(self.scheduler.object_failed(object_id))
            else:
                self._act(self.scheduler.object_available(object_id))

    def _seal_returns_with_error(self, spec: TaskSpec, error: BaseException | None = None,
                                 location: tuple | None = None) -> None:
        if location is not None:  # the same error as a dependency's
            kind, data = location
            if kind == wire.SHARED_ERROR:  # it lives in a file: take its bytes inline
                with open(data, "rb") as f:
                    data = f.read()
            packed = (wire.INLINE_ERROR, data, [])
        else:
            err = make_task_error(error, spec.name, os.getpid(), "") if not isinstance(
                error, (WorkerCrashedError, TaskCancelledError, ActorDiedError)) else error
            packed = (wire.INLINE_ERROR, serialize(err).to_bytes(), [])
        for oid in spec.return_ids:
            self._seal(oid, packed, is_error=True)

    def _object_lost(self, object_id: bytes, path: str) -> None:
        """A reader found an object's file missing: rebuild it from lineage, or mark it lost."""
        if not self.store.mark_lost(object_id, path):
            return
        entry = self.store.entries[object_id]
        spec = entry.lineage
        if spec is None or spec.kind != TASK:
            self._seal(object_id, (wire.INLINE_ERROR, pack_value(ObjectLostError(
                f"object {object_id.hex()} was lost from shared memory and was made by put() or an "
                "actor, so it cannot be rebuilt; keep a copy or recompute it in a task"),
                self.shm_dir, _ids.new_id())[1], []), is_error=True)
            return
        print(f"raylite: object {object_id.hex()[:12]} was lost; re-running {spec.name} to rebuild "
              "it", file=sys.stderr, flush=True)
        self.specs[spec.task_id] = spec
        self._act(self.scheduler.submit(self._task_of(spec), set()))

    def _on_lineage_free(self, entry) -> list[bytes]:
        """A task's result was freed; once all are, the task's pinned arguments go too."""
        spec = entry.lineage
        entry.lineage = None
        if spec.task_id in self.specs:  # still queued or running: it needs its arguments
            return []
        if any(oid in self.store.entries for oid in spec.return_ids):
            return []
        return self._unpin(spec)

    def _release_pins(self, spec: TaskSpec) -> None:
        for oid in self._unpin(spec):
            self.store.decref(oid)

    def _unpin(self, spec: TaskSpec) -> list[bytes]:
        """Forget a spec's argument pins (returned, for the caller to decref)."""
        contained, spec.contained = spec.contained, ()
        if type(spec.args) is tuple:
            try:
                os.unlink(spec.args[1])
            except FileNotFoundError:
                pass
        return contained

    def _drain_refs(self) -> None:
        released = _refs.drain_released()
        if released:
            decref = self.store.decref
            for oid in released:
                decref(oid)

    # ======================================================================================
    # cancel, resources, placement groups
    # ======================================================================================
    def cancel(self, object_id: bytes, force: bool) -> None:
        with self.lock:
            entry = self.store.entries.get(object_id)
            spec = entry.lineage if entry is not None else None
            if spec is None:
                for candidate in self.specs.values():
                    if object_id in candidate.return_ids:
                        spec = candidate
                        break
            if spec is None or spec.kind != TASK:
                if spec is not None and spec.kind == ACTOR_CALL:
                    raise ValueError("cancel() of actor method calls is not supported; kill the "
                                     "actor with raylite.kill(handle) instead")
                return
            if spec.task_id in self.scheduler.tasks:
                self._act(self.scheduler.cancel(spec.task_id, force))

    def cluster_resources(self) -> dict[str, float]:
        with self.lock:
            return dict(self.scheduler.pool.total)

    def available_resources(self) -> dict[str, float]:
        with self.lock:
            return self.scheduler.available()

    def nodes(self) -> list[dict]:
        with self.lock:
            return [{"NodeID": self.node_id, "Alive": True, "NodeManagerAddress": "127.0.0.1",
                     "NodeManagerHostname": os.uname().nodename, "NodeName": "127.0.0.1",
                     "Resources": dict(self.scheduler.pool.total),
                     "ObjectStoreSocketName": self.shm_dir, "alive": True}]

    def create_placement_group(self, bundles: list[dict], strategy: str, name: str) -> tuple:
        group_id = _ids.new_id()
        ready_id = _ids.new_id()
        group = PlacementGroup(group_id, bundles, strategy, name)
        with self.lock:
            self.store.create(ready_id, 1)  # held by the group itself until it is removed, so
            self.group_ready_ids[group_id] = ready_id  # a ref sent to a worker stays valid
            self.groups[group_id] = group
            self._act(self.scheduler.create_group(group))
        return group_id, _refs.ObjectRef(ready_id)

    def remove_placement_group(self, group_id: bytes) -> None:
        """Free the group's bundles; the actors placed in it are killed, as in Ray (a Tune
        trial's group takes its trainer's workers with it)."""
        with self.lock:
            for actor in list(self.scheduler.actors.values()):
                if actor.placement is not None and actor.placement[0] == group_id:
                    self.kill_actor(actor.actor_id, True)
            self.groups.pop(group_id, None)
            ready_id = self.group_ready_ids.pop(group_id, None)
            if ready_id is not None:
                self.store.decref(ready_id)
            self._act(self.scheduler.remove_group(group_id))

    def placement_group_table(self) -> dict:
        with self.lock:
            return {gid.hex(): {"name": g.name, "strategy": g.strategy, "bundles": dict(enumerate(g.bundles)),
                                "state": "CREATED" if g.ready else "PENDING"} for gid, g in self.groups.items()}

    # ======================================================================================
    # shutdown and introspection
    # ======================================================================================
    def context_info(self) -> dict:
        return {"node_ip_address": "127.0.0.1", "raylet_ip_address": "127.0.0.1",
                "redis_address": None, "gcs_address": None, "object_store_address": self.shm_dir,
                "raylet_socket_name": None, "webui_url": None, "session_dir": self.session_dir,
                "metrics_export_port": None, "node_id": self.node_id, "job_id": self.job_id,
                "namespace": self.namespace, "address": "local"}

    def memory_folder(self) -> str:
        return wire.memory_folder_in(self.shm_dir)

    def dashboard_source(self) -> "Node":
        return self

    def shutdown(self) -> None:
        with self.lock:
            if self.stopping:
                return
            self.stopping = True
            processes = list(self.processes.values())
        try:  # tells the workers, who hear of the I/O thread's end first, that this is no death
            open(os.path.join(self.shm_dir, wire.SHUTDOWN_MARK), "w").close()
        except OSError:
            pass
        self._wake()
        if self.io_thread is not threading.current_thread():
            self.io_thread.join(timeout=2)
        for process in processes:
            process.channel.send((wire.EXIT,))
        deadline = time.monotonic() + 0.5
        for process in processes:
            try:
                process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()
            for stream in (process.popen.stdout, process.popen.stderr):
                self._drain_output(stream, sys.stdout if stream is process.popen.stdout else sys.stderr)
            process.channel.close()
        self.control.close()
        self.selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        _refs.set_tracker(None)
        shutil.rmtree(self.shm_dir, ignore_errors=True)
        shutil.rmtree(self.session_dir, ignore_errors=True)

    def _drain_output(self, stream, target) -> None:
        if stream is None or stream.closed:
            return
        try:
            data = stream.read()
        except Exception:
            data = None
        if data and self.log_to_driver:
            try:
                target.write(data.decode("utf-8", "replace"))
                target.flush()
            except Exception:
                pass
        stream.close()

    def snapshot(self, copy: Callable[["Node"], Any], timeout_s: float = 10.0) -> Any:
        """``copy(node)`` run on the I/O thread between two batches, its result returned: how
        status, the dashboard and ``raylite memory`` read the node's tables without contending
        for its lock with the submitting threads. ``copy`` must return copies, not live tables."""
        if (threading.current_thread() is self.io_thread or self.stopping
                or not self.io_thread.is_alive() or self.lock.owned()):
            with self.lock:
                return copy(self)
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                with self.lock:
                    future.set_result(copy(self))
            except BaseException as exc:  # noqa: BLE001 - the reader gets it
                future.set_exception(exc)
        self._spawn_later(run)
        return future.result(timeout_s)

    def status(self) -> dict[str, Any]:
        """What ``raylite status`` shows: resources, processes, tasks, actors, objects."""
        return self.snapshot(Node._status)

    def _status(self) -> dict[str, Any]:
        sched = self.scheduler
        workers = [{"pid": self.processes[w.worker_id].pid, "state": w.state.value,
                    "task": w.tasks[0].name if w.tasks else ""}
                   for w in sched.workers.values() if w.worker_id in self.processes]
        actors = [{"class": r["class"], "name": r["name"], "state": r["state"], "pid": r["pid"]}
                  for r in self._actor_rows()]
        tasks: dict[str, int] = {}
        for task in sched.tasks.values():
            tasks[task.state.value] = tasks.get(task.state.value, 0) + 1
        return {"node_id": self.node_id, "uptime_s": time.time() - self.started,
                "resources": dict(sched.pool.total), "available": sched.available(),
                "workers": workers, "actors": actors, "tasks": tasks,
                "objects": {**self.store.stats(), "objects": sum(
                    1 for oid in self.store.entries if oid not in self.actors)},
                "driver_pid": os.getpid()}

    def memory_table(self) -> list[dict[str, Any]]:
        """What ``raylite memory`` shows: each object, its size, where it is, who holds it."""
        return self.snapshot(Node._memory_table)

    def _memory_table(self) -> list[dict[str, Any]]:
        rows = []
        for oid, entry in self.store.entries.items():
            if oid in self.actors:
                continue
            where = ("spilled" if entry.spilled else "shared memory" if entry.path
                     else "inline" if entry.data is not None else "pending")
            rows.append({"object_id": oid.hex(), "size": entry.size, "where": where,
                         "refs": entry.refs, "error": entry.is_error,
                         "made_by": entry.lineage.name if entry.lineage else "put"})
        return rows

    def timeline_events(self) -> list[dict[str, Any]]:
        """Task executions as Chrome-trace events (view in Perfetto or chrome://tracing)."""
        events = self.snapshot(lambda node: list(node.task_events))
        return [{"name": name, "cat": "task", "ph": "X", "ts": start * 1e6,
                 "dur": duration * 1e6, "pid": pid, "tid": pid,
                 "args": {"ok": ok}} for name, pid, start, duration, ok in events]

    def worker_pids(self) -> list[int]:
        with self.lock:
            return [p.pid for p in self.processes.values()]

    def memory_summary(self) -> dict:
        return self.snapshot(lambda node: node.store.stats())


def _cleanup_stale_sessions() -> None:
    """Remove the folders of raylite drivers that died without cleaning up."""
    for root, prefix, field in ((SHM_ROOT, "raylite-", 1),
                                (tempfile.gettempdir(), "raylite-session-", 2)):
        remove_folders_of_dead_processes(
            root, prefix, lambda name, field=field: int(name.split("-")[field]))
