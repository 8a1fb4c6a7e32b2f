"""The learner in TensorFlow: the network's parameters as tf.Variables, Adam, one gradient
step compiled with ``tf.function``.

The network (``_model.forward``) and the loss (``_ppo.ppo_loss``) are shared with torch;
this file only supplies TensorFlow's ops and the optimizer step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf

from raylite.rllib._buffer import OBS
from raylite.rllib._model import forward, lr_groups


class TFOps:
    """The ops namespace (see ``_distributions``) on TensorFlow tensors."""

    exp = staticmethod(tf.exp)
    log = staticmethod(tf.math.log)
    tanh = staticmethod(tf.tanh)
    relu = staticmethod(tf.nn.relu)
    elu = staticmethod(tf.nn.elu)
    swish = staticmethod(tf.nn.silu)
    minimum = staticmethod(tf.minimum)
    maximum = staticmethod(tf.maximum)
    clip = staticmethod(tf.clip_by_value)
    zeros_like = staticmethod(tf.zeros_like)

    @staticmethod
    def linear(x):
        return x

    @staticmethod
    def sum(x, axis):
        return tf.reduce_sum(x, axis=axis)

    @staticmethod
    def mean(x):
        return tf.reduce_mean(x)

    @staticmethod
    def log_softmax(x):
        return tf.nn.log_softmax(x, axis=-1)

    @staticmethod
    def one_hot(indices, n):
        return tf.one_hot(tf.cast(indices, tf.int32), n, dtype=tf.float32)

    @staticmethod
    def concat(xs):
        return tf.concat(xs, axis=-1)

    abs = staticmethod(tf.abs)
    stop_gradient = staticmethod(tf.stop_gradient)

    @staticmethod
    def max(x, axis):
        return tf.reduce_max(x, axis=axis)

    @staticmethod
    def argmax(x):
        return tf.argmax(x, axis=-1)

    @staticmethod
    def reshape(x, shape):
        return tf.reshape(x, shape)

    @staticmethod
    def conv2d(x, kernel, stride, padding):
        return tf.nn.conv2d(x, kernel, strides=[1, stride[0], stride[1], 1],
                            padding=padding.upper())


TF_OPS = TFOps()


def _set_threads(num_threads: int) -> None:
    """Intra-op threads for the learner (possible until TensorFlow has started running)."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(num_threads)
        tf.config.threading.set_inter_op_parallelism_threads(num_threads)
    except RuntimeError:
        pass  # TensorFlow is running already: its threads stay as they are


class TFPolicy:
    """Parameters, Adam and ``learn_on_minibatch`` for a loss written against ops (the two
    loss forms, ``lr`` groups and target copies as in ``_policy_torch.TorchPolicy``)."""

    framework = "tf"

    def __init__(self, spec: Any, weights: dict[str, np.ndarray], loss: Callable,
                 lr: float | dict[str, float], grad_clip: float | None = None,
                 seed: int | None = None, num_threads: int = 1,
                 target_names: tuple[str, ...] = ()):
        if seed is not None:
            tf.random.set_seed(seed)
        _set_threads(num_threads)
        self.spec = spec
        self.loss = loss
        self.grad_clip = grad_clip
        self.params = {name: tf.Variable(np.asarray(value, np.float32), name=_var_name(name))
                       for name, value in weights.items()}
        self.target_params = {name: tf.Variable(self.params[name].numpy(), trainable=False,
                                                name="target_" + _var_name(name))
                              for name in target_names}
        self._variables = list(self.params.values())
        self._groups = []  # (indices into _variables, optimizer)
        names = list(self.params)
        for group, rate in lr_groups(names, lr):
            optimizer = tf.keras.optimizers.Adam(learning_rate=rate, epsilon=1e-8)
            variables = [self.params[n] for n in group]
            optimizer.build(variables)
            self._groups.append(([names.index(n) for n in group], optimizer))
        self.optimizer = self._groups[0][1]
        self._step: Any = None

    def forward(self, obs: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
        return forward(TF_OPS, self.params, tf.convert_to_tensor(obs, tf.float32), self.spec)

    def learn_on_minibatch(self, minibatch: dict[str, np.ndarray],
                           coeffs: dict[str, float]) -> dict[str, Any]:
        """One Adam step on the loss of ``minibatch``; returns the loss's stats."""
        if self._step is None:
            self._step = self._compile(minibatch, coeffs)
        stats = self._step(minibatch, {k: np.float32(v) for k, v in coeffs.items()})
        return {name: float(value) if np.ndim(value) == 0 else np.asarray(value)
                for name, value in stats.items()}

    def _compile(self, minibatch: dict[str, np.ndarray], coeffs: dict[str, float]) -> Any:
        """The gradient step as one graph; any minibatch size, coefficients as inputs."""
        batch_spec = {name: tf.TensorSpec((None,) + column.shape[1:], tf.as_dtype(column.dtype))
                      for name, column in minibatch.items()}
        coeff_spec = {name: tf.TensorSpec((), tf.float32) for name in coeffs}
        model_loss = getattr(self.loss, "model_loss", False)

        @tf.function(input_signature=[batch_spec, coeff_spec])
        def step(batch: dict, coefficients: dict) -> dict:
            with tf.GradientTape() as tape:
                if model_loss:
                    total, stats = self.loss(TF_OPS, self.params, self.target_params, batch,
                                             coefficients, self.spec)
                else:
                    dist_inputs, values = self.spec.outputs(TF_OPS, self.params, batch[OBS])
                    total, stats = self.loss(TF_OPS, self.spec.dist_class, dist_inputs, values,
                                             batch, coefficients)
            gradients = tape.gradient(total, self._variables)
            gradients = [tf.zeros_like(v) if g is None else g
                         for g, v in zip(gradients, self._variables)]
            if self.grad_clip:
                gradients, _ = tf.clip_by_global_norm(gradients, self.grad_clip)
            for indices, optimizer in self._groups:
                optimizer.apply_gradients([(gradients[i], self._variables[i]) for i in indices])
            return stats

        return step

    def update_target(self, tau: float) -> None:
        """target <- tau * online + (1 - tau) * target (tau 1: a copy)."""
        for name, target in self.target_params.items():
            target.assign(tau * self.params[name] + (1.0 - tau) * target)

    def get_weights(self) -> dict[str, np.ndarray]:
        return {name: v.numpy().copy() for name, v in self.params.items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        for name, v in self.params.items():
            v.assign(np.asarray(weights[name], np.float32))

    def get_target_weights(self) -> dict[str, np.ndarray]:
        return {name: v.numpy().copy() for name, v in self.target_params.items()}

    def set_target_weights(self, weights: dict[str, np.ndarray]) -> None:
        for name, v in self.target_params.items():
            v.assign(np.asarray(weights[name], np.float32))

    def _optimizer_variables(self) -> list:
        return [v for _, optimizer in self._groups for v in optimizer.variables]

    def get_optimizer_state(self) -> list[np.ndarray]:
        return [v.numpy().copy() for v in self._optimizer_variables()]

    def set_optimizer_state(self, state: list[np.ndarray] | None) -> None:
        if state is None:
            return
        variables = self._optimizer_variables()
        if len(state) != len(variables):
            raise ValueError(f"optimizer state has {len(state)} arrays, this optimizer "
                             f"{len(variables)}")
        for variable, value in zip(variables, state):
            variable.assign(value)


def _var_name(name: str) -> str:
    return name.replace("/", "_")
