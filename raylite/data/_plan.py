"""The lazy plan and the streaming executor.

A Dataset is a plan: a list of *block tasks*, each a source (a block already in the object
store, or a ReadTask that makes one) followed by row-wise stages. Transforms append a stage to
every block task; nothing runs until the data is consumed. Then each block task becomes ONE
remote task that reads its source and runs all its stages in a row (fusion):

    source ──► map ──► filter ──► map_batches ──► (block, metadata)      one task per block

    block tasks ──► stream() ──► at most max_in_flight tasks submitted ahead of the consumer
                                 ──► (block_ref, metadata) in order, as the consumer asks

All-to-all operations (shuffle, sort, repartition, split, limit, union) are *barriers*: a
Barrier runs once, the first time its output is needed, and yields fresh block tasks whose
sources are blocks in the object store; later stages fuse onto those.

Only raylite's public API is used (remote, get, put, wait, cluster_resources).
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import raylite
from raylite.data import _block
from raylite.data._block import Block, BlockMetadata


# ==========================================================================================
# configuration
# ==========================================================================================
@dataclass
class DataContext:
    """Settings of raylite.data for this process (``DataContext.get_current()``).

    Attributes:
        max_blocks_in_flight: block tasks submitted ahead of the consumer; None means twice
            the cluster's CPUs.
        default_parallelism: blocks a creation function makes when not told.
        min_rows_per_block: creation functions make blocks at least this large (when they can).
        max_rows_per_block: ... and at most this large, so that streaming memory stays bounded.
    """

    max_blocks_in_flight: int | None = None
    default_parallelism: int = 200
    min_rows_per_block: int = 1000
    max_rows_per_block: int = 1_000_000

    _current = None
    _lock = threading.Lock()

    @staticmethod
    def get_current() -> "DataContext":
        with DataContext._lock:
            if DataContext._current is None:
                DataContext._current = DataContext()
            return DataContext._current

    def num_blocks_for(self, num_rows: int, parallelism: int | None) -> int:
        """How many blocks to cut ``num_rows`` rows into."""
        if parallelism is not None:
            if not isinstance(parallelism, int) or parallelism < 1:
                raise ValueError(f"parallelism must be a positive int, got {parallelism!r}")
            return max(1, min(parallelism, num_rows))
        by_size = -(-num_rows // self.max_rows_per_block)
        by_count = min(self.default_parallelism, -(-num_rows // self.min_rows_per_block))
        return max(1, by_size, by_count)


def max_in_flight() -> int:
    configured = DataContext.get_current().max_blocks_in_flight
    if configured is not None:
        return max(1, configured)
    cpus = raylite.cluster_resources().get("CPU", 1) or 1
    return max(2, int(2 * cpus))


# ==========================================================================================
# sources and stages
# ==========================================================================================
class ReadTask:
    """Makes one block when called (inside the block's task): a range slice, a file, ..."""

    def __init__(self, read: Callable[[], Block], description: str,
                 num_rows: int | None = None):
        self.read = read
        self.description = description
        self.num_rows = num_rows

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


def function_name(fn: Any) -> str:
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__name__


def annotate_error(exc: BaseException, operation: str, where: str) -> BaseException:
    """Tell the user which operation failed on which row, keeping the exception's class."""
    message = f"raylite.data: {operation} failed on {where}"
    if hasattr(exc, "add_note"):
        exc.add_note(message)
    else:  # Python 3.10: no notes; put it in the message
        exc.args = (f"{exc} ({message})",) + tuple(exc.args[1:])
    return exc


def describe_row(row: Any) -> str:
    text = repr(row)
    return "row " + (text if len(text) <= 200 else text[:197] + "...")


class Stage:
    """A row-wise step: block in, block out. ``name`` reads like ``map(<lambda>)``."""

    name = "stage"
    remote_args: dict = {}

    def __call__(self, block: Block) -> Block:
        raise NotImplementedError


class MapRows(Stage):
    def __init__(self, fn: Callable):
        self.fn = fn
        self.name = f"map({function_name(fn)})"

    def __call__(self, block: Block) -> Block:
        fn, out, items = self.fn, [], _block.rows(block)
        append = out.append
        try:
            for row in items:
                append(fn(row))
        except Exception as exc:
            raise annotate_error(exc, self.name, describe_row(row))  # noqa: F821 (set by loop)
        return _block.from_rows(out)


class FilterRows(Stage):
    def __init__(self, fn: Callable):
        self.fn = fn
        self.name = f"filter({function_name(fn)})"

    def __call__(self, block: Block) -> Block:
        fn, keep = self.fn, []
        append = keep.append
        items = _block.rows(block)
        try:
            for row in items:
                append(bool(fn(row)))
        except Exception as exc:
            raise annotate_error(exc, self.name, describe_row(row))  # noqa: F821
        if type(block) is list:
            return [item for item, kept in zip(items, keep) if kept]
        return block.filter(_block.pa().array(keep, type=_block.pa().bool_()))


class FlatMapRows(Stage):
    def __init__(self, fn: Callable):
        self.fn = fn
        self.name = f"flat_map({function_name(fn)})"

    def __call__(self, block: Block) -> Block:
        fn, out, items = self.fn, [], _block.rows(block)
        extend = out.extend
        try:
            for row in items:
                extend(fn(row))
        except Exception as exc:
            raise annotate_error(exc, self.name, describe_row(row))  # noqa: F821
        return _block.from_rows(out)


class MapBatches(Stage):
    """``map_batches``: the function sees slices of ``batch_size`` rows in ``batch_format``."""

    def __init__(self, fn: Callable, batch_size: int | None, batch_format: str,
                 fn_args: tuple = (), fn_kwargs: dict | None = None,
                 fn_constructor_args: tuple = (), fn_constructor_kwargs: dict | None = None,
                 remote_args: dict | None = None):
        self.fn = fn
        self.batch_size = batch_size
        self.batch_format = batch_format
        self.fn_args = tuple(fn_args)
        self.fn_kwargs = dict(fn_kwargs or {})
        self.constructor = (tuple(fn_constructor_args), dict(fn_constructor_kwargs or {}))
        self.remote_args = dict(remote_args or {})
        self.name = f"map_batches({function_name(fn)})"
        self._callable: Callable | None = None

    def _function(self) -> Callable:
        if self._callable is None:  # a class: one instance per task, as Ray's actor compute does
            args, kwargs = self.constructor
            self._callable = self.fn(*args, **kwargs) if isinstance(self.fn, type) else self.fn
        return self._callable

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_callable"] = None
        return state

    def __call__(self, block: Block) -> Block:
        total = _block.num_rows(block)
        if total == 0:
            return block
        fn, size = self._function(), self.batch_size or total
        outputs = []
        for start in range(0, total, size):
            piece = _block.slice_block(block, start, start + size)
            batch = _block.to_batch(piece, self.batch_format)
            try:
                result = fn(batch, *self.fn_args, **self.fn_kwargs)
            except Exception as exc:
                first = _block.rows(_block.slice_block(piece, 0, 1))[0]
                where = (f"a batch of {_block.num_rows(piece)} rows (rows {start}..) "
                         f"starting with {describe_row(first)}")
                raise annotate_error(exc, self.name, where)
            outputs.append(_block.from_batch(result, self.name))
        return _block.concat(outputs)


def _require_table(block: Block, operation: str):
    if type(block) is list:
        if not block:
            return None
        raise ValueError(f"{operation} needs a tabular dataset (rows that are dicts), but the "
                         f"rows are {type(block[0]).__name__}s")
    return block


def check_columns(requested: list[str], existing: list[str], operation: str) -> None:
    missing = [c for c in requested if c not in existing]
    if missing:
        raise ValueError(f"{operation}: no column {', '.join(map(repr, missing))}; the dataset "
                         f"has columns {existing}")


class AddColumn(Stage):
    def __init__(self, column: str, fn: Callable):
        self.column, self.fn = column, fn
        self.name = f"add_column({column!r}, {function_name(fn)})"

    def __call__(self, block: Block) -> Block:
        table = _require_table(block, self.name)
        if table is None:
            return block
        frame = table.to_pandas()
        try:
            frame[self.column] = self.fn(frame)
        except Exception as exc:
            first = _block.rows(table.slice(0, 1))[0] if table.num_rows else None
            where = f"a batch of {table.num_rows} rows starting with {describe_row(first)}"
            raise annotate_error(exc, self.name, where)
        return _block.from_batch(frame, self.name)


class SelectColumns(Stage):
    def __init__(self, columns: list[str], drop: bool):
        self.columns, self.drop = list(columns), drop
        self.name = f"{'drop' if drop else 'select'}_columns({self.columns})"

    def __call__(self, block: Block) -> Block:
        table = _require_table(block, self.name)
        if table is None:
            return block
        check_columns(self.columns, table.column_names, self.name)
        if self.drop:
            return table.drop_columns(self.columns)
        return table.select(self.columns)


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
    block = source() if isinstance(source, ReadTask) else source
    for stage in stages:
        block = stage(block)
    if tail is not None:
        block = tail(block)
    return block, _block.metadata(block)


_execute_remote = raylite.remote(num_returns=2)(_execute_block)


@dataclass
class ExecutionStats:
    """What one execution did: ``tasks_submitted``, the most block tasks ever in flight
    (submitted, not yet consumed), and the in-flight count at each block handed out."""

    tasks_submitted: int = 0
    blocks_output: int = 0
    peak_in_flight: int = 0
    max_in_flight: int = 0
    in_flight_at_output: list = field(default_factory=list)
    operations: list = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.tasks_submitted} tasks, {self.blocks_output} blocks out, at most "
                f"{self.peak_in_flight} in flight (bound {self.max_in_flight}); "
                f"operations: {' | '.join(self.operations) or 'read'}")


