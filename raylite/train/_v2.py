"""The Ray 2.x surface: ``TorchTrainer(train_loop_per_worker, scaling_config=...).fit()``.

A thin layer over :class:`Trainer`: ``fit()`` starts the workers, runs the loop to the end,
stops them and returns a :class:`Result` (rank 0's last metrics, the latest checkpoint, the
run's directory). A failed run raises TrainingFailedError, as in Ray.

Example:
    >>> from raylite import train
    >>> from raylite.train import ScalingConfig
    >>> from raylite.train.torch import TorchTrainer
    >>> def train_loop(config):
    ...     train.report({"loss": 1.0 / config["lr"]})
    >>> result = TorchTrainer(train_loop, train_loop_config={"lr": 2.0},
    ...                       scaling_config=ScalingConfig(num_workers=1)).fit()  # doctest: +SKIP
    >>> result.metrics["loss"]                                                    # doctest: +SKIP
    0.5
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from raylite.train._backend import BackendConfig
from raylite.train._checkpoint import Checkpoint, CheckpointStrategy


@dataclass
class ScalingConfig:
    """How many workers, and what each holds.

    Args:
        num_workers: training worker processes.
        use_gpu: one GPU per worker.
        resources_per_worker: e.g. ``{"CPU": 2}`` (default: 1 CPU, + 1 GPU with use_gpu).
        placement_strategy: how the workers' bundles are placed ("PACK", "SPREAD", ...).
    """

    num_workers: int = 1
    use_gpu: bool = False
    resources_per_worker: dict[str, float] | None = None
    placement_strategy: str = "PACK"
    trainer_resources: dict[str, float] | None = None


@dataclass
class FailureConfig:
    """``max_failures``: restarts of the workers after one dies (-1: unlimited)."""

    max_failures: int = 0
    fail_fast: bool = False


@dataclass
class CheckpointConfig:
    """Which checkpoints to keep: ``num_to_keep`` best by ``checkpoint_score_attribute``."""

    num_to_keep: int | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"


@dataclass
class RunConfig:
    """Where results go (``storage_path/name``) and how failures and checkpoints are handled."""

    name: str | None = None
    storage_path: str | None = None
    failure_config: FailureConfig | None = None
    checkpoint_config: CheckpointConfig | None = None
    callbacks: list | None = None
    verbose: int = 1
    stop: Any = None


@dataclass
class Result:
    """What ``fit()`` returns.

    Attributes:
        metrics: rank 0's last report.
        checkpoint: the latest checkpoint (a Checkpoint on disk), or None.
        path: the run's directory.
        error: the error the run ended with, or None.
        metrics_history: every report of rank 0, in order.
    """

    metrics: dict = field(default_factory=dict)
    checkpoint: Checkpoint | None = None
    path: str | None = None
    error: BaseException | None = None
    metrics_history: list[dict] = field(default_factory=list)

    @property
    def metrics_dataframe(self) -> Any:
        import pandas
        return pandas.DataFrame(self.metrics_history)

    @property
    def best_checkpoints(self) -> list[tuple[Checkpoint, dict]]:
        return [(self.checkpoint, self.metrics)] if self.checkpoint else []


class DataParallelTrainer:
    """Run ``train_loop_per_worker`` on ``scaling_config.num_workers`` workers (Ray 2.x).

    Subclasses name the backend; use :class:`TorchTrainer` or :class:`TensorflowTrainer`.
    """

    _default_backend: str = ""

    def __init__(self, train_loop_per_worker: Callable, *, train_loop_config: dict | None = None,
                 backend_config: BackendConfig | None = None,
                 scaling_config: ScalingConfig | None = None, run_config: RunConfig | None = None,
                 datasets: dict[str, Any] | None = None,
                 resume_from_checkpoint: Checkpoint | None = None, metadata: dict | None = None):
        if not callable(train_loop_per_worker):
            raise TypeError(f"train_loop_per_worker must be a function, got "
                            f"{type(train_loop_per_worker).__name__}")
        for name, value, kind in (("scaling_config", scaling_config, ScalingConfig),
                                  ("run_config", run_config, RunConfig)):
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{name} must be a raylite.train.{kind.__name__}, got "
                                f"{type(value).__name__}")
        if datasets is not None and not isinstance(datasets, dict):
            raise TypeError(f"datasets must be a dict like {{'train': dataset}}, got "
                            f"{type(datasets).__name__}")
        self.train_loop_per_worker = train_loop_per_worker
        self.train_loop_config = train_loop_config
        self.backend_config = backend_config or self._default_backend
        self.scaling_config = scaling_config or ScalingConfig()
        self.run_config = run_config or RunConfig()
        self.datasets = datasets
        self.resume_from_checkpoint = resume_from_checkpoint
        self.metadata = metadata

    def fit(self) -> Result:
        """Train to the end; a failure raises TrainingFailedError (TrainingWorkerError when a
        worker died with no restarts left)."""
        from raylite.train._trainer import Trainer, split_before_start
        scaling, run = self.scaling_config, self.run_config
        failures = run.failure_config or FailureConfig()
        trainer = Trainer(self.backend_config, num_workers=scaling.num_workers,
                          use_gpu=scaling.use_gpu,
                          resources_per_worker=scaling.resources_per_worker,
                          logdir=self._logdir(), max_retries=failures.max_failures)
        trainer._placement_strategy = scaling.placement_strategy
        shards = split_before_start(self.datasets, scaling.num_workers)
        trainer.start()
        history: list[dict] = []
        try:
            iterator = trainer.run_iterator(
                self.train_loop_per_worker, self.train_loop_config, dataset=shards,
                checkpoint=self.resume_from_checkpoint, checkpoint_strategy=self._strategy())
            for results in iterator:
                history.append(results[0])
            path = trainer.latest_checkpoint_path
            return Result(metrics=dict(history[-1]) if history else {},
                          checkpoint=Checkpoint.from_directory(path) if path else None,
                          path=trainer.latest_run_dir, metrics_history=history)
        finally:
            trainer.shutdown()

    def _logdir(self) -> str | None:
        run = self.run_config
        if run.storage_path is None and run.name is None:
            return None
        root = run.storage_path or os.environ.get("RAYLITE_RESULTS_DIR") or "~/raylite_results"
        name = run.name or f"{type(self).__name__}_{os.getpid()}"
        return os.path.join(os.path.expanduser(root), name)

    def _strategy(self) -> CheckpointStrategy | None:
        config = self.run_config.checkpoint_config
        if config is None:
            return None
        return CheckpointStrategy(config.num_to_keep, config.checkpoint_score_attribute,
                                  config.checkpoint_score_order)


class TorchTrainer(DataParallelTrainer):
    """Data-parallel PyTorch training (a torch.distributed process group over the workers).

    ``torch_config`` is a :class:`raylite.train.torch.TorchConfig` (gloo on CPU, nccl on GPU).
    """

    _default_backend = "torch"

    def __init__(self, train_loop_per_worker: Callable, *, train_loop_config: dict | None = None,
                 torch_config: BackendConfig | None = None, **kwargs: Any):
        super().__init__(train_loop_per_worker, train_loop_config=train_loop_config,
                         backend_config=torch_config or kwargs.pop("backend_config", None),
                         **kwargs)


class TensorflowTrainer(DataParallelTrainer):
    """Data-parallel TensorFlow training: each worker gets TF_CONFIG for
    ``tf.distribute.MultiWorkerMirroredStrategy``."""

    _default_backend = "tensorflow"

    def __init__(self, train_loop_per_worker: Callable, *, train_loop_config: dict | None = None,
                 tensorflow_config: BackendConfig | None = None, **kwargs: Any):
        super().__init__(train_loop_per_worker, train_loop_config=train_loop_config,
                         backend_config=tensorflow_config or kwargs.pop("backend_config", None),
                         **kwargs)
