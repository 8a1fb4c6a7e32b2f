"""Aggregations: ``ds.groupby(key).count()/sum/min/max/mean/std/aggregate/map_groups``, and the
same aggregations over a whole dataset (``ds.sum("x")``).

Aggregating is two-phase, on Arrow's ``Table.group_by``:

    block_i ──PartialAggregate (fused into the block's task)──► one row per group: partial
                                                                 states (count, sum, m2, ...)
    partials of every block ──one reduce task──► one row per group, sorted by key

``map_groups`` needs the rows of a group together instead: it sorts by the key (a range
shuffle, so each group lands in one block) and then calls the function on each group's rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import raylite
from raylite.data import _block
from raylite.data._block import Block
from raylite.data.context import switch_hint
from raylite.data._stages import Stage, annotate_error, check_columns, function_name

if TYPE_CHECKING:
    from raylite.data._dataset import Dataset


# ==========================================================================================
# aggregate functions
# ==========================================================================================
class AggregateFn:
    """One aggregation over column ``on`` (None: the rows themselves for non-tabular data).

    ``partial`` lists the Arrow aggregations each block computes, as
    (column, function, options, state name); ``combine`` lists, per state, how partial states
    merge (``sum``, ``min`` or ``max``); ``finish`` turns merged states into the result column.
    """

    kind = "agg"

    def __new__(cls, *args: Any, **kwargs: Any):
        if cls is AggregateFn:  # Ray's AggregateFn(init=..., merge=..., ...): Python functions
            from raylite.data._custom_aggregate import CustomAggregateFn
            return object.__new__(CustomAggregateFn)
        return object.__new__(cls)

    def __init__(self, on: str | None = None, ignore_nulls: bool = True,
                 alias_name: str | None = None):
        if on is not None and not isinstance(on, str):
            raise TypeError(f"{type(self).__name__}(on=...) takes a column name, got {on!r}")
        self.on = on
        self.ignore_nulls = ignore_nulls
        self.name = alias_name or f"{self.kind}({on or ''})"

    def column(self) -> str:
        return self.on or _block.SIMPLE_COLUMN

    def partial(self, prefix: str) -> list[tuple]:
        raise NotImplementedError

    def combine(self, prefix: str) -> list[tuple[str, str]]:
        raise NotImplementedError

    def finish(self, merged, prefix: str):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.on!r})" if self.on else f"{type(self).__name__}()"


class Count(AggregateFn):
    """The number of rows (per group)."""

    kind = "count"

    def __init__(self, on: str | None = None, ignore_nulls: bool = False,
                 alias_name: str | None = None):
        super().__init__(on, ignore_nulls, alias_name)

    def partial(self, prefix):
        if self.on is not None and self.ignore_nulls:
            return [(self.on, "count", None, f"{prefix}n")]
        return [([], "count_all", None, f"{prefix}n")]

    def combine(self, prefix):
        return [(f"{prefix}n", "sum")]

    def finish(self, merged, prefix):
        return merged.column(f"{prefix}n")


class _Simple(AggregateFn):
    """An aggregation whose partial state is the aggregation itself (sum, min, max)."""

    def partial(self, prefix):
        options = _scalar_options(self.ignore_nulls)
        return [(self.column(), self.kind, options, f"{prefix}v")]

    def combine(self, prefix):
        return [(f"{prefix}v", "sum" if self.kind == "sum" else self.kind)]

    def finish(self, merged, prefix):
        return merged.column(f"{prefix}v")


class Sum(_Simple):
    """The sum of column ``on``."""

    kind = "sum"


class Min(_Simple):
    """The smallest value of column ``on``."""

    kind = "min"


class Max(_Simple):
    """The largest value of column ``on``."""

    kind = "max"


class Mean(AggregateFn):
    """The mean of column ``on``."""

    kind = "mean"

    def partial(self, prefix):
        column = self.column()
        return [(column, "sum", _scalar_options(self.ignore_nulls), f"{prefix}s"),
                (column, "count", None, f"{prefix}n")]

    def combine(self, prefix):
        return [(f"{prefix}s", "sum"), (f"{prefix}n", "sum")]

    def finish(self, merged, prefix):
        import pyarrow.compute as pc
        count = merged.column(f"{prefix}n")
        total = pc.cast(merged.column(f"{prefix}s"), _block.pa().float64())
        return pc.if_else(pc.equal(count, 0), None, pc.divide(total, count))


class Std(AggregateFn):
    """The standard deviation of column ``on`` (``ddof=1``: the sample's, as Ray and pandas)."""

    kind = "std"

    def __init__(self, on: str | None = None, ddof: int = 1, ignore_nulls: bool = True,
                 alias_name: str | None = None):
        super().__init__(on, ignore_nulls, alias_name)
        self.ddof = ddof

    def partial(self, prefix):
        import pyarrow.compute as pc
        column = self.column()
        return [(column, "count", None, f"{prefix}n"),
                (column, "mean", None, f"{prefix}mean"),
                (column, "variance", pc.VarianceOptions(ddof=0), f"{prefix}var")]

    def combine(self, prefix):
        # merged from per-block (n, mean, var): N = sum n, S = sum n*mean, Q = sum n*(var+mean^2)
        return [(f"{prefix}n", "sum"), (f"{prefix}S", "sum"), (f"{prefix}Q", "sum")]

    def prepare(self, partials, prefix: str):
        """Per-block moments from (n, mean, var): n*mean and n*(var + mean^2)."""
        import pyarrow.compute as pc
        n = pc.cast(partials.column(f"{prefix}n"), _block.pa().float64())
        mean = pc.fill_null(partials.column(f"{prefix}mean"), 0.0)
        var = pc.fill_null(partials.column(f"{prefix}var"), 0.0)
        partials = partials.append_column(f"{prefix}S", pc.multiply(n, mean))
        return partials.append_column(
            f"{prefix}Q", pc.multiply(n, pc.add(var, pc.multiply(mean, mean))))

    def finish(self, merged, prefix):
        import pyarrow.compute as pc
        n = pc.cast(merged.column(f"{prefix}n"), _block.pa().float64())
        mean = pc.divide(merged.column(f"{prefix}S"), n)
        m2 = pc.subtract(merged.column(f"{prefix}Q"), pc.multiply(n, pc.multiply(mean, mean)))
        m2 = pc.max_element_wise(m2, 0.0)
        denominator = pc.subtract(n, float(self.ddof))
        valid = pc.greater(denominator, 0.0)
        return pc.if_else(valid, pc.sqrt(pc.divide(m2, pc.max_element_wise(denominator, 1.0))),
                          None)


def _scalar_options(ignore_nulls: bool):
    import pyarrow.compute as pc
    return pc.ScalarAggregateOptions(skip_nulls=ignore_nulls, min_count=1)


# ==========================================================================================
# the two phases
# ==========================================================================================
def _as_table(block: Block, operation: str):
    try:
        return _block.to_table(block)
    except TypeError as exc:
        raise TypeError(f"{operation}: {exc}") from None


class PartialAggregate(Stage):
    """Per block: one row per group with the partial states of every aggregation."""

    def __init__(self, keys: list[str], aggs: list[AggregateFn], operation: str):
        self.keys, self.aggs = list(keys), list(aggs)
        self.name = operation

    def __call__(self, block: Block) -> Block:
        if _block.num_rows(block) == 0:
            return []
        table = _as_table(block, self.name)
        needed = self.keys + [a.column() for a in self.aggs if a.on is not None or
                              not isinstance(a, Count)]
        check_columns(list(dict.fromkeys(needed)), table.column_names, self.name)
        specs, names = [], []
        for index, agg in enumerate(self.aggs):
            for column, function, options, state in agg.partial(f"a{index}_"):
                specs.append((column, function, options) if options is not None
                             else (column, function))
                names.append(state)
        partial = table.group_by(self.keys, use_threads=False).aggregate(specs)
        return _rename_grouped(partial, self.keys, names)


def _rename_grouped(table, keys: list[str], names: list[str]):
    """Name the aggregated columns of ``Table.group_by(...).aggregate(...)`` (pyarrow puts
    the keys first or last, depending on its version)."""
    if table.column_names[:len(keys)] == keys:
        return table.rename_columns(keys + names)
    return table.rename_columns(names + keys)


def _final_aggregate(keys: list[str], aggs: list[AggregateFn], *partials):
    arrow = _block.pa()
    tables = [p for p in partials if _block.num_rows(p)]
    if not tables:
        block: Any = []
        return block, _block.metadata(block)
    table = arrow.concat_tables(tables, promote_options="permissive")
    specs, names = [], []
    for index, agg in enumerate(aggs):
        prefix = f"a{index}_"
        if hasattr(agg, "prepare"):
            table = agg.prepare(table, prefix)
        for state, function in agg.combine(prefix):
            specs.append((state, function))
            names.append(state)
    merged = table.group_by(keys, use_threads=False).aggregate(specs)
    merged = _rename_grouped(merged, keys, names)
    columns = {key: merged.column(key) for key in keys}
    for index, agg in enumerate(aggs):
        columns[agg.name] = agg.finish(merged, f"a{index}_")
    out = arrow.Table.from_arrays(list(columns.values()), names=list(columns))
    if keys:
        out = out.sort_by([(key, "ascending") for key in keys])
    return out, _block.metadata(out)


_final_remote = raylite.remote(num_returns=2)(_final_aggregate)


def aggregate_dataset(dataset: "Dataset", keys: list[str], aggs: list[AggregateFn],
                      operation: str) -> "Dataset":
    """A dataset with one row per group (or one row): keys, then one column per aggregation."""
    from raylite.data._dataset import Dataset
    from raylite.data._plan import (Barrier, BlockTask, ExecutionPlan, ExecutionStats, RefInput,
                                    execute_to_refs)
    final = _final_remote
    if any(agg.kind == "custom" for agg in aggs):
        from raylite.data._custom_aggregate import CustomPartial, final_custom
        if not all(agg.kind == "custom" for agg in aggs):
            raise TypeError(f"{operation}: AggregateFn(init=..., merge=...) aggregations cannot "
                            "be mixed with built-in ones (Count, Sum, ...) in one call; make "
                            "two calls")
        partial_stage: Stage = CustomPartial(keys, aggs, operation)
        final = raylite.remote(num_returns=2)(final_custom)
    else:
        partial_stage = PartialAggregate(keys, aggs, operation)
    partial_stage.api = dataset._api
    partial_plan = dataset._plan.with_stage(partial_stage)

    def compute() -> list[BlockTask]:
        partials = execute_to_refs(partial_plan.block_tasks(),
                                   ExecutionStats(operations=partial_plan.describe()))
        block_ref, meta_ref = final.remote(keys, aggs, *[p.ref for p in partials])
        return [BlockTask(RefInput(block_ref, meta_ref))]
    return Dataset(ExecutionPlan(Barrier(operation, compute)), dataset._api)


def _normalize_on(on: Any, operation: str) -> list[str | None]:
    if on is None or isinstance(on, str):
        return [on]
    if isinstance(on, (list, tuple)) and on and all(isinstance(c, str) for c in on):
        return list(on)
    raise TypeError(f"{operation}(on=...) takes a column name or a list of them, got {on!r}")


def make_aggs(cls: type, on: Any, operation: str, **options: Any) -> list[AggregateFn]:
    return [cls(column, **options) for column in _normalize_on(on, operation)]


def check_aggs(aggs: tuple) -> list[AggregateFn]:
    if not aggs:
        raise ValueError("aggregate() needs at least one aggregation, e.g. Count(), Sum('x')")
    for agg in aggs:
        if not isinstance(agg, AggregateFn):
            raise TypeError(f"aggregate() takes aggregations (Count(), Sum('x'), Min, Max, "
                            f"Mean, Std from raylite.data.aggregate), got {agg!r}")
    return list(aggs)


# ==========================================================================================
# groupby
# ==========================================================================================
class GroupedData:
    """The rows of a dataset grouped by ``key`` (a column name or a list of them); made by
    ``Dataset.groupby``. Results are datasets with one row per group, sorted by key.

    Example:
        >>> import raylite as ray
        >>> ds = ray.data.from_items([{"k": i % 2, "x": i} for i in range(6)])
        >>> ds.groupby("k").sum("x").take_all()
        [ArrowRow({'k': 0, 'sum(x)': 6}), ArrowRow({'k': 1, 'sum(x)': 9})]
    """

    def __init__(self, dataset: "Dataset", key: Any):
        self._dataset = dataset
        self._keys = _group_keys(key)
        schema = dataset._known_schema()
        if schema is not None:
            if not hasattr(schema, "names"):
                raise ValueError(f"groupby({key!r}) needs a tabular dataset (rows that are "
                                 f"dicts), but the rows are {schema.__name__}s; make them "
                                 "dicts first, e.g. ds.map(lambda x: {'value': x}); or "
                                 + switch_hint(dataset._api))
            check_columns(self._keys, list(schema.names), f"groupby({key!r})")

    def _run(self, aggs: list[AggregateFn], what: str) -> "Dataset":
        operation = f"groupby({self._key_text()}).{what}"
        schema = self._dataset._known_schema()
        if schema is not None and hasattr(schema, "names"):
            columns = [a.on for a in aggs if a.on is not None]
            check_columns(columns, list(schema.names), operation)
        return aggregate_dataset(self._dataset, self._keys, aggs, operation)

    def _key_text(self) -> str:
        return repr(self._keys[0]) if len(self._keys) == 1 else repr(self._keys)

    def aggregate(self, *aggs: AggregateFn) -> "Dataset":
        """One row per group with the given aggregations (``Count()``, ``Sum("x")``, ...)."""
        return self._run(check_aggs(aggs), "aggregate()")

    def count(self) -> "Dataset":
        """Rows per group, in a column ``count()``."""
        return self._run([Count()], "count()")

    def sum(self, on: Any = None, ignore_nulls: bool = True) -> "Dataset":
        """The sum of column(s) ``on`` per group, in ``sum(<column>)``."""
        return self._run(make_aggs(Sum, on, "sum", ignore_nulls=ignore_nulls), f"sum({on!r})")

    def min(self, on: Any = None, ignore_nulls: bool = True) -> "Dataset":
        return self._run(make_aggs(Min, on, "min", ignore_nulls=ignore_nulls), f"min({on!r})")

    def max(self, on: Any = None, ignore_nulls: bool = True) -> "Dataset":
        return self._run(make_aggs(Max, on, "max", ignore_nulls=ignore_nulls), f"max({on!r})")

    def mean(self, on: Any = None, ignore_nulls: bool = True) -> "Dataset":
        return self._run(make_aggs(Mean, on, "mean", ignore_nulls=ignore_nulls),
                         f"mean({on!r})")

    def std(self, on: Any = None, ddof: int = 1, ignore_nulls: bool = True) -> "Dataset":
        return self._run(make_aggs(Std, on, "std", ddof=ddof, ignore_nulls=ignore_nulls),
                         f"std({on!r})")

    def map_groups(self, fn: Callable, *, batch_format: str = "default",
                   compute: Any = None, fn_args: tuple = (), fn_kwargs: dict | None = None,
                   **ray_remote_args: Any) -> "Dataset":
        """Call ``fn(batch)`` once per group with all of the group's rows (in
        ``batch_format``, as for ``map_batches``); the batches it returns are the new rows.

        Example:
            >>> import raylite as ray
            >>> ds = ray.data.from_items([{"k": i % 2, "x": i} for i in range(6)])
            >>> ds.groupby("k").map_groups(lambda df: df.head(1)).take_all()
            [ArrowRow({'k': 0, 'x': 0}), ArrowRow({'k': 1, 'x': 1})]
        """
        if not callable(fn):
            raise TypeError(f"map_groups() needs a function, got {type(fn).__name__}")
        batch_format = self._dataset._batch_format(batch_format)
        stage = MapGroups(self._keys, fn, batch_format, fn_args, fn_kwargs or {})
        stage.remote_args = dict(ray_remote_args)
        return self._dataset.sort(self._keys if len(self._keys) > 1 else self._keys[0]
                                  )._with_stage(stage)

    def __repr__(self) -> str:
        return f"GroupedData(key={self._key_text()})"


def _group_keys(key: Any) -> list[str]:
    if isinstance(key, str):
        return [key]
    if isinstance(key, (list, tuple)) and key and all(isinstance(k, str) for k in key):
        return list(key)
    raise TypeError(f"groupby() takes a column name or a list of column names, got {key!r}")


class MapGroups(Stage):
    """On a block sorted by the keys: ``fn`` on each run of rows with equal keys."""

    def __init__(self, keys: list[str], fn: Callable, batch_format: str, fn_args: tuple,
                 fn_kwargs: dict):
        self.keys, self.fn, self.batch_format = keys, fn, batch_format
        self.fn_args, self.fn_kwargs = tuple(fn_args), dict(fn_kwargs)
        self.name = f"map_groups({function_name(fn)})"

    def __call__(self, block: Block) -> Block:
        total = _block.num_rows(block)
        if total == 0:
            return block
        check_columns(self.keys, _block.column_names(block) or [], self.name)
        values = list(zip(*[_block.column_values(block, k) for k in self.keys]))
        starts = [0] + [i for i in range(1, total) if values[i] != values[i - 1]] + [total]
        outputs = []
        for start, stop in zip(starts, starts[1:]):
            batch = _block.to_batch(_block.slice_block(block, start, stop), self.batch_format)
            try:
                result = self.fn(batch, *self.fn_args, **self.fn_kwargs)
            except Exception as exc:
                key = values[start] if len(self.keys) > 1 else values[start][0]
                raise annotate_error(exc, self.name, f"the group {key!r} ({stop - start} rows)",
                                     self.api)
            outputs.append(_block.from_batch(result, self.name))
        return _block.concat(outputs)


# ==========================================================================================
# unique values
# ==========================================================================================
class UniqueValues(Stage):
    """Per block: the distinct values of a column (or of the rows), in first-seen order."""

    def __init__(self, column: str | None):
        self.column = column
        self.name = f"unique({column!r})" if column else "unique()"

    def __call__(self, block: Block) -> list:
        if _block.num_rows(block) == 0:
            return []
        if self.column is None:
            if _block.is_tabular(block):
                raise ValueError("unique() of a tabular dataset needs a column name; columns: "
                                 f"{_block.column_names(block)}")
            values = block
        else:
            if not _block.is_tabular(block):
                raise ValueError(f"unique({self.column!r}): the rows are "
                                 f"{type(block[0]).__name__}s, not tables; call unique() "
                                 "without a column")
            check_columns([self.column], _block.column_names(block), self.name)
            values = _block.column_values(block, self.column)
        return [list(dict.fromkeys(values))]
