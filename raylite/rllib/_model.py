"""The network, framework-neutral: its parameter shapes, their initial values and its forward
pass written once against an ``ops`` namespace (see ``_distributions``).

    ModelSpec (sizes, activation, sharing) ──shapes()──> {"policy/hidden_0/kernel": (3, 256), ...}
    init_weights(spec, seed) ──> numpy arrays: the torch and tf policies start from these, so
                                 both frameworks begin identical for a given seed
    forward(ops, params, obs, spec) ──> (action distribution inputs, values)

Weights travel as ``{name: numpy array}`` (kernels ``[in, out]``): between the learner and the
rollout workers, in checkpoints, and through ``get_weights()`` / ``set_weights()``. Acting
(``NumpyPolicy``) runs this forward pass on numpy, so rollout workers and ``rllib rollout``
never import torch or TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from raylite.rllib._conv import (
    conv_output_size,
    conv_shapes,
    conv_tower,
    normalize_filters,
)
from raylite.rllib._distributions import (
    NUMPY_OPS,
    Categorical,
    DiagGaussian,
    activation,
)


@dataclass(frozen=True)
class ModelSpec:
    """What the network looks like; built from the env's spaces and the ``model`` config."""

    obs_size: int
    discrete: bool
    action_size: int            # number of actions (discrete) or action dimensions
    hiddens: tuple[int, ...] = (256, 256)
    activation: str = "tanh"
    vf_share_layers: bool = False
    free_log_std: bool = False
    obs_shape: tuple[int, ...] = ()           # image observations (H, W, C): a conv torso
    conv_filters: tuple = ()                  # ((out, (kh, kw), (sh, sw)), ...); () dense
    conv_activation: str = "relu"

    on_policy = True       # sampled as fragments with GAE (not as replayed transitions)
    small_outputs = ("policy/out",)

    def __post_init__(self) -> None:
        normalize_conv_fields(self)

    @property
    def dist_class(self) -> type:
        return Categorical if self.discrete else DiagGaussian

    def acting_policy(self, actions: ActionAdapter,
                      weights: dict[str, np.ndarray] | None = None) -> NumpyPolicy:
        return NumpyPolicy(self, actions, weights)

    def target_names(self) -> tuple[str, ...]:
        return ()

    def outputs(self, ops: Any, params: dict[str, Any], obs: Any) -> tuple[Any, Any]:
        """The network's outputs: (action distribution inputs, values)."""
        return forward(ops, params, obs, self)

    @property
    def num_outputs(self) -> int:
        """Outputs of the policy layer (log stds excluded when they are free parameters)."""
        if self.discrete:
            return self.action_size
        return self.action_size if self.free_log_std else 2 * self.action_size

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter's name and shape, in a fixed order."""
        shapes: dict[str, tuple[int, ...]] = {}
        towers = ("policy",) if self.vf_share_layers else ("policy", "value")
        for tower in towers:
            tower_shapes, last = torso_shapes(tower, self)
            shapes.update(tower_shapes)
        shapes["policy/out/kernel"] = (last, self.num_outputs)
        shapes["policy/out/bias"] = (self.num_outputs,)
        if self.free_log_std and not self.discrete:
            shapes["policy/log_std"] = (self.action_size,)
        shapes["value/out/kernel"] = (last, 1)
        shapes["value/out/bias"] = (1,)
        return shapes


def init_weights(spec: Any, seed: int | None = None) -> dict[str, np.ndarray]:
    """RLlib's initialisation: columns normalised to norm 1 (hidden), 0.01 (the spec's
    ``small_outputs``, e.g. the policy output, so the first policy is near uniform /
    zero-mean with std 1) and 1 (value); biases 0 (``spec.initial_values`` may set others)."""
    if hasattr(spec, "initial_weights"):   # a model with its own start (custom, DQN's Q net)
        return spec.initial_weights(seed)
    rng = np.random.default_rng(seed)
    weights = {}
    initial = getattr(spec, "initial_values", dict)()
    custom = spec.custom_weights(seed) if hasattr(spec, "custom_weights") else {}
    for name, shape in spec.shapes().items():
        if name in custom:                 # a custom module's part initializes itself
            weights[name] = custom[name]
        elif name in initial:
            weights[name] = np.full(shape, initial[name], dtype=np.float32)
        elif name.endswith("kernel"):   # dense [in, out] or conv [kh, kw, in, out]
            scale = 0.01 if name.startswith(spec.small_outputs) else 1.0
            matrix = rng.standard_normal(shape).reshape(-1, shape[-1])
            matrix *= scale / np.sqrt(np.square(matrix).sum(axis=0, keepdims=True))
            weights[name] = matrix.reshape(shape).astype(np.float32)
        else:
            weights[name] = np.zeros(shape, dtype=np.float32)
    return weights


