"""The :class:`Preprocessor` contract, and the two that compose others: :class:`Chain` and
:class:`BatchMapper`.

    fit(dataset)        statistics from Data aggregations (``dataset.aggregate``, ``unique``,
                        ``sort``): the rows stay in the object store, only the statistics come
                        to the driver; they land in ``stats_``
    transform(dataset)  a lazy ``map_batches`` of :meth:`transform_batch` over pandas batches
    transform_batch(b)  one batch (a pandas DataFrame, a dict of numpy arrays or a pyarrow
                        Table) in, the same kind out: what the predictors call

A trainer's ``preprocessor=`` is fitted on ``datasets["train"]``, applied to every dataset and
saved in each checkpoint; the predictors apply it again before the model sees a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class PreprocessorNotFittedException(RuntimeError):
    """``transform`` was called on a preprocessor that needs ``fit`` first."""


class Preprocessor:
    """The base class: subclasses implement ``_fit(dataset)`` (setting ``self.stats_``) unless
    ``_is_fittable`` is False, and ``_transform_pandas(df) -> df``."""

    class FitStatus:
        NOT_FITTABLE = "NOT_FITTABLE"
        NOT_FITTED = "NOT_FITTED"
        PARTIALLY_FITTED = "PARTIALLY_FITTED"
        FITTED = "FITTED"

    _is_fittable = True
    stats_: dict | None = None

    def fit_status(self) -> str:
        if not self._is_fittable:
            return Preprocessor.FitStatus.NOT_FITTABLE
        return Preprocessor.FitStatus.FITTED if self.stats_ is not None \
            else Preprocessor.FitStatus.NOT_FITTED

    def fit(self, dataset: Any) -> Preprocessor:
        """Compute the statistics on ``dataset``; returns self. Refitting starts afresh."""
        _check_dataset(dataset, f"{type(self).__name__}.fit")
        if self._is_fittable:
            self.stats_ = {}
            self._fit(dataset)
        return self

    def fit_transform(self, dataset: Any) -> Any:
        return self.fit(dataset).transform(dataset)

    def transform(self, dataset: Any) -> Any:
        """A new Dataset with this preprocessor applied to every batch (lazily)."""
        _check_dataset(dataset, f"{type(self).__name__}.transform")
        self._check_fitted()
        return dataset.map_batches(_TransformBatch(self), batch_format="pandas")

    def transform_batch(self, batch: Any) -> Any:
        """Apply the preprocessor to one batch: a pandas DataFrame, a dict of numpy arrays or
        a pyarrow Table; the result is of the same kind."""
        self._check_fitted()
        frame, back = _as_pandas(batch)
        return back(self._transform_pandas(frame))

    # ---- for subclasses -------------------------------------------------------------------
    def _fit(self, dataset: Any) -> None:
        raise NotImplementedError

    def _transform_pandas(self, df: Any) -> Any:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if self.fit_status() == Preprocessor.FitStatus.NOT_FITTED:
            raise PreprocessorNotFittedException(
                f"{type(self).__name__} is not fitted: call .fit(dataset) (or fit_transform) "
                "before transform")

    def _columns_of(self, df: Any, columns: list[str]) -> None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"{type(self).__name__}: columns {missing} are not in the batch; "
                             f"its columns are {list(df.columns)}")

    def __repr__(self) -> str:
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "stats_"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


class _TransformBatch:
    """The function ``transform`` maps over a dataset's pandas batches (picklable)."""

    def __init__(self, preprocessor: Preprocessor):
        self.preprocessor = preprocessor

    def __call__(self, df: Any) -> Any:
        return to_block_batch(self.preprocessor._transform_pandas(df))


def to_block_batch(df: Any) -> Any:
    """A DataFrame whose columns hold ndarrays (Concatenator's) as a dict of numpy arrays, so
    that Data stores them as tensor columns; other frames as they are."""
    import numpy as np
    tensor_columns = [c for c in df.columns if df[c].dtype == object and len(df)
                      and isinstance(df[c].iloc[0], np.ndarray)]
    if not tensor_columns:
        return df
    return {c: (np.stack(df[c].to_list()) if c in tensor_columns else df[c].to_numpy())
            for c in df.columns}


def _as_pandas(batch: Any) -> tuple[Any, Callable[[Any], Any]]:
    """``(DataFrame, back)``: ``back`` turns a transformed frame into the batch's own kind."""
    import pandas as pd
    if isinstance(batch, pd.DataFrame):
        return batch, lambda df: df
    if isinstance(batch, dict):
        import numpy as np
        frame = pd.DataFrame({k: (list(v) if getattr(v, "ndim", 1) > 1 else v)
                              for k, v in batch.items()})

        def back(df: Any) -> dict:
            return {c: (np.stack(df[c].to_list()) if df[c].dtype == object and len(df)
                        and isinstance(df[c].iloc[0], np.ndarray) else df[c].to_numpy())
                    for c in df.columns}
        return frame, back
    if type(batch).__module__ == "pyarrow.lib" and type(batch).__name__ == "Table":
        import pyarrow as pa
        return batch.to_pandas(), lambda df: pa.Table.from_pandas(df, preserve_index=False)
    raise TypeError(f"transform_batch takes a pandas DataFrame, a dict of numpy arrays or a "
                    f"pyarrow Table, got {type(batch).__name__}")


