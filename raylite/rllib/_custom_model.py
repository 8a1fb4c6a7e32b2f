"""Custom models (``ModelCatalog.register_custom_model``) for PPO: torch modules and Keras.

    ModelCatalog.register_custom_model("my_model", MyModel)    MyModel(TorchModelV2, nn.Module)
    config["model"] = {"custom_model": "my_model", "custom_model_config": {...}}
        └── CustomTorchModelSpec: the module's parameters are the weights (state_dict names);
            the learner runs ``module.forward({"obs": obs}, [], None)`` and
            ``module.value_function()`` through torch.func.functional_call; the rollout
            workers act with a copy of the module (they import torch for it)
    a TFModelV2 whose ``self.base_model`` is a Keras model with outputs [logits, value]
        └── CustomKerasModelSpec: the Keras model's trainable variables are the weights; the
            learner and the workers run ``base_model.stateless_call`` with them
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from raylite.rllib._distributions import Categorical, DiagGaussian
from raylite.rllib._model import ActionAdapter, NumpyPolicy

_CUSTOM_MODELS: dict[str, type] = {}


class ModelCatalog:
    """Ray's model registry: ``ModelCatalog.register_custom_model(name, cls)``."""

    @staticmethod
    def register_custom_model(name: str, model_class: type) -> None:
        from raylite.rllib.models.tf.tf_modelv2 import TFModelV2
        if isinstance(model_class, type) and issubclass(model_class, TFModelV2):
            _CUSTOM_MODELS[name] = model_class
            return
        import torch
        if not (isinstance(model_class, type) and issubclass(model_class, torch.nn.Module)):
            raise TypeError(f"register_custom_model({name!r}, ...): {model_class!r} is not a "
                            f"torch.nn.Module (TorchModelV2) nor a TFModelV2 with a Keras "
                            f"base_model")
        _CUSTOM_MODELS[name] = model_class

    @staticmethod
    def get_model_class(name: str) -> type:
        from raylite._suggest import did_you_mean
        if name not in _CUSTOM_MODELS:
            raise ValueError(f"unknown custom_model {name!r}{did_you_mean(name, _CUSTOM_MODELS)} "
                             f"(register it with ModelCatalog.register_custom_model first)")
        return _CUSTOM_MODELS[name]


@dataclass(frozen=True)
class CustomTorchModelSpec:
    """A registered torch module as PPO's network: outputs (distribution inputs, values)."""

    obs_size: int
    discrete: bool
    action_size: int
    model_class: Any
    model_config: dict = field(default_factory=dict)
    observation_space: Any = None
    action_space: Any = None

    on_policy = True
    small_outputs = ()

    @property
    def dist_class(self) -> type:
        return Categorical if self.discrete else DiagGaussian

    @property
    def num_outputs(self) -> int:
        return self.action_size if self.discrete else 2 * self.action_size

    def build(self) -> Any:
        return self.model_class(self.observation_space, self.action_space, self.num_outputs,
                                dict(self.model_config), "custom_model")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(p.shape) for name, p in self.build().named_parameters()}

    def initial_weights(self, seed: int | None) -> dict[str, np.ndarray]:
        import torch
        if seed is not None:
            torch.manual_seed(seed)
        return {name: p.detach().numpy().copy() for name, p in self.build().named_parameters()}

    def target_names(self) -> tuple[str, ...]:
        return ()

    def outputs(self, ops: Any, params: dict[str, Any], obs: Any) -> tuple[Any, Any]:
        import torch
        module = _module_of(self)
        obs = obs.reshape(model_input_shape(self.observation_space, obs))
        out = torch.func.functional_call(module, params, ({"obs": obs}, [], None))
        logits = out[0] if isinstance(out, tuple) else out
        # value_function() reads what forward() kept, computed from ``params`` above
        return logits, module.value_function().reshape(-1)

    def acting_policy(self, actions: ActionAdapter,
                      weights: dict[str, np.ndarray] | None = None) -> TorchModulePolicy:
        return TorchModulePolicy(self, actions, weights)


