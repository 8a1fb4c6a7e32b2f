"""Ray's ``TorchModelV2``: the base of custom torch models.

Subclass it together with ``torch.nn.Module``; ``forward(input_dict, state, seq_lens)``
returns ``(logits, state)`` and ``value_function()`` the values of the last forward pass.
"""

from __future__ import annotations

from typing import Any


class TorchModelV2:
    def __init__(self, obs_space: Any, action_space: Any, num_outputs: int, model_config: dict,
                 name: str):
        self.obs_space = obs_space
        self.action_space = action_space
        self.num_outputs = num_outputs
        self.model_config = model_config
        self.name = name

    def forward(self, input_dict: dict, state: list, seq_lens: Any) -> tuple[Any, list]:
        raise NotImplementedError

    def value_function(self) -> Any:
        raise NotImplementedError


__all__ = ["TorchModelV2"]
