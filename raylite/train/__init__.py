"""raylite.train: distributed training on a gang of worker actors (the book's Ray Train).

    from raylite import train
    from raylite.train import Trainer

    def training_function(config):
        for epoch in range(config["epochs"]):
            train.report(epoch=epoch, rank=train.world_rank())

    trainer = Trainer(backend="torch", num_workers=2)   # or "tensorflow"
    trainer.start()
    results = trainer.run(training_function, config={"epochs": 3})   # one value per worker
    trainer.shutdown()

Inside the training function: ``report``, ``world_rank``, ``local_rank``, ``world_size``,
``save_checkpoint``, ``load_checkpoint``, ``get_dataset_shard`` (and the 2.x ``get_context``,
``get_checkpoint``). ``raylite.train.torch`` has ``prepare_model`` / ``prepare_data_loader``
and ``TorchTrainer``; ``raylite.train.tensorflow`` has ``TensorflowTrainer``. PyTorch and
TensorFlow are imported only on the workers, and only when used.
"""

from __future__ import annotations

import importlib

from raylite.train._backend import BackendConfig
from raylite.train._checkpoint import Checkpoint, CheckpointStrategy
from raylite.train._errors import TrainingFailedError, TrainingWorkerError
from raylite.train._run import TrainingIterator
from raylite.train._session import (get_checkpoint, get_context, get_dataset_shard, load_checkpoint,
                                    local_rank, report, save_checkpoint, world_rank, world_size)
from raylite.train._trainer import Trainer
from raylite.train._v2 import (BaseTrainer, CheckpointConfig, DataParallelTrainer, FailureConfig,
                               Result, RunConfig, ScalingConfig)
from raylite.train.callbacks import TrainingCallback

__all__ = [
    # the book's (Ray 1.x) API
    "Trainer", "TrainingIterator", "TrainingCallback", "CheckpointStrategy", "BackendConfig",
    # inside the training function
    "report", "world_rank", "local_rank", "world_size", "save_checkpoint", "load_checkpoint",
    "get_dataset_shard", "get_context", "get_checkpoint",
    # the Ray 2.x API
    "BaseTrainer", "DataParallelTrainer", "ScalingConfig", "RunConfig", "FailureConfig", "CheckpointConfig",
    "Checkpoint", "Result",
    # errors
    "TrainingFailedError", "TrainingWorkerError",
    # framework subpackages and AIR modules (loaded on first use)
    "torch", "tensorflow", "xgboost", "lightgbm", "rl", "callbacks", "predictor",
    "batch_predictor",
    "Predictor", "BatchPredictor",
]

_SUBPACKAGES = {"torch", "tensorflow", "xgboost", "lightgbm", "rl", "predictor",
                "batch_predictor"}
_LAZY = {"Predictor": "raylite.train.predictor", "BatchPredictor": "raylite.train.batch_predictor"}


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"raylite.train.{name}")
        globals()[name] = module
        return module
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'raylite.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBPACKAGES | set(_LAZY))
