"""raylite.air: the shared vocabulary of Train, Tune, Data preprocessors and predictors
(Ray 2.2's ``ray.air``), reached as ``ray.air`` after ``import raylite as ray``.

    from raylite.air import session, Checkpoint, ScalingConfig, RunConfig

    def train_loop(config):
        for batch in session.get_dataset_shard("train").iter_batches(batch_size=32):
            ...
        session.report({"loss": 0.1}, checkpoint=Checkpoint.from_dict({"weights": w}))

One :class:`Checkpoint` class serves Train, Tune, AIR and the predictors; the config classes
are the same objects as ``raylite.train.RunConfig`` and ``raylite.tune.RunConfig``. Modules:
``raylite.air.config``, ``raylite.air.checkpoint``, ``raylite.air.result``,
``raylite.air.session``; experiment tracking in ``raylite.air.integrations`` (loaded on use).
"""

from __future__ import annotations

import importlib

from raylite.air import checkpoint, config, result, session
from raylite.air.checkpoint import Checkpoint
from raylite.air.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from raylite.air.result import Result

__all__ = ["session", "Checkpoint", "ScalingConfig", "RunConfig", "CheckpointConfig",
           "FailureConfig", "Result", "checkpoint", "config", "result", "integrations"]

_SUBPACKAGES = {"integrations"}


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"raylite.air.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'raylite.air' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBPACKAGES)