def model_loss(loss: Any) -> Any:
    """Mark ``loss(ops, params, target_params, batch, coeffs, spec)``: a loss that runs the
    networks itself (the learners call PPO's form, on the network's outputs, otherwise)."""
    loss.model_loss = True
    return loss


def lr_groups(names: list[str], lr: float | dict[str, float]) -> list[tuple[list[str], float]]:
    """The parameters by learning rate: ``lr`` is one rate, or ``{name prefix: rate}``."""
    if not isinstance(lr, dict):
        return [(list(names), float(lr))]
    groups = [([n for n in names if n.startswith(prefix)], float(rate))
              for prefix, rate in lr.items()]
    if sorted(n for group, _ in groups for n in group) != sorted(names):
        raise ValueError(f"learning rates {sorted(lr)} do not cover each parameter once")
    return [(group, rate) for group, rate in groups if group]


def mlp_shapes(prefix: str, in_size: int, hiddens: tuple[int, ...], out_size: int | None
               ) -> dict[str, tuple[int, ...]]:
    """Shapes of a stack of dense layers ``prefix/hidden_i`` and an output ``prefix/out``."""
    shapes: dict[str, tuple[int, ...]] = {}
    size = in_size
    for i, hidden in enumerate(hiddens):
        shapes[f"{prefix}/hidden_{i}/kernel"] = (size, hidden)
        shapes[f"{prefix}/hidden_{i}/bias"] = (hidden,)
        size = hidden
    if out_size is not None:
        shapes[f"{prefix}/out/kernel"] = (size, out_size)
        shapes[f"{prefix}/out/bias"] = (out_size,)
    return shapes


def mlp(ops: Any, params: dict[str, Any], prefix: str, x: Any, num_hidden: int,
        activation_name: str, output: bool = True) -> Any:
    """The forward pass of :func:`mlp_shapes`'s layers."""
    act = activation(ops, activation_name)
    for i in range(num_hidden):
        x = act(x @ params[f"{prefix}/hidden_{i}/kernel"] + params[f"{prefix}/hidden_{i}/bias"])
    return x @ params[f"{prefix}/out/kernel"] + params[f"{prefix}/out/bias"] if output else x


def torso_shapes(prefix: str, spec: Any) -> tuple[dict[str, tuple[int, ...]], int]:
    """The shapes of a network's body from observations to features, and the features' size:
    the conv layers of an image spec (``conv_filters``), else ``hiddens`` dense layers."""
    if spec.conv_filters:
        return (conv_shapes(prefix, spec.obs_shape, spec.conv_filters),
                conv_output_size(spec.obs_shape, spec.conv_filters))
    return (mlp_shapes(prefix, spec.obs_size, spec.hiddens, None),
            spec.hiddens[-1] if spec.hiddens else spec.obs_size)


def torso(ops: Any, params: dict[str, Any], prefix: str, obs: Any, spec: Any) -> Any:
    """The forward pass of :func:`torso_shapes`'s layers."""
    if spec.conv_filters:
        return conv_tower(ops, params, prefix, obs, spec.obs_shape, spec.conv_filters,
                          spec.conv_activation)
    return mlp(ops, params, prefix, obs, len(spec.hiddens), spec.activation, output=False)


def normalize_conv_fields(spec: Any) -> None:
    """A frozen spec's image fields as tuples (a checkpoint may give them as lists)."""
    object.__setattr__(spec, "obs_shape", tuple(int(n) for n in spec.obs_shape))
    object.__setattr__(spec, "conv_filters", normalize_filters(spec.conv_filters))


