"""raylite.rllib: reinforcement learning with PPO, on torch or TensorFlow (RLlib's API).

    from raylite.rllib.agents.ppo import PPOTrainer           # Ray 1.9, as in the book
    trainer = PPOTrainer(env="CartPole-v1", config={"framework": "torch", "num_workers": 1})
    for _ in range(10):
        print(trainer.train()["episode_reward_mean"])
    checkpoint = trainer.save()

    from raylite.rllib.algorithms.ppo import PPOConfig        # Ray 2.x
    algo = PPOConfig().environment("Pendulum-v1").training(lr=3e-4).build()

Or from the shell: ``rllib train -f configs/pendulum.yml`` then ``rllib rollout CHECKPOINT
--run PPO --env Pendulum-v1 --steps 2000``. Rollout workers are actors; ``rllib train`` runs
through ``raylite.tune``. torch, TensorFlow and Gymnasium are imported when first needed.

Modules: ``_config`` (the config dataclass and PPOConfig's builder), ``_envs`` (naming and
stepping envs), ``_rollout_worker`` (sampling), ``_buffer`` and ``_gae`` (the batch and its
advantages), ``_model`` / ``_distributions`` (the network and action distributions, written
once for numpy, torch and tf), ``_policy_torch`` / ``_policy_tf`` (the learners), ``_ppo``
(the algorithm), ``_algorithm`` (the Trainable around it), ``_filters``, ``_checkpoint``.
"""

from __future__ import annotations

import importlib
from typing import Any

from raylite.rllib._config import AlgorithmConfig, ModelConfig
from raylite.rllib._envs import EnvContext, check_stop_criteria, resolve_env
from raylite.rllib._filters import MeanStdFilter
from raylite.tune._registry import register_env, register_trainable

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
    from raylite.rllib._config import did_you_mean
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
