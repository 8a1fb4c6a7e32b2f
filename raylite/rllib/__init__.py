"""raylite.rllib: reinforcement learning with PPO, DQN, SAC, MARWIL and BC, on torch or
TensorFlow (RLlib's API).

    from raylite.rllib.agents.ppo import PPOTrainer           # Ray 1.9, as in the book
    trainer = PPOTrainer(env="CartPole-v1", config={"framework": "torch", "num_workers": 1})
    for _ in range(10):
        print(trainer.train()["episode_reward_mean"])
    checkpoint = trainer.save()

    from raylite.rllib.algorithms.dqn import DQNConfig        # Ray 2.x
    algo = DQNConfig().environment("CartPole-v1").training(n_step=3).build()

Or from the shell: ``rllib train -f configs/pendulum.yml`` (or ``rllib train file FILE``)
then ``rllib rollout CHECKPOINT --run PPO --env Pendulum-v1 --steps 2000``. Rollout workers
are actors; ``rllib train`` runs through ``raylite.tune``. torch, TensorFlow and Gymnasium are
imported when first needed.

Modules: ``_config`` / ``_builder`` (the config dataclass and the 2.x builders), ``_envs``
(naming and stepping envs), ``_rollout_worker`` (sampling), ``_buffer`` and ``_gae`` (PPO's
batch and advantages), ``_replay_buffer`` and ``_exploration`` (replay, n-step returns,
epsilon schedules), ``_model`` / ``_q_model`` / ``_sac_model`` / ``_conv`` /
``_distributions`` (the networks and their conv layers, written once for numpy, torch and tf), ``_policy_torch`` / ``_policy_tf`` (the
learners), ``_ppo`` / ``_dqn`` / ``_sac`` / ``_marwil`` (the algorithms), ``_algorithm`` (the
Trainable around them), ``_multi_agent``, ``_callbacks``, ``_offline``, ``_external``,
``_custom_model``, ``_policy_view``, ``_filters``, ``_checkpoint``.
"""

from __future__ import annotations

import importlib
from typing import Any

from raylite.rllib._config import AlgorithmConfig, ModelConfig
from raylite.rllib._envs import EnvContext, check_stop_criteria, resolve_env
from raylite.rllib._filters import MeanStdFilter
from raylite._registry import register_env, register_trainable

# Loaded on first use, so that ``rllib rollout`` and env checks do not import Tune.
_LAZY = {"PPO": "_ppo", "PPOConfig": "_ppo", "PPOTrainer": "_ppo", "DEFAULT_CONFIG": "_ppo",
         "DQN": "_dqn", "DQNConfig": "_dqn", "DQNTrainer": "_dqn",
         "SAC": "_sac", "SACConfig": "_sac", "SACTrainer": "_sac",
         "MARWIL": "_marwil", "MARWILConfig": "_marwil", "BC": "_marwil", "BCConfig": "_marwil",
         "Algorithm": "_algorithm", "Policy": "_algorithm"}

#: algorithm name -> the attribute of this package that holds it
ALGORITHMS: dict[str, str] = {"PPO": "PPO", "DQN": "DQN", "SAC": "SAC", "MARWIL": "MARWIL",
                              "BC": "BC"}


def algorithm_name(name: str) -> str:
    """The canonical name of algorithm ``name`` (any case); ValueError with a "did you mean"."""
    from raylite._suggest import did_you_mean
    upper = {key.upper(): key for key in ALGORITHMS}
    key = name if name in ALGORITHMS else upper.get(str(name).upper())
    if key is None:
        raise ValueError(f"unknown algorithm {name!r}{did_you_mean(name, ALGORITHMS)} "
                         f"(raylite.rllib has: {', '.join(ALGORITHMS)})")
    return key


def get_algorithm_class(name: str) -> type:
    """The algorithm called ``name`` (``"PPO"``); ValueError with a "did you mean" otherwise.

    Example:
        >>> get_algorithm_class("PPO").__name__
        'PPO'
    """
    return __getattr__(ALGORITHMS[algorithm_name(name)])


get_trainer_class = get_algorithm_class


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"raylite.rllib.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'raylite.rllib' has no attribute {name!r}")


__all__ = [
    "ALGORITHMS",
    "BC",
    "BCConfig",
    "DEFAULT_CONFIG",
    "DQN",
    "DQNConfig",
    "DQNTrainer",
    "PPO",
    "Algorithm",
    "AlgorithmConfig",
    "EnvContext",
    "MARWIL",
    "MARWILConfig",
    "MeanStdFilter",
    "ModelConfig",
    "PPOConfig",
    "PPOTrainer",
    "Policy",
    "SAC",
    "SACConfig",
    "SACTrainer",
    "algorithm_name",
    "check_stop_criteria",
    "get_algorithm_class",
    "get_trainer_class",
    "register_env",
    "register_trainable",
    "resolve_env",
]