def _check_dataset(dataset: Any, what: str) -> None:
    if not callable(getattr(dataset, "map_batches", None)):
        raise TypeError(f"{what} takes a raylite.data Dataset, got {type(dataset).__name__}; "
                        "for one batch use transform_batch(batch)")


def check_columns_arg(columns: Any, who: str) -> list[str]:
    if isinstance(columns, str):
        columns = [columns]
    if not isinstance(columns, (list, tuple)) or not columns or not all(
            isinstance(c, str) for c in columns):
        raise TypeError(f"{who}(columns=...) takes a non-empty list of column names, got "
                        f"{columns!r}")
    return list(columns)


class Chain(Preprocessor):
    """Several preprocessors in order: each is fitted on the output of those before it.

    Example:
        >>> from raylite.data.preprocessors import Chain, MinMaxScaler, StandardScaler
        >>> chain = Chain(StandardScaler(["x"]), MinMaxScaler(["x"]))
    """

    def __init__(self, *preprocessors: Preprocessor):
        if not preprocessors or not all(isinstance(p, Preprocessor) for p in preprocessors):
            raise TypeError("Chain takes one or more Preprocessor objects: "
                            "Chain(StandardScaler([...]), OneHotEncoder([...]))")
        self.preprocessors = list(preprocessors)

    def fit_status(self) -> str:
        statuses = [p.fit_status() for p in self.preprocessors]
        fittable = [s for s in statuses if s != Preprocessor.FitStatus.NOT_FITTABLE]
        if not fittable:
            return Preprocessor.FitStatus.NOT_FITTABLE
        if all(s == Preprocessor.FitStatus.FITTED for s in fittable):
            return Preprocessor.FitStatus.FITTED
        if any(s == Preprocessor.FitStatus.FITTED for s in fittable):
            return Preprocessor.FitStatus.PARTIALLY_FITTED
        return Preprocessor.FitStatus.NOT_FITTED

    def fit(self, dataset: Any) -> Preprocessor:
        _check_dataset(dataset, "Chain.fit")
        for index, preprocessor in enumerate(self.preprocessors):
            preprocessor.fit(dataset)
            if index < len(self.preprocessors) - 1:
                dataset = preprocessor.transform(dataset)
        return self

    def transform(self, dataset: Any) -> Any:
        _check_dataset(dataset, "Chain.transform")
        self._check_fitted()
        for preprocessor in self.preprocessors:
            dataset = preprocessor.transform(dataset)
        return dataset

    def transform_batch(self, batch: Any) -> Any:
        for preprocessor in self.preprocessors:
            batch = preprocessor.transform_batch(batch)
        return batch

    def _check_fitted(self) -> None:
        if self.fit_status() in (Preprocessor.FitStatus.NOT_FITTED,
                                 Preprocessor.FitStatus.PARTIALLY_FITTED):
            raise PreprocessorNotFittedException("Chain is not fitted: call .fit(dataset) first")

    @property
    def stats_(self) -> dict:
        return {f"{i}:{type(p).__name__}": p.stats_ for i, p in enumerate(self.preprocessors)}

    def __repr__(self) -> str:
        return f"Chain({', '.join(map(repr, self.preprocessors))})"


class BatchMapper(Preprocessor):
    """Apply ``fn`` to each batch (nothing to fit).

    Args:
        fn: batch -> batch, in ``batch_format``.
        batch_format: "pandas" (DataFrame) or "numpy" (dict of arrays).
        batch_size: rows per batch when transforming a Dataset (None: a whole block).

    Example:
        >>> import pandas as pd
        >>> mapper = BatchMapper(lambda df: df * 2, batch_format="pandas")
        >>> mapper.transform_batch(pd.DataFrame({"x": [1, 2]}))["x"].tolist()
        [2, 4]
    """

    _is_fittable = False

    def __init__(self, fn: Callable[[Any], Any], batch_format: str = "pandas",
                 batch_size: int | None = 4096):
        if not callable(fn):
            raise TypeError(f"BatchMapper takes a function, got {type(fn).__name__}")
        if batch_format not in ("pandas", "numpy"):
            raise ValueError(f"BatchMapper(batch_format=...) must be 'pandas' or 'numpy', got "
                             f"{batch_format!r}")
        self.fn = fn
        self.batch_format = batch_format
        self.batch_size = batch_size

    def transform(self, dataset: Any) -> Any:
        _check_dataset(dataset, "BatchMapper.transform")
        return dataset.map_batches(self.fn, batch_format=self.batch_format,
                                   batch_size=self.batch_size)

    def transform_batch(self, batch: Any) -> Any:
        frame, back = _as_pandas(batch)
        if self.batch_format == "pandas":
            return back(self.fn(frame))
        import numpy as np
        out = self.fn({c: (np.stack(frame[c].to_list()) if frame[c].dtype == object and len(frame)
                           and isinstance(frame[c].iloc[0], np.ndarray) else frame[c].to_numpy())
                       for c in frame.columns})
        import pandas as pd
        if isinstance(batch, dict):
            return out
        return back(pd.DataFrame({k: (list(v) if getattr(v, "ndim", 1) > 1 else v)
                                  for k, v in out.items()}))
