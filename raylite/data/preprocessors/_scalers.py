"""Scalers: per-column statistics from Data aggregations, applied column by column.

    StandardScaler   (x - mean) / std            Mean, Std(ddof=0) in one aggregate pass
    MinMaxScaler     (x - min) / (max - min)     Min, Max
    MaxAbsScaler     x / max(|min|, |max|)       Min, Max
    RobustScaler     (x - median) / (q_high - q_low)   quantiles from a sort of each column
    Normalizer       each row scaled to unit norm across the columns (nothing to fit)

A zero spread leaves the centred values unscaled (divides by 1), as scikit-learn does.
"""

from __future__ import annotations

import math
from typing import Any

from raylite.data.preprocessors._base import Preprocessor, check_columns_arg


def _aggregate(dataset: Any, aggs: list) -> dict:
    return dataset.aggregate(*aggs)


def _spread(value: Any) -> float:
    return 1.0 if value is None or value == 0 or (isinstance(value, float) and
                                                  math.isnan(value)) else value


class StandardScaler(Preprocessor):
    """Scale each column to mean 0 and (population) standard deviation 1.

    Example:
        >>> import raylite as ray
        >>> ds = ray.data.from_items([{"x": 1.0}, {"x": 3.0}])
        >>> StandardScaler(["x"]).fit_transform(ds).to_pandas()["x"].tolist()
        [-1.0, 1.0]
    """

    def __init__(self, columns: list[str], ddof: int = 0):
        self.columns = check_columns_arg(columns, "StandardScaler")
        self.ddof = ddof

    def _fit(self, dataset: Any) -> None:
        from raylite.data.aggregate import Mean, Std
        aggs = [Mean(c) for c in self.columns] + [Std(c, ddof=self.ddof) for c in self.columns]
        self.stats_ = _aggregate(dataset, aggs)

    def _transform_pandas(self, df: Any) -> Any:
        self._columns_of(df, self.columns)
        df = df.copy()
        for c in self.columns:
            df[c] = (df[c] - self.stats_[f"mean({c})"]) / _spread(self.stats_[f"std({c})"])
        return df


class MinMaxScaler(Preprocessor):
    """Scale each column to [0, 1] by its minimum and maximum."""

    def __init__(self, columns: list[str]):
        self.columns = check_columns_arg(columns, "MinMaxScaler")

    def _fit(self, dataset: Any) -> None:
        from raylite.data.aggregate import Max, Min
        self.stats_ = _aggregate(dataset, [Min(c) for c in self.columns] +
                                 [Max(c) for c in self.columns])

    def _transform_pandas(self, df: Any) -> Any:
        self._columns_of(df, self.columns)
        df = df.copy()
        for c in self.columns:
            low, high = self.stats_[f"min({c})"], self.stats_[f"max({c})"]
            df[c] = (df[c] - low) / _spread(high - low)
        return df


class MaxAbsScaler(Preprocessor):
    """Divide each column by its largest absolute value."""

    def __init__(self, columns: list[str]):
        self.columns = check_columns_arg(columns, "MaxAbsScaler")

    def _fit(self, dataset: Any) -> None:
        from raylite.data.aggregate import Max, Min
        found = _aggregate(dataset, [Min(c) for c in self.columns] + [Max(c) for c in self.columns])
        self.stats_ = {f"abs_max({c})": max(abs(found[f"min({c})"]), abs(found[f"max({c})"]))
                       for c in self.columns}

    def _transform_pandas(self, df: Any) -> Any:
        self._columns_of(df, self.columns)
        df = df.copy()
        for c in self.columns:
            df[c] = df[c] / _spread(self.stats_[f"abs_max({c})"])
        return df


class RobustScaler(Preprocessor):
    """Centre each column on its median and divide by its inter-quantile range
    (``quantile_range``, default the 25th to the 75th percentile, interpolated linearly)."""

    def __init__(self, columns: list[str], quantile_range: tuple[float, float] = (0.25, 0.75)):
        self.columns = check_columns_arg(columns, "RobustScaler")
        low, high = quantile_range
        if not 0 <= low <= high <= 1:
            raise ValueError(f"RobustScaler(quantile_range=...) needs 0 <= low <= high <= 1, got "
                             f"{quantile_range!r}")
        self.quantile_range = (low, high)

    def _fit(self, dataset: Any) -> None:
        low, high = self.quantile_range
        stats = {}
        for c in self.columns:
            values = _quantiles(dataset, c, [low, 0.5, high])
            stats[f"low_quantile({c})"], stats[f"median({c})"], stats[f"high_quantile({c})"] = values
        self.stats_ = stats

    def _transform_pandas(self, df: Any) -> Any:
        self._columns_of(df, self.columns)
        df = df.copy()
        for c in self.columns:
            spread = self.stats_[f"high_quantile({c})"] - self.stats_[f"low_quantile({c})"]
            df[c] = (df[c] - self.stats_[f"median({c})"]) / _spread(spread)
        return df


def _quantiles(dataset: Any, column: str, qs: list[float]) -> list[float]:
    """Linearly interpolated quantiles of ``column`` (nulls left out), from a distributed sort:
    only the rows at the needed positions come to the driver."""
    ordered = dataset.select_columns([column]).filter(
        lambda row: row[column] is not None and row[column] == row[column]).sort(column)
    count = ordered.count()
    if count == 0:
        raise ValueError(f"RobustScaler: column {column!r} has no values to fit on")
    positions = [q * (count - 1) for q in qs]
    wanted = sorted({i for p in positions for i in (math.floor(p), min(math.floor(p) + 1,
                                                                        count - 1))})
    pieces = ordered.split_at_indices(wanted)[1:]
    value_at = {index: piece.take(1)[0][column] for index, piece in zip(wanted, pieces)}
    result = []
    for p in positions:
        lower = math.floor(p)
        upper = min(lower + 1, count - 1)
        fraction = p - lower
        result.append(value_at[lower] + (value_at[upper] - value_at[lower]) * fraction)
    return result


class Normalizer(Preprocessor):
    """Scale each row's ``columns`` to unit norm: ``norm`` "l2", "l1" or "max"."""

    _is_fittable = False

    def __init__(self, columns: list[str], norm: str = "l2"):
        self.columns = check_columns_arg(columns, "Normalizer")
        if norm not in ("l1", "l2", "max"):
            raise ValueError(f"Normalizer(norm=...) must be 'l1', 'l2' or 'max', got {norm!r}")
        self.norm = norm

    def _transform_pandas(self, df: Any) -> Any:
        import numpy as np
        self._columns_of(df, self.columns)
        values = df[self.columns].to_numpy(dtype=float)
        if self.norm == "l2":
            norms = np.sqrt((values ** 2).sum(axis=1))
        elif self.norm == "l1":
            norms = np.abs(values).sum(axis=1)
        else:
            norms = np.abs(values).max(axis=1)
        norms[norms == 0] = 1.0
        df = df.copy()
        df[self.columns] = values / norms[:, None]
        return df