def check_weights(spec: Any, weights: dict[str, Any]) -> None:
    """Raise ValueError unless ``weights`` has exactly the spec's names and shapes."""
    expected = spec.shapes()
    if set(weights) != set(expected):
        raise ValueError(f"weights do not fit this model: missing {sorted(set(expected) - set(weights))}, "
                         f"unexpected {sorted(set(weights) - set(expected))}")
    for name, shape in expected.items():
        if tuple(np.shape(weights[name])) != shape:
            raise ValueError(f"weight {name!r} has shape {tuple(np.shape(weights[name]))}, "
                             f"this model needs {shape}")


def forward(ops: Any, params: dict[str, Any], obs: Any, spec: ModelSpec) -> tuple[Any, Any]:
    """``(action distribution inputs [batch, k], values [batch])`` for ``obs [batch, obs_size]``."""
    policy_hidden = torso(ops, params, "policy", obs, spec)
    dist_inputs = policy_hidden @ params["policy/out/kernel"] + params["policy/out/bias"]
    if spec.free_log_std and not spec.discrete:
        dist_inputs = ops.concat([dist_inputs, ops.zeros_like(dist_inputs) + params["policy/log_std"]])
    value_hidden = policy_hidden if spec.vf_share_layers else torso(ops, params, "value", obs,
                                                                    spec)
    values = (value_hidden @ params["value/out/kernel"] + params["value/out/bias"])[:, 0]
    return dist_inputs, values


class ActionAdapter:
    """Between the policy's actions and the env's: ints for Discrete; for Box, the policy acts
    in [-1, 1] (``normalize_actions``), rescaled to the bounds and clipped."""

    def __init__(self, discrete: bool, low: np.ndarray | None = None,
                 high: np.ndarray | None = None, shape: tuple[int, ...] = (),
                 normalize: bool = True):
        self.discrete = discrete
        self.shape = shape
        if not discrete:
            self.low = np.asarray(low, dtype=np.float32).reshape(-1)
            self.high = np.asarray(high, dtype=np.float32).reshape(-1)
            bounded = np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high))
            self.normalize = normalize and bool(bounded)

    def to_env(self, actions: np.ndarray) -> list[Any]:
        """One env action per row."""
        if self.discrete:
            return [int(a) for a in actions]
        if self.normalize:
            actions = self.low + (actions + 1.0) * 0.5 * (self.high - self.low)
        actions = np.clip(actions, self.low, self.high)
        return [a.reshape(self.shape) for a in actions.astype(np.float32)]


class NumpyPolicy:
    """Acting with the network on numpy: the rollout workers' and ``rllib rollout``'s policy."""

    def __init__(self, spec: ModelSpec, actions: ActionAdapter,
                 weights: dict[str, np.ndarray] | None = None):
        self.spec = spec
        self.actions = actions
        self.weights = weights if weights is not None else self._initial_weights()

    def _initial_weights(self) -> dict[str, np.ndarray]:
        return init_weights(self.spec, 0)

    def _outputs(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distribution inputs, values) of the network for float32 observations."""
        return forward(NUMPY_OPS, self.weights, obs, self.spec)

    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.weights.items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        check_weights(self.spec, weights)
        self.weights = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}

    def compute_actions(self, obs: np.ndarray, explore: bool,
                        rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Act on a batch of (filtered) observations; returns the actions, their env form,
        log-probabilities, distribution inputs and values."""
        dist_inputs, values = self._outputs(obs.astype(np.float32))
        dist = self.spec.dist_class(NUMPY_OPS, dist_inputs)
        actions = dist.sample(rng) if explore else dist.deterministic()
        return {"actions": actions, "env_actions": self.actions.to_env(actions),
                "action_logp": dist.logp(actions).astype(np.float32),
                "action_dist_inputs": dist_inputs, "vf_preds": values}

    def values(self, obs: np.ndarray) -> np.ndarray:
        return self._outputs(obs.astype(np.float32))[1]
