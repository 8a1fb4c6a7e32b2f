"""Aggregations for ``Dataset.aggregate`` and ``GroupedData.aggregate`` (Ray's
``ray.data.aggregate``).

Example:
    >>> import raylite as ray
    >>> from raylite.data.aggregate import Count, Mean
    >>> ds = ray.data.from_items([{"k": i % 2, "x": float(i)} for i in range(4)])
    >>> ds.groupby("k").aggregate(Count(), Mean("x")).take_all()
    [ArrowRow({'k': 0, 'count()': 2, 'mean(x)': 1.0}), ArrowRow({'k': 1, 'count()': 2, 'mean(x)': 2.0})]
"""

from raylite.data._aggregate import AggregateFn, Count, GroupedData, Max, Mean, Min, Std, Sum

__all__ = ["AggregateFn", "Count", "Sum", "Min", "Max", "Mean", "Std", "GroupedData"]