@dataclass(frozen=True)
class CustomKerasModelSpec(CustomTorchModelSpec):
    """A registered TFModelV2 as PPO's network: its Keras ``base_model`` maps observations to
    [logits, value]; the weights are the base model's trainable variables, in order."""

    def initial_weights(self, seed: int | None) -> dict[str, np.ndarray]:
        import tensorflow as tf
        if seed is not None:
            tf.keras.utils.set_random_seed(seed)
        model = self.build().base_model
        return {name: np.asarray(v.numpy(), np.float32)
                for name, v in zip(_keras_names(model), model.trainable_variables)}

    def shapes(self) -> dict[str, tuple[int, ...]]:
        model = _module_of(self).base_model
        return {name: tuple(v.shape) for name, v in zip(_keras_names(model),
                                                        model.trainable_variables)}

    def outputs(self, ops: Any, params: dict[str, Any], obs: Any) -> tuple[Any, Any]:
        import tensorflow as tf
        model = _module_of(self).base_model
        values = [params[name] for name in _keras_names(model)]
        fixed = [v.value for v in model.non_trainable_variables]
        obs = tf.reshape(tf.cast(obs, tf.float32), model_input_shape(self.observation_space, obs))
        (logits, value), _ = model.stateless_call(values, fixed, obs)
        return logits, tf.reshape(value, [-1])

    def acting_policy(self, actions: ActionAdapter,
                      weights: dict[str, np.ndarray] | None = None) -> TorchModulePolicy:
        return KerasModelPolicy(self, actions, weights)


def model_input_shape(observation_space: Any, flat_obs: Any) -> tuple[int, ...]:
    """The shape a custom model's ``input_dict["obs"]`` has, as in RLlib: a Box's own shape
    (an image stays [batch, H, W, C]); other spaces' flattened form."""
    from gymnasium import spaces
    if isinstance(observation_space, spaces.Box):
        return (-1,) + tuple(observation_space.shape)
    return (-1, int(flat_obs.shape[-1]))


def _keras_names(model: Any) -> list[str]:
    """Names by position (Keras numbers its layers per process, so layer names differ)."""
    return [f"{i:02d}/{v.name}" for i, v in enumerate(model.trainable_variables)]


def _module_of(spec: CustomTorchModelSpec) -> Any:
    """The spec's module instance, built once (its parameters are replaced at each call)."""
    module = spec.__dict__.get("_module")
    if module is None:
        module = spec.build()
        object.__setattr__(spec, "_module", module)
    return module


