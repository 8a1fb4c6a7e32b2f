"""What a finished training run or trial returns (``ray.air.result.Result``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from raylite.air.checkpoint import Checkpoint

__all__ = ["Result"]


@dataclass
class Result:
    """The outcome of one run: a Trainer's ``fit()`` or one trial of a Tuner.

    Attributes:
        metrics: the last reported metrics (rank 0's).
        checkpoint: the latest checkpoint, or None.
        error: the error the run ended with, or None.
        path: the run's directory (``log_dir`` in Ray 2.2).
        metrics_history: every report, in order (``metrics_dataframe`` as a DataFrame).
        best_checkpoints: the kept checkpoints with the metrics reported with each,
            oldest first (as many as ``CheckpointConfig(num_to_keep=...)`` keeps).
        config: the configuration the run used.
    """

    metrics: dict = field(default_factory=dict)
    checkpoint: Checkpoint | None = None
    error: BaseException | None = None
    path: str | None = None
    metrics_history: list[dict] = field(default_factory=list)
    best_checkpoints: list[tuple[Checkpoint, dict]] = field(default_factory=list)
    config: dict | None = None

    @property
    def log_dir(self) -> str | None:
        return self.path

    @property
    def filesystem(self) -> Any:
        """The pyarrow file system ``path`` is on: the local one, or the remote one of a run
        whose ``storage_path`` was a URI (``path`` is then ``bucket/key...`` on it)."""
        filesystem = getattr(self, "_filesystem", None)
        if filesystem is not None:
            return filesystem
        import pyarrow.fs
        return pyarrow.fs.LocalFileSystem()

    @property
    def metrics_dataframe(self) -> Any:
        """Every reported result as a pandas DataFrame (one row per report)."""
        import pandas as pd
        if self.metrics_history:
            return pd.DataFrame(self.metrics_history)
        progress = os.path.join(self.path or "", "progress.csv")
        local = getattr(self, "_filesystem", None) is None
        if self.path and local and os.path.exists(progress) and os.path.getsize(progress):
            return pd.read_csv(progress)
        return pd.DataFrame()

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.metrics.items() if k != "config"}
        return (f"Result(metrics={shown!r:.200}, path={self.path!r}, "
                f"checkpoint={self.checkpoint!r}, error={self.error!r})")
