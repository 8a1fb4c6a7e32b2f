"""The scheduler: a pure state machine, no processes, sockets or threads.

Events come in as method calls (a task was submitted, an object became available, a worker
started, finished a task, blocked in ``get``, died, ...). Each returns a list of actions, small
frozen dataclasses, for the I/O shell (``raylite.core.local._node``) to carry out::

    Dispatch(task, worker_id, gpu_ids)   send the task to that worker
    StartWorker(env)                     spawn one more task worker, for that runtime env
    Fail(task, reason, detail)           the task ends without a result
    Retry(task)                          it raised an error it retries on: queued again
    Interrupt(task, worker_id, force)    cancel a running task
    Revoke(task, worker_id)              the worker must skip a pipelined task it was sent
    StopWorker(worker_id)                an extra worker idle long enough: let it exit
    StartActor(actor, gpu_ids)           resources granted: start the actor's process
    GroupReady(group)                    a placement group's bundles are reserved
    Warn(message)                        tell the user (infeasible requests)

Actors' own lifecycle (queueing, restarts) is the actor table's (``raylite.core.local._actors``); the
scheduler only holds their resources.

Task lifecycle (``TASK_TRANSITIONS``)::

    WAITING --args ready--> READY --worker+resources--> RUNNING --> FINISHED
       |                      |                           |  \\--worker died, retries left--> READY
       +--------------------- +---------------------------+----> FAILED / CANCELLED

Worker lifecycle: STARTING -> IDLE <-> BUSY <-> BLOCKED (in ``get`` or ``wait``, its CPU lent
back to the pool it came from: the node's, or its placement group bundle's, where the tasks it
starts land when its group captures child tasks) -> DEAD.

Runtime envs: every task and worker has an env key ("" for the job's own env). A task runs only
on a worker of its key, so workers are reused only by tasks of the same env. The pool holds
``min_workers`` to ``max_workers`` processes of any env; when a task needs a worker of its env
and the pool is full, an idle worker of another env is stopped to make room, and idle workers of
other envs are the first to retire.

Tasks that wait for the same resources form a scheduling class with its own FIFO queue, so a
task that cannot fit does not hold back others. Fast functions (observed mean under
``PIPELINE_BELOW_S``) are pipelined: a busy worker gets up to ``PIPELINE_DEPTH`` more tasks of
its class, hiding the round trip to the driver; slow ones never are, so long tasks spread.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

PIPELINE_DEPTH = 16
PIPELINE_BELOW_S = 0.002


# ----- actions ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Dispatch:
    task: Task
    worker_id: bytes
    gpu_ids: list


@dataclass(frozen=True, slots=True)
class StartWorker:
    env: str = ""  # the runtime env key ("": the job's)


@dataclass(frozen=True, slots=True)
class Fail:
    task: Task
    reason: str  # "dependency_failed" (detail: the object id), "cancelled", "worker_crashed",
    #              "runtime_env_failed" (detail: why its workers cannot start)
    detail: Any


@dataclass(frozen=True, slots=True)
class Retry:
    task: Task


@dataclass(frozen=True, slots=True)
class Interrupt:
    task: Task
    worker_id: bytes
    force: bool


@dataclass(frozen=True, slots=True)
class Revoke:
    task: Task
    worker_id: bytes


@dataclass(frozen=True, slots=True)
class StopWorker:
    worker_id: bytes


@dataclass(frozen=True, slots=True)
class StartActor:
    actor: Actor
    gpu_ids: list


@dataclass(frozen=True, slots=True)
class GroupReady:
    group: PlacementGroup


@dataclass(frozen=True, slots=True)
class Warn:
    message: str


_START_WORKER = StartWorker()


class TaskState(Enum):
    WAITING = "WAITING"
    READY = "READY"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TASK_TRANSITIONS = {
    TaskState.WAITING: {TaskState.READY, TaskState.FAILED, TaskState.CANCELLED},
    TaskState.READY: {TaskState.RUNNING, TaskState.CANCELLED, TaskState.FAILED},
    TaskState.RUNNING: {TaskState.FINISHED, TaskState.FAILED, TaskState.READY, TaskState.CANCELLED},
    TaskState.FINISHED: set(),
    TaskState.FAILED: set(),
    TaskState.CANCELLED: set(),
}


class WorkerState(Enum):
    STARTING = "STARTING"
    IDLE = "IDLE"
    BUSY = "BUSY"
    BLOCKED = "BLOCKED"
    DEAD = "DEAD"


@dataclass(eq=False)
class Task:
    """The scheduler's view of a task; ``payload`` is opaque to it."""

    task_id: bytes
    name: str
    resources: dict[str, float]
    function_id: bytes = b""
    max_retries: int = 0
    placement: tuple | None = None  # (group id, bundle index or -1[, captures child tasks])
    payload: Any = None
    state: TaskState = TaskState.WAITING
    deps: set = field(default_factory=set)
    attempt: int = 0
    worker_id: bytes | None = None
    cancelled: bool = False
    env: str = ""  # the runtime env key ("": the job's)
    key: tuple = ()  # the scheduling class: same resources, same placement, same env

    def __post_init__(self) -> None:
        self.key = (tuple(sorted(self.resources.items())), self.placement)
        if self.env:
            self.key += (self.env,)

    def to(self, state: TaskState) -> None:
        assert state in TASK_TRANSITIONS[self.state], (self.state, state)
        self.state = state