class TorchModulePolicy(NumpyPolicy):
    """Acting with the custom module (no gradients), sampling on numpy."""

    def _initial_weights(self) -> dict[str, np.ndarray]:
        return self.spec.initial_weights(0)

    def _outputs(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch
        params = {k: torch.from_numpy(v) for k, v in self.weights.items()}
        with torch.no_grad():
            logits, values = self.spec.outputs(None, params, torch.from_numpy(obs))
        return logits.numpy(), values.numpy()


class KerasModelPolicy(TorchModulePolicy):
    """Acting with the custom Keras model (workers import TensorFlow for it)."""

    def _outputs(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, values = self.spec.outputs(None, self.weights, obs)
        return np.asarray(logits), np.asarray(values)


@dataclass(frozen=True)
class CustomNet:
    """A registered custom model as one part of a bigger network (DQN's body under its Q
    heads, SAC's policy or Q network). Its parameters are the network's weights named
    ``prefix + the module's own name``; ``__call__`` runs the module's ``forward`` (a torch
    TorchModelV2) or ``base_model`` (a Keras TFModelV2) on ``input_dict["obs"]`` in the
    shape of its observation space (a Box's shape: images stay [batch, H, W, C]; other
    spaces flattened), and returns its (first) output, ``[batch, num_outputs]``: on the
    learner's tensors, or on numpy when acting."""

    model_class: Any
    model_config: dict
    observation_space: Any
    action_space: Any
    num_outputs: int
    keras: bool = False

    def build(self) -> Any:
        return self.model_class(self.observation_space, self.action_space, self.num_outputs,
                                dict(self.model_config), "custom_model")

    def _module(self, prefix: str) -> Any:
        """One instance per prefix and process (its parameters are replaced at each call)."""
        modules = self.__dict__.setdefault("_modules", {})
        if prefix not in modules:
            modules[prefix] = self.build()
        return modules[prefix]

    def _variables(self, prefix: str) -> list[tuple[str, Any]]:
        module = self._module(prefix)
        if self.keras:
            model = module.base_model
            return list(zip(_keras_names(model), model.trainable_variables))
        return list(module.named_parameters())

    def shapes(self, prefix: str) -> dict[str, tuple[int, ...]]:
        return {prefix + name: tuple(v.shape) for name, v in self._variables(prefix)}

    def initial_weights(self, prefix: str, seed: int | None) -> dict[str, np.ndarray]:
        """The module's own initialization (a fresh instance, seeded)."""
        if self.keras:
            import tensorflow as tf
            if seed is not None:
                tf.keras.utils.set_random_seed(seed)
            model = self.build().base_model
            return {prefix + name: np.asarray(v.numpy(), np.float32)
                    for name, v in zip(_keras_names(model), model.trainable_variables)}
        import torch
        if seed is not None:
            torch.manual_seed(seed)
        return {prefix + name: p.detach().numpy().copy()
                for name, p in self.build().named_parameters()}

    def __call__(self, ops: Any, params: dict[str, Any], prefix: str, inputs: Any) -> Any:
        on_numpy = isinstance(inputs, np.ndarray)
        names = [name for name, _ in self._variables(prefix)]
        shape = model_input_shape(self.observation_space, inputs)
        if self.keras:
            import tensorflow as tf
            model = self._module(prefix).base_model
            fixed = [v.value for v in model.non_trainable_variables]
            out, _ = model.stateless_call([params[prefix + n] for n in names], fixed,
                                          tf.reshape(tf.cast(inputs, tf.float32), shape))
            out = out[0] if isinstance(out, (list, tuple)) else out
            return np.asarray(out) if on_numpy else out
        import torch
        module = self._module(prefix)
        if on_numpy:
            with torch.no_grad():
                weights = {n: torch.from_numpy(np.asarray(params[prefix + n])) for n in names}
                obs = torch.from_numpy(inputs).reshape(shape)
                out = torch.func.functional_call(module, weights, ({"obs": obs}, [], None))
                out = out[0] if isinstance(out, tuple) else out
                return out.numpy()
        out = torch.func.functional_call(module, {n: params[prefix + n] for n in names},
                                         ({"obs": inputs.reshape(shape)}, [], None))
        return out[0] if isinstance(out, tuple) else out


def custom_model_class(name: str, framework: str, key: str = "model") -> tuple[type, bool]:
    """The registered class of ``name`` and whether it is Keras; ValueError when it does not
    fit ``framework``."""
    from raylite.rllib.models.tf.tf_modelv2 import TFModelV2
    model_class = ModelCatalog.get_model_class(name)
    keras = issubclass(model_class, TFModelV2)
    if keras == (framework == "torch"):
        raise ValueError(f"{key} custom_model {name!r} is a "
                         f"{'Keras (TFModelV2)' if keras else 'torch'} model: use "
                         f"framework={'tf' if keras else 'torch'}")
    return model_class, keras


def custom_net(model_config: dict, framework: str, observation_space: Any, action_space: Any,
               num_outputs: int, key: str = "model") -> CustomNet:
    """The :class:`CustomNet` of ``model_config["custom_model"]``, checked against the
    framework (``key`` names the config the model was given in, for the error)."""
    model_class, keras = custom_model_class(model_config["custom_model"], framework, key)
    config = {"custom_model_config": {}, **model_config}
    return CustomNet(model_class, config, observation_space, action_space, num_outputs, keras)


def as_custom_net(value: Any) -> Any:
    """A spec field restored from a checkpoint (``dataclasses.asdict`` made it a dict)."""
    return CustomNet(**value) if isinstance(value, dict) else value
