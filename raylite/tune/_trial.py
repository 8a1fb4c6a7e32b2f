"""A Trial: one run of the trainable on one config, and its status lifecycle.

    PENDING --start--> RUNNING --finished / stopped--> TERMINATED
       ^                 |  |
       |                 |  +--raised (no retries left)--> ERROR
       +--retry/resume---+--scheduler PAUSE--> PAUSED --resume--> PENDING

Every change of status goes through :meth:`Trial.set_status`, which refuses a transition not in
``TRANSITIONS`` (an internal invariant: the runner drives it).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any


class Trial:
    """One trial of an experiment: its config, status, results so far and files on disk."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"

    TRANSITIONS = {
        PENDING: {RUNNING, TERMINATED, ERROR},
        RUNNING: {PENDING, PAUSED, TERMINATED, ERROR},
        PAUSED: {PENDING, RUNNING, TERMINATED, ERROR},
        TERMINATED: set(),
        ERROR: {PENDING},
    }

    def __init__(self, trainable_name: str, config: dict, trial_id: str, experiment_tag: str = "",
                 experiment_dir: str | None = None, resources: dict | None = None,
                 evaluated_params: dict | None = None, dirname: str | None = None):
        self.trainable_name = trainable_name
        self.config = config
        self.trial_id = trial_id
        self.experiment_tag = experiment_tag
        self.evaluated_params = evaluated_params or {}
        self.resources = resources or {"cpu": 1}
        self.status = Trial.PENDING
        self.last_result: dict = {}
        self.metric_analysis: dict[str, dict[str, float]] = {}
        self.metric_n_steps: dict[str, int] = {}
        self.metric_recent: dict[str, list[float]] = {}
        self.num_results = 0
        self.num_failures = 0
        self.error_msg: str | None = None
        self.checkpoint: str | None = None
        self.checkpoint_iteration = 0      # training_iteration / time_total_s at which
        self.checkpoint_time_s = 0.0       # ``checkpoint`` was taken: a restart goes on from there
        self.start_time: float | None = None
        self.end_time: float | None = None
        self.experiment_dir = experiment_dir
        self.custom_name: str | None = None
        self.dirname = dirname or f"{self}_{experiment_tag}".rstrip("_")
        self.logdir = os.path.join(experiment_dir, self.dirname) if experiment_dir else None

    # ---- lifecycle ------------------------------------------------------------------------
    def set_status(self, status: str) -> None:
        if status not in Trial.TRANSITIONS[self.status] and status != self.status:
            raise RuntimeError(f"trial {self}: illegal status change {self.status} -> {status}")
        self.status = status
        if status == Trial.RUNNING and self.start_time is None:
            self.start_time = time.time()
        if status in (Trial.TERMINATED, Trial.ERROR):
            self.end_time = time.time()

    def is_finished(self) -> bool:
        return self.status in (Trial.TERMINATED, Trial.ERROR)

    # ---- results --------------------------------------------------------------------------
    def update_last_result(self, result: dict) -> None:
        """Record ``result`` and keep per-metric min/max/avg/last for ``scope`` queries."""
        self.last_result = result
        self.num_results += 1
        for key, value in result.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            recent = self.metric_recent.setdefault(key, [])
            recent.append(value)
            if len(recent) > 10:
                del recent[0]
            stats = self.metric_analysis.get(key)
            if stats is None:
                self.metric_analysis[key] = {"max": value, "min": value, "avg": value,
                                             "last": value}
                self.metric_n_steps[key] = 1
                continue
            n = self.metric_n_steps[key] + 1
            self.metric_n_steps[key] = n
            stats["max"] = max(stats["max"], value)
            stats["min"] = min(stats["min"], value)
            stats["avg"] = stats["avg"] + (value - stats["avg"]) / n
            stats["last"] = value

    def metric_value(self, metric: str, mode: str, scope: str = "last") -> float | None:
        """The trial's value of ``metric`` under ``scope`` ("last", "all", "last-5-avg", ...)."""
        if scope in ("all", "avg"):
            stats = self.metric_analysis.get(metric)
            if stats is None:
                return None
            return stats[mode] if scope == "all" else stats["avg"]
        if scope in ("last-5-avg", "last-10-avg"):
            recent = self.metric_recent.get(metric) or [self.last_result.get(metric)]
            recent = [v for v in recent[-int(scope.split("-")[1]):] if isinstance(v, (int, float))]
            return sum(recent) / len(recent) if recent else None
        if scope == "last":
            value = self.last_result.get(metric)
            return value if isinstance(value, (int, float)) and not (
                isinstance(value, float) and math.isnan(value)) else None
        raise ValueError(f"scope must be 'last', 'avg', 'all', 'last-5-avg' or 'last-10-avg', "
                         f"got {scope!r}")

    @property
    def error_file(self) -> str | None:
        if self.logdir is None:
            return None
        path = os.path.join(self.logdir, "error.txt")
        return path if os.path.exists(path) else None

    @property
    def local_path(self) -> str | None:
        return self.logdir

    path = local_path

    @property
    def trial_name(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return self.custom_name or f"{self.trainable_name}_{self.trial_id}"

    def __repr__(self) -> str:
        return str(self)

    def __lt__(self, other: Trial) -> bool:
        return self.trial_id < other.trial_id

    def to_state(self) -> dict[str, Any]:
        """What the experiment state file records about this trial."""
        return {"trial_id": self.trial_id, "trainable_name": self.trainable_name,
                "status": self.status, "config": self.config, "logdir": self.logdir,
                "experiment_tag": self.experiment_tag, "num_failures": self.num_failures,
                "error_msg": self.error_msg, "checkpoint": self.checkpoint,
                "checkpoint_iteration": self.checkpoint_iteration,
                "checkpoint_time_s": self.checkpoint_time_s,
                "last_result": self.last_result, "metric_analysis": self.metric_analysis,
                "metric_n_steps": self.metric_n_steps, "num_results": self.num_results,
                "evaluated_params": self.evaluated_params, "dirname": self.dirname,
                "custom_name": self.custom_name}

    @classmethod
    def from_state(cls, state: dict) -> Trial:
        trial = cls(state["trainable_name"], state["config"], state["trial_id"],
                    state.get("experiment_tag", ""))
        trial.status = state["status"]
        trial.logdir = state.get("logdir")
        trial.num_failures = state.get("num_failures", 0)
        trial.error_msg = state.get("error_msg")
        trial.checkpoint = state.get("checkpoint")
        trial.checkpoint_iteration = state.get("checkpoint_iteration", 0)
        trial.checkpoint_time_s = state.get("checkpoint_time_s", 0.0)
        trial.last_result = state.get("last_result") or {}
        trial.metric_analysis = state.get("metric_analysis") or {}
        trial.metric_n_steps = state.get("metric_n_steps") or {}
        trial.num_results = state.get("num_results", 0)
        trial.evaluated_params = state.get("evaluated_params") or {}
        trial.dirname = state.get("dirname") or trial.dirname
        trial.custom_name = state.get("custom_name")
        return trial
