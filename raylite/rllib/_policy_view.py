"""What users reach the learned networks through: ``get_policy()``, ``policy.model`` (a torch
``nn.Module`` or a Keras model) and the RLModule-style ``get_module()`` of Ray 2.x.

    algo.get_policy()            Policy: get_weights / set_weights / compute_single_action,
                                 model, dist_class, observation_space, action_space
    algo.get_policy().model      torch: an nn.Module sharing the learner's Parameters
                                 tf: a Keras model (a copy of the weights; .base_model.summary())
    algo.get_module()            forward_inference({"obs": batch}) / forward_exploration(...)

Each network spec (``ModelSpec``, ``QModelSpec``...) says what its ``outputs(ops, params,
obs)`` are; the views run them on the framework's tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Policy:
    """``get_policy()``: the learner's weights and acting with them (Ray's Policy surface)."""

    def __init__(self, algorithm: Any, unit: Any):
        self._algorithm = algorithm
        self._unit = unit
        self.policy_id = unit.policy_id
        self.observation_space = unit.observation_space
        self.action_space = unit.action_space
        self.config = unit.config.to_dict()
        self.framework = unit.config.framework
        self.dist_class = unit.model_spec.dist_class

    @property
    def model(self) -> Any:
        """The network: a torch ``nn.Module`` (its parameters are the learner's) or a Keras
        model holding a copy of the current weights (``model.base_model.summary()``)."""
        learner, spec = self._unit.learner, self._unit.model_spec
        if learner.framework == "torch":
            return torch_model(learner.params, spec)
        return keras_model(learner.get_weights(), spec)

    def get_weights(self) -> dict[str, np.ndarray]:
        return self._unit.learner.get_weights()

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self._algorithm.set_weights({self.policy_id: weights})

    def compute_single_action(self, obs: Any, explore: bool | None = None, **_: Any
                              ) -> tuple[Any, list, dict]:
        """``(action, [], extra fetches)`` for one observation."""
        return self._algorithm.compute_single_action(obs, explore=explore, full_fetch=True,
                                                     policy_id=self.policy_id)


def torch_model(params: dict[str, Any], spec: Any) -> Any:
    """An ``nn.Module`` over the learner's own Parameters: ``model(obs)`` is the network's
    output (PPO: action distribution inputs and values; DQN: Q-values)."""
    import torch

    from raylite.rllib._policy_torch import TORCH_OPS

    class RayliteTorchModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.names = list(params)
            self.weights = torch.nn.ParameterList(list(params.values()))

        @property
        def base_model(self) -> Any:
            return self

        def forward(self, obs: Any) -> Any:
            named = dict(zip(self.names, self.weights))
            return spec.outputs(TORCH_OPS, named, torch.as_tensor(obs, dtype=torch.float32))

    return RayliteTorchModel()


def keras_model(weights: dict[str, np.ndarray], spec: Any) -> Any:
    """A Keras model with a copy of ``weights``; ``model.base_model`` is the model itself."""
    import tensorflow as tf

    from raylite.rllib._policy_tf import TF_OPS

    class RayliteKerasModel(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__(name="raylite_model")
            self.named = {}
            for name, value in weights.items():
                variable = self.add_weight(name=name.replace("/", "_"), shape=value.shape,
                                           initializer="zeros")
                variable.assign(value)
                self.named[name] = variable

        @property
        def base_model(self) -> Any:
            return self

        def call(self, obs: Any) -> Any:
            named = {name: tf.convert_to_tensor(v) for name, v in self.named.items()}
            return spec.outputs(TF_OPS, named, tf.cast(obs, tf.float32))

    return RayliteKerasModel()


class RLModule:
    """Ray 2.x's RLModule surface for inference: ``forward_inference({"obs": batch})`` returns
    ``{"action_dist_inputs": ...}`` (PPO) or ``{"actions": ..., "q_values": ...}`` (DQN), as
    torch tensors when given torch tensors, else numpy arrays."""

    def __init__(self, algorithm: Any, policy_id: str):
        self._algorithm = algorithm
        self._policy_id = policy_id

    def forward_inference(self, batch: dict[str, Any]) -> dict[str, Any]:
        return self._forward(batch, explore=False)

    def forward_exploration(self, batch: dict[str, Any]) -> dict[str, Any]:
        return self._forward(batch, explore=True)

    def _forward(self, batch: dict[str, Any], explore: bool) -> dict[str, Any]:
        if "obs" not in batch:
            raise KeyError(f"forward_inference needs the observations under 'obs', got "
                           f"{sorted(batch)}")
        obs = batch["obs"]
        as_torch = type(obs).__module__.startswith("torch")
        array = obs.detach().cpu().numpy() if as_torch else np.asarray(obs)
        out = self._algorithm.act_on_batch(array, explore, self._policy_id)
        out.pop("env_actions", None)
        if as_torch:
            import torch
            return {k: torch.as_tensor(np.asarray(v)) for k, v in out.items()}
        return out
