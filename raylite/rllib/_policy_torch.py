"""The learner in torch: the network's parameters as torch tensors, Adam, one gradient step.

The network (``_model.forward``) and the loss (``_ppo.ppo_loss``) are shared with TensorFlow;
this file only supplies torch's ops and the optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from raylite.rllib._buffer import OBS
from raylite.rllib._model import ModelSpec, forward


class TorchOps:
    """The ops namespace (see ``_distributions``) on torch tensors."""

    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    tanh = staticmethod(torch.tanh)
    relu = staticmethod(torch.relu)
    elu = staticmethod(F.elu)
    swish = staticmethod(F.silu)
    minimum = staticmethod(torch.minimum)
    maximum = staticmethod(torch.maximum)
    clip = staticmethod(torch.clamp)
    zeros_like = staticmethod(torch.zeros_like)

    @staticmethod
    def linear(x):
        return x

    @staticmethod
    def sum(x, axis):
        return torch.sum(x, dim=axis)

    @staticmethod
    def mean(x):
        return torch.mean(x)

    @staticmethod
    def log_softmax(x):
        return torch.log_softmax(x, dim=-1)

    @staticmethod
    def one_hot(indices, n):
        return F.one_hot(indices.long(), n).to(torch.float32)

    @staticmethod
    def concat(xs):
        return torch.cat(xs, dim=-1)


TORCH_OPS = TorchOps()


class TorchPolicy:
    """Parameters, Adam and ``learn_on_minibatch`` for a loss written against ops."""

    framework = "torch"

    def __init__(self, spec: ModelSpec, weights: dict[str, np.ndarray], loss: Callable,
                 lr: float, grad_clip: float | None = None, seed: int | None = None,
                 num_threads: int = 1):
        if seed is not None:
            torch.manual_seed(seed)
        # small networks: threads waiting on each other cost more than they compute, and
        # far more when other processes want the cores (as Ray, which sets OMP_NUM_THREADS)
        torch.set_num_threads(num_threads)
        self.spec = spec
        self.loss = loss
        self.grad_clip = grad_clip
        self.params = {name: torch.nn.Parameter(torch.tensor(np.asarray(value, np.float32)))
                       for name, value in weights.items()}
        self.optimizer = _adam(list(self.params.values()), lr)

    def forward(self, obs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return forward(TORCH_OPS, self.params, torch.as_tensor(obs), self.spec)

    def learn_on_minibatch(self, minibatch: dict[str, np.ndarray],
                           coeffs: dict[str, float]) -> dict[str, float]:
        """One Adam step on the loss of ``minibatch``; returns the loss's stats."""
        tensors = {name: torch.from_numpy(column) for name, column in minibatch.items()}
        dist_inputs, values = forward(TORCH_OPS, self.params, tensors[OBS], self.spec)
        total, stats = self.loss(TORCH_OPS, self.spec.dist_class, dist_inputs, values, tensors,
                                 coeffs)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(list(self.params.values()), self.grad_clip)
        self.optimizer.step()
        return {name: float(value.detach()) for name, value in stats.items()}

    def get_weights(self) -> dict[str, np.ndarray]:
        return {name: p.detach().numpy().copy() for name, p in self.params.items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(torch.as_tensor(np.asarray(weights[name], np.float32)))

    def get_optimizer_state(self) -> dict[str, Any]:
        """Adam's state with numpy arrays in place of tensors."""
        return _map_tensors(self.optimizer.state_dict(), lambda t: t.detach().numpy().copy())

    def set_optimizer_state(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            self.optimizer.load_state_dict(_map_arrays(state, torch.from_numpy))


def _adam(params: list, lr: float) -> torch.optim.Optimizer:
    """Adam, fused into one kernel where this torch has it for CPUs."""
    try:
        return torch.optim.Adam(params, lr=lr, eps=1e-8, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, eps=1e-8)


def _map_tensors(value: Any, convert: Callable) -> Any:
    if isinstance(value, torch.Tensor):
        return convert(value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, convert) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_tensors(v, convert) for v in value]
    return value


def _map_arrays(value: Any, convert: Callable) -> Any:
    if isinstance(value, np.ndarray):
        return convert(value.copy())
    if isinstance(value, dict):
        return {k: _map_arrays(v, convert) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_arrays(v, convert) for v in value]
    return value
