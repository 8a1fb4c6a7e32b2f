"""Callbacks, and the ones that write each trial's directory:

    <storage>/<experiment>/<trial dir>/
        params.json      the trial's config          (JsonLoggerCallback)
        params.pkl       the same, pickled
        result.json      one JSON object a line, one line per result
        progress.csv     the same results as a table  (CSVLoggerCallback)
        events.out.tfevents.*   TensorBoard scalars    (TBXLoggerCallback)
        error.txt        the traceback(s) of a failed trial (written by the runner)

All run in the driver, synchronously, with files held open while a trial runs; the runner
creates each trial's directory before the trial starts.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import time
from typing import Any

from raylite.tune._trial import Trial


class Callback:
    """Hooks into the experiment loop; subclass and override what you need.

    Every hook receives keyword arguments: ``iteration`` (loop step), ``trials`` (all of them),
    and ``trial`` / ``result`` / ``error`` where they apply.

    Example:
        >>> class PrintScores(Callback):
        ...     def on_trial_result(self, iteration, trials, trial, result, **info):
        ...         print(trial, result.get("score"))
    """

    def setup(self, **info: Any) -> None:
        """Called once, before the first trial starts."""

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        pass

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        pass

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        pass

    def on_trial_restore(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        pass

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict,
                        **info: Any) -> None:
        pass

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        pass

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        pass

    def on_checkpoint(self, iteration: int, trials: list[Trial], trial: Trial, checkpoint: str,
                      **info: Any) -> None:
        pass

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        pass


class LoggerCallback(Callback):
    """A callback that keeps one open writer per running trial."""

    def log_trial_start(self, trial: Trial) -> None:
        pass

    def log_trial_result(self, iteration: int, trial: Trial, result: dict) -> None:
        pass

    def log_trial_end(self, trial: Trial, failed: bool = False) -> None:
        pass

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.log_trial_start(trial)

    on_trial_restore = on_trial_start

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.log_trial_result(iteration, trial, result)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.log_trial_end(trial, failed=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.log_trial_end(trial, failed=True)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return repr(value)


def to_json(value: Any) -> str:
    return json.dumps(value, default=_json_default, allow_nan=True)


class JsonLoggerCallback(LoggerCallback):
    """params.json / params.pkl at the start, a result.json line per result."""

    def __init__(self) -> None:
        self._files: dict[str, Any] = {}

    def log_trial_start(self, trial: Trial) -> None:
        if trial.logdir is None:
            return
        with open(os.path.join(trial.logdir, "params.json"), "w") as f:
            f.write(json.dumps(trial.config, default=_json_default, indent=2, sort_keys=True))
        try:
            with open(os.path.join(trial.logdir, "params.pkl"), "wb") as f:
                pickle.dump(trial.config, f)
        except Exception:  # noqa: BLE001, S110 - an unpicklable config still gets params.json
            pass
        if trial.trial_id not in self._files:
            self._files[trial.trial_id] = open(os.path.join(trial.logdir, "result.json"), "a")

    def log_trial_result(self, iteration, trial, result) -> None:
        f = self._files.get(trial.trial_id)
        if f is None:
            return
        f.write(to_json({**result, "config": trial.config}) + "\n")
        f.flush()

    def log_trial_end(self, trial, failed=False) -> None:
        f = self._files.pop(trial.trial_id, None)
        if f is not None:
            f.close()

    def on_experiment_end(self, trials, **info) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def flatten_result(result: dict, prefix: str = "", out: dict | None = None) -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``."""
    out = {} if out is None else out
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flatten_result(value, name + "/", out)
        else:
            out[name] = value
    return out


class CSVLoggerCallback(LoggerCallback):
    """progress.csv: one row per result, columns from the first result."""

    def __init__(self) -> None:
        self._writers: dict[str, tuple[Any, csv.DictWriter | None]] = {}

    def log_trial_start(self, trial: Trial) -> None:
        if trial.logdir is None or trial.trial_id in self._writers:
            return
        path = os.path.join(trial.logdir, "progress.csv")
        resuming = os.path.exists(path) and os.path.getsize(path) > 0
        f = open(path, "a", newline="")
        writer = None
        if resuming:
            with open(path, newline="") as existing:
                header = next(csv.reader(existing), None)
            if header:
                writer = csv.DictWriter(f, header, extrasaction="ignore")
        self._writers[trial.trial_id] = (f, writer)

    def log_trial_result(self, iteration, trial, result) -> None:
        entry = self._writers.get(trial.trial_id)
        if entry is None:
            return
        f, writer = entry
        row = flatten_result({k: v for k, v in result.items() if k != "config"})
        if writer is None:
            writer = csv.DictWriter(f, list(row), extrasaction="ignore")
            writer.writeheader()
            self._writers[trial.trial_id] = (f, writer)
        writer.writerow(row)
        f.flush()

    def log_trial_end(self, trial, failed=False) -> None:
        entry = self._writers.pop(trial.trial_id, None)
        if entry is not None:
            entry[0].close()

    def on_experiment_end(self, trials, **info) -> None:
        for f, _ in self._writers.values():
            f.close()
        self._writers.clear()


_AUTO_SKIP = {"timestamp", "pid", "training_iteration", "time_total_s", "done", "trial_id",
              "date", "hostname", "node_ip", "config"}  # as Ray's TBX logger


class TBXLoggerCallback(LoggerCallback):
    """TensorBoard scalars of every numeric result field, under ``ray/tune/<field>``.

    Writes one event per result straight into the trial's event file (``_tfevents``: no
    tensorboardX or TensorFlow import, no writer thread), so thousands of short trials cost
    little; ``tensorboard --logdir <experiment dir>`` reads them.
    """

    def __init__(self) -> None:
        self._writers: dict[str, Any] = {}

    def log_trial_start(self, trial: Trial) -> None:
        from raylite.tune._tfevents import EventFileWriter
        if trial.logdir is None or trial.trial_id in self._writers:
            return
        self._writers[trial.trial_id] = EventFileWriter(trial.logdir)

    def log_trial_result(self, iteration, trial, result) -> None:
        writer = self._writers.get(trial.trial_id)
        if writer is None:
            return
        values = []
        for key, value in flatten_result(result).items():
            if key in _AUTO_SKIP or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                values.append((f"ray/tune/{key}", float(value)))
        writer.add_scalars(int(result.get("training_iteration", trial.num_results)), values)

    def log_trial_end(self, trial, failed=False) -> None:
        writer = self._writers.pop(trial.trial_id, None)
        if writer is not None:
            writer.close()

    def on_experiment_end(self, trials, **info) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def default_loggers() -> list[LoggerCallback]:
    """JSON, CSV and TensorBoard files (as Ray does), unless
    $TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1."""
    if os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS") == "1":
        return []
    return [JsonLoggerCallback(), CSVLoggerCallback(), TBXLoggerCallback()]


def write_error(trial: Trial, error: str) -> str:
    """Append a failure's traceback to the trial's error.txt; returns the file's path."""
    os.makedirs(trial.logdir, exist_ok=True)
    path = os.path.join(trial.logdir, "error.txt")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with open(path, "a") as f:
        f.write(f"Failure # {trial.num_failures} (occurred at {stamp})\n{error.rstrip()}\n\n")
    return path
