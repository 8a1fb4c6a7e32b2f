"""Reinforcement learning in the AIR vocabulary: :class:`RLTrainer` runs a raylite.rllib
algorithm as a one-trial Tuner (as Ray 2.2 does) and returns a Result whose checkpoint
:class:`RLPredictor` turns into actions.

    result = RLTrainer(algorithm="PPO", config={"env": "CartPole-v1", "num_workers": 0},
                       run_config=RunConfig(stop={"training_iteration": 2})).fit()
    actions = RLPredictor.from_checkpoint(result.checkpoint).predict(observations)
"""

from __future__ import annotations

import copy
from typing import Any

from raylite.air.checkpoint import Checkpoint
from raylite.air.config import CheckpointConfig, RunConfig, ScalingConfig
from raylite.air.result import Result
from raylite.train.predictor import Predictor

__all__ = ["RLTrainer", "RLCheckpoint", "RLPredictor"]


def _algorithm_class(algorithm: Any) -> Any:
    if isinstance(algorithm, str):
        from raylite._registry import resolve_trainable
        return resolve_trainable(algorithm)
    return algorithm


class RLTrainer:
    """Train an RLlib algorithm (``"PPO"`` or its class) with ``config``; its rollout workers
    come from ``scaling_config.num_workers`` when the config does not say."""

    def __init__(self, algorithm: Any, config: dict | None = None, *,
                 scaling_config: ScalingConfig | None = None,
                 run_config: RunConfig | None = None, datasets: dict | None = None,
                 preprocessor: Any = None, resume_from_checkpoint: Checkpoint | None = None):
        if datasets or preprocessor is not None:
            raise ValueError("RLTrainer(datasets=..., preprocessor=...) is not supported by "
                             "raylite: its algorithms learn from environments; leave them out")
        if resume_from_checkpoint is not None:
            raise ValueError("RLTrainer(resume_from_checkpoint=...) is not supported by "
                             "raylite; restore with Algorithm.from_checkpoint(...)")
        self.algorithm = _algorithm_class(algorithm)
        self.config = dict(config or {})
        self.scaling_config = scaling_config
        self.run_config = run_config or RunConfig()

    def fit(self) -> Result:
        from raylite.tune import Tuner
        config = dict(self.config)
        if self.scaling_config is not None:
            config.setdefault("num_workers", max(0, self.scaling_config.num_workers - 1))
        run = copy.copy(self.run_config)
        if run.checkpoint_config is None:
            run.checkpoint_config = CheckpointConfig(checkpoint_at_end=True)
        grid = Tuner(self.algorithm, param_space=config, run_config=run).fit()
        result = grid[0]
        if result.error is not None:
            from raylite.train._errors import TrainingFailedError
            raise TrainingFailedError(str(result.error))
        if result.checkpoint is not None:
            result.checkpoint = RLCheckpoint.from_checkpoint(result.checkpoint)
        return result


class RLCheckpoint(Checkpoint):
    """An RLlib algorithm's checkpoint directory."""

    def get_policy(self, env: Any = None) -> Any:
        """The trained policy (the algorithm restored without rollout workers)."""
        return self._algorithm(env).get_policy()

    def _algorithm(self, env: Any = None) -> Any:
        from raylite.rllib import _checkpoint
        if self.path is None:
            raise ValueError("an RLCheckpoint is a directory made by an algorithm's save()")
        state = _checkpoint.read(_checkpoint.find(self.path))
        algorithm_class = _algorithm_class(state.get("algorithm", "PPO"))
        overrides = {"num_workers": 0}
        if env is not None:
            overrides["env"] = env
        return algorithm_class.from_checkpoint(self.path, **overrides)


class RLPredictor(Predictor):
    """Actions for batches of observations, from a trained algorithm's policy."""

    def __init__(self, algorithm: Any, preprocessor: Any = None):
        super().__init__(preprocessor)
        self.algorithm = algorithm

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, env: Any = None) -> RLPredictor:
        return cls(RLCheckpoint.from_checkpoint(checkpoint)._algorithm(env))

    def _predict_numpy(self, data: Any, **kwargs: Any) -> Any:
        import numpy as np
        if isinstance(data, dict):
            if len(data) != 1:
                raise ValueError(f"RLPredictor takes one column of observations, got {list(data)}")
            data = next(iter(data.values()))
        actions = [self.algorithm.compute_single_action(obs, explore=False) for obs in data]
        return np.asarray(actions)
