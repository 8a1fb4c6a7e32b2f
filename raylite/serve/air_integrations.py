"""``ray.serve.air_integrations``: serve a predictor made from a checkpoint over HTTP.

    from raylite.serve.air_integrations import PredictorDeployment
    from raylite.serve.http_adapters import pandas_read_json

    serve.run(PredictorDeployment.options(name="model").bind(
        XGBoostPredictor, result.checkpoint, http_adapter=pandas_read_json))
    # POST /model with [{"a": 1.0, "b": 2.0}]  ->  [{"predictions": 0.93}]

Each replica builds the predictor once (``predictor_cls.from_checkpoint(checkpoint, ...)``);
a request goes through ``http_adapter`` to ``predictor.predict`` and its result back as JSON
(a DataFrame as a list of records, arrays as lists).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raylite.serve._deployment import deployment

__all__ = ["PredictorDeployment", "PredictorWrapper"]


class PredictorWrapper:
    """The replica's object: a predictor built from a checkpoint, called per request."""

    def __init__(self, predictor_cls: Any, checkpoint: Any, http_adapter: Callable | None = None,
                 batching_params: Any = None, predict_kwargs: dict | None = None,
                 **predictor_from_checkpoint_kwargs: Any):
        from raylite.air.checkpoint import Checkpoint
        from raylite.serve.http_adapters import json_to_ndarray
        if batching_params not in (None, False):
            raise ValueError("PredictorDeployment(batching_params=...) is not supported by "
                             "raylite: pass batching_params=False (each request is predicted on "
                             "its own), or wrap the predictor in a deployment using @serve.batch")
        if isinstance(predictor_cls, str):
            predictor_cls = _import(predictor_cls)
        if isinstance(checkpoint, str):
            checkpoint = Checkpoint.from_directory(checkpoint)
        if not isinstance(checkpoint, Checkpoint):
            raise TypeError(f"PredictorDeployment needs a Checkpoint (or its directory), got "
                            f"{type(checkpoint).__name__}")
        if isinstance(http_adapter, str):
            http_adapter = _import(http_adapter)
        self.http_adapter = http_adapter or json_to_ndarray
        self.predict_kwargs = dict(predict_kwargs or {})
        self.predictor = predictor_cls.from_checkpoint(checkpoint,
                                                       **predictor_from_checkpoint_kwargs)

    async def __call__(self, request: Any) -> Any:
        import inspect
        data = self.http_adapter(request)
        if inspect.isawaitable(data):
            data = await data
        return _to_json(self.predictor.predict(data, **self.predict_kwargs))

    def predict(self, data: Any) -> Any:
        """For handles: ``handle.predict.remote(batch)`` returns the predictor's output."""
        return self.predictor.predict(data, **self.predict_kwargs)


PredictorDeployment = deployment(name="PredictorDeployment")(PredictorWrapper)


def _to_json(output: Any) -> Any:
    import numpy as np
    import pandas as pd
    if isinstance(output, pd.DataFrame):
        return [{k: _plain(v) for k, v in row.items()} for row in output.to_dict("records")]
    if isinstance(output, dict):
        return {k: _plain(v) for k, v in output.items()}
    if isinstance(output, np.ndarray):
        return output.tolist()
    return output


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def _import(path: str) -> Any:
    import importlib
    module_name, _, attribute = path.rpartition(".")
    if not module_name:
        raise ValueError(f"{path!r} is not an import path like 'package.module.Name'")
    return getattr(importlib.import_module(module_name), attribute)
