"""Tune experiments (and RLlib runs, which are Tune experiments) read back from their files.

    $RAYLITE_RESULTS_DIR or ~/ray_results/
        <experiment>/experiment_state.json     trial status, config, metric and mode (every ~5 s)
        <experiment>/<trial dir>/params.json   the trial's config
        <experiment>/<trial dir>/result.json   one JSON object a line, appended as results arrive
        <experiment>/<trial dir>/error.txt     the traceback of a failed trial

result.json files are read incrementally: each poll parses only the lines appended since the
last one, and keeps only numeric values, so a live experiment costs little to follow.
"""

from __future__ import annotations

import json
import math
import os
import threading
from typing import Any

MAX_EXPERIMENTS = 20
MAX_ROWS = 4000  # per trial; past this, every other row is dropped (the plot keeps its shape)
AUTO_KEYS = frozenset({"timestamp", "pid", "training_iteration", "time_total_s", "done",
                       "time_this_iter_s", "time_since_restore", "iterations_since_restore",
                       "timesteps_since_restore", "date", "hostname", "node_ip", "trial_id",
                       "experiment_id", "episodes_this_iter", "timesteps_this_iter",
                       "warmup_time"})
REWARD_KEYS = ("episode_reward_mean", "env_runners/episode_return_mean", "episode_return_mean",
               "sampler_results/episode_reward_mean")


def results_root() -> str:
    from raylite._storage import results_dir
    return results_dir()


class _ResultFile:
    """The numeric rows of one result.json, parsed up to ``offset``."""

    __slots__ = ("inode", "offset", "rows", "skipped", "stride")

    def __init__(self, inode: int):
        self.inode = inode
        self.offset = 0
        self.rows: list[dict[str, float]] = []
        self.stride = 1   # keep one row in ``stride`` once the file grew past MAX_ROWS
        self.skipped = 0

    def add(self, row: dict[str, float]) -> None:
        self.skipped += 1
        if self.skipped < self.stride:
            return
        self.skipped = 0
        self.rows.append(row)
        if len(self.rows) > MAX_ROWS:
            self.rows = self.rows[::2]
            self.stride *= 2


def _numeric(result: dict, prefix: str = "", out: dict | None = None) -> dict[str, float]:
    """``{"a": {"b": 1.5}, "s": "x"}`` -> ``{"a/b": 1.5}``: the plottable values of a result."""
    out = {} if out is None else out
    for key, value in result.items():
        if key == "config":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _numeric(value, name + "/", out)
        elif isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (int, float)) and math.isfinite(value):
            out[name] = value
    return out


class TuneFiles:
    """Experiments under the results root, with a cache of parsed result files."""

    def __init__(self, root: str | None = None):
        self.root = root
        self._files: dict[str, _ResultFile] = {}
        self._lock = threading.Lock()

    # ----- listing ----------------------------------------------------------------------------
    def root_dir(self) -> str:
        return self.root or results_root()

    def experiment_dirs(self) -> list[str]:
        """The most recently changed experiment folders, newest first."""
        root = self.root_dir()
        try:
            names = os.listdir(root)
        except OSError:
            return []
        found = []
        for name in names:
            path = os.path.join(root, name)
            if not os.path.isdir(path):
                continue
            found.append((_changed_at(path), path))
        found.sort(reverse=True)
        return [path for _, path in found[:MAX_EXPERIMENTS]]

    def experiment_path(self, name: str) -> str | None:
        """The folder of the experiment called ``name``, only if it is directly under the root."""
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
            return None
        root = os.path.realpath(self.root_dir())
        path = os.path.realpath(os.path.join(root, name))
        if os.path.dirname(path) != root or not os.path.isdir(path):
            return None
        return path

    # ----- one experiment ---------------------------------------------------------------------
    def summary(self, path: str) -> dict[str, Any]:
        """An experiment and its trials: status, parameters, last result, metric names."""
        state = _read_json(os.path.join(path, "experiment_state.json")) or {}
        by_dir = {os.path.basename(t.get("logdir") or t.get("dirname") or ""): t
                  for t in state.get("trials", []) if isinstance(t, dict)}
        trials = []
        metric_names: set[str] = set()
        for dirname in sorted(_trial_dirs(path)):
            trial_path = os.path.join(path, dirname)
            rows = self.rows(os.path.join(trial_path, "result.json"))
            saved = by_dir.pop(dirname, {})
            trials.append(_trial_row(trial_path, dirname, saved, rows))
            for row in rows[-1:]:
                metric_names.update(row)
        for saved in by_dir.values():  # known to the state file, no folder yet
            trials.append(_trial_row(None, "", saved, []))
        metric = state.get("metric") or _default_metric(metric_names)
        counts: dict[str, int] = {}
        for trial in trials:
            counts[trial["status"]] = counts.get(trial["status"], 0) + 1
        return {"name": os.path.basename(path), "path": path, "metric": metric,
                "mode": state.get("mode"), "updated": _changed_at(path), "trials": trials,
                "status_counts": counts, "metrics": sorted(metric_names - AUTO_KEYS),
                "is_rllib": any(key in metric_names for key in REWARD_KEYS)}

    def series(self, path: str, metric: str | None, x: str = "training_iteration",
               summary: dict | None = None) -> dict:
        """Per trial, ``metric`` against ``x`` (iterations): what the metric plot draws."""
        summary = summary or self.summary(path)
        metric = metric or summary["metric"]
        lines = []
        for trial in summary["trials"]:
            if not trial["dir"]:
                continue
            rows = self.rows(os.path.join(path, trial["dir"], "result.json"))
            points = [[row.get(x, i + 1), row[metric]] for i, row in enumerate(rows)
                      if metric in row]
            lines.append({"trial": trial["trial"], "status": trial["status"], "points": points})
        return {"name": summary["name"], "metric": metric, "x": x, "lines": lines,
                "metrics": summary["metrics"]}

    def rows(self, result_path: str) -> list[dict[str, float]]:
        """The numeric rows of a result.json so far (cached; reads only what was appended)."""
        try:
            st = os.stat(result_path)
        except OSError:
            return []
        with self._lock:
            cached = self._files.get(result_path)
            if cached is None or cached.inode != st.st_ino or st.st_size < cached.offset:
                cached = self._files[result_path] = _ResultFile(st.st_ino)
            if st.st_size > cached.offset:
                _read_new_lines(result_path, cached)
            return cached.rows

    def forget_missing(self) -> None:
        """Drop cached files that are gone (an experiment folder was deleted)."""
        with self._lock:
            for path in [p for p in self._files if not os.path.exists(p)]:
                del self._files[path]


