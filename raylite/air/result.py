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
        filesystem = getattr(self, "_filesystem", None)
        if self.path and filesystem is not None:  # stored remotely: read it from there
            import pyarrow.fs as pafs
            if filesystem.get_file_info(progress).type == pafs.FileType.File:
                with filesystem.open_input_file(progress) as f:
                    data = f.read()
                if data:
                    import io
                    return pd.read_csv(io.BytesIO(data))
            return pd.DataFrame()
        if self.path and os.path.exists(progress) and os.path.getsize(progress):
            return pd.read_csv(progress)
        return pd.DataFrame()

    def _stored_at(self, local_root: str, filesystem: Any, remote_root: str) -> Result:
        """Point this result at its copy on ``filesystem`` (``remote_root`` is ``local_root``
        there, a run uploaded at its end): ``path`` and ``filesystem`` become the remote ones,
        and each checkpoint's ``uri`` / ``filesystem`` (its ``path`` stays the local copy)."""
        from raylite._storage import to_uri

        def remote(path: str) -> str:
            return f"{remote_root}/{os.path.relpath(path, local_root)}".replace(os.sep, "/")

        checkpoints = [self.checkpoint] + [c for c, _ in self.best_checkpoints]
        for checkpoint in checkpoints:
            if checkpoint is not None and checkpoint.path is not None:
                checkpoint._remote_uri = to_uri(filesystem, remote(checkpoint.path))
                checkpoint._filesystem = filesystem
        if self.path is not None:
            self.path = remote(self.path)
        self._filesystem = filesystem
        return self

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.metrics.items() if k != "config"}
        return (f"Result(metrics={shown!r:.200}, path={self.path!r}, "
                f"checkpoint={self.checkpoint!r}, error={self.error!r})")
