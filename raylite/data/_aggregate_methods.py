"""Aggregations of a Dataset: groupby, aggregate, sum / min / max / mean / std, unique. A
mixin of Dataset; the work (partial aggregates per block, then one final merge) is in
_aggregate.py, imported on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raylite.data._stages import check_columns

if TYPE_CHECKING:
    from raylite.data._aggregate import AggregateFn, GroupedData
    from raylite.data._dataset import Dataset  # noqa: F401


class AggregateMethods:
    """Dataset methods that reduce rows to values or to one row per group."""

    def groupby(self, key: str | list[str]) -> "GroupedData":
        """Group the rows by column(s) ``key``; then ``count()``, ``sum(on)``, ``min``,
        ``max``, ``mean``, ``std``, ``aggregate(...)`` or ``map_groups(fn)``.

        Example:
            >>> import raylite as ray
            >>> ds = ray.data.from_items([{"k": i % 3, "x": i} for i in range(9)])
            >>> [row["count()"] for row in ds.groupby("k").count().take_all()]
            [3, 3, 3]
        """
        from raylite.data._aggregate import GroupedData
        return GroupedData(self, key)

    def aggregate(self, *aggs: "AggregateFn") -> dict:
        """The aggregations over all rows, as ``{name: value}``.

        Example:
            >>> import raylite as ray
            >>> from raylite.data.aggregate import Count, Max
            >>> ray.data.range(5).aggregate(Count(), Max())
            {'count()': 5, 'max()': 4}
        """
        from raylite.data._aggregate import check_aggs
        return self._aggregate(check_aggs(aggs), "aggregate()")

    def _aggregate(self, aggs: list, operation: str) -> dict:
        from raylite.data._aggregate import aggregate_dataset
        self._check_agg_columns(aggs, operation)
        rows = aggregate_dataset(self, [], aggs, operation).take_all()
        if not rows:
            return {agg.name: None for agg in aggs}
        return dict(rows[0])

    def _check_agg_columns(self, aggs: list, operation: str) -> None:
        from raylite.data._aggregate import Count
        schema = self._known_schema()
        if schema is not None and hasattr(schema, "names"):
            if any(a.on is None and not isinstance(a, Count) and a.kind != "custom"
                   for a in aggs):
                raise ValueError(f"{operation} of a tabular dataset needs on=<column>; columns: "
                                 f"{list(schema.names)}")
            check_columns([a.on for a in aggs if a.on is not None], list(schema.names),
                          operation)

    def _scalar_aggregate(self, cls: type, on: Any, name: str, **options: Any) -> Any:
        from raylite.data._aggregate import make_aggs
        aggs = make_aggs(cls, on, name, **options)
        result = self._aggregate(aggs, f"{name}({on!r})" if on is not None else f"{name}()")
        values = [result[agg.name] for agg in aggs]
        return values[0] if len(values) == 1 and not isinstance(on, (list, tuple)) else result

    def sum(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        """The sum of a column (or of the rows, for non-tabular data); a dict for a list.

        Example:
            >>> import raylite as ray
            >>> ray.data.range(5).sum()
            10
        """
        from raylite.data._aggregate import Sum
        return self._scalar_aggregate(Sum, on, "sum", ignore_nulls=ignore_nulls)

    def min(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        """The smallest value of a column (or of the rows)."""
        from raylite.data._aggregate import Min
        return self._scalar_aggregate(Min, on, "min", ignore_nulls=ignore_nulls)

    def max(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        """The largest value of a column (or of the rows)."""
        from raylite.data._aggregate import Max
        return self._scalar_aggregate(Max, on, "max", ignore_nulls=ignore_nulls)

    def mean(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        """The mean of a column (or of the rows)."""
        from raylite.data._aggregate import Mean
        return self._scalar_aggregate(Mean, on, "mean", ignore_nulls=ignore_nulls)

    def std(self, on: str | list[str] | None = None, ddof: int = 1,
            ignore_nulls: bool = True) -> Any:
        """The standard deviation of a column (or of the rows); ``ddof=1`` as pandas."""
        from raylite.data._aggregate import Std
        return self._scalar_aggregate(Std, on, "std", ddof=ddof, ignore_nulls=ignore_nulls)

    def unique(self, column: str | None = None) -> list:
        """The distinct values of ``column`` (of the rows, for non-tabular data), in the order
        first seen.

        Example:
            >>> import raylite as ray
            >>> ray.data.from_items([{"k": "b"}, {"k": "a"}, {"k": "b"}]).unique("k")
            ['b', 'a']
        """
        from raylite.data._aggregate import UniqueValues
        if column is not None and not isinstance(column, str):
            raise TypeError(f"unique() takes a column name, got {column!r}")
        if column is not None:
            schema = self._known_schema()
            if schema is not None and hasattr(schema, "names"):
                check_columns([column], list(schema.names), f"unique({column!r})")
        seen: dict = {}
        for block in self._with_stage(UniqueValues(column))._iter_blocks():
            for values in block:
                seen.update(dict.fromkeys(values))
        return list(seen)
