"""DQN's Q network, framework-neutral like ``_model``: shapes, forward pass, numpy acting.

    obs ──fcnet (model: fcnet_hiddens, fcnet_activation)──> features
        ├── advantage head (hiddens, relu) ──> A(s, ·)   [num_actions]
        └── value head     (hiddens, relu) ──> V(s)      (dueling only)
    Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a')          (Wang et al. 2016; else Q = A)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from raylite.rllib._distributions import NUMPY_OPS
from raylite.rllib._exploration import epsilon_greedy
from raylite.rllib._model import ActionAdapter, check_weights, init_weights, mlp, mlp_shapes


@dataclass(frozen=True)
class QModelSpec:
    """What the Q network looks like; built from the env's spaces and DQN's config."""

    obs_size: int
    action_size: int                  # the number of discrete actions
    hiddens: tuple[int, ...] = (256, 256)
    activation: str = "tanh"
    q_hiddens: tuple[int, ...] = (256,)
    dueling: bool = True

    discrete = True
    on_policy = False
    small_outputs = ()

    def shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = mlp_shapes("q/torso", self.obs_size, self.hiddens, None)
        features = self.hiddens[-1] if self.hiddens else self.obs_size
        shapes.update(mlp_shapes("q/advantage", features, self.q_hiddens, self.action_size))
        if self.dueling:
            shapes.update(mlp_shapes("q/value", features, self.q_hiddens, 1))
        return shapes

    @property
    def dist_class(self) -> type:
        from raylite.rllib._distributions import Categorical
        return Categorical   # over the Q-values, as RLlib's DQN policies report it

    def outputs(self, ops: Any, params: dict[str, Any], obs: Any) -> Any:
        """The Q-values, ``[batch, num_actions]``."""
        return q_values(ops, params, obs, self)

    def initial_weights(self, seed: int | None) -> dict[str, np.ndarray]:
        """RLlib 2.x's DQN module starts from torch's default for dense layers: kernel and
        bias uniform in +-1/sqrt(fan_in) (the column-normalised start of ``init_weights``
        learned less per env step on CartPole: bench/RESULTS.md)."""
        rng = np.random.default_rng(seed)
        shapes = self.shapes()
        weights = {}
        for name, shape in shapes.items():
            fan_in = shapes[name.rsplit("/", 1)[0] + "/kernel"][0]
            bound = 1.0 / np.sqrt(fan_in)
            weights[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
        return weights

    def target_names(self) -> tuple[str, ...]:
        """Every parameter has a target copy."""
        return tuple(self.shapes())

    def acting_policy(self, actions: ActionAdapter,
                      weights: dict[str, np.ndarray] | None = None) -> NumpyQPolicy:
        return NumpyQPolicy(self, actions, weights)


def q_values(ops: Any, params: dict[str, Any], obs: Any, spec: QModelSpec) -> Any:
    """``Q(obs, ·)``, ``[batch, num_actions]``."""
    features = mlp(ops, params, "q/torso", obs, len(spec.hiddens), spec.activation,
                   output=False)
    advantages = mlp(ops, params, "q/advantage", features, len(spec.q_hiddens), "relu")
    if not spec.dueling:
        return advantages
    value = mlp(ops, params, "q/value", features, len(spec.q_hiddens), "relu")
    mean_advantage = ops.sum(advantages, -1)[:, None] / spec.action_size
    return value + advantages - mean_advantage


class NumpyQPolicy:
    """Epsilon-greedy acting on numpy (rollout workers, ``compute_single_action``)."""

    def __init__(self, spec: QModelSpec, actions: ActionAdapter,
                 weights: dict[str, np.ndarray] | None = None):
        self.spec = spec
        self.actions = actions
        self.weights = weights if weights is not None else init_weights(spec, 0)
        self.epsilon = 0.0

    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.weights.items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        check_weights(self.spec, weights)
        self.weights = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}

    def set_exploration(self, state: dict[str, float]) -> None:
        self.epsilon = float(state["epsilon"])

    def compute_actions(self, obs: np.ndarray, explore: bool,
                        rng: np.random.Generator) -> dict[str, np.ndarray]:
        q = q_values(NUMPY_OPS, self.weights, obs.astype(np.float32), self.spec)
        actions = epsilon_greedy(q, self.epsilon if explore else 0.0, rng)
        return {"actions": actions, "env_actions": self.actions.to_env(actions), "q_values": q}
