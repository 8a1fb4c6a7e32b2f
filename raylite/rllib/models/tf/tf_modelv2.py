"""Ray's ``TFModelV2``: the base of custom Keras models.

Set ``self.base_model`` to a Keras model from observations to ``[logits, value]`` (RLlib's
pattern); raylite learns its trainable variables. ``forward`` and ``value_function`` are
RLlib's; raylite runs ``base_model`` itself.
"""

from __future__ import annotations

from typing import Any


class TFModelV2:
    def __init__(self, obs_space: Any, action_space: Any, num_outputs: int, model_config: dict,
                 name: str):
        self.obs_space = obs_space
        self.action_space = action_space
        self.num_outputs = num_outputs
        self.model_config = model_config
        self.name = name
        self.base_model: Any = None

    def forward(self, input_dict: dict, state: list, seq_lens: Any) -> tuple[Any, list]:
        logits, self._value_out = self.base_model(input_dict["obs"])
        return logits, state

    def value_function(self) -> Any:
        import tensorflow as tf
        return tf.reshape(self._value_out, [-1])


__all__ = ["TFModelV2"]