class _Submitter:
    """Submits block tasks, sharing one put of each stage tuple among the tasks using it."""

    def __init__(self, stats: ExecutionStats):
        self.stats = stats
        self._stage_refs: dict[int, tuple] = {}

    def submit(self, task: BlockTask) -> tuple[Any, Any]:
        if task.is_done():
            return task.source.ref, task.source.meta
        source = task.source.ref if isinstance(task.source, RefInput) else task.source
        stages: Any = task.stages
        if stages:
            cached = self._stage_refs.get(id(stages))
            if cached is None:
                cached = self._stage_refs[id(stages)] = (stages, raylite.put(stages))
            stages = cached[1]
        remote_args = _merged_remote_args(task)
        function = _execute_remote.options(**remote_args) if remote_args else _execute_remote
        block_ref, meta_ref = function.remote(source, stages, task.tail)
        self.stats.tasks_submitted += 1
        return block_ref, meta_ref


def _merged_remote_args(task: BlockTask) -> dict:
    merged: dict = {}
    for stage in task.stages:
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

    def submit_more() -> None:
        while len(pending) < bound:
            item = next(upcoming, None)
            if item is None:
                return
            pending.append((item[0], *submitter.submit(item[1])))
            stats.peak_in_flight = max(stats.peak_in_flight, len(pending))

    submit_more()
    while pending:
        if ordered:
            index, block_ref, meta = pending[0]
            out: tuple = (block_ref, meta)
        else:
            index, block_ref, meta = _next_finished(pending)
            out = (index, block_ref, meta)
        stats.blocks_output += 1
        stats.in_flight_at_output.append(len(pending))
        yield out
        if ordered:
            pending.popleft()
        else:
            pending.remove(next(p for p in pending if p[0] == index))
        submit_more()


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


def submit_all(tasks: list[BlockTask], stats: ExecutionStats | None = None) -> list[BlockTask]:
    """Submit every block task now, without waiting (a pipeline window running ahead)."""
    submitter = _Submitter(stats or ExecutionStats())
    return [BlockTask(RefInput(*submitter.submit(task))) for task in tasks]
