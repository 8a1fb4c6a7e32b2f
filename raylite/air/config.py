"""The configuration objects that Train, Tune and AIR share (``ray.air.config``).

One class per concept, whichever package it is imported from: ``raylite.air.RunConfig``,
``raylite.train.RunConfig`` and ``raylite.tune.RunConfig`` are the same class, so a Trainer's
``run_config`` and a Tuner's are interchangeable, as in Ray 2.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ScalingConfig", "RunConfig", "FailureConfig", "CheckpointConfig"]


@dataclass
class ScalingConfig:
    """How many training workers, and what each holds.

    Args:
        num_workers: training worker processes.
        use_gpu: one GPU per worker.
        resources_per_worker: e.g. ``{"CPU": 2}`` (default: 1 CPU, + 1 GPU with use_gpu).
        placement_strategy: how the workers' bundles are placed ("PACK", "SPREAD", ...).
        trainer_resources: what the trainer's own process holds (raylite's holds nothing: the
            driver or the Tune trial waits on the workers).

    Example:
        >>> ScalingConfig(num_workers=2).num_workers
        2
    """

    num_workers: int = 1
    use_gpu: bool = False
    resources_per_worker: dict[str, float] | None = None
    placement_strategy: str = "PACK"
    trainer_resources: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) \
                or self.num_workers < 1:
            raise ValueError(f"ScalingConfig(num_workers=...) must be an int >= 1, got "
                             f"{self.num_workers!r}")

    def as_placement_group_factory(self) -> Any:
        """The bundles a Tune trial of this trainer reserves up front, as one placement group:
        the trainer's own (``trainer_resources``; raylite's default asks for nothing) and one
        per worker. The trial's actor takes the first; its workers the others.

        Example:
            >>> ScalingConfig(num_workers=2).as_placement_group_factory().bundles
            [{'CPU': 0}, {'CPU': 1.0}, {'CPU': 1.0}]
        """
        from raylite.train._trainer import worker_resources
        from raylite.tune import PlacementGroupFactory
        worker = worker_resources(self.use_gpu, self.resources_per_worker)
        head = dict(self.trainer_resources or {"CPU": 0})
        return PlacementGroupFactory([head] + [dict(worker) for _ in range(self.num_workers)],
                                     self.placement_strategy)

    @property
    def total_resources(self) -> dict[str, float]:
        per = {"CPU": 1.0, **({"GPU": 1.0} if self.use_gpu else {}),
               **(self.resources_per_worker or {})}
        return {k: v * self.num_workers for k, v in per.items()}


@dataclass
class FailureConfig:
    """``max_failures``: restarts after a failure (-1: unlimited); ``fail_fast``: stop a Tune
    experiment at the first failed trial."""

    max_failures: int = 0
    fail_fast: bool | str = False

    def __post_init__(self) -> None:
        if isinstance(self.max_failures, bool) or not isinstance(self.max_failures, int) \
                or self.max_failures < -1:
            raise ValueError(f"FailureConfig(max_failures=...) must be an int >= -1 (-1: "
                             f"unlimited), got {self.max_failures!r}")


@dataclass
class CheckpointConfig:
    """Which checkpoints to keep: the ``num_to_keep`` best by the reported metric
    ``checkpoint_score_attribute`` in ``checkpoint_score_order`` (the latest is always kept,
    to restart from); class trainables in Tune also save every ``checkpoint_frequency``
    iterations and/or ``checkpoint_at_end``."""

    num_to_keep: int | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool | None = None

    def __post_init__(self) -> None:
        if self.num_to_keep is not None and (isinstance(self.num_to_keep, bool) or not isinstance(
                self.num_to_keep, int) or self.num_to_keep < 1):
            raise ValueError(f"CheckpointConfig(num_to_keep=...) must be None or an int >= 1, "
                             f"got {self.num_to_keep!r}")
        if self.checkpoint_score_order not in ("max", "min"):
            raise ValueError(f"CheckpointConfig(checkpoint_score_order=...) must be 'max' or "
                             f"'min', got {self.checkpoint_score_order!r}")


@dataclass
class RunConfig:
    """Where results go (``storage_path/name``), when to stop, callbacks, failures, checkpoints.

    Example:
        >>> RunConfig(name="exp", storage_path="/tmp/results").name
        'exp'
    """

    name: str | None = None
    storage_path: str | None = None
    stop: Any = None
    callbacks: list | None = None
    failure_config: FailureConfig | None = None
    checkpoint_config: CheckpointConfig | None = None
    progress_reporter: Any = None
    verbose: int = 2
    log_to_file: bool = False
    local_dir: str | None = None
    sync_config: Any = None
    storage_filesystem: Any = None  # a pyarrow.fs / fsspec filesystem for storage_path (Train)
    worker_runtime_env: Any = None  # Train: the runtime_env of the training workers (Ray 2.x)

    def __post_init__(self) -> None:
        if self.worker_runtime_env is not None:
            from raylite.core._runtime_env import normalize
            self.worker_runtime_env = normalize(self.worker_runtime_env, "RunConfig")
        for name, kind in (("failure_config", FailureConfig),
                           ("checkpoint_config", CheckpointConfig)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"RunConfig({name}=...) must be a {kind.__name__}, got "
                                f"{type(value).__name__}")
