"""Callbacks of ``Trainer.run(train_func, callbacks=[...])`` (Ray 1.x ``ray.train.callbacks``).

Each iteration hands every callback the list of the workers' reports (one dict per rank).

Example:
    >>> from raylite.train.callbacks import TrainingCallback
    >>> class LossPrinter(TrainingCallback):
    ...     def handle_result(self, results, **info):
    ...         print([r["loss"] for r in results])
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["TrainingCallback", "JsonLoggerCallback", "PrintCallback", "TBXLoggerCallback"]


class TrainingCallback:
    """The hooks of a run; override the ones you need."""

    def start_training(self, logdir: str, config: dict, **info: Any) -> None:
        """Before the training function starts; ``logdir`` is the run's directory."""

    def handle_result(self, results: list[dict], **info: Any) -> None:
        """One iteration: the i-th report of every worker, in rank order."""

    def finish_training(self, error: bool = False, **info: Any) -> None:
        """After the run, ``error`` True when it failed."""


class JsonLoggerCallback(TrainingCallback):
    """Write every iteration's reports to ``<logdir>/results.json`` (a JSON list of lists).

    Args:
        logdir: where to write; default: the run's directory.
        filename: the file's name.
        workers_to_log: a rank, a list of ranks, or None for all.
    """

    def __init__(self, logdir: str | None = None, filename: str = "results.json",
                 workers_to_log: int | list[int] | None = 0):
        self._logdir = logdir
        self._filename = filename
        self._workers = [workers_to_log] if isinstance(workers_to_log, int) else workers_to_log
        self.log_path: str | None = None
        self._entries: list = []

    def start_training(self, logdir: str, config: dict, **info: Any) -> None:
        directory = self._logdir or logdir
        os.makedirs(directory, exist_ok=True)
        self.log_path = os.path.join(directory, self._filename)
        self._entries = []
        self._write()

    def handle_result(self, results: list[dict], **info: Any) -> None:
        chosen = results if self._workers is None else [
            results[rank] for rank in self._workers if rank < len(results)]
        self._entries.append(chosen)
        self._write()

    def _write(self) -> None:
        temporary = self.log_path + ".tmp"
        with open(temporary, "w") as f:
            json.dump(self._entries, f, default=repr)
        os.replace(temporary, self.log_path)


class PrintCallback(TrainingCallback):
    """Print every iteration's reports as JSON."""

    def handle_result(self, results: list[dict], **info: Any) -> None:
        print(json.dumps(results, indent=2, default=repr), flush=True)


class TBXLoggerCallback(TrainingCallback):
    """Log one worker's numeric metrics to TensorBoard (needs ``tensorboardX``)."""

    def __init__(self, logdir: str | None = None, worker_to_log: int = 0):
        self._logdir = logdir
        self._worker = worker_to_log
        self._writer: Any = None
        self._step = 0

    def start_training(self, logdir: str, config: dict, **info: Any) -> None:
        from tensorboardX import SummaryWriter
        self._writer = SummaryWriter(self._logdir or logdir, flush_secs=30)
        self._step = 0

    def handle_result(self, results: list[dict], **info: Any) -> None:
        if self._worker >= len(results):
            return
        self._step += 1
        for key, value in results[self._worker].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(f"train/{key}", value, global_step=self._step)

    def finish_training(self, error: bool = False, **info: Any) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
