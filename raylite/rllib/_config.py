"""The algorithm's configuration: one dataclass whose fields are documented once.

    YAML / dict  {"lambda": 0.1, "num_sgd_iter": 6, "model": {...}}
        └── AlgorithmConfig.from_dict ──> AlgorithmConfig (checked) ──> the algorithm
    PPOConfig().training(lambda_=0.1, num_epochs=6)          (Ray 2.x builder, same fields)
        └── each builder method sets the fields of its group; 2.x names are aliases

A field's metadata holds its help text, its builder group (``training``, ``env_runners``...),
its 2.x aliases and the check of its value, so the YAML keys, the builder and the error
messages cannot drift apart. The YAML key of ``lambda_`` is ``lambda`` (a Python keyword).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from raylite._suggest import did_you_mean

FRAMEWORKS = ("torch", "tf", "tf2", "tfe")
ACTIVATIONS = ("tanh", "relu", "swish", "silu", "elu", "linear")
BATCH_MODES = ("truncate_episodes", "complete_episodes")
OBSERVATION_FILTERS = ("NoFilter", "MeanStdFilter")


# ---- value checks (each returns None when the value is fine, else what would be right) -------
def _positive_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "a whole number >= 1"


def _non_negative_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else "a whole number >= 0"


def _optional_positive_int(value: Any) -> str | None:
    return None if value is None else _positive_int(value)


def _non_negative(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    return None if ok and math.isfinite(value) else "a number >= 0"


def _positive(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf
    return None if ok else "a number > 0"


def _optional_positive(value: Any) -> str | None:
    ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                           and 0 < value < math.inf)
    return None if ok else "a number > 0, or null for none"


def _unit_interval(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
    return None if ok else "a number between 0 and 1"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _mapping(value: Any) -> str | None:
    return None if isinstance(value, dict) else "a mapping (dict)"


def _optional_int(value: Any) -> str | None:
    ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
    return None if ok else "a whole number, or null"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else "one of " + ", ".join(map(repr, choices))
    return check


def _anything(value: Any) -> str | None:
    return None


def _env(value: Any) -> str | None:
    ok = value is None or isinstance(value, str) or callable(value)
    return None if ok else "an environment id, a registered name, 'module.Class' or a class"


def _hidden_sizes(value: Any) -> str | None:
    ok = isinstance(value, (list, tuple)) and all(_positive_int(v) is None for v in value)
    return None if ok else "a list of layer sizes such as [256, 256]"


def option(default: Any, doc: str, *, check: Callable[[Any], str | None] = _anything,
           group: str | None = None, aliases: tuple[str, ...] = ()) -> Any:
    """A config field: its default, its one help text, its value check, its builder group and
    the Ray 2.x names that also set it."""
    metadata = {"doc": doc, "check": check, "group": group, "aliases": aliases}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _from_dict(cls: type, values: dict, where: str) -> Any:
    """Build dataclass ``cls`` from a dict, rejecting unknown keys with a "did you mean"."""
    if not isinstance(values, dict):
        raise TypeError(f"{where} must be a mapping of keys to values, got {type(values).__name__}")
    keys = cls.key_table()
    instance = cls()
    for key, value in values.items():
        name = keys.get(key)
        if name is None:
            hint = did_you_mean(key, cls.yaml_keys()) or (
                f" (known keys: {', '.join(cls.yaml_keys())})")
            raise ValueError(f"unknown {where} key {key!r}{hint}")
        setattr(instance, name, value)
    instance.validate()
    return instance


class _Fields:
    """What both config dataclasses share: keys, aliases, checks, dict round trip."""

    @classmethod
    def key_table(cls) -> dict[str, str]:
        """Every accepted key (YAML name, Python name, 2.x alias) -> the field's name."""
        table: dict[str, str] = {}
        for f in dataclasses.fields(cls):
            table[f.name] = f.name
            table[yaml_key(f.name)] = f.name
            for alias in f.metadata["aliases"]:
                table[alias] = f.name
        return table

    @classmethod
    def yaml_keys(cls) -> list[str]:
        return [yaml_key(f.name) for f in dataclasses.fields(cls)]

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of a field, by any of its names."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        return fields[cls.key_table()[name]].metadata["doc"]

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            wanted = f.metadata["check"](value)
            if wanted:
                raise ValueError(f"config key {yaml_key(f.name)!r} must be {wanted}, got {value!r}")


def yaml_key(name: str) -> str:
    return "lambda" if name == "lambda_" else name


