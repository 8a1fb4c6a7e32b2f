"""``ray.train.batch_predictor``: score a Dataset with a checkpoint on a pool of actors.

    ds ──map_batches(ScoringActor, ActorPoolStrategy(min, max), batch_format="numpy")──► ds
         each actor: predictor_cls.from_checkpoint(checkpoint) once, then per batch (numpy
         columns; a tensor column is one n-d array):
         preprocessor.transform_batch → feature_columns → predict → + keep_columns

``predict_pipelined`` does the same window by window (a DatasetPipeline), so reading,
scoring and consuming overlap.
"""

from __future__ import annotations

from typing import Any

from raylite.air.checkpoint import Checkpoint

__all__ = ["BatchPredictor"]


class BatchPredictor:
    """Batch scoring of Datasets with a checkpoint and a predictor class.

    Example:
        >>> from raylite.train.batch_predictor import BatchPredictor        # doctest: +SKIP
        >>> from raylite.train.torch import TorchPredictor
        >>> predictor = BatchPredictor.from_checkpoint(result.checkpoint, TorchPredictor)
        >>> predictor.predict(ds, feature_columns=["x"], keep_columns=["y"]).take(3)
    """

    def __init__(self, checkpoint: Checkpoint, predictor_cls: type, **predictor_kwargs: Any):
        from raylite.train.predictor import Predictor
        if not isinstance(checkpoint, Checkpoint):
            raise TypeError(f"BatchPredictor needs a Checkpoint, got {type(checkpoint).__name__}")
        if not (isinstance(predictor_cls, type) and issubclass(predictor_cls, Predictor)):
            raise TypeError(f"predictor_cls must be a Predictor class (e.g. TorchPredictor), got "
                            f"{predictor_cls!r}")
        self._checkpoint = checkpoint
        self._predictor_cls = predictor_cls
        self._predictor_kwargs = predictor_kwargs

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, predictor_cls: type,
                        **kwargs: Any) -> BatchPredictor:
        return cls(checkpoint, predictor_cls, **kwargs)

    def get_preprocessor(self) -> Any:
        return self._checkpoint.get_preprocessor()

    def predict(self, data: Any, *, feature_columns: list[str] | None = None,
                keep_columns: list[str] | None = None, batch_size: int = 4096,
                min_scoring_workers: int = 1, max_scoring_workers: int | None = None,
                num_cpus_per_worker: float | None = None,
                num_gpus_per_worker: float | None = None, separate_gpu_stage: bool = True,
                ray_remote_args: dict | None = None, **predict_kwargs: Any) -> Any:
        """A Dataset of predictions: a "predictions" column (or the predictor's columns) and
        ``keep_columns`` of the input, scored by ``min..max_scoring_workers`` actors."""
        if not callable(getattr(data, "map_batches", None)):
            raise TypeError(f"predict() takes a raylite.data Dataset, got {type(data).__name__}; "
                            "for one batch use Predictor.predict")
        return data.map_batches(**self._map_args(
            feature_columns, keep_columns, batch_size, min_scoring_workers, max_scoring_workers,
            num_cpus_per_worker, num_gpus_per_worker, ray_remote_args, predict_kwargs))

    def predict_pipelined(self, data: Any, *, blocks_per_window: int | None = None,
                          bytes_per_window: int | None = None, **kwargs: Any) -> Any:
        """Like :meth:`predict`, window by window: a DatasetPipeline of predictions."""
        if bytes_per_window is not None:
            raise ValueError("predict_pipelined(bytes_per_window=...) is not supported by "
                             "raylite; use blocks_per_window=")
        if blocks_per_window is None:
            raise ValueError("predict_pipelined needs blocks_per_window=N")
        if not callable(getattr(data, "window", None)):
            raise TypeError(f"predict_pipelined() takes a raylite.data Dataset, got "
                            f"{type(data).__name__}")
        names = ("feature_columns", "keep_columns", "batch_size", "min_scoring_workers",
                 "max_scoring_workers", "num_cpus_per_worker", "num_gpus_per_worker",
                 "ray_remote_args")
        defaults = (None, None, 4096, 1, None, None, None, None)
        options = [kwargs.pop(n, d) for n, d in zip(names, defaults)]
        kwargs.pop("separate_gpu_stage", None)
        pipeline = data.window(blocks_per_window=blocks_per_window)
        return pipeline.map_batches(**self._map_args(*options, kwargs))

    def _map_args(self, feature_columns, keep_columns, batch_size, min_workers, max_workers,
                  num_cpus, num_gpus, ray_remote_args, predict_kwargs) -> dict:
        from raylite.data import ActorPoolStrategy
        for name, value in (("feature_columns", feature_columns), ("keep_columns", keep_columns)):
            if value is not None and (not isinstance(value, (list, tuple)) or not all(
                    isinstance(c, str) for c in value)):
                raise TypeError(f"{name} must be a list of column names, got {value!r}")
        remote_args = dict(ray_remote_args or {})
        if num_cpus is not None:
            remote_args["num_cpus"] = num_cpus
        if num_gpus is not None:
            remote_args["num_gpus"] = num_gpus
            self._predictor_kwargs.setdefault("use_gpu", num_gpus > 0)
        return dict(fn=_ScoringActor, batch_size=batch_size, batch_format="numpy",
                    compute=ActorPoolStrategy(min_size=min_workers, max_size=max_workers),
                    fn_constructor_args=(self._checkpoint, self._predictor_cls,
                                         self._predictor_kwargs, feature_columns, keep_columns,
                                         predict_kwargs),
                    **remote_args)

    def __repr__(self) -> str:
        return f"BatchPredictor({self._checkpoint!r}, {self._predictor_cls.__name__})"


