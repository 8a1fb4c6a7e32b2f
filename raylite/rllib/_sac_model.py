"""SAC's networks, framework-neutral like ``_model``: a squashed Gaussian policy, twin Q
networks, the entropy weight, and numpy acting.

    obs ──policy fcnet──> mean, log_std ──> u = mean + std * noise ──> action = tanh(u)
    (obs, action) ──q1 fcnet──> Q1        (and q2: the twin, Fujimoto et al. 2018)
    either network may be a registered custom model (policy_model_config / q_model_config
    custom_model): the policy's takes obs to [means, log stds]; the Q networks' take the
    observations and actions concatenated to one value each
    log_alpha: the entropy weight, learned (alpha = exp(log_alpha))

Actions live in [-1, 1]; the action adapter rescales them to the env's bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from raylite.rllib._distributions import LOG_2PI, NUMPY_OPS
from raylite.rllib._model import ActionAdapter, check_weights, init_weights, mlp, mlp_shapes

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
LOG_2 = math.log(2.0)


class SquashedGaussian:
    """tanh of a diagonal Gaussian, from ``[batch, 2 * d]`` inputs (means, log stds)."""

    def __init__(self, ops: Any, inputs: Any):
        self.ops = ops
        size = inputs.shape[-1] // 2
        self.mean = inputs[:, :size]
        self.log_std = ops.clip(inputs[:, size:], LOG_STD_MIN, LOG_STD_MAX)
        self.std = ops.exp(self.log_std)

    def sample_with_logp(self, noise: Any) -> tuple[Any, Any]:
        """``(tanh(mean + std * noise), its log-probability)``, reparameterized: gradients
        flow to the mean and std."""
        ops = self.ops
        u = self.mean + self.std * noise
        action = ops.tanh(u)
        gaussian_logp = ops.sum(-0.5 * noise * noise - self.log_std - 0.5 * LOG_2PI, -1)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), exact where tanh saturates
        minus_2u = -2.0 * u
        softplus = ops.maximum(minus_2u, 0.0 * u) + ops.log(1.0 + ops.exp(-ops.abs(minus_2u)))
        squash_correction = ops.sum(2.0 * (LOG_2 - u - softplus), -1)
        return action, gaussian_logp - squash_correction

    def deterministic(self) -> Any:
        return self.ops.tanh(self.mean)


@dataclass(frozen=True)
class SACModelSpec:
    """What SAC's networks look like; from the env's spaces and SAC's model configs."""

    obs_size: int
    action_size: int                  # action dimensions
    policy_hiddens: tuple[int, ...] = (256, 256)
    policy_activation: str = "relu"
    q_hiddens: tuple[int, ...] = (256, 256)
    q_activation: str = "relu"
    twin_q: bool = True
    initial_alpha: float = 1.0
    custom_policy: Any = None         # a _custom_model.CustomNet in place of the policy fcnet
    custom_q: Any = None              # ... in place of each Q fcnet

    discrete = False
    on_policy = False
    small_outputs = ("policy/out",)
    dist_class = SquashedGaussian

    def __post_init__(self) -> None:
        from raylite.rllib._custom_model import as_custom_net
        object.__setattr__(self, "custom_policy", as_custom_net(self.custom_policy))
        object.__setattr__(self, "custom_q", as_custom_net(self.custom_q))

    @property
    def q_names(self) -> tuple[str, ...]:
        return ("q1", "q2") if self.twin_q else ("q1",)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        if self.custom_policy is not None:
            shapes = self.custom_policy.shapes("policy/")
        else:
            shapes = mlp_shapes("policy", self.obs_size, self.policy_hiddens,
                                2 * self.action_size)
        for q in self.q_names:
            shapes.update(self.custom_q.shapes(q + "/") if self.custom_q is not None else
                          mlp_shapes(q, self.obs_size + self.action_size, self.q_hiddens, 1))
        shapes["log_alpha"] = ()
        return shapes

    def custom_weights(self, seed: int | None) -> dict[str, np.ndarray]:
        """The custom networks' own initial weights (each Q network its own draw)."""
        weights: dict[str, np.ndarray] = {}
        if self.custom_policy is not None:
            weights.update(self.custom_policy.initial_weights("policy/", seed))
        if self.custom_q is not None:
            for i, q in enumerate(self.q_names):
                weights.update(self.custom_q.initial_weights(
                    q + "/", None if seed is None else seed + 1 + i))
        return weights

    def initial_values(self) -> dict[str, float]:
        return {"log_alpha": math.log(self.initial_alpha)}

    def target_names(self) -> tuple[str, ...]:
        """The Q networks have target copies."""
        return tuple(name for name in self.shapes() if name.startswith(self.q_names))

    def outputs(self, ops: Any, params: dict[str, Any], obs: Any) -> Any:
        """The policy's distribution inputs (means, log stds)."""
        return policy_inputs(ops, params, obs, self)

    def acting_policy(self, actions: ActionAdapter,
                      weights: dict[str, np.ndarray] | None = None) -> NumpySACPolicy:
        return NumpySACPolicy(self, actions, weights)


def policy_inputs(ops: Any, params: dict[str, Any], obs: Any, spec: SACModelSpec) -> Any:
    if spec.custom_policy is not None:
        return spec.custom_policy(ops, params, "policy/", obs)
    return mlp(ops, params, "policy", obs, len(spec.policy_hiddens), spec.policy_activation)


def q_value(ops: Any, params: dict[str, Any], name: str, obs: Any, actions: Any,
            spec: SACModelSpec) -> Any:
    """``Q_name(obs, actions)``, ``[batch]``."""
    inputs = ops.concat([obs, actions])
    if spec.custom_q is not None:
        return spec.custom_q(ops, params, name + "/", inputs)[:, 0]
    return mlp(ops, params, name, inputs, len(spec.q_hiddens), spec.q_activation)[:, 0]


def min_q(ops: Any, params: dict[str, Any], obs: Any, actions: Any, spec: SACModelSpec) -> Any:
    """The smaller of the twin Q-values (the only one without twin_q)."""
    values = [q_value(ops, params, name, obs, actions, spec) for name in spec.q_names]
    return values[0] if len(values) == 1 else ops.minimum(values[0], values[1])


class NumpySACPolicy:
    """Acting on numpy: sampled squashed actions (explore) or tanh of the mean."""

    def __init__(self, spec: SACModelSpec, actions: ActionAdapter,
                 weights: dict[str, np.ndarray] | None = None):
        self.spec = spec
        self.actions = actions
        self.weights = weights if weights is not None else init_weights(spec, 0)

    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: np.array(v, copy=True) for k, v in self.weights.items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        check_weights(self.spec, weights)
        self.weights = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}

    def set_exploration(self, state: dict) -> None:
        pass

    def compute_actions(self, obs: np.ndarray, explore: bool,
                        rng: np.random.Generator) -> dict[str, np.ndarray]:
        inputs = policy_inputs(NUMPY_OPS, self.weights, obs.astype(np.float32), self.spec)
        dist = SquashedGaussian(NUMPY_OPS, inputs)
        if explore:
            noise = rng.standard_normal(dist.mean.shape).astype(np.float32)
            actions, logp = dist.sample_with_logp(noise)
        else:
            actions, logp = dist.deterministic(), np.zeros(len(obs), np.float32)
        actions = actions.astype(np.float32)
        return {"actions": actions, "env_actions": self.actions.to_env(actions),
                "action_dist_inputs": inputs, "action_logp": logp.astype(np.float32)}
