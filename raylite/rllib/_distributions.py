"""Action distributions, written once against a small ``ops`` namespace.

The same code computes log-probabilities, entropies and KL divergences on numpy arrays (the
rollout workers, the tests), torch tensors and TensorFlow tensors: each framework supplies an
ops object with the functions below (``NumpyOps`` is the reference), and arithmetic and
slicing are the tensors' own operators.

    ops: exp log tanh relu elu swish linear sum(x, axis) mean(x) minimum maximum
         clip(x, lo, hi) log_softmax(x) one_hot(indices, n) concat(xs) zeros_like(x)
         abs(x) max(x, axis) argmax(x) (over the last axis) stop_gradient(x)
         reshape(x, shape) conv2d(x [N, H, W, C], kernel [kh, kw, C, out], stride, padding)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

LOG_2PI = math.log(2.0 * math.pi)


class NumpyOps:
    """The ops namespace on numpy arrays (float32 in, float32 out)."""

    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    tanh = staticmethod(np.tanh)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    clip = staticmethod(np.clip)
    zeros_like = staticmethod(np.zeros_like)

    @staticmethod
    def relu(x):
        return np.maximum(x, 0)

    @staticmethod
    def elu(x):
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))

    @staticmethod
    def swish(x):
        return x / (1.0 + np.exp(-x))

    @staticmethod
    def linear(x):
        return x

    @staticmethod
    def sum(x, axis):
        return np.sum(x, axis=axis)

    @staticmethod
    def mean(x):
        return np.mean(x)

    @staticmethod
    def log_softmax(x):
        shifted = x - np.max(x, axis=-1, keepdims=True)
        return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))

    @staticmethod
    def one_hot(indices, n):
        return np.eye(n, dtype=np.float32)[np.asarray(indices, dtype=np.int64)]

    @staticmethod
    def concat(xs):
        return np.concatenate(xs, axis=-1)

    abs = staticmethod(np.abs)

    @staticmethod
    def max(x, axis):
        return np.max(x, axis=axis)

    @staticmethod
    def argmax(x):
        return np.argmax(x, axis=-1)

    @staticmethod
    def stop_gradient(x):
        return x

    @staticmethod
    def reshape(x, shape):
        return np.reshape(x, shape)

    @staticmethod
    def conv2d(x, kernel, stride, padding):
        """NHWC convolution, padding "same" (TensorFlow's rule) or "valid"."""
        from raylite.rllib._conv import same_padding
        (kh, kw), (sh, sw) = kernel.shape[:2], stride
        if padding == "same":
            x = np.pad(x, ((0, 0), same_padding(x.shape[1], kh, sh),
                           same_padding(x.shape[2], kw, sw), (0, 0)))
        windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
        windows = windows[:, ::sh, ::sw]          # [N, OH, OW, C, kh, kw]
        return np.tensordot(windows, kernel, axes=([4, 5, 3], [0, 1, 2])).astype(np.float32)


NUMPY_OPS = NumpyOps()


def activation(ops: Any, name: str):
    """The ops function of a ``fcnet_activation`` name."""
    return getattr(ops, "swish" if name == "silu" else name)


class Categorical:
    """A categorical distribution over ``n`` actions from ``[batch, n]`` logits."""

    def __init__(self, ops: Any, inputs: Any):
        self.ops = ops
        self.inputs = inputs
        self.log_probs = ops.log_softmax(inputs)

    @staticmethod
    def num_inputs(action_size: int) -> int:
        return action_size

    def logp(self, actions: Any) -> Any:
        num_actions = self.inputs.shape[-1]
        return self.ops.sum(self.ops.one_hot(actions, num_actions) * self.log_probs, -1)

    def entropy(self) -> Any:
        return -self.ops.sum(self.ops.exp(self.log_probs) * self.log_probs, -1)

    def kl(self, other: Categorical) -> Any:
        """KL(self || other), per row."""
        return self.ops.sum(self.ops.exp(self.log_probs) * (self.log_probs - other.log_probs), -1)

    # numpy only: acting
    def sample(self, rng: np.random.Generator) -> np.ndarray:
        gumbel = -np.log(-np.log(rng.random(self.inputs.shape) + 1e-12) + 1e-12)
        return np.argmax(self.inputs + gumbel, axis=-1)

    def deterministic(self) -> np.ndarray:
        return np.argmax(self.inputs, axis=-1)


class DiagGaussian:
    """A Gaussian with diagonal covariance from ``[batch, 2 * d]`` inputs: means, log stds."""

    def __init__(self, ops: Any, inputs: Any):
        self.ops = ops
        self.inputs = inputs
        size = inputs.shape[-1] // 2
        self.mean, self.log_std = inputs[:, :size], inputs[:, size:]
        self.std = ops.exp(self.log_std)

    @staticmethod
    def num_inputs(action_size: int) -> int:
        return 2 * action_size

    def logp(self, actions: Any) -> Any:
        z = (actions - self.mean) / self.std
        per_dim = -0.5 * z * z - self.log_std - 0.5 * LOG_2PI
        return self.ops.sum(per_dim, -1)

    def entropy(self) -> Any:
        return self.ops.sum(self.log_std + 0.5 * (LOG_2PI + 1.0), -1)

    def kl(self, other: DiagGaussian) -> Any:
        """KL(self || other), per row."""
        diff = self.mean - other.mean
        per_dim = (other.log_std - self.log_std
                   + (self.std * self.std + diff * diff) / (2.0 * other.std * other.std) - 0.5)
        return self.ops.sum(per_dim, -1)

    # numpy only: acting
    def sample(self, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal(self.mean.shape).astype(np.float32)
        return self.mean + self.std * noise

    def deterministic(self) -> np.ndarray:
        return self.mean
