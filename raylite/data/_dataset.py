"""Dataset: a lazy plan over blocks, with the book's API (map, filter, flat_map, show, take...).

Transforms return a new Dataset at once; work happens when data is consumed (take, show,
count, iter_rows, iter_batches, to_pandas, write_*, materialize), through the streaming
executor in _plan.py: one fused task per block, a bounded number in flight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

import raylite
from raylite.data import _block, _exchange
from raylite.data._block import Block
from raylite.data._aggregate_methods import AggregateMethods
from raylite.data._columns import ColumnMethods
from raylite.data.context import current_api
from raylite.data._export import ExportMethods
from raylite.data._plan import (Barrier, BlockTask, ExecutionPlan, ExecutionStats, RefInput,
                                execute_to_refs, resolve_metadata, stream, submit_all)
from raylite.data._arguments import check_positive_int, check_remote_args, user_fn_strategy
from raylite.data._stages import FilterRows, FlatMapRows, MapBatches, MapRows

if TYPE_CHECKING:
    from raylite.data._pipeline import DatasetPipeline

class Dataset(ExportMethods, ColumnMethods, AggregateMethods):
    """A distributed collection of rows, split into blocks, transformed lazily and in parallel.

    Example:
        >>> import raylite as ray
        >>> ds = ray.data.from_items([{"name": str(i), "data": i} for i in range(10000)])
        >>> squares = ds.map(lambda x: x["data"] ** 2)
        >>> squares.filter(lambda x: x % 2 == 0).count()
        5000

    A dataset follows the Ray Data convention (``DataContext.api``: 1, the book's, or 2, Ray
    2.x's) in force when it was created; the datasets derived from it follow the same one.
    """

    def __init__(self, plan: ExecutionPlan, api: int | None = None):
        self._plan = plan
        self._api = current_api() if api is None else api
        self._stats: ExecutionStats | None = None
        self._keep_alive: Any = None

    # --------------------------------------------------------------------------------------
    # plumbing
    # --------------------------------------------------------------------------------------
    def _with_stage(self, stage) -> "Dataset":
        stage.api = self._api  # user functions' errors and outputs follow the convention
        return Dataset(self._plan.with_stage(stage), self._api)

    def _derived(self, plan: ExecutionPlan) -> "Dataset":
        return Dataset(plan, self._api)

    def _barrier(self, name: str, run: Callable[[list], list]) -> "Dataset":
        """A dataset whose blocks are ``run(materialized upstream blocks)``, computed once."""
        upstream = self._plan

        def compute() -> list[BlockTask]:
            inputs = execute_to_refs(upstream.block_tasks(),
                                     ExecutionStats(operations=upstream.describe()))
            return [BlockTask(ref) for ref in run(inputs)]
        return self._derived(ExecutionPlan(Barrier(name, compute)))

    def _new_stats(self) -> ExecutionStats:
        self._stats = ExecutionStats(operations=self._plan.describe())
        return self._stats

    def _stream(self, **options) -> Iterator:
        return stream(self._plan.block_tasks(), stats=self._new_stats(), **options)

    def _iter_blocks(self) -> Iterator[Block]:
        for block_ref, _meta in self._stream():
            yield raylite.get(block_ref)

    def _known_schema(self) -> Any:
        """The schema if known without running anything, else None."""
        tasks = self._plan.known_block_tasks()
        if not tasks or not all(task.is_done() for task in tasks):
            return None
        for task in tasks:
            meta = task.source.known_metadata()
            if meta is None:
                return None
            if meta.num_rows:
                return meta.schema
        return None

    def _materialized_inputs(self) -> list:
        return execute_to_refs(self._plan.block_tasks(), stats=self._new_stats())

    def __reduce__(self):  # a dataset sent to a task or actor travels as its block tasks
        return (Dataset, (ExecutionPlan(self._plan.block_tasks(), ()), self._api))

    # --------------------------------------------------------------------------------------
    # row-wise transforms (lazy, fused into one task per block)
    # --------------------------------------------------------------------------------------
    def map(self, fn: Callable[[Any], Any], *, compute: Any = None,
            fn_constructor_args: tuple | None = None, fn_constructor_kwargs: dict | None = None,
            concurrency: Any = None, **ray_remote_args: Any) -> "Dataset":
        """Apply ``fn`` to every row; rows that are dicts make a tabular dataset.

        ``fn`` may be a callable class: it runs on an actor pool, as in ``map_batches``.

        Example:
            >>> import raylite as ray
            >>> ray.data.range(4).map(lambda x: x * 10).take()
            [0, 10, 20, 30]
        """
        return self._row_stage(MapRows, "map", fn, compute, fn_constructor_args,
                               fn_constructor_kwargs, concurrency, ray_remote_args)

    def filter(self, fn: Callable[[Any], bool] | None = None, expr: Any = None, *,
               compute: Any = None, fn_constructor_args: tuple | None = None,
               fn_constructor_kwargs: dict | None = None, concurrency: Any = None,
               **ray_remote_args: Any) -> "Dataset":
        """Keep the rows for which ``fn(row)`` is true, or (Ray 2.x) for which the predicate
        ``expr`` holds: an expression of ``raylite.data.expressions`` such as
        ``col("x") > 5``, or the same as text, ``"x > 5"``.

        ``fn`` may be a callable class: it runs on an actor pool, as in ``map_batches``.

        Example:
            >>> import raylite as ray
            >>> ray.data.range(10).filter(lambda x: x % 2 == 0).count()
            5
        """
        if expr is not None:
            return self._expression_filter(fn, expr, compute, concurrency, ray_remote_args)
        if fn is None:
            raise TypeError("filter() needs a function fn(row) -> bool, or expr= (e.g. "
                            "expr=col('x') > 5 from raylite.data.expressions)")
        return self._row_stage(FilterRows, "filter", fn, compute, fn_constructor_args,
                               fn_constructor_kwargs, concurrency, ray_remote_args)

    def _expression_filter(self, fn: Any, expr: Any, compute: Any, concurrency: Any,
                           remote_args: dict) -> "Dataset":
        from raylite.data.expressions import (ExpressionFilter, check_expression,
                                              parse_predicate)
        if fn is not None:
            raise TypeError("filter() takes a function or expr=, not both")
        if compute is not None or concurrency is not None:
            raise TypeError("filter(expr=...) runs in tasks: drop compute= / concurrency=")
        expr = parse_predicate(expr) if isinstance(expr, str) else expr
        check_expression(expr, "filter(expr=...)")
        self._check_tabular("filter(expr=...)")
        self._check_expression_columns([expr], "filter(expr=...)")
        stage = ExpressionFilter(expr)
        stage.remote_args = check_remote_args(remote_args, "filter")
        return self._with_stage(stage)

    def flat_map(self, fn: Callable[[Any], list], *, compute: Any = None,
                 fn_constructor_args: tuple | None = None,
                 fn_constructor_kwargs: dict | None = None, concurrency: Any = None,
                 **ray_remote_args: Any) -> "Dataset":
        """Replace every row by the rows of the list ``fn(row)`` returns.

        ``fn`` may be a callable class: it runs on an actor pool, as in ``map_batches``.

        Example:
            >>> import raylite as ray
            >>> ray.data.range(2).flat_map(lambda x: [x, x ** 3]).take()
            [0, 0, 1, 1]
        """
        return self._row_stage(FlatMapRows, "flat_map", fn, compute, fn_constructor_args,
                               fn_constructor_kwargs, concurrency, ray_remote_args)

    def _row_stage(self, stage_class: type, operation: str, fn: Any, compute: Any,
                   constructor_args: Any, constructor_kwargs: Any, concurrency: Any,
                   remote_args: dict) -> "Dataset":
        strategy = user_fn_strategy(fn, operation, constructor_args, constructor_kwargs, compute,
                                    concurrency)
        stage = stage_class(fn, constructor_args or (), constructor_kwargs)
        stage.remote_args = check_remote_args(remote_args, operation)
        stage.compute = strategy
        return self._with_stage(stage)

    def map_batches(self, fn: Callable[[Any], Any], *, batch_size: int | str | None = "auto",
                    compute: Any = None, batch_format: str | None = "default",
                    fn_args: tuple | None = None, fn_kwargs: dict | None = None,
                    fn_constructor_args: tuple | None = None,
                    fn_constructor_kwargs: dict | None = None, concurrency: Any = None,
                    zero_copy_batch: bool = False, **ray_remote_args: Any) -> "Dataset":
        """Apply ``fn`` to batches of up to ``batch_size`` rows (None: a whole block;
        ``"auto"`` or ``"default"``, Ray's defaults: 4096).

        ``batch_format``: ``"default"`` (the book's convention: a pandas DataFrame for
        tabular data, a list otherwise; under ``RAYLITE_API=2``: a dict of numpy arrays, as
        in Ray 2.x), ``"pandas"``, ``"pyarrow"``, ``"numpy"`` (dict of column arrays, or one
        ndarray) or ``"native"`` (or None: pyarrow Table or list). ``fn`` returns a batch in
        any of these forms, or (Ray 2.x) is a generator yielding several.

        A callable class for ``fn`` (a model to load once, say) runs on a pool of actors, each
        constructing it once with ``fn_constructor_args`` / ``fn_constructor_kwargs``: size it
        with ``compute=ActorPoolStrategy(min_size, max_size)`` or Ray 2.x's ``concurrency=n``
        (or ``(min, max)``); ``compute="tasks"`` is an error for a class. ``compute="actors"``
        runs a plain function on a pool too; a plain function with only ``concurrency=`` runs
        in tasks. ``num_cpus`` / ``num_gpus`` reserve resources for each task or actor.
        ``map``, ``flat_map`` and ``filter`` take callable classes the same way.

        Example:
            >>> import raylite as ray
            >>> ds = ray.data.range_table(6).map_batches(lambda df: df * 2, batch_size=4)
            >>> [row["value"] for row in ds.take()]
            [0, 2, 4, 6, 8, 10]
        """
        strategy = user_fn_strategy(fn, "map_batches", fn_constructor_args,
                                    fn_constructor_kwargs, compute, concurrency)
        batch_format = self._batch_format(batch_format)
        batch_size = _batch_size(batch_size, "map_batches(batch_size=...)")
        stage = MapBatches(fn, batch_size, batch_format, fn_args or (), fn_kwargs,
                           fn_constructor_args or (), fn_constructor_kwargs,
                           check_remote_args(ray_remote_args, "map_batches"), strategy)
        return self._with_stage(stage)

    def _batch_format(self, batch_format: str | None) -> str:
        """The batch format a name means for this dataset ("default" follows the convention)."""
        if batch_format is None:
            return "native"
        _block.check_batch_format(batch_format)
        return "numpy" if batch_format == "default" and self._api == 2 else batch_format

    # --------------------------------------------------------------------------------------
    # all-to-all transforms (lazy barriers)
    # --------------------------------------------------------------------------------------
    def limit(self, limit: int) -> "Dataset":
        """The first ``limit`` rows; only the blocks needed to find them are computed.

        Example:
            >>> import raylite as ray
            >>> ray.data.range(1000).limit(3).take_all()
            [0, 1, 2]
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"limit() needs a non-negative int, got {limit!r}")
        upstream = self._plan

        def compute() -> list[BlockTask]:
            collected, total = [], 0
            if limit:
                blocks = stream(upstream.block_tasks(),
                                stats=ExecutionStats(operations=upstream.describe()))
                for block_ref, meta in blocks:
                    collected.append(RefInput(block_ref, resolve_metadata(meta)))
                    total += collected[-1].meta.num_rows
                    if total >= limit:
                        break
                blocks.close()
            return [BlockTask(ref) for ref in _exchange.slice_ranges(collected, [(0, limit)])[0]]
        return self._derived(ExecutionPlan(Barrier(f"limit({limit})", compute)))

    def union(self, *others: "Dataset") -> "Dataset":
        """All rows of this dataset, then those of ``others`` (schemas must match).

        Example:
            >>> import raylite as ray
            >>> ray.data.range(2).union(ray.data.range(3)).take_all()
            [0, 1, 0, 1, 2]
        """
        datasets = [self, *others]
        for i, other in enumerate(others):
            if not isinstance(other, Dataset):
                raise TypeError(f"union() takes Datasets, argument {i} is {type(other).__name__}")
        _check_same_api(datasets, "union")
        _check_union_schemas(datasets)
        plans = [d._plan for d in datasets]
        if not any(p.is_lazy_barrier for p in plans):
            return self._derived(ExecutionPlan([t for p in plans for t in p.block_tasks()]))
        return self._derived(ExecutionPlan(Barrier(
            "union", lambda: [t for p in plans for t in p.block_tasks()])))

    def repartition(self, num_blocks: int, *, shuffle: bool = False) -> "Dataset":
        """The same rows in ``num_blocks`` blocks of near-equal size (order kept unless
        ``shuffle``).

        Example:
            >>> import raylite as ray
            >>> ray.data.range(10).repartition(3).num_blocks()
            3
        """
        check_positive_int(num_blocks, "repartition(num_blocks)")
        if shuffle:
            return self.random_shuffle(num_blocks=num_blocks)
        return self._barrier(f"repartition({num_blocks})",
                             lambda blocks: _exchange.repartition(blocks, num_blocks))

    def random_sample(self, fraction: float, *, seed: int | None = None) -> "Dataset":
        """About ``fraction`` of the rows, each kept with that probability (Ray 2.x).

        Example:
            >>> import raylite as ray
            >>> 200 < ray.data.range(1000).random_sample(0.3, seed=0).count() < 400
            True
        """
        from raylite.data._stages import SampleRows
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or \
                not 0 <= fraction <= 1:
            raise ValueError(f"random_sample(fraction) needs a number in [0, 1], got "
                             f"{fraction!r}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise TypeError(f"random_sample(seed=...) needs an int or None, got {seed!r}")
        return self._with_stage(SampleRows(float(fraction), seed))

    def randomize_block_order(self, *, seed: int | None = None) -> "Dataset":
        """The same blocks in a random order (cheaper than random_shuffle; Ray 2.x).

        Example:
            >>> import raylite as ray
            >>> sorted(ray.data.range(10, parallelism=5).randomize_block_order(seed=1).take_all())
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        """
        import random
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise TypeError(f"randomize_block_order(seed=...) needs an int or None, got "
                            f"{seed!r}")

        def run(blocks: list) -> list:
            blocks = list(blocks)
            random.Random(seed).shuffle(blocks)
            return blocks
        return self._barrier("randomize_block_order", run)

    def random_shuffle(self, *, seed: int | None = None,
                       num_blocks: int | None = None) -> "Dataset":
        """The rows in random order (the same order for the same ``seed``).

        Example:
            >>> import raylite as ray
            >>> sorted(ray.data.range(5).random_shuffle(seed=0).take_all())
            [0, 1, 2, 3, 4]
        """
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise TypeError(f"random_shuffle(seed=...) needs an int or None, got {seed!r}")
        if num_blocks is not None:
            check_positive_int(num_blocks, "random_shuffle(num_blocks=...)")

        def run(blocks: list) -> list:
            if not blocks:
                return []
            return _exchange.random_shuffle(blocks, num_blocks or len(blocks), seed)
        return self._barrier("random_shuffle", run)

    def sort(self, key: Any = None, descending: bool = False) -> "Dataset":
        """The rows sorted by ``key``: a column name or list of names (tabular data), or
        None / a function of the row (other data).

        Example:
            >>> import raylite as ray
            >>> ray.data.range(5).sort(descending=True).take_all()
            [4, 3, 2, 1, 0]
        """
        sort_key = _exchange.sort_key(key, descending)
        sort_key.check(self._known_schema())

        def run(blocks: list) -> list:
            schema = next((b.metadata().schema for b in blocks if b.metadata().num_rows), None)
            sort_key.check(schema)
            return _exchange.sort(blocks, sort_key)
        return self._barrier(f"sort({key!r})", run)

    def split(self, n: int, *, equal: bool = False,
              locality_hints: list | None = None) -> list["Dataset"]:
        """``n`` datasets together holding the rows, in order (runs the plan now). With
        ``equal=True`` each gets exactly ``count() // n`` rows and the rest are dropped.

        Example:
            >>> import raylite as ray
            >>> [s.count() for s in ray.data.range(10).split(3, equal=True)]
            [3, 3, 3]
        """
        check_positive_int(n, "split(n)")
        blocks = self._materialized_inputs()
        total = sum(b.metadata().num_rows for b in blocks)
        groups = _exchange.slice_ranges(blocks, _exchange.even_ranges(total, n, equal))
        return [_materialized_dataset(group, self._api) for group in groups]

    def split_at_indices(self, indices: list[int]) -> list["Dataset"]:
        """Datasets of the rows ``[0, i0)``, ``[i0, i1)``, ..., ``[ik, end)`` (runs the plan now).

        Example:
            >>> import raylite as ray
            >>> [s.take_all() for s in ray.data.range(5).split_at_indices([2])]
            [[0, 1], [2, 3, 4]]
        """
        if not isinstance(indices, (list, tuple)) or not all(
                isinstance(i, int) and i >= 0 for i in indices) or list(indices) != sorted(indices):
            raise ValueError(f"split_at_indices() needs a sorted list of non-negative ints, "
                             f"got {indices!r}")
        blocks = self._materialized_inputs()
        total = sum(b.metadata().num_rows for b in blocks)
        edges = [0] + [min(i, total) for i in indices] + [total]
        ranges = [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
        return [_materialized_dataset(g, self._api)
                for g in _exchange.slice_ranges(blocks, ranges)]

    def train_test_split(self, test_size: float | int, *, shuffle: bool = False,
                         seed: int | None = None) -> tuple["Dataset", "Dataset"]:
        """``(train, test)``: the last ``test_size`` rows (an int, or a fraction in (0, 1))
        go to ``test``, after an optional seeded shuffle.

        Example:
            >>> import raylite as ray
            >>> train, test = ray.data.range(10).train_test_split(0.2)
            >>> train.count(), test.take_all()
            (8, [8, 9])
        """
        if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) or (
                isinstance(test_size, float) and not 0 < test_size < 1) or test_size < 0:
            raise ValueError(f"train_test_split(test_size=...) needs a fraction in (0, 1) or a "
                             f"number of rows, got {test_size!r}")
        dataset = self.random_shuffle(seed=seed) if shuffle else self
        total = dataset.materialize()
        count = total.count()
        test_rows = int(count * test_size) if isinstance(test_size, float) else test_size
        if test_rows > count:
            raise ValueError(f"train_test_split(test_size={test_size}) asks for more test rows "
                             f"than the dataset has ({count})")
        train, test = total.split_at_indices([count - test_rows])
        return train, test

    def zip(self, other: "Dataset") -> "Dataset":
        """Row ``i`` of the result joins row ``i`` of this dataset and of ``other`` (both must
        have the same number of rows): the columns of both for tabular data (a clashing name
        from ``other`` gets a suffix ``_1``), ``(a, b)`` tuples otherwise.

        Example:
            >>> import raylite as ray
            >>> ray.data.range(3).zip(ray.data.range(3).map(lambda x: x * 10)).take_all()
            [(0, 0), (1, 10), (2, 20)]
        """
        if not isinstance(other, Dataset):
            raise TypeError(f"zip() takes a Dataset, got {type(other).__name__}")
        _check_same_api([self, other], "zip")
        left_plan, right_plan = self._plan, other._plan

        def compute() -> list[BlockTask]:
            left = execute_to_refs(left_plan.block_tasks(),
                                   ExecutionStats(operations=left_plan.describe()))
            right = execute_to_refs(right_plan.block_tasks(),
                                    ExecutionStats(operations=right_plan.describe()))
            return [BlockTask(ref) for ref in _exchange.zip_blocks(left, right)]
        return self._derived(ExecutionPlan(Barrier("zip", compute)))

    # --------------------------------------------------------------------------------------
    # consuming
    # --------------------------------------------------------------------------------------
    def iter_rows(self, *, prefetch_batches: int = 1, prefetch_blocks: int = 0
                  ) -> Iterator[Any]:
        """The rows, in order, computed a bounded number of blocks ahead (the prefetch
        options are accepted for Ray's sake: the executor already runs blocks ahead).

        Example:
            >>> import raylite as ray
            >>> next(iter(ray.data.range(3).iter_rows()))
            0
        """
        for block in self._iter_blocks():
            yield from self._user_rows(block)

    def _user_rows(self, block: Block) -> list:
        """Rows as this dataset's convention hands them out: ArrowRow (1) or dict (2)."""
        return _block.output_rows(block) if self._api == 1 else _block.plain_rows(block)

    def iter_batches(self, *, batch_size: int | None = 256, batch_format: str | None = "default",
                     drop_last: bool = False, prefetch_blocks: int = 0,
                     prefetch_batches: int = 1, local_shuffle_buffer_size: int | None = None,
                     local_shuffle_seed: int | None = None) -> Iterator[Any]:
        """The rows in batches of ``batch_size`` (None: one batch per block), in
        ``batch_format`` (see ``map_batches``). ``prefetch_blocks`` / ``prefetch_batches`` are
        accepted for Ray's sake: the executor already runs up to twice the cluster's CPUs
        blocks ahead. ``local_shuffle_buffer_size=n`` shuffles the rows within windows of at
        least ``n`` rows as they stream by (``local_shuffle_seed`` makes it repeatable).

        Example:
            >>> import raylite as ray
            >>> [len(b) for b in ray.data.range(10).iter_batches(batch_size=4)]
            [4, 4, 2]
        """
        from raylite.data._iterator import batches_of
        batch_format = self._batch_format(batch_format)
        yield from batches_of(self._iter_blocks(), batch_size, batch_format, drop_last,
                              local_shuffle_buffer_size, local_shuffle_seed)

    def take_batch(self, batch_size: int = 20, *, batch_format: str | None = "default") -> Any:
        """Up to ``batch_size`` rows as one batch. ``"default"`` is Ray 2.x's form under both
        conventions (take_batch is a Ray 2.x method): a dict of numpy arrays (one ndarray for
        plain rows); ``"pandas"``, ``"pyarrow"``, ``"native"`` as in ``map_batches``.

        Example:
            >>> import raylite as ray
            >>> ray.data.range_table(5).take_batch(3)
            {'value': array([0, 1, 2])}
        """
        check_positive_int(batch_size, "take_batch(batch_size)")
        batch_format = "numpy" if batch_format == "default" else self._batch_format(batch_format)
        pieces, total = [], 0
        for block in self._iter_blocks():
            pieces.append(_block.slice_block(block, 0, batch_size - total))
            total += _block.num_rows(pieces[-1])
            if total >= batch_size:
                break
        if total == 0:
            raise ValueError("take_batch(): the dataset is empty")
        return _block.to_batch(_block.concat(pieces), batch_format)

    def take(self, limit: int = 20) -> list:
        """The first ``limit`` rows as a list.

        Example:
            >>> import raylite as ray
            >>> ray.data.range(10000).take(5)
            [0, 1, 2, 3, 4]
        """
        if not isinstance(limit, int) or limit < 0:
            raise ValueError(f"take() needs a non-negative int, got {limit!r}")
        out: list = []
        if limit == 0:
            return out
        for block in self._iter_blocks():
            out.extend(self._user_rows(_block.slice_block(block, 0, limit - len(out))))
            if len(out) >= limit:
                break
        return out

    def take_all(self, limit: int | None = None) -> list:
        """All rows as a list (a ValueError if there are more than ``limit``)."""
        out: list = []
        for block in self._iter_blocks():
            out.extend(self._user_rows(block))
            if limit is not None and len(out) > limit:
                raise ValueError(f"take_all(limit={limit}): the dataset has more rows than that")
        return out

    def show(self, limit: int = 20) -> None:
        """Print the first ``limit`` rows, one per line."""
        for row in self.take(limit):
            print(row)

    def count(self) -> int:
        """The number of rows (known without running anything when no stage can change it).

        Example:
            >>> import raylite as ray
            >>> ray.data.range(10000).filter(lambda x: x % 2 == 0).count()
            5000
        """
        tasks = self._plan.block_tasks()
        known = _known_count(tasks)
        if known is not None:
            return known
        return sum(resolve_metadata(meta).num_rows
                   for _, _, meta in stream(tasks, ordered=False, stats=self._new_stats()))

    def schema(self, fetch_if_missing: bool = True) -> Any:
        """The columns' names and types: a ``pyarrow.Schema`` (``.names``, ``.types``) for
        tabular data, the Python type of the rows otherwise, None for an empty dataset; under
        Ray 2.x's convention a ``raylite.data.Schema``, printed as Ray prints it. Runs the
        first block(s) if needed (with ``fetch_if_missing=False``: None instead).

        Example:
            >>> import raylite as ray
            >>> ray.data.from_items([{"a": 1.5, "b": "x"}]).schema().names
            ['a', 'b']
        """
        raw = self._schema() if fetch_if_missing else self._known_schema()
        schema = _block.arrow_schema(raw)
        if self._api == 2 and hasattr(schema, "names"):
            from raylite.data._schema import Schema
            return Schema(schema)
        return schema

    def _schema(self) -> Any:
        """The schema as the blocks know it (a RowSchema for dict rows, no pyarrow needed)."""
        known = self._known_schema()
        if known is not None:
            return known
        fallback = None
        for _, meta in self._stream(limit=1):
            meta = resolve_metadata(meta)
            if meta.num_rows:
                return meta.schema
            fallback = fallback or meta.schema
        return fallback

    def columns(self) -> list[str] | None:
        """The column names of a tabular dataset (None when the rows are not dicts)."""
        schema = self._schema()
        return list(schema.names) if hasattr(schema, "names") else None

    def num_blocks(self) -> int:
        """The number of blocks."""
        return len(self._plan.block_tasks())

    def size_bytes(self) -> int:
        """The bytes the blocks take (runs the plan if needed)."""
        return sum(task.source.metadata().size_bytes
                   for task in self.materialize()._plan.block_tasks())

    def materialize(self) -> "MaterializedDataset":
        """Run the plan now; the returned dataset's blocks sit in the object store.

        Example:
            >>> import raylite as ray
            >>> ray.data.range(4).map(lambda x: x + 1).materialize().take_all()
            [1, 2, 3, 4]
        """
        done = _materialized_dataset(self._materialized_inputs(), self._api)
        done._stats = self._stats  # its stats() tell how its blocks were computed
        return done

    fully_executed = materialize  # the Ray 2.0-2.3 name

    def get_internal_block_refs(self) -> list:
        """The ObjectRefs of the blocks (runs the plan)."""
        return [task.source.ref for task in self.materialize()._plan.block_tasks()]

    def window(self, *, blocks_per_window: int = 10) -> "DatasetPipeline":
        """A DatasetPipeline over windows of ``blocks_per_window`` blocks; each window runs
        while the one before it is consumed."""
        from raylite.data._pipeline import DatasetPipeline
        check_positive_int(blocks_per_window, "window(blocks_per_window=...)")
        tasks = self._plan.block_tasks()
        chunks = [tasks[i:i + blocks_per_window] for i in range(0, len(tasks), blocks_per_window)]
        return DatasetPipeline(lambda: (self._derived(ExecutionPlan(c)) for c in chunks),
                               len(chunks))

    def repeat(self, times: int | None = None) -> "DatasetPipeline":
        """A DatasetPipeline that yields this whole dataset ``times`` times (None: forever),
        each pass an epoch (``iter_epochs``)."""
        from raylite.data._pipeline import repeat_dataset
        return repeat_dataset(self, times)

    def stats(self) -> str:
        """What the last execution of this dataset did (tasks, blocks in flight, operations)."""
        if self._stats is None:
            return "not executed yet; operations: " + (" | ".join(self._plan.describe()) or "read")
        return self._stats.summary()

    def _start(self) -> "Dataset":
        """Submit every block task now and return the dataset of their (coming) results."""
        tasks, keep_alive = submit_all(self._plan.block_tasks(), self._new_stats())
        started = self._derived(ExecutionPlan(tasks))
        started._stats = self._stats
        started._keep_alive = keep_alive  # the actor pools its blocks are coming from
        return started

    def __repr__(self) -> str:
        name = type(self).__name__ if self._api == 2 else "Dataset"
        tasks = self._plan.known_block_tasks()
        if tasks is None:
            return f"{name}(num_blocks=?, num_rows=?, schema=?, plan={self._plan.describe()})"
        count = _known_count(tasks)
        schema = self._known_schema()
        blocks = "" if name == "Dataset" and self._api == 2 else f"num_blocks={len(tasks)}, "
        return (f"{name}({blocks}num_rows={'?' if count is None else count}, "
                f"schema={'?' if schema is None else _block.format_schema(schema)})")

    def __iter__(self):
        raise TypeError("a Dataset is not iterable; use ds.iter_rows() or ds.iter_batches()")


class MaterializedDataset(Dataset):
    """A Dataset whose blocks are computed and held in the object store (``materialize()``)."""


def _materialized_dataset(refs: list, api: int) -> "MaterializedDataset":
    return MaterializedDataset(ExecutionPlan([BlockTask(ref) for ref in refs]), api)


def _check_same_api(datasets: list[Dataset], operation: str) -> None:
    apis = {d._api for d in datasets}
    if len(apis) > 1:
        raise ValueError(f"{operation}(): the datasets follow different Ray Data conventions "
                         "(some were created with DataContext.api = 1, the book's, others "
                         "with api = 2, Ray 2.x's); create them all under the same one")


DEFAULT_BATCH_SIZE = 4096


def _batch_size(batch_size: Any, name: str) -> int | None:
    """A batch size as given: a positive int, None (whole blocks), or Ray's "auto" /
    "default" (DEFAULT_BATCH_SIZE)."""
    if batch_size in ("auto", "default"):
        return DEFAULT_BATCH_SIZE
    if batch_size is not None:
        check_positive_int(batch_size, name)
    return batch_size


def _known_count(tasks: list[BlockTask]) -> int | None:
    total = 0
    for task in tasks:
        if task.is_done():
            total += task.source.metadata().num_rows
        elif not task.stages and task.tail is None and getattr(task.source, "num_rows", None) \
                is not None:
            total += task.source.num_rows
        else:
            return None
    return total


def _check_union_schemas(datasets: list[Dataset]) -> None:
    schemas = [(i, d._schema()) for i, d in enumerate(datasets)]
    schemas = [(i, s) for i, s in schemas if s is not None]
    if not schemas:
        return
    first_index, first = schemas[0]
    for index, schema in schemas[1:]:
        tabular_a, tabular_b = hasattr(first, "names"), hasattr(schema, "names")
        if tabular_a != tabular_b:
            raise ValueError(f"union(): dataset {first_index} has schema "
                             f"{_block.format_schema(first)} but dataset {index} has "
                             f"{_block.format_schema(schema)}; tabular and non-tabular "
                             "datasets cannot be combined")
        if tabular_a and not _same_columns(first, schema):
            raise ValueError(f"union(): the schemas differ: dataset {first_index} has "
                             f"{_block.format_schema(first)}, dataset {index} has "
                             f"{_block.format_schema(schema)}; make them match first (e.g. "
                             "with select_columns, or a map that renames or casts)")


def _same_columns(a: Any, b: Any) -> bool:
    """Same column names, and the same types where both are known (null matches any)."""
    if list(a.names) != list(b.names):
        return False
    for type_a, type_b in zip(a.types, b.types):
        text_a, text_b = str(type_a), str(type_b)
        if text_a != text_b and "null" not in (text_a, text_b):
            return False
    return True
