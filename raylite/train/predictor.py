"""``ray.train.predictor``: the :class:`Predictor` contract every framework predictor follows.

    predictor = TorchPredictor.from_checkpoint(result.checkpoint)     # model + preprocessor
    predictor.predict(pandas_df)        -> DataFrame with a "predictions" column
    predictor.predict(ndarray)          -> ndarray
    predictor.predict({"x": ndarray})   -> {"predictions": ndarray}

The checkpoint's preprocessor is applied to the batch first (``transform_batch``), then the
framework sees numpy (:meth:`Predictor._predict_numpy`) or pandas (:meth:`_predict_pandas`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Predictor", "PredictorNotSerializableException"]


class PredictorNotSerializableException(RuntimeError):
    """A predictor is not pickled: ship its checkpoint and call from_checkpoint instead."""


class Predictor:
    """Turn a checkpoint into something that predicts on batches.

    Subclasses implement :meth:`from_checkpoint` and one of :meth:`_predict_numpy` /
    :meth:`_predict_pandas` (the other is derived).
    """

    def __init__(self, preprocessor: Any = None):
        self._preprocessor = preprocessor

    @classmethod
    def from_checkpoint(cls, checkpoint: Any, **kwargs: Any) -> Predictor:
        raise NotImplementedError(f"{cls.__name__} does not implement from_checkpoint")

    @classmethod
    def from_pandas_udf(cls, pandas_udf: Any) -> Predictor:
        """A predictor whose prediction is ``pandas_udf(df) -> df``."""
        if not callable(pandas_udf):
            raise TypeError(f"from_pandas_udf takes a function, got {type(pandas_udf).__name__}")

        class PandasUDFPredictor(Predictor):
            @classmethod
            def from_checkpoint(cls, checkpoint: Any, **kwargs: Any) -> Predictor:
                return PandasUDFPredictor()

            def _predict_pandas(self, df: Any, **kwargs: Any) -> Any:
                return pandas_udf(df, **kwargs)

        return PandasUDFPredictor()

    def get_preprocessor(self) -> Any:
        return self._preprocessor

    def set_preprocessor(self, preprocessor: Any) -> None:
        self._preprocessor = preprocessor

    def predict(self, data: Any, **kwargs: Any) -> Any:
        """Predict on a batch: a pandas DataFrame, a numpy array or a dict of numpy arrays;
        the result is of the same kind."""
        import numpy as np
        import pandas as pd
        if isinstance(data, pd.DataFrame):
            if self._preprocessor is not None:
                data = self._preprocessor.transform_batch(data)
            return self._predict_pandas(data, **kwargs)
        if isinstance(data, dict):
            if self._preprocessor is not None:
                data = self._preprocessor.transform_batch(data)
            out = self._predict_numpy(data, **kwargs)
            return out if isinstance(out, dict) else {"predictions": out}
        if isinstance(data, np.ndarray):
            if self._preprocessor is not None:
                data = self._preprocessor.transform_batch({"__value__": data})["__value__"]
            out = self._predict_numpy(data, **kwargs)
            return out["predictions"] if isinstance(out, dict) and list(out) == ["predictions"] \
                else out
        raise TypeError(f"predict() takes a pandas DataFrame, a numpy ndarray or a dict of "
                        f"numpy arrays, got {type(data).__name__}")

    # ---- one of these two, in subclasses ----------------------------------------------------
    def _predict_numpy(self, data: Any, **kwargs: Any) -> Any:
        import pandas as pd
        if isinstance(data, dict):
            frame = pd.DataFrame({k: (list(v) if getattr(v, "ndim", 1) > 1 else v)
                                  for k, v in data.items()})
        elif getattr(data, "ndim", 1) == 2:
            frame = pd.DataFrame(data)  # a feature matrix: one column per feature
        else:
            frame = pd.DataFrame({"__value__": list(data)})
        out = self._predict_pandas(frame, **kwargs)
        return {c: frame_column_to_numpy(out[c]) for c in out.columns}

    def _predict_pandas(self, df: Any, **kwargs: Any) -> Any:
        out = self._predict_numpy(pandas_to_numpy(df), **kwargs)
        return numpy_to_pandas(out)

    def __reduce__(self):
        raise PredictorNotSerializableException(
            f"{type(self).__name__} is not serializable: pass its checkpoint to a remote task or "
            "actor and call from_checkpoint there (BatchPredictor does this)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(preprocessor={self._preprocessor!r})"


def frame_column_to_numpy(column: Any) -> Any:
    """A pandas column as numpy; a column of arrays stacked into one n-d array."""
    import numpy as np
    if column.dtype == object and len(column) and isinstance(column.iloc[0], np.ndarray):
        return np.stack(column.to_list())
    return column.to_numpy()


def pandas_to_numpy(df: Any) -> Any:
    """One column: its array; several: a dict of arrays (Ray 2.2's convention)."""
    if len(df.columns) == 1:
        return frame_column_to_numpy(df[df.columns[0]])
    return {c: frame_column_to_numpy(df[c]) for c in df.columns}


def numpy_to_pandas(out: Any) -> Any:
    """Predictions as a DataFrame: an array becomes the "predictions" column (a row per
    sample; rows of n-d outputs are arrays), a dict one column per key."""
    import pandas as pd
    columns = out if isinstance(out, dict) else {"predictions": out}
    return pd.DataFrame({k: (list(v) if getattr(v, "ndim", 1) > 1 else v)
                         for k, v in columns.items()})
