"""TensorFlow checkpoints and predictions: :class:`TensorflowCheckpoint`, :class:`TensorflowPredictor`.

Ray 2.2's layout: ``from_model`` keeps the Keras model's weights (``{"model": [arrays]}``), and
loading needs ``model_definition`` (a function that builds the same, untrained model).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raylite.air.checkpoint import PREPROCESSOR_KEY, Checkpoint
from raylite.train.predictor import Predictor

MODEL_KEY = "model"

__all__ = ["TensorflowCheckpoint", "TensorflowPredictor"]


class TensorflowCheckpoint(Checkpoint):
    """A checkpoint of a Keras model's weights (and a preprocessor)."""

    @classmethod
    def from_model(cls, model: Any, *, preprocessor: Any = None) -> TensorflowCheckpoint:
        return cls.from_dict({MODEL_KEY: [w for w in model.get_weights()],
                              PREPROCESSOR_KEY: preprocessor})

    def get_model(self, model_definition: Callable[[], Any] | None = None) -> Any:
        """A model from ``model_definition()`` with the saved weights set."""
        if model_definition is None or not callable(model_definition):
            raise ValueError("TensorflowCheckpoint.get_model needs model_definition=, a function "
                             "that builds the (untrained) model the weights belong to")
        data = self.to_dict()
        if MODEL_KEY not in data:
            raise ValueError(f"this checkpoint holds no weights (keys: {sorted(data)}); make it "
                             "with TensorflowCheckpoint.from_model")
        model = model_definition()
        model.set_weights(data[MODEL_KEY])
        return model


class TensorflowPredictor(Predictor):
    """Predict with a Keras model on numpy or pandas batches."""

    def __init__(self, *, model_definition: Callable[[], Any] | None = None,
                 preprocessor: Any = None, model_weights: list | None = None,
                 use_gpu: bool = False, model: Any = None):
        super().__init__(preprocessor)
        if model is None:
            if model_definition is None:
                raise ValueError("TensorflowPredictor needs model_definition= (or model=)")
            model = model_definition()
            if model_weights is not None:
                model.set_weights(model_weights)
        self.model = model
        self.use_gpu = use_gpu

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint,
                        model_definition: Callable[[], Any] | None = None,
                        use_gpu: bool = False) -> TensorflowPredictor:
        checkpoint = TensorflowCheckpoint.from_checkpoint(checkpoint)
        return cls(model=checkpoint.get_model(model_definition),
                   preprocessor=checkpoint.get_preprocessor(), use_gpu=use_gpu)

    def call_model(self, inputs: Any) -> Any:
        return self.model(inputs)

    def _predict_numpy(self, data: Any, dtype: Any = None) -> Any:
        import tensorflow as tf
        if isinstance(data, dict):
            inputs = {k: tf.convert_to_tensor(v, dtype=dtype) for k, v in data.items()}
            if len(inputs) == 1:
                inputs = next(iter(inputs.values()))
        else:
            inputs = tf.convert_to_tensor(data, dtype=dtype)
        output = self.call_model(inputs)
        if isinstance(output, dict):
            return {k: v.numpy() for k, v in output.items()}
        return output.numpy()
