"""Ray 2.x's chained config builder (``PPOConfig().environment(...).training(...)``) over
the config dataclass of ``_config``.

    PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=2).training(lr=1e-3)
        └── each method checks its keywords against its group's fields (``group_fields``),
            sets them on a copy of the AlgorithmConfig, validates the copy as a whole, keeps it
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from raylite.rllib._config import (
    AlgorithmConfig,
    ModelConfig,
    did_you_mean,
    group_fields,
    yaml_key,
)


class ConfigBuilder:
    """Ray 2.x's chained config builder over :class:`AlgorithmConfig`.

    Each method sets the fields of one group, by their 1.9 names or their 2.x aliases
    (``lambda_``, ``num_env_runners``, ``num_epochs``, ``minibatch_size``...); a keyword that
    is not a field of the group is an error naming the method that takes it. Subclasses
    (PPOConfig, DQNConfig, SACConfig) set ``algo_name``: its keys and defaults.
    """

    algo_name = "PPO"

    def __init__(self, algo_class: type | None = None):
        self._config = AlgorithmConfig.for_algorithm(self.algo_name)
        self._algo_class = algo_class

    @property
    def algo_class(self) -> type | None:
        """The algorithm this config builds (Ray 2.x's ``config.algo_class``)."""
        return self._algo_class

    # ---- the groups ------------------------------------------------------------------------
    def environment(self, env: Any = None, **kwargs: Any) -> ConfigBuilder:
        """env, env_config, observation_space, action_space, env_task_fn, render_env,
        horizon, normalize_actions."""
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
        """num_env_runners (num_workers, num_rollout_workers), num_envs_per_env_runner
        (num_envs_per_worker), rollout_fragment_length, batch_mode, observation_filter,
        create_env_on_local_worker."""
        return self._set("env_runners", kwargs)

    rollouts = env_runners

    def training(self, **kwargs: Any) -> ConfigBuilder:
        """lr, gamma, train_batch_size, grad_clip, model and the algorithm's own keys
        (PPO: lambda_, minibatch_size, num_epochs, clip_param...; DQN: replay_buffer_config,
        target_network_update_freq, double_q, dueling, n_step, epsilon...; SAC: twin_q, tau,
        initial_alpha, actor_lr...)."""
        return self._set("training", kwargs)

    def resources(self, **kwargs: Any) -> ConfigBuilder:
        """num_gpus, num_cpus_per_worker, num_cpus_for_driver."""
        return self._set("resources", kwargs)

    def learners(self, *, num_learners: int | None = None, **kwargs: Any) -> ConfigBuilder:
        """Ray 2.x: raylite learns in the algorithm's process: ``num_learners`` 0 or 1;
        ``num_cpus_per_learner`` sets the learner's threads."""
        if num_learners not in (None, 0, 1):
            raise ValueError(f"num_learners={num_learners!r}: raylite learns in one process "
                             f"(0 or 1); more learner processes are not implemented")
        cpus = kwargs.pop("num_cpus_per_learner", None)
        gpus = kwargs.pop("num_gpus_per_learner", None)
        if kwargs:
            raise TypeError(_wrong_group_message(f"{type(self).__name__}.learners()",
                                                 next(iter(kwargs)), {
                                                     "num_learners": 1, "num_cpus_per_learner": 1,
                                                     "num_gpus_per_learner": 1}, self.algo_name))
        values = {}
        if cpus not in (None, "auto"):
            values["num_cpus_for_driver"] = cpus
        if gpus is not None:
            values["num_gpus"] = gpus
        return self._set("resources", values)

    def api_stack(self, **kwargs: Any) -> ConfigBuilder:
        """Ray 2.x's switch between its old and new stacks: raylite has one; accepted."""
        unknown = set(kwargs) - {"enable_rl_module_and_learner",
                                 "enable_env_runner_and_connector_v2"}
        if unknown:
            raise TypeError(f"{type(self).__name__}.api_stack() got an unexpected keyword "
                            f"argument {sorted(unknown)[0]!r}")
        return self

    def debugging(self, **kwargs: Any) -> ConfigBuilder:
        """seed, log_level."""
        return self._set("debugging", kwargs)

    def evaluation(self, **kwargs: Any) -> ConfigBuilder:
        """evaluation_interval, evaluation_duration, evaluation_duration_unit,
        evaluation_num_workers (evaluation_num_env_runners), evaluation_config."""
        return self._set("evaluation", kwargs)

    def exploration(self, **kwargs: Any) -> ConfigBuilder:
        """explore, exploration_config."""
        return self._set("exploration", kwargs)

    def reporting(self, **kwargs: Any) -> ConfigBuilder:
        """metrics_num_episodes_for_smoothing, min_sample_timesteps_per_iteration."""
        return self._set("reporting", kwargs)

    def callbacks(self, callbacks_class: Any = None, **kwargs: Any) -> ConfigBuilder:
        """A ``DefaultCallbacks`` subclass."""
        if callbacks_class is not None:
            kwargs["callbacks"] = callbacks_class
        return self._set("callbacks", kwargs)

    def multi_agent(self, **kwargs: Any) -> ConfigBuilder:
        """policies, policy_mapping_fn, policies_to_train."""
        return self._set("multi_agent", kwargs)

    def offline_data(self, **kwargs: Any) -> ConfigBuilder:
        """input_ (a directory of JSON sample batches, or "sampler"), output."""
        return self._set("offline_data", kwargs)

    def rl_module(self, *, model_config: dict | None = None, **kwargs: Any) -> ConfigBuilder:
        """``model_config={"fcnet_hiddens": [64, 64], "fcnet_activation": "relu"}``."""
        if kwargs:
            raise TypeError(f"{type(self).__name__}.rl_module() takes model_config only, got "
                            f"{sorted(kwargs)}")
        return self._set("training", {"model": model_config or {}})

    # ---- as a whole ------------------------------------------------------------------------
    def update_from_dict(self, values: dict) -> ConfigBuilder:
        """Merge a YAML-style dict (``{"lambda": 0.95, "model": {...}}``)."""
        merged = self._config.to_dict()
        table = AlgorithmConfig.key_table(self.algo_name)
        for key, value in dict(values).items():
            name = table.get(key, key)
            if name == "model" and isinstance(value, dict):
                value = {**merged["model"], **value}
            merged[yaml_key(name)] = value
        self._config = AlgorithmConfig.from_dict(merged, self.algo_name)
        return self

    def to_dict(self) -> dict:
        return self._config.to_dict()

    def copy(self) -> ConfigBuilder:
        twin = copy.copy(self)
        twin._config = self._config.copy()
        return twin

    def validate(self) -> None:
        self._config.validate()

    def build(self, env: Any = None, logger_creator: Any = None, use_copy: bool = True) -> Any:
        """The algorithm, ready to ``train()`` (also ``build_algo()``, Ray 2.x)."""
        if env is not None:
            self.environment(env)
        if self._algo_class is None:
            raise TypeError(f"{type(self).__name__} has no algorithm class; use PPOConfig, "
                            f"DQNConfig or SACConfig")
        return self._algo_class(config=self)

    build_algo = build

    def __getitem__(self, key: str) -> Any:
        """``config["lr"]``, as Ray's configs allow."""
        return self.to_dict()[yaml_key(AlgorithmConfig.key_table(self.algo_name).get(key, key))]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        table = AlgorithmConfig.key_table(self.algo_name)
        field_name = table.get(name)
        if field_name is None:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}"
                                 f"{did_you_mean(name, table)}")
        return getattr(self._config, field_name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"

    def _set(self, group: str, kwargs: dict) -> ConfigBuilder:
        accepted = group_fields(group, self.algo_name)
        method = f"{type(self).__name__}.{group}()"
        trial = self._config.copy()
        for key, value in kwargs.items():
            name = accepted.get(key)
            if name is None:
                raise TypeError(_wrong_group_message(method, key, accepted, self.algo_name))
            if value is None and name not in ("seed", "horizon", "grad_clip", "env",
                                              "evaluation_interval", "epsilon",
                                              "training_intensity", "env_task_fn"):
                continue  # Ray's builders treat None as "leave as it is"
            if name == "model":
                value = ModelConfig.from_dict({**trial.model.to_dict(), **dict(value)})
            setattr(trial, name, value)
        trial.validate()  # once: the keys of one call may depend on each other
        self._config = trial
        return self


def _wrong_group_message(method: str, key: str, accepted: dict, algo: str = "PPO") -> str:
    owner = AlgorithmConfig.key_table(algo).get(key)
    if owner is not None:
        group = next(f.metadata["group"] for f in dataclasses.fields(AlgorithmConfig)
                     if f.name == owner)
        return f"{method} does not take {key!r}; set it with .{group}({key}=...)"
    owner = AlgorithmConfig.key_table().get(key)
    if owner is not None:
        return (f"{method}: {key!r} is a setting of "
                f"{' and '.join(AlgorithmConfig.field_algos(owner))}, which {algo} does not use"
                f"{did_you_mean(key, accepted)}")
    return (f"{method} got an unexpected keyword argument {key!r}"
            f"{did_you_mean(key, accepted)} (it takes: {', '.join(sorted(accepted))})")