@dataclass(eq=False)
class Worker:
    worker_id: bytes
    state: WorkerState = WorkerState.STARTING
    tasks: collections.deque = field(default_factory=collections.deque)  # [0] is running
    held: dict[str, float] | None = None  # resources held for the running class
    held_from: Any = None  # the pool they came from
    gpu_ids: list[int] = field(default_factory=list)
    idle_since: float = 0.0
    env: str = ""  # the runtime env it was started in ("": the job's)


@dataclass(eq=False)
class Actor:
    """An actor asking for resources for its lifetime; ``payload`` is opaque."""

    actor_id: bytes
    name: str
    resources: dict[str, float]
    placement: tuple[bytes, int] | None = None
    payload: Any = None
    held_from: Any = None
    gpu_ids: list[int] = field(default_factory=list)
    blocked: int = 0  # calls of this actor waiting in get(): while > 0 its CPU is lent out


class ResourcePool:
    """Amounts of named resources, with GPU ids handed out to whoever takes GPUs."""

    def __init__(self, total: dict[str, float], gpu_ids: list[int] | None = None):
        self.total = dict(total)
        self.available = dict(total)
        n_gpus = int(total.get("GPU", 0))
        self.gpu_free = {i: 1.0 for i in (gpu_ids if gpu_ids is not None else range(n_gpus))}

    def fits(self, request: dict[str, float]) -> bool:
        avail = self.available
        return all(avail.get(k, 0.0) >= v - 1e-9 for k, v in request.items())

    def feasible(self, request: dict[str, float]) -> bool:
        return all(self.total.get(k, 0.0) >= v - 1e-9 for k, v in request.items())

    def acquire(self, request: dict[str, float]) -> list[int]:
        for k, v in request.items():
            self.available[k] = self.available.get(k, 0.0) - v
        return self._take_gpus(request.get("GPU", 0.0))

    def release(self, request: dict[str, float], gpu_ids: list[int]) -> None:
        for k, v in request.items():
            self.available[k] = self.available.get(k, 0.0) + v
        amount = request.get("GPU", 0.0)
        share = 1.0 if amount >= 1 else amount
        for gid in gpu_ids:
            if gid in self.gpu_free:
                self.gpu_free[gid] = min(1.0, self.gpu_free[gid] + share)

    def _take_gpus(self, amount: float) -> list[int]:
        if amount <= 0 or not self.gpu_free:
            return []
        if amount < 1:
            for gid, free in sorted(self.gpu_free.items(), key=lambda kv: kv[1]):
                if free >= amount - 1e-9:
                    self.gpu_free[gid] = free - amount
                    return [gid]
            return []
        whole = [gid for gid, free in self.gpu_free.items() if free >= 1 - 1e-9][: math.ceil(amount)]
        for gid in whole:
            self.gpu_free[gid] = 0.0
        return whole


@dataclass(eq=False)
class PlacementGroup:
    group_id: bytes
    bundles: list[dict[str, float]]
    strategy: str
    name: str = ""
    pools: list[ResourcePool] = field(default_factory=list)
    gpu_ids: list[int] = field(default_factory=list)   # the node's GPUs this group holds
    ready: bool = False
    removed: bool = False


