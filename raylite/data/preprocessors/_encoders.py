"""Encoders of categories: the distinct values of each column come from ``Dataset.unique``
(a distributed pass; only the distinct values reach the driver), sorted, and numbered.

    OrdinalEncoder   value -> its index among the sorted distinct values
    OneHotEncoder    column c -> columns c_<value> of 0/1 (the original column dropped)
    LabelEncoder     the label column -> indices (inverse_transform maps back)
    Categorizer      columns -> pandas Categorical with the distinct values as categories
    SimpleImputer    missing values -> the column's mean, most frequent value, or a constant
"""

from __future__ import annotations

from typing import Any

from raylite.data.preprocessors._base import Preprocessor, check_columns_arg


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _sorted_unique(dataset: Any, column: str) -> list:
    values = [v for v in dataset.unique(column) if not _missing(v)]
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


def _unique_indices(dataset: Any, columns: list[str], max_categories: dict | None = None) -> dict:
    stats = {}
    for c in columns:
        values = _sorted_unique(dataset, c)
        limit = (max_categories or {}).get(c)
        if limit is not None:
            values = _most_frequent(dataset, c, limit)
        stats[f"unique_values({c})"] = {v: i for i, v in enumerate(values)}
    return stats


def _most_frequent(dataset: Any, column: str, limit: int) -> list:
    """The ``limit`` most frequent values of ``column`` (ties: smaller value first)."""
    counts = [(row["count()"], row[column]) for row in dataset.groupby(column).count().take_all()
              if not _missing(row[column])]
    counts.sort(key=lambda pair: (-pair[0], pair[1]))
    return sorted(value for _, value in counts[:limit])


class OrdinalEncoder(Preprocessor):
    """Replace each value by its index among the column's sorted distinct values; a value not
    seen in ``fit`` becomes NaN."""

    def __init__(self, columns: list[str], *, encode_lists: bool = True):
        self.columns = check_columns_arg(columns, "OrdinalEncoder")
        self.encode_lists = encode_lists

    def _fit(self, dataset: Any) -> None:
        self.stats_ = _unique_indices(dataset, self.columns)

    def _transform_pandas(self, df: Any) -> Any:
        self._columns_of(df, self.columns)
        df = df.copy()
        for c in self.columns:
            df[c] = df[c].map(self.stats_[f"unique_values({c})"])
        return df


class OneHotEncoder(Preprocessor):
    """Replace column ``c`` with one 0/1 column ``c_<value>`` per distinct value (Ray 2.2's
    layout); ``max_categories={c: k}`` keeps the k most frequent values of ``c``."""

    def __init__(self, columns: list[str], *, max_categories: dict[str, int] | None = None):
        self.columns = check_columns_arg(columns, "OneHotEncoder")
        unknown = sorted(set(max_categories or {}) - set(self.columns))
        if unknown:
            raise ValueError(f"OneHotEncoder(max_categories=...) names columns {unknown} that "
                             f"are not among columns={self.columns}")
        self.max_categories = dict(max_categories or {})

    def _fit(self, dataset: Any) -> None:
        self.stats_ = _unique_indices(dataset, self.columns, self.max_categories)

    def _transform_pandas(self, df: Any) -> Any:
        self._columns_of(df, self.columns)
        df = df.copy()
        for c in self.columns:
            for value in self.stats_[f"unique_values({c})"]:
                df[f"{c}_{value}"] = (df[c] == value).astype(int)
        return df.drop(columns=self.columns)


class LabelEncoder(Preprocessor):
    """Encode the label column as indices of its sorted distinct values."""

    def __init__(self, label_column: str):
        if not isinstance(label_column, str):
            raise TypeError(f"LabelEncoder(label_column=...) takes a column name, got "
                            f"{label_column!r}")
        self.label_column = label_column

    def _fit(self, dataset: Any) -> None:
        self.stats_ = _unique_indices(dataset, [self.label_column])

    def _transform_pandas(self, df: Any) -> Any:
        self._columns_of(df, [self.label_column])
        df = df.copy()
        df[self.label_column] = df[self.label_column].map(
            self.stats_[f"unique_values({self.label_column})"])
        return df

    def inverse_transform_batch(self, df: Any) -> Any:
        self._check_fitted()
        inverse = {i: v for v, i in self.stats_[f"unique_values({self.label_column})"].items()}
        df = df.copy()
        df[self.label_column] = df[self.label_column].map(inverse)
        return df

    def inverse_transform(self, dataset: Any) -> Any:
        self._check_fitted()
        return dataset.map_batches(self.inverse_transform_batch, batch_format="pandas")


class Categorizer(Preprocessor):
    """Turn columns into pandas Categoricals (categories: the sorted distinct values, or the
    ``dtypes`` given, which need no fit)."""

    def __init__(self, columns: list[str], dtypes: dict | None = None):
        self.columns = check_columns_arg(columns, "Categorizer")
        self.dtypes = dict(dtypes or {})
        if self.dtypes and set(self.dtypes) >= set(self.columns):
            self.stats_ = dict(self.dtypes)  # everything given: nothing to fit

    def _fit(self, dataset: Any) -> None:
        import pandas as pd
        stats = {}
        for c in self.columns:
            stats[c] = self.dtypes.get(c) or pd.CategoricalDtype(_sorted_unique(dataset, c))
        self.stats_ = stats

    def _transform_pandas(self, df: Any) -> Any:
        self._columns_of(df, self.columns)
        df = df.copy()
        for c in self.columns:
            df[c] = df[c].astype(self.stats_[c])
        return df


class SimpleImputer(Preprocessor):
    """Fill missing values: ``strategy`` "mean", "most_frequent" or "constant"
    (with ``fill_value``; nothing to fit)."""

    def __init__(self, columns: list[str], strategy: str = "mean", fill_value: Any = None):
        self.columns = check_columns_arg(columns, "SimpleImputer")
        if strategy not in ("mean", "most_frequent", "constant"):
            raise ValueError(f"SimpleImputer(strategy=...) must be 'mean', 'most_frequent' or "
                             f"'constant', got {strategy!r}")
        if strategy == "constant" and fill_value is None:
            raise ValueError("SimpleImputer(strategy='constant') needs fill_value=...")
        self.strategy = strategy
        self.fill_value = fill_value
        if strategy == "constant":
            self._is_fittable = False

    def _fit(self, dataset: Any) -> None:
        if self.strategy == "mean":
            from raylite.data.aggregate import Mean
            self.stats_ = dataset.aggregate(*[Mean(c) for c in self.columns])
        else:
            self.stats_ = {f"most_frequent({c})": _most_frequent(dataset, c, 1)[0]
                           for c in self.columns}

    def _transform_pandas(self, df: Any) -> Any:
        self._columns_of(df, self.columns)
        df = df.copy()
        for c in self.columns:
            value = self.fill_value if self.strategy == "constant" \
                else self.stats_[f"{self.strategy}({c})"]
            df[c] = df[c].fillna(value)
        return df