@dataclass
class ModelConfig(_Fields):
    """The ``model`` sub-config: a fully connected network for the policy and the value."""

    fcnet_hiddens: list = option([256, 256], "sizes of the hidden layers", check=_hidden_sizes)
    fcnet_activation: str = option("tanh", "activation of the hidden layers: "
                                   + ", ".join(ACTIVATIONS), check=_one_of(*ACTIVATIONS))
    vf_share_layers: bool = option(False, "the value head sits on the policy's hidden layers "
                                   "(else the value has its own network)", check=_boolean)
    free_log_std: bool = option(False, "continuous actions: the log std is a free parameter, "
                                "not an output of the network", check=_boolean)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        return _from_dict(cls, values, "model")

    def to_dict(self) -> dict:
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass
class AlgorithmConfig(_Fields):
    """Every key of an algorithm's config (RLlib 1.9 names; PPO's defaults).

    Example:
        >>> config = AlgorithmConfig.from_dict({"env": "CartPole-v1", "lambda": 0.95})
        >>> config.lambda_, config.train_batch_size
        (0.95, 4000)
    """

    # environment
    env: Any = option(None, "a Gymnasium id (CartPole-v1), a name given to register_env, a "
                      "'module.Class' string, or an env class", check=_env, group="environment")
    env_config: dict = option({}, "passed to the env creator or class", check=_mapping,
                              group="environment")
    horizon: Any = option(None, "end episodes after this many steps (null: the env's own "
                          "limit)", check=_optional_positive_int, group="environment")
    normalize_actions: bool = option(True, "continuous actions: the policy acts in [-1, 1], "
                                     "rescaled to the action bounds", check=_boolean,
                                     group="environment")
    observation_filter: str = option("NoFilter", "NoFilter or MeanStdFilter (observations "
                                     "standardised by running mean and std, synchronised "
                                     "across workers)", check=_one_of(*OBSERVATION_FILTERS),
                                     group="env_runners")
    # framework and resources
    framework: str = option("torch", "torch, or tf / tf2 / tfe for TensorFlow",
                            check=_one_of(*FRAMEWORKS), group="framework")
    num_workers: int = option(2, "rollout worker actors (0: sample in the trainer)",
                              check=_non_negative_int, group="env_runners",
                              aliases=("num_rollout_workers", "num_env_runners"))
    num_envs_per_worker: int = option(1, "environments stepped together by each worker",
                                      check=_positive_int, group="env_runners",
                                      aliases=("num_envs_per_env_runner",))
    num_cpus_for_driver: int = option(1, "CPU threads the learner computes with (torch / "
                                      "TensorFlow intra-op threads) and the CPUs its trial "
                                      "reserves", check=_positive_int, group="resources",
                                      aliases=("num_cpus_for_main_process",))
    num_cpus_per_worker: float = option(0, "CPUs reserved by each rollout worker actor (0: "
                                        "workers share the trial's CPUs; sampling and "
                                        "learning alternate)", check=_non_negative,
                                        group="resources",
                                        aliases=("num_cpus_per_env_runner",))
    num_gpus: float = option(0, "GPUs for the learner (raylite's PPO learns on the CPU; a "
                             "value above 0 is accepted and ignored)", check=_non_negative,
                             group="resources")
    seed: Any = option(None, "seed of the weights, the sampling and the envs", check=_optional_int,
                       group="debugging")
    log_level: str = option("WARN", "accepted for compatibility (DEBUG, INFO, WARN, ERROR)",
                            check=_one_of("DEBUG", "INFO", "WARN", "WARNING", "ERROR"),
                            group="debugging")
    # sampling
    rollout_fragment_length: int = option(200, "steps per env in one sample() call of a "
                                          "worker; the train batch is gathered in such rounds",
                                          check=_positive_int, group="env_runners")
    batch_mode: str = option("truncate_episodes", "truncate_episodes (fragments end anywhere; "
                             "the value function bootstraps) or complete_episodes",
                             check=_one_of(*BATCH_MODES), group="env_runners")
    explore: bool = option(True, "compute_single_action samples (true) or acts greedily "
                           "(false) by default", check=_boolean, group="exploration")
    # PPO
    train_batch_size: int = option(4000, "env steps sampled per training iteration",
                                   check=_positive_int, group="training",
                                   aliases=("train_batch_size_per_learner",))
    sgd_minibatch_size: int = option(128, "samples per gradient step", check=_positive_int,
                                     group="training", aliases=("minibatch_size",))
    num_sgd_iter: int = option(30, "passes (epochs) over the train batch per iteration",
                               check=_positive_int, group="training", aliases=("num_epochs",))
    lr: float = option(5e-5, "Adam's learning rate", check=_positive, group="training")
    gamma: float = option(0.99, "discount factor", check=_unit_interval, group="training")
    lambda_: float = option(1.0, "GAE's lambda (bias/variance of the advantages)",
                            check=_unit_interval, group="training")
    use_gae: bool = option(True, "advantages by GAE (else discounted returns minus the value)",
                           check=_boolean, group="training")
    use_critic: bool = option(True, "learn a value function (needed by GAE)", check=_boolean,
                              group="training")
    clip_param: float = option(0.3, "PPO's clip range of the probability ratio",
                               check=_positive, group="training")
    vf_clip_param: float = option(10.0, "clip range of the value update (in reward units)",
                                  check=_positive, group="training")
    vf_loss_coeff: float = option(1.0, "weight of the value loss", check=_non_negative,
                                  group="training")
    entropy_coeff: float = option(0.0, "weight of the entropy bonus", check=_non_negative,
                                  group="training")
    kl_coeff: float = option(0.2, "initial weight of the KL penalty (adapted towards kl_target)",
                             check=_non_negative, group="training")
    kl_target: float = option(0.01, "the KL divergence per iteration the penalty aims at",
                              check=_positive, group="training")
    grad_clip: Any = option(None, "clip the global gradient norm to this (null: no clipping)",
                            check=_optional_positive, group="training")
    model: ModelConfig = field(default_factory=ModelConfig, metadata={
        "doc": "the network: fcnet_hiddens, fcnet_activation, vf_share_layers, free_log_std",
        "check": _anything, "group": "training", "aliases": ("model_config",)})
    # evaluation and metrics
    evaluation_interval: Any = option(None, "evaluate every this many iterations (null: never)",
                                      check=_optional_positive_int, group="evaluation")
    evaluation_num_episodes: int = option(10, "episodes per evaluation", check=_positive_int,
                                          group="evaluation", aliases=("evaluation_duration",))
    evaluation_config: dict = option({}, "overrides for evaluation; {'explore': true} samples "
                                     "actions (evaluation is greedy by default)", check=_mapping,
                                     group="evaluation")
    metrics_smoothing_episodes: int = option(100, "episode_reward_mean averages at least this "
                                             "many recent episodes", check=_positive_int,
                                             group="reporting",
                                             aliases=("metrics_num_episodes_for_smoothing",))

    @classmethod
    def from_dict(cls, values: dict) -> AlgorithmConfig:
        """A checked config from a YAML-style dict; unknown keys are errors."""
        if not isinstance(values, dict):
            raise TypeError(f"config must be a mapping of keys to values, got "
                            f"{type(values).__name__}")
        values = dict(values)
        for key in ("model", "model_config"):
            if key in values and not isinstance(values[key], ModelConfig):
                values[key] = ModelConfig.from_dict(values[key] or {})
        return _from_dict(cls, values, "config")

    def to_dict(self) -> dict:
        """The YAML-style dict (``lambda``, a plain ``model`` dict); from_dict's inverse."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[yaml_key(f.name)] = value.to_dict() if f.name == "model" else (
                value if f.name == "env" else copy.deepcopy(value))
        return out

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.model, ModelConfig):
            raise TypeError(f"config key 'model' must be a mapping, got {self.model!r}")
        self.model.validate()
        if self.sgd_minibatch_size > self.train_batch_size:
            raise ValueError(f"sgd_minibatch_size ({self.sgd_minibatch_size}) must not exceed "
                             f"train_batch_size ({self.train_batch_size})")
        if self.use_gae and not self.use_critic:
            raise ValueError("use_gae: true needs use_critic: true (GAE uses the value function)")

    def copy(self) -> AlgorithmConfig:
        return copy.deepcopy(self)

    @property
    def tf(self) -> bool:
        return self.framework != "torch"


def group_fields(group: str) -> dict[str, str]:
    """The keyword names a builder method accepts (Python names and aliases) -> field name."""
    table = {}
    for f in dataclasses.fields(AlgorithmConfig):
        if f.metadata.get("group") == group:
            table[f.name] = f.name
            for alias in f.metadata["aliases"]:
                table[alias] = f.name
    return table


def fields_help(cls: type = AlgorithmConfig) -> str:
    """One line per key with its help and default, for ``--help`` texts and docs."""
    defaults = cls()
    lines = []
    for f in dataclasses.fields(cls):
        if f.name == "model":
            lines.append(f"  model: {f.metadata['doc']}")
            lines.extend("  " + line for line in fields_help(ModelConfig).splitlines())
            continue
        default = getattr(defaults, f.name)
        lines.append(f"  {yaml_key(f.name)}: {f.metadata['doc']} (default: {default!r})")
    return "\n".join(lines)


class ConfigBuilder:
    """Ray 2.x's chained config builder over :class:`AlgorithmConfig`.

    Each method sets the fields of one group, by their 1.9 names or their 2.x aliases
    (``lambda_``, ``num_env_runners``, ``num_epochs``, ``minibatch_size``...); a keyword that
    is not a field of the group is an error naming the method that takes it.
    """

    algo_name = "Algorithm"

    def __init__(self, algo_class: type | None = None):
        self._config = AlgorithmConfig()
        self._algo_class = algo_class

    # ---- the groups ------------------------------------------------------------------------
    def environment(self, env: Any = None, **kwargs: Any) -> ConfigBuilder:
        """Set ``env`` and the env fields: env_config, horizon, normalize_actions."""
        if env is not None:
            kwargs["env"] = env
        return self._set("environment", kwargs)

    def framework(self, framework: str | None = None, **kwargs: Any) -> ConfigBuilder:
        """``"torch"`` (default) or ``"tf"``/``"tf2"``; eager_tracing etc. are accepted."""
        for ignored in ("eager_tracing", "eager_max_retraces", "torch_compile_learner"):
            kwargs.pop(ignored, None)
        if framework is not None:
            kwargs["framework"] = framework
        return self._set("framework", kwargs)

    def env_runners(self, **kwargs: Any) -> ConfigBuilder:
        """num_env_runners (num_workers), num_envs_per_env_runner, rollout_fragment_length,
        batch_mode, observation_filter."""
        return self._set("env_runners", kwargs)

    rollouts = env_runners

    def training(self, **kwargs: Any) -> ConfigBuilder:
        """lr, gamma, lambda_, train_batch_size, minibatch_size, num_epochs, clip_param,
        vf_clip_param, vf_loss_coeff, entropy_coeff, kl_coeff, kl_target, grad_clip, model..."""
        return self._set("training", kwargs)

    def resources(self, **kwargs: Any) -> ConfigBuilder:
        return self._set("resources", kwargs)

    def debugging(self, **kwargs: Any) -> ConfigBuilder:
        """seed, log_level."""
        return self._set("debugging", kwargs)

    def evaluation(self, **kwargs: Any) -> ConfigBuilder:
        return self._set("evaluation", kwargs)

    def exploration(self, **kwargs: Any) -> ConfigBuilder:
        return self._set("exploration", kwargs)

    def reporting(self, **kwargs: Any) -> ConfigBuilder:
        return self._set("reporting", kwargs)

    def rl_module(self, *, model_config: dict | None = None, **kwargs: Any) -> ConfigBuilder:
        """``model_config={"fcnet_hiddens": [64, 64], "fcnet_activation": "relu"}``."""
        if kwargs:
            raise TypeError(f"{self.algo_name}Config.rl_module() takes model_config only, got "
                            f"{sorted(kwargs)}")
        return self._set("training", {"model": model_config or {}})

    # ---- as a whole ------------------------------------------------------------------------
    def update_from_dict(self, values: dict) -> ConfigBuilder:
        """Merge a YAML-style dict (``{"lambda": 0.95, "model": {...}}``)."""
        merged = self._config.to_dict()
        for key, value in dict(values).items():
            name = AlgorithmConfig.key_table().get(key, key)
            if name == "model" and isinstance(value, dict):
                value = {**merged["model"], **value}
            merged[yaml_key(name)] = value
        self._config = AlgorithmConfig.from_dict(merged)
        return self

    def to_dict(self) -> dict:
        return self._config.to_dict()

    def copy(self) -> ConfigBuilder:
        twin = copy.copy(self)
        twin._config = self._config.copy()
        return twin

    def validate(self) -> None:
        self._config.validate()

    def build(self, env: Any = None) -> Any:
        """The algorithm, ready to ``train()``."""
        if env is not None:
            self.environment(env)
        if self._algo_class is None:
            raise TypeError("this config has no algorithm class; use PPOConfig")
        return self._algo_class(config=self)

    build_algo = build

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        field_name = AlgorithmConfig.key_table().get(name)
        if field_name is None:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}"
                                 f"{did_you_mean(name, AlgorithmConfig.key_table())}")
        return getattr(self._config, field_name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"

    def _set(self, group: str, kwargs: dict) -> ConfigBuilder:
        accepted = group_fields(group)
        method = f"{type(self).__name__}.{group}()"
        trial = self._config.copy()
        for key, value in kwargs.items():
            name = accepted.get(key)
            if name is None:
                raise TypeError(_wrong_group_message(method, key, accepted))
            if value is None and name not in ("seed", "horizon", "grad_clip", "env",
                                              "evaluation_interval"):
                continue  # Ray's builders treat None as "leave as it is"
            if name == "model":
                value = ModelConfig.from_dict({**trial.model.to_dict(), **dict(value)})
            setattr(trial, name, value)
        trial.validate()  # once: the keys of one call may depend on each other
        self._config = trial
        return self


def _wrong_group_message(method: str, key: str, accepted: dict) -> str:
    owner = AlgorithmConfig.key_table().get(key)
    if owner is not None:
        group = next(f.metadata["group"] for f in dataclasses.fields(AlgorithmConfig)
                     if f.name == owner)
        return f"{method} does not take {key!r}; set it with .{group}({key}=...)"
    return (f"{method} got an unexpected keyword argument {key!r}"
            f"{did_you_mean(key, accepted)} (it takes: {', '.join(sorted(accepted))})")
