"""DQN's Q network, framework-neutral like ``_model``: shapes, forward pass, numpy acting.

    obs ──torso──> features
        │   fcnet (model: fcnet_hiddens, fcnet_activation), conv layers for image
        │   observations (conv_filters), or a registered custom model (custom_model: its
        │   output, num_outputs wide, as RLlib's DQN model wraps it)
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
from raylite.rllib._model import (
    ActionAdapter,
    check_weights,
    init_weights,
    mlp,
    mlp_shapes,
    normalize_conv_fields,
    torso,
    torso_shapes,
)

TORSO = "q/torso"


@dataclass(frozen=True)
class QModelSpec:
    """What the Q network looks like; built from the env's spaces and DQN's config."""

    obs_size: int
    action_size: int                  # the number of discrete actions
    hiddens: tuple[int, ...] = (256, 256)
    activation: str = "tanh"
    q_hiddens: tuple[int, ...] = (256,)
    dueling: bool = True
    obs_shape: tuple[int, ...] = ()   # image observations (H, W, C): a conv torso
    conv_filters: tuple = ()
    conv_activation: str = "relu"
    custom_torso: Any = None          # a _custom_model.CustomNet: the custom model's output

    discrete = True
    on_policy = False
    small_outputs = ()

    def __post_init__(self) -> None:
        from raylite.rllib._custom_model import as_custom_net
        normalize_conv_fields(self)
        object.__setattr__(self, "custom_torso", as_custom_net(self.custom_torso))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        if self.custom_torso is not None:
            shapes = self.custom_torso.shapes(TORSO + "/")
            features = self.custom_torso.num_outputs
        else:
            shapes, features = torso_shapes(TORSO, self)
        shapes.update(mlp_shapes("q/advantage", features, self.q_hiddens, self.action_size))
        if self.dueling:
            shapes.update(mlp_shapes("q/value", features, self.q_hiddens, 1))
        return shapes

    def custom_weights(self, seed: int | None) -> dict[str, np.ndarray]:
        """The custom torso's own initial weights (the heads: ``init_weights``)."""
        if self.custom_torso is None:
            return {}
        return self.custom_torso.initial_weights(TORSO + "/", seed)

    def features(self, ops: Any, params: dict[str, Any], obs: Any) -> Any:
        if self.custom_torso is not None:
            return self.custom_torso(ops, params, TORSO + "/", obs)
        return torso(ops, params, TORSO, obs, self)

    @property
    def dist_class(self) -> type:
        from raylite.rllib._distributions import Categorical
        return Categorical   # over the Q-values, as RLlib's DQN policies report it

    def outputs(self, ops: Any, params: dict[str, Any], obs: Any) -> Any:
        """The Q-values, ``[batch, num_actions]``."""
        return q_values(ops, params, obs, self)

    def initial_weights(self, seed: int | None) -> dict[str, np.ndarray]:
        """RLlib 2.x's DQN module starts from torch's default for dense and conv layers: kernel
        and bias uniform in +-1/sqrt(fan_in), fan_in the kernel's size but its last axis (the
        column-normalised start of ``init_weights`` learned less per env step on CartPole:
        bench/RESULTS.md). A custom torso starts as it initializes itself."""
        rng = np.random.default_rng(seed)
        shapes = self.shapes()
        weights = self.custom_weights(seed)
        for name, shape in shapes.items():
            if name in weights:
                continue
            kernel = shapes[name.rsplit("/", 1)[0] + "/kernel"]
            bound = 1.0 / np.sqrt(int(np.prod(kernel[:-1])))
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
    features = spec.features(ops, params, obs)
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


def q_model_body(config: Any, observation_space: Any, action_space: Any) -> dict[str, Any]:
    """The Q network's torso fields from the ``model`` config: a custom model (its output
    ``[256] + fcnet_hiddens``'s last size wide, as RLlib's DQN asks of it; the Q heads sit on
    it also with ``hiddens: []``, where RLlib would take its output as the Q-values), or
    conv layers for image observations, else nothing (the fcnet)."""
    from raylite.rllib._conv import image_fields
    model = config.model
    if model.custom_model is None:
        return image_fields(model, observation_space)
    from raylite.rllib._custom_model import custom_net
    features = ([256] + list(model.fcnet_hiddens))[-1]
    return {"custom_torso": custom_net(model.to_dict(), config.framework, observation_space,
                                       action_space, features)}
