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
from raylite.rllib._model import forward, lr_groups


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

    abs = staticmethod(torch.abs)

    @staticmethod
    def max(x, axis):
        return torch.amax(x, dim=axis)

    @staticmethod
    def argmax(x):
        return torch.argmax(x, dim=-1)

    @staticmethod
    def stop_gradient(x):
        return x.detach()

    @staticmethod
    def reshape(x, shape):
        return torch.reshape(x, shape)

    @staticmethod
    def conv2d(x, kernel, stride, padding):
        """NHWC in and out, kernels [kh, kw, in, out] (torch's own layout inside)."""
        from raylite.rllib._conv import same_padding
        x = x.permute(0, 3, 1, 2)
        if padding == "same":
            kh, kw = kernel.shape[:2]
            top, bottom = same_padding(x.shape[2], kh, stride[0])
            left, right = same_padding(x.shape[3], kw, stride[1])
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, kernel.permute(3, 2, 0, 1), stride=tuple(stride)).permute(0, 2, 3, 1)


TORCH_OPS = TorchOps()


class TorchPolicy:
    """Parameters, Adam and ``learn_on_minibatch`` for a loss written against ops.

    ``loss`` is PPO's form ``loss(ops, dist_class, dist_inputs, values, batch, coeffs)``, or,
    marked with ``_model.model_loss``, ``loss(ops, params, target_params, batch, coeffs,
    spec)`` which runs the networks itself (DQN, SAC). ``lr`` is one rate, or ``{name prefix:
    rate}`` (SAC's actor, critic and entropy rates). ``target_names`` are the parameters that
    get a target copy, moved by :meth:`update_target`.
    """

    framework = "torch"

    def __init__(self, spec: Any, weights: dict[str, np.ndarray], loss: Callable,
                 lr: float | dict[str, float], grad_clip: float | None = None,
                 seed: int | None = None, num_threads: int = 1,
                 target_names: tuple[str, ...] = ()):
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
        self.target_params = {name: self.params[name].detach().clone() for name in target_names}
        groups = [{"params": [self.params[n] for n in names], "lr": rate}
                  for names, rate in lr_groups(list(self.params), lr)]
        self.optimizer = _adam(groups, groups[0]["lr"])

    def forward(self, obs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return forward(TORCH_OPS, self.params, torch.as_tensor(obs), self.spec)

    def learn_on_minibatch(self, minibatch: dict[str, np.ndarray],
                           coeffs: dict[str, float]) -> dict[str, Any]:
        """One Adam step on the loss of ``minibatch``; returns the loss's stats (floats, or
        arrays for per-row stats such as DQN's ``td_error``)."""
        tensors = {name: torch.from_numpy(np.ascontiguousarray(column))
                   for name, column in minibatch.items()}
        if getattr(self.loss, "model_loss", False):
            total, stats = self.loss(TORCH_OPS, self.params, self.target_params, tensors,
                                     coeffs, self.spec)
        else:
            dist_inputs, values = self.spec.outputs(TORCH_OPS, self.params, tensors[OBS])
            total, stats = self.loss(TORCH_OPS, self.spec.dist_class, dist_inputs, values,
                                     tensors, coeffs)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(list(self.params.values()), self.grad_clip)
        self.optimizer.step()
        return {name: _to_python(value) for name, value in stats.items()}

    def update_target(self, tau: float) -> None:
        """target <- tau * online + (1 - tau) * target (tau 1: a copy)."""
        with torch.no_grad():
            for name, target in self.target_params.items():
                target.mul_(1.0 - tau).add_(self.params[name].detach(), alpha=tau)

    def get_weights(self) -> dict[str, np.ndarray]:
        return {name: p.detach().numpy().copy() for name, p in self.params.items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(torch.as_tensor(np.asarray(weights[name], np.float32)))

    def get_target_weights(self) -> dict[str, np.ndarray]:
        return {name: t.numpy().copy() for name, t in self.target_params.items()}

    def set_target_weights(self, weights: dict[str, np.ndarray]) -> None:
        for name, t in self.target_params.items():
            t.copy_(torch.as_tensor(np.asarray(weights[name], np.float32)))

    def get_optimizer_state(self) -> dict[str, Any]:
        """Adam's state with numpy arrays in place of tensors."""
        return _map_tensors(self.optimizer.state_dict(), lambda t: t.detach().numpy().copy())

    def set_optimizer_state(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            self.optimizer.load_state_dict(_map_arrays(state, torch.from_numpy))


def _to_python(value: Any) -> Any:
    value = value.detach()
    return float(value) if value.ndim == 0 else value.numpy().copy()


def _adam(params: list, lr: float) -> torch.optim.Optimizer:  # params: list or param groups
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