def _read_new_lines(path: str, cached: _ResultFile) -> None:
    try:
        with open(path, "rb") as f:
            f.seek(cached.offset)
            data = f.read(64 << 20)
    except OSError:
        return
    end = data.rfind(b"\n")
    if end < 0:
        return  # a line being written: wait for its newline
    cached.offset += end + 1
    for line in data[:end].splitlines():
        try:
            result = json.loads(line)
        except ValueError:
            continue
        if isinstance(result, dict):
            cached.add(_numeric(result))


def _trial_row(trial_path: str | None, dirname: str, saved: dict, rows: list) -> dict[str, Any]:
    last = rows[-1] if rows else {}
    status = saved.get("status") or ("RUNNING" if rows else "PENDING")
    error = ""
    if trial_path is not None and os.path.exists(os.path.join(trial_path, "error.txt")):
        error = _tail(os.path.join(trial_path, "error.txt"))
        if status in ("RUNNING", "PENDING") and not saved:
            status = "ERROR"
    if status in ("RUNNING", "PENDING") and last.get("done"):
        status = "TERMINATED"
    params = saved.get("evaluated_params") or saved.get("config")
    if params is None and trial_path is not None:
        params = _read_json(os.path.join(trial_path, "params.json")) or {}
    if saved.get("trial_id"):
        trainable = saved.get("trainable_name", "trial")
        name = saved.get("custom_name") or f"{trainable}_{saved['trial_id']}"
    else:
        name = _short_name(dirname)
    return {"trial": name, "dir": dirname, "trial_id": saved.get("trial_id", ""), "status": status,
            "params": _scalars(params or {}), "last": {k: v for k, v in last.items()
                                                        if k not in ("done", "timestamp", "pid")},
            "iterations": int(last.get("training_iteration", len(rows))), "results": len(rows),
            "error": error}


def _trial_dirs(path: str) -> list[str]:
    try:
        return [name for name in os.listdir(path)
                if os.path.isfile(os.path.join(path, name, "result.json"))
                or os.path.isfile(os.path.join(path, name, "params.json"))]
    except OSError:
        return []


def _short_name(dirname: str) -> str:
    """``train_fn_1a2b3_00001_1_lr=0.1_2024-...`` -> ``train_fn_1a2b3_00001``."""
    parts = dirname.split("_")
    for i, part in enumerate(parts):
        if len(part) == 5 and part.isdigit():
            return "_".join(parts[:i + 1])
    return dirname[:60]


def _default_metric(names: set[str]) -> str | None:
    for key in REWARD_KEYS + ("mean_accuracy", "accuracy", "score", "mean_loss", "loss"):
        if key in names:
            return key
    candidates = sorted(names - AUTO_KEYS)
    return candidates[0] if candidates else None


def _scalars(config: Any, prefix: str = "") -> dict[str, Any]:
    """The scalar leaves of a config, flattened (``{"a": {"b": 1}}`` -> ``{"a/b": 1}``)."""
    out: dict[str, Any] = {}
    if not isinstance(config, dict):
        return out
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_scalars(value, name + "/"))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[name] = value if not isinstance(value, str) else value[:80]
        if len(out) >= 20:
            break
    return out


def _read_json(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            return json.loads(f.read(32 << 20))
    except (OSError, ValueError):
        return None


def _tail(path: str, limit: int = 8000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _changed_at(path: str) -> float:
    try:
        newest = os.stat(path).st_mtime
        state = os.path.join(path, "experiment_state.json")
        if os.path.exists(state):
            newest = max(newest, os.stat(state).st_mtime)
        return newest
    except OSError:
        return 0.0