class _ScoringActor:
    """One scoring actor: the model is loaded once, here, and used for every batch."""

    def __init__(self, checkpoint: Checkpoint, predictor_cls: type, predictor_kwargs: dict,
                 feature_columns: list | None, keep_columns: list | None, predict_kwargs: dict):
        self.predictor = predictor_cls.from_checkpoint(checkpoint, **predictor_kwargs)
        self.preprocessor = self.predictor.get_preprocessor()
        self.predictor.set_preprocessor(None)  # applied here, before the columns are chosen
        self.feature_columns = feature_columns
        self.keep_columns = keep_columns
        self.predict_kwargs = predict_kwargs

    def __call__(self, batch: dict) -> dict:
        """One batch as numpy columns (tensor columns arrive as n-d arrays, no copies per
        row): preprocess, pick the features, predict, add the kept columns."""
        original = batch
        if self.preprocessor is not None:
            batch = self.preprocessor.transform_batch(batch)
        columns = self.feature_columns if self.feature_columns is not None else list(batch)
        missing = [c for c in columns if c not in batch]
        if missing:
            raise ValueError(f"feature_columns {missing} are not in the (preprocessed) batch; "
                             f"its columns are {list(batch)}")
        features = {c: _dense(batch[c]) for c in columns}
        if len(features) == 1:  # one column: the model gets its array (as Ray's predictors do)
            output = self.predictor.predict(next(iter(features.values())), **self.predict_kwargs)
        else:
            output = self.predictor.predict(features, **self.predict_kwargs)
        predictions = dict(output) if isinstance(output, dict) else {"predictions": output}
        for column in self.keep_columns or []:
            source = original if column in original else batch
            if column not in source:
                raise ValueError(f"keep_columns: {column!r} is not in the input; its columns are "
                                 f"{list(original)}")
            predictions[column] = source[column]
        return predictions


def _dense(values: Any) -> Any:
    """A column of equal-length arrays (Arrow list columns arrive as object arrays of them)
    as one n-d array; any other column as it is."""
    import numpy as np
    if getattr(values, "dtype", None) == object and len(values) and isinstance(
            values[0], (np.ndarray, list)):
        try:
            return np.stack([np.asarray(v) for v in values])
        except ValueError:  # ragged: leave it to the predictor
            return values
    return values