class Scheduler:
    """Resource and worker bookkeeping for one node, as a state machine."""

    def __init__(self, resources: dict[str, float], min_workers: int | None = None,
                 max_extra_workers: int = 4, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.pool = ResourcePool(resources)
        cpus = resources.get("CPU", 1.0)
        self.min_workers = min_workers if min_workers is not None else max(1, math.ceil(cpus))
        self.max_workers = self.min_workers + max_extra_workers
        self.tasks: dict[bytes, Task] = {}
        self.queues: dict[tuple, collections.deque] = {}
        self.waiting_on: dict[bytes, list[Task]] = {}
        self.workers: dict[bytes, Worker] = {}
        self.starting = 0
        self.starting_envs: collections.Counter = collections.Counter()  # of env != ""
        self.broken_envs: dict[str, str] = {}  # env -> why its workers cannot start
        self.pending_actors: collections.deque[Actor] = collections.deque()
        self.actors: dict[bytes, Actor] = {}
        self.groups: dict[bytes, PlacementGroup] = {}
        self.pending_groups: collections.deque[PlacementGroup] = collections.deque()
        self.durations: dict[bytes, tuple[int, float]] = {}  # function -> (runs, decaying max)
        self.warned: set = set()
        self.feasible_classes: set = set()
        self.batch_depth = 0  # > 0: scheduling passes wait for end_batch()
        self.pass_due = False

    # ----- batches ---------------------------------------------------------------------------
    def begin_batch(self) -> None:
        """Events until ``end_batch`` (e.g. a thousand submissions or a worker's fifty finished
        tasks) update the tables only; one scheduling pass at the end places everything."""
        self.batch_depth += 1

    def end_batch(self) -> list:
        self.batch_depth -= 1
        if self.batch_depth == 0 and self.pass_due:
            return self.schedule()
        return []

    # ----- events: tasks -------------------------------------------------------------------
    def submit(self, task: Task, pending_deps: set) -> list:
        self.tasks[task.task_id] = task
        task.deps = set(pending_deps)
        if task.deps:
            task.state = TaskState.WAITING
            for oid in task.deps:
                self.waiting_on.setdefault(oid, []).append(task)
            return self._check_feasible(task.resources, task.name, task.placement)
        task.state = TaskState.READY
        self._enqueue(task)
        if task.key in self.feasible_classes:  # the common case, checked once per class
            return self.schedule()
        return self._check_feasible(task.resources, task.name, task.placement) + self.schedule()

    def object_available(self, object_id: bytes) -> list:
        waiters = self.waiting_on.pop(object_id, None)
        if not waiters:
            return []
        for task in waiters:
            task.deps.discard(object_id)
            if not task.deps and task.state is TaskState.WAITING:
                task.to(TaskState.READY)
                self._enqueue(task)
        return self.schedule()

    def object_failed(self, object_id: bytes) -> list:
        actions = []
        for task in self.waiting_on.pop(object_id, ()):
            if task.state is TaskState.WAITING:
                actions += self._finish(task, TaskState.FAILED, "dependency_failed", object_id)
        return actions

    def task_finished(self, worker_id: bytes, task_id: bytes, duration: float = 0.0) -> list:
        worker = self.workers.get(worker_id)
        task = self.tasks.pop(task_id, None)
        if task is not None and task.state is TaskState.RUNNING:
            task.to(TaskState.FINISHED)
            count, slowest = self.durations.get(task.function_id, (0, 0.0))
            self.durations[task.function_id] = (count + 1, max(duration, slowest * 0.95))
        if worker is None or worker.state is WorkerState.DEAD:
            return self.schedule()
        if worker.tasks and worker.tasks[0] is task:
            worker.tasks.popleft()
        elif task in worker.tasks:
            worker.tasks.remove(task)
        if not worker.tasks:
            self._release_worker(worker)
            self._idle(worker)
        return self.schedule()

    def task_errored(self, worker_id: bytes, task_id: bytes, duration: float,
                     retryable: bool) -> list:
        """The task raised; ``retryable``: the error is one its ``retry_exceptions`` names.
        With retries left it is queued again (a Retry action first), else it finished."""
        task = self.tasks.get(task_id)
        if not retryable or task is None or task.attempt >= task.max_retries:
            return self.task_finished(worker_id, task_id, duration)
        return [Retry(task)] + self._retry(worker_id, task)

    def _retry(self, worker_id: bytes, task: Task) -> list:
        """Free the task's worker and queue the task again."""
        worker = self.workers.get(worker_id)
        if worker is not None and task in worker.tasks:
            worker.tasks.remove(task)
            if not worker.tasks:
                self._release_worker(worker)
                self._idle(worker)
        task.attempt += 1
        self._requeue(task)
        return self.schedule()

    def cancel(self, task_id: bytes, force: bool) -> list:
        task = self.tasks.get(task_id)
        if task is None:
            return []
        task.cancelled = True
        if task.state is TaskState.WAITING:
            for oid in task.deps:
                lst = self.waiting_on.get(oid)
                if lst and task in lst:
                    lst.remove(task)
            return self._finish(task, TaskState.CANCELLED, "cancelled", None)
        if task.state is TaskState.READY:
            queue = self.queues.get(task.key)
            if queue and task in queue:
                queue.remove(task)
            return self._finish(task, TaskState.CANCELLED, "cancelled", None)
        if task.state is TaskState.RUNNING:
            worker = self.workers.get(task.worker_id)
            if worker is not None and worker.tasks and worker.tasks[0] is not task:
                worker.tasks.remove(task)  # pipelined, not started yet
                return [Revoke(task, worker.worker_id)] + self._finish(
                    task, TaskState.CANCELLED, "cancelled", None)
            return [Interrupt(task, task.worker_id, force)]
        return []

    # ----- events: workers -----------------------------------------------------------------
    def worker_started(self, worker_id: bytes, env: str = "") -> list:
        self._started(env)
        self.workers[worker_id] = Worker(worker_id, WorkerState.IDLE, idle_since=self.clock(),
                                         env=env)
        return self.schedule()

    def env_failed(self, env: str, reason: str) -> list:
        """A worker of ``env`` died before it started, once too often: its tasks (queued now or
        later) fail with ``reason`` instead of starting workers forever."""
        self._started(env)
        self.broken_envs[env] = reason
        return self.schedule()

    def _started(self, env: str) -> None:
        self.starting = max(0, self.starting - 1)
        if env and self.starting_envs[env] > 0:
            self.starting_envs[env] -= 1

    def retire_idle(self, idle_s: float) -> list:
        """Stop extra workers (started while others were blocked) idle for ``idle_s`` seconds,
        down to one per CPU: StopWorker actions."""
        extra = len(self.workers) - self.min_workers
        if extra <= 0:
            return []
        now = self.clock()
        idle = sorted((w for w in self.workers.values() if w.state is WorkerState.IDLE
                       and now - w.idle_since >= idle_s), key=lambda w: (not w.env, w.idle_since))
        actions = []
        for worker in idle[:extra]:
            del self.workers[worker.worker_id]
            worker.state = WorkerState.DEAD
            actions.append(StopWorker(worker.worker_id))
        return actions

    def worker_blocked(self, worker_id: bytes) -> list:
        """The worker waits in ``get``: lend its CPU back and take back its pipelined tasks
        (they might be what it waits for)."""
        worker = self.workers.get(worker_id)
        if worker is None or worker.state is not WorkerState.BUSY:
            return []
        worker.state = WorkerState.BLOCKED
        if worker.held is not None:
            worker.held_from.release(_without_gpu(worker.held), [])
        actions = []
        while len(worker.tasks) > 1:
            task = worker.tasks.pop()
            actions.append(Revoke(task, worker_id))
            self._requeue(task)
        return actions + self.schedule()

    def worker_unblocked(self, worker_id: bytes) -> list:
        worker = self.workers.get(worker_id)
        if worker is None or worker.state is not WorkerState.BLOCKED:
            return []
        worker.state = WorkerState.BUSY
        if worker.held is not None:
            worker.held_from.acquire(_without_gpu(worker.held))  # may overcommit for a moment
        return []

    def actor_blocked(self, actor_id: bytes) -> list:
        """An actor's call waits in ``get``: lend its CPU (not its GPU) back, like a task's."""
        actor = self.actors.get(actor_id)
        if actor is None or actor.held_from is None:
            return []
        actor.blocked += 1
        if actor.blocked > 1:
            return []
        actor.held_from.release(_without_gpu(actor.resources), [])
        return self.schedule()

    def actor_unblocked(self, actor_id: bytes) -> list:
        actor = self.actors.get(actor_id)
        if actor is None or actor.held_from is None or actor.blocked == 0:
            return []
        actor.blocked -= 1
        if actor.blocked == 0:
            actor.held_from.acquire(_without_gpu(actor.resources))  # may overcommit for a moment
        return []

    def worker_died(self, worker_id: bytes, env: str = "") -> list:
        worker = self.workers.pop(worker_id, None)
        actions: list = []
        if worker is None:
            self._started(env)
            return actions + self.schedule()
        if worker.state is WorkerState.BLOCKED and worker.held is not None:
            worker.held = {"GPU": worker.held["GPU"]} if "GPU" in worker.held else {}
        self._release_worker(worker)
        worker.state = WorkerState.DEAD
        for position, task in enumerate(worker.tasks):
            if task.cancelled:
                actions += self._finish(task, TaskState.CANCELLED, "cancelled", None)
            elif position == 0 and task.attempt >= task.max_retries:
                actions += self._finish(task, TaskState.FAILED, "worker_crashed", worker_id)
            else:
                task.attempt += 1 if position == 0 else 0
                self._requeue(task)
        return actions + self.schedule()

    # ----- events: actors and placement groups ----------------------------------------------
    def request_actor(self, actor: Actor) -> list:
        self.actors[actor.actor_id] = actor
        self.pending_actors.append(actor)
        return self._check_feasible(actor.resources, actor.name, actor.placement) + self.schedule()

    def actor_exited(self, actor_id: bytes) -> list:
        actor = self.actors.pop(actor_id, None)
        if actor is None:
            return []
        if actor in self.pending_actors:
            self.pending_actors.remove(actor)
        elif actor.held_from is not None:
            lent = _without_gpu(actor.resources) if actor.blocked else {}
            actor.held_from.release({k: v for k, v in actor.resources.items() if k not in lent},
                                    actor.gpu_ids)
        return self.schedule()

    def create_group(self, group: PlacementGroup) -> list:
        if group.strategy == "STRICT_SPREAD" and len(group.bundles) > 1:
            return [Warn(f"placement group {group.name or group.group_id.hex()[:8]} asks for "
                             f"STRICT_SPREAD over {len(group.bundles)} bundles, but this cluster "
                             "has one node; it can never be placed. Use PACK or SPREAD.")]
        self.groups[group.group_id] = group
        self.pending_groups.append(group)
        total = _sum_bundles(group.bundles)
        actions = []
        if not self.pool.feasible(total):
            actions.append(Warn(f"placement group {group.name or group.group_id.hex()[:8]} needs "
                                    f"{_fmt(total)} but the cluster has {_fmt(self.pool.total)} in all; "
                                    "it stays pending until resources are added."))
        return actions + self.schedule()

    def remove_group(self, group_id: bytes) -> list:
        group = self.groups.pop(group_id, None)
        if group is None:
            return []
        group.removed = True
        if group in self.pending_groups:
            self.pending_groups.remove(group)
        elif group.ready:
            self.pool.release(_sum_bundles(group.bundles), group.gpu_ids)
        return self.schedule()

    # ----- the scheduling pass ---------------------------------------------------------------
    def schedule(self) -> list:
        if self.batch_depth:
            self.pass_due = True
            return []
        self.pass_due = False
        actions: list = []
        self._place_groups(actions)
        self._start_actors(actions)
        idle: dict[str, list[Worker]] = {}  # by env
        for worker in self.workers.values():
            if worker.state is WorkerState.IDLE:
                idle.setdefault(worker.env, []).append(worker)
        demand: dict[str, int] = {}
        for key, queue in list(self.queues.items()):
            while queue:
                task = queue[0]
                if self.broken_envs and task.env in self.broken_envs:
                    queue.popleft()
                    actions += self._finish(task, TaskState.FAILED, "runtime_env_failed",
                                            self.broken_envs[task.env])
                    continue
                pool = self._pool_for(task.placement, task.resources)
                if pool is None:
                    break  # placement group not ready yet
                if pool.fits(task.resources):
                    candidates = idle.get(task.env)
                    if candidates:
                        worker = candidates.pop()
                        queue.popleft()
                        actions.append(self._dispatch(task, worker, pool))
                        continue
                    demand[task.env] = demand.get(task.env, 0) + _copies(
                        pool.available, task.resources, len(queue))
                if not self._pipeline(task, queue, actions):
                    break
            if not queue:
                del self.queues[key]
        blocked = sum(1 for w in self.workers.values() if w.state is WorkerState.BLOCKED)
        room = self.max_workers + blocked - len(self.workers) - self.starting
        for env, wanted in demand.items():
            if env in self.broken_envs:
                continue
            need = wanted - (self.starting_envs[env] if env else
                             self.starting - sum(self.starting_envs.values()))
            if need > room:
                room += self._evict_idle(idle, env, need - room, actions)
            room -= self._start_workers(env, min(need, room), actions)
        if len(self.workers) + self.starting < self.min_workers and "" not in self.broken_envs:
            self._start_workers("", self.min_workers - len(self.workers) - self.starting, actions)
        return actions

    def _start_workers(self, env: str, count: int, actions: list) -> int:
        for _ in range(max(0, count)):
            self.starting += 1
            if env:
                self.starting_envs[env] += 1
            actions.append(StartWorker(env) if env else _START_WORKER)
        return max(0, count)

    def _evict_idle(self, idle: dict[str, list[Worker]], env: str, count: int,
                    actions: list) -> int:
        """Stop up to ``count`` idle workers of other envs (oldest first) to make room for a
        worker of ``env``; returns how many."""
        others = sorted((w for e, ws in idle.items() if e != env for w in ws),
                        key=lambda w: w.idle_since)[:count]
        for worker in others:
            idle[worker.env].remove(worker)
            del self.workers[worker.worker_id]
            worker.state = WorkerState.DEAD
            actions.append(StopWorker(worker.worker_id))
        return len(others)

    # ----- helpers ---------------------------------------------------------------------------
    def _dispatch(self, task: Task, worker: Worker, pool: ResourcePool) -> Dispatch:
        worker.gpu_ids = pool.acquire(task.resources)
        worker.held, worker.held_from = task.resources, pool
        worker.state = WorkerState.BUSY
        worker.tasks.append(task)
        task.to(TaskState.RUNNING)
        task.worker_id = worker.worker_id
        return Dispatch(task, worker.worker_id, worker.gpu_ids)

    def _pipeline(self, task: Task, queue: collections.deque, actions: list) -> bool:
        """Queue fast tasks behind busy workers of the same class; True if any were placed."""
        if not self._is_fast(task.function_id):
            return False
        placed = False
        for worker in self.workers.values():
            if (worker.state is WorkerState.BUSY and worker.tasks
                    and worker.tasks[-1].function_id == task.function_id
                    and worker.tasks[-1].key == task.key and len(worker.tasks) < PIPELINE_DEPTH):
                while queue and len(worker.tasks) < PIPELINE_DEPTH and queue[0].function_id == task.function_id:
                    nxt = queue.popleft()
                    worker.tasks.append(nxt)
                    nxt.to(TaskState.RUNNING)
                    nxt.worker_id = worker.worker_id
                    actions.append(Dispatch(nxt, worker.worker_id, worker.gpu_ids))
                    placed = True
                if not queue:
                    break
        return placed and bool(queue) and queue[0].function_id != task.function_id

    def _requeue(self, task: Task) -> None:
        task.to(TaskState.READY)
        task.worker_id = None
        self._enqueue(task, front=True)

    def _idle(self, worker: Worker) -> None:
        worker.state = WorkerState.IDLE
        worker.idle_since = self.clock()

    def _is_fast(self, function_id: bytes) -> bool:
        """Seen at least 3 times, and even its slow runs (a decaying maximum) were quick."""
        count, slowest = self.durations.get(function_id, (0, 0.0))
        return count >= 3 and slowest < PIPELINE_BELOW_S

    def _release_worker(self, worker: Worker) -> None:
        if worker.held is not None:
            worker.held_from.release(worker.held, worker.gpu_ids)
        worker.held, worker.held_from, worker.gpu_ids = None, None, []

    def _enqueue(self, task: Task, front: bool = False) -> None:
        queue = self.queues.get(task.key)
        if queue is None:
            queue = self.queues[task.key] = collections.deque()
        queue.appendleft(task) if front else queue.append(task)

    def _finish(self, task: Task, state: TaskState, reason: str, detail: Any) -> list:
        task.to(state)
        self.tasks.pop(task.task_id, None)
        return [Fail(task, reason, detail)]

    def _pool_for(self, placement: tuple | None, request: dict[str, float]) -> ResourcePool | None:
        """The pool a request draws from: the node's, its bundle's, or (bundle index -1, as for
        tasks captured into their parent's group) the first bundle with room for it, else the
        one with the most CPU free. None while its group is not placed."""
        if placement is None:
            return self.pool
        group = self.groups.get(placement[0])
        if group is None or not group.ready:
            return None
        index = placement[1]
        if index >= 0:
            return group.pools[index]
        for pool in group.pools:
            if pool.fits(request):
                return pool
        return max(group.pools, key=lambda p: p.available.get("CPU", 0.0))

    def _place_groups(self, actions: list) -> None:
        while self.pending_groups:
            group = self.pending_groups[0]
            total = _sum_bundles(group.bundles)
            if not self.pool.fits(total):
                return
            self.pending_groups.popleft()
            group.gpu_ids = self.pool.acquire(total)
            group.pools = [ResourcePool(bundle, gpu_ids=ids) for bundle, ids in
                           zip(group.bundles, _bundle_gpu_ids(group.bundles, group.gpu_ids))]
            group.ready = True
            actions.append(GroupReady(group))

    def _start_actors(self, actions: list) -> None:
        for actor in list(self.pending_actors):
            pool = self._pool_for(actor.placement, actor.resources)
            if pool is not None and pool.fits(actor.resources):
                self.pending_actors.remove(actor)
                actor.gpu_ids = pool.acquire(actor.resources)
                actor.held_from = pool
                actions.append(StartActor(actor, actor.gpu_ids))

    def _check_feasible(self, request: dict[str, float], name: str, placement) -> list:
        if placement is None:  # the node's totals never change: each class is checked once
            key = (tuple(sorted(request.items())), None)  # as Task.key
            if key in self.feasible_classes:
                return []
            if self.pool.feasible(request):
                self.feasible_classes.add(key)
                return []
        return self._check_feasible_slowly(request, name, placement)

    def _check_feasible_slowly(self, request: dict[str, float], name: str, placement) -> list:
        if placement is not None:
            group = self.groups.get(placement[0])
            if group is None:
                return [Warn(f"{name} names a placement group that does not exist (removed?); "
                                 "it will never run.")]
            if placement[1] >= len(group.bundles):
                return [Warn(f"{name} asks for bundle {placement[1]} of a placement group with "
                                 f"{len(group.bundles)} bundles; it will never run.")]
            bundles = group.bundles if placement[1] < 0 else [group.bundles[placement[1]]]
            if any(ResourcePool(b).feasible(request) for b in bundles):
                return []
            where = f"its placement group's bundles {group.bundles}"
        elif self.pool.feasible(request):
            return []
        else:
            where = f"this cluster's {_fmt(self.pool.total)}"
        key = (name, tuple(sorted(request.items())), placement)
        if key in self.warned:
            return []
        self.warned.add(key)
        return [Warn(f"{name} needs {_fmt(request)}, more than {where} can ever provide; it "
                         "will wait until a node with those resources joins. Lower the request, "
                         "or start raylite with more resources (init(num_cpus=..., num_gpus=..., "
                         "resources={...})).")]

    # ----- introspection ---------------------------------------------------------------------
    def available(self) -> dict[str, float]:
        return {k: max(0.0, v) for k, v in self.pool.available.items()}


def _copies(available: dict[str, float], request: dict[str, float], limit: int) -> int:
    """How many tasks of ``request`` fit into ``available`` at once (at most ``limit``)."""
    counts = [int((available.get(k, 0.0) + 1e-9) // v) for k, v in request.items() if v > 0]
    return max(1, min([limit] + counts))


def _without_gpu(request: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in request.items() if k != "GPU"}


def _sum_bundles(bundles: list[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for bundle in bundles:
        for k, v in bundle.items():
            total[k] = total.get(k, 0.0) + v
    return total


def _bundle_gpu_ids(bundles: list[dict[str, float]], gpu_ids: list[int]) -> list[list[int]]:
    """Deal a group's GPU ids out to its bundles: a bundle of >= 1 GPU gets ids of its own;
    fractional bundles share one id while their fractions add up to at most 1."""
    dealt: list[list[int]] = []
    index, used = 0, 0.0
    for bundle in bundles:
        amount = bundle.get("GPU", 0.0)
        if amount <= 0:
            dealt.append([])
            continue
        if amount < 1:
            if used + amount > 1 + 1e-9:
                index, used = index + 1, 0.0
            dealt.append(list(gpu_ids[index:index + 1]))
            used += amount
            continue
        if used > 0:
            index, used = index + 1, 0.0
        count = math.ceil(amount)
        dealt.append(list(gpu_ids[index:index + count]))
        index += count
    return dealt


def _fmt(resources: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(resources.items())) + "}"
