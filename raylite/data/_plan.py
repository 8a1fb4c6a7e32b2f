"""The lazy plan and the streaming executor.

A Dataset is a plan: a list of *block tasks*, each a source (a block already in the object
store, or a ReadTask that makes one) followed by row-wise stages. Transforms append a stage to
every block task; nothing runs until the data is consumed. Then each block task becomes ONE
remote task that reads its source and runs all its stages in a row (fusion):

    source ──► map ──► filter ──► map_batches ──► (block, metadata)      one task per block

    block tasks ──► stream() ──► at most max_in_flight tasks submitted ahead of the consumer
                                 ──► (block_ref, metadata) in order, as the consumer asks

A block task whose stages ask for an actor pool (a callable class in map, flat_map, filter or
map_batches) runs as a call to one actor of a pool instead (``_actors.py``); the pool lives as
long as the stream. Consumed blocks are released by the consumer, so the object store holds
about max_in_flight blocks however large the dataset: the streaming executor's backpressure.

All-to-all operations (shuffle, sort, repartition, split, limit, union, zip, groupby) are
*barriers*: a Barrier runs once, the first time its output is needed, and yields fresh block
tasks whose sources are blocks in the object store; later stages fuse onto those.

Only raylite's public API is used (remote, get, put, wait, kill, cluster_resources).
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import raylite
from raylite.data import _block
from raylite.data._block import Block, BlockMetadata
from raylite.data.context import DataContext  # noqa: F401 (re-exported)
from raylite.data._progress import ProgressBar
from raylite.data._stages import (AddColumn, FilterRows, FlatMapRows, MapBatches,  # noqa: F401
                                  MapRows, SelectColumns, Stage, check_columns)


# ==========================================================================================
# configuration (DataContext lives in context.py; imported here for older imports)
# ==========================================================================================
def max_in_flight() -> int:
    configured = DataContext.get_current().max_blocks_in_flight
    if configured is not None:
        return max(1, configured)
    cpus = raylite.cluster_resources().get("CPU", 1) or 1
    return max(2, int(2 * cpus))


# ==========================================================================================
# sources
# ==========================================================================================
class ReadTask:
    """Makes one block when called (inside the block's task): a range slice, a file, ...

    ``read_numpy``, where given, makes the same rows as one ndarray: a ``map_batches`` with
    ``batch_format="numpy"`` right after the read then gets its batches without building
    Python objects first (``range(n)``'s ints).
    """

    def __init__(self, read: Callable[[], Block], description: str,
                 num_rows: int | None = None, read_numpy: Callable | None = None):
        self.read = read
        self.description = description
        self.num_rows = num_rows
        self.read_numpy = read_numpy

    def __call__(self) -> Block:
        return self.read()

    def __repr__(self) -> str:
        return f"ReadTask({self.description})"


class RefInput:
    """A block already in the object store; ``meta`` is BlockMetadata or a ref to it."""

    __slots__ = ("ref", "meta")

    def __init__(self, ref: Any, meta: Any):
        self.ref = ref
        self.meta = meta

    def metadata(self) -> BlockMetadata:
        if not isinstance(self.meta, BlockMetadata):
            self.meta = raylite.get(self.meta)
        return self.meta

    def known_metadata(self) -> BlockMetadata | None:
        return self.meta if isinstance(self.meta, BlockMetadata) else None


# ==========================================================================================
# block tasks and the plan
# ==========================================================================================
@dataclass(frozen=True)
class BlockTask:
    """One output block: its source (RefInput or ReadTask) and the stages to run on it."""

    source: Any
    stages: tuple = ()
    tail: Any = None  # a terminal step for this block only (a write), not shared

    def is_done(self) -> bool:
        return not self.stages and self.tail is None and isinstance(self.source, RefInput)


class Barrier:
    """An all-to-all step: ``run()`` (once, cached) returns its output block tasks."""

    def __init__(self, name: str, run: Callable[[], list[BlockTask]]):
        self.name = name
        self._run = run
        self._result: list[BlockTask] | None = None
        self._lock = threading.Lock()

    def tasks(self) -> list[BlockTask]:
        with self._lock:
            if self._result is None:
                self._result = self._run()
                self._run = None  # free what the closure held (upstream plans)
            return self._result

    @property
    def done(self) -> bool:
        return self._result is not None


class ExecutionPlan:
    """Block tasks (given, or from a Barrier) with the stages added since."""

    def __init__(self, inputs: "list[BlockTask] | Barrier", stages: tuple = ()):
        self._inputs = inputs
        self.stages = stages

    def with_stage(self, stage: Stage) -> "ExecutionPlan":
        return ExecutionPlan(self._inputs, self.stages + (stage,))

    @property
    def is_lazy_barrier(self) -> bool:
        return isinstance(self._inputs, Barrier) and not self._inputs.done

    def block_tasks(self) -> list[BlockTask]:
        inputs = self._inputs.tasks() if isinstance(self._inputs, Barrier) else self._inputs
        if not self.stages:
            return list(inputs)
        combined: dict[int, tuple] = {}
        out = []
        for task in inputs:
            stages = combined.get(id(task.stages))
            if stages is None:
                stages = combined[id(task.stages)] = task.stages + self.stages
            out.append(BlockTask(task.source, stages, task.tail))
        return out

    def known_block_tasks(self) -> list[BlockTask] | None:
        """The block tasks if no barrier has to run to know them."""
        return None if self.is_lazy_barrier else self.block_tasks()

    def describe(self) -> list[str]:
        """The operations this plan runs, fused ones joined with '->'."""
        head = [self._inputs.name] if isinstance(self._inputs, Barrier) else []
        return head + ["->".join(s.name for s in self.stages)] if self.stages else head


# ==========================================================================================
# execution
# ==========================================================================================
def _execute_block(source: Any, stages: tuple, tail: Any):
    if isinstance(source, ReadTask):
        if source.read_numpy is not None and stages and isinstance(stages[0], MapBatches) \
                and stages[0].batch_format == "numpy":
            block, stages = stages[0].run_on_array(source.read_numpy()), stages[1:]
        else:
            block = source()
    else:
        block = source
    for stage in stages:
        block = stage(block)
    if tail is not None:
        block = tail(block)
    return block, _block.metadata(block)


_execute_remote = raylite.remote(num_returns=2)(_execute_block)


@dataclass
class ExecutionStats:
    """What one execution did: ``tasks_submitted``, the most block tasks ever in flight
    (submitted, not yet consumed), the in-flight count at each block handed out, and the
    actors that actor-pool stages used."""

    tasks_submitted: int = 0
    blocks_output: int = 0
    peak_in_flight: int = 0
    max_in_flight: int = 0
    in_flight_at_output: list = field(default_factory=list)
    operations: list = field(default_factory=list)
    actors_started: int = 0
    wall_time_s: float = 0.0

    def summary(self) -> str:
        actors = f", {self.actors_started} actors" if self.actors_started else ""
        return (f"{self.tasks_submitted} tasks{actors}, {self.blocks_output} blocks out, at most "
                f"{self.peak_in_flight} in flight (bound {self.max_in_flight}), "
                f"{self.wall_time_s:.3f} s; operations: {' | '.join(self.operations) or 'read'}")


class _Submitter:
    """Submits block tasks: to a task, or to an actor pool when a stage asks for one. Each
    stage tuple is put once and shared by the tasks using it."""

    def __init__(self, stats: ExecutionStats):
        self.stats = stats
        self._stage_refs: dict[int, tuple] = {}
        self._pools: dict[int, Any] = {}

    def submit(self, task: BlockTask) -> tuple[Any, Any, Any]:
        """``(block_ref, metadata or its ref, release token)``."""
        if task.is_done():
            return task.source.ref, task.source.meta, None
        source = task.source.ref if isinstance(task.source, RefInput) else task.source
        stages: Any = task.stages
        if stages:
            cached = self._stage_refs.get(id(stages))
            if cached is None:
                cached = self._stage_refs[id(stages)] = (stages, raylite.put(stages))
            stages = cached[1]
        self.stats.tasks_submitted += 1
        strategy_stage = next((s for s in task.stages if s.compute is not None), None)
        if strategy_stage is not None:
            pool = self._pool(strategy_stage, task)
            block_ref, meta_ref, index = pool.submit(source, stages, task.tail)
            return block_ref, meta_ref, (pool, index)
        remote_args = _merged_remote_args(task.stages)
        function = _execute_remote.options(**remote_args) if remote_args else _execute_remote
        block_ref, meta_ref = function.remote(source, stages, task.tail)
        return block_ref, meta_ref, None

    def _pool(self, stage: Stage, task: BlockTask):
        pool = self._pools.get(id(stage.compute))
        if pool is None:
            from raylite.data._actors import ActorPool
            pool = self._pools[id(stage.compute)] = ActorPool(
                stage.compute, _merged_remote_args(task.stages))
        return pool

    @staticmethod
    def release(token: Any) -> None:
        if token is not None:
            token[0].release(token[1])

    def close(self) -> None:
        """End the actor pools (their results stay in the object store)."""
        self.stats.actors_started += sum(p.size for p in self._pools.values())
        for pool in self._pools.values():
            pool.shutdown()
        self._pools.clear()


def _merged_remote_args(stages: tuple) -> dict:
    merged: dict = {}
    for stage in stages:
        for key, value in stage.remote_args.items():
            if key in ("num_cpus", "num_gpus", "memory"):
                merged[key] = max(merged.get(key, 0), value)
            else:
                merged[key] = value
    return merged


def stream(tasks: list[BlockTask], *, ordered: bool = True, stats: ExecutionStats | None = None,
           limit: int | None = None) -> Iterator[tuple[Any, Any]]:
    """Run block tasks, yielding ``(block_ref, metadata or its ref)`` as the consumer asks.

    At most ``limit`` (default: ``max_in_flight()``) tasks are submitted but not yet consumed;
    a block counts as consumed when the consumer asks for the next one. ``ordered=False``
    yields blocks as they finish, with their index: ``(index, block_ref, metadata)``.
    """
    stats = stats if stats is not None else ExecutionStats()
    bound = limit or max_in_flight()
    stats.max_in_flight = bound
    submitter = _Submitter(stats)
    pending: collections.deque = collections.deque()
    upcoming = iter(enumerate(tasks))
    started = time.perf_counter()
    bar = ProgressBar(" | ".join(stats.operations) or "read", len(tasks))

    def submit_more() -> None:
        while len(pending) < bound:
            item = next(upcoming, None)
            if item is None:
                return
            pending.append((item[0], *submitter.submit(item[1])))
            stats.peak_in_flight = max(stats.peak_in_flight, len(pending))

    try:
        submit_more()
        while pending:
            if ordered:
                entry = pending[0]
                out: tuple = (entry[1], entry[2])
            else:
                entry = _next_finished(pending)
                out = (entry[0], entry[1], entry[2])
            stats.blocks_output += 1
            stats.in_flight_at_output.append(len(pending))
            yield out
            bar.update(1)
            if ordered:
                pending.popleft()
            else:
                pending.remove(entry)
            submitter.release(entry[3])
            submit_more()
    finally:
        bar.close()
        submitter.close()
        stats.wall_time_s += time.perf_counter() - started


def _next_finished(pending: collections.deque) -> tuple:
    for item in pending:
        if isinstance(item[2], BlockMetadata):
            return item
    refs = [item[2] for item in pending]
    ready, _ = raylite.wait(refs, num_returns=1)
    return next(item for item in pending if item[2] == ready[0])


def resolve_metadata(meta: Any) -> BlockMetadata:
    return meta if isinstance(meta, BlockMetadata) else raylite.get(meta)


def execute_to_refs(tasks: list[BlockTask], stats: ExecutionStats | None = None) -> list[RefInput]:
    """Run every block task to completion; the blocks stay in the object store."""
    results: list = [None] * len(tasks)
    for index, block_ref, meta in stream(tasks, ordered=False, stats=stats):
        results[index] = RefInput(block_ref, resolve_metadata(meta))
    return results


def submit_all(tasks: list[BlockTask], stats: ExecutionStats | None = None
               ) -> tuple[list[BlockTask], Any]:
    """Submit every block task now, without waiting (a pipeline window running ahead).
    Returns the tasks of the coming results and a keep-alive for the actor pools they use."""
    submitter = _Submitter(stats or ExecutionStats())
    started = []
    for task in tasks:
        block_ref, meta, _token = submitter.submit(task)
        started.append(BlockTask(RefInput(block_ref, meta)))
    return started, submitter
