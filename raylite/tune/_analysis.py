"""What an experiment returns: :class:`ExperimentAnalysis` (``tune.run``, Ray 1.x) and
:class:`ResultGrid` of :class:`Result` (``Tuner.fit``, Ray 2.x). Both read the finished trials
(or, given only a path, the experiment's ``experiment_state.json``); pandas is imported only by
the methods that return DataFrames.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

from raylite.air.result import Result as AirResult
from raylite.tune._logger import flatten_result
from raylite.tune._searcher import check_mode
from raylite.tune._session import Checkpoint
from raylite.tune._trial import Trial


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class ExperimentAnalysis:
    """The trials of a finished experiment, and the best among them.

    Example:
        >>> from raylite import tune
        >>> def trainable(config):
        ...     tune.report(loss=(config["x"] - 2) ** 2)
        >>> analysis = tune.run(trainable, config={"x": tune.grid_search([1, 2, 3])},
        ...                     metric="loss", mode="min", verbose=0)
        >>> analysis.best_config
        {'x': 2}
    """

    def __init__(self, experiment_checkpoint_path: str, trials: list[Trial] | None = None,
                 default_metric: str | None = None, default_mode: str | None = None):
        check_mode(default_mode, "ExperimentAnalysis")
        path = os.fspath(experiment_checkpoint_path)
        self.experiment_path = os.path.dirname(path) if path.endswith(".json") else path
        if trials is None:
            trials, default_metric, default_mode = self._load(path, default_metric, default_mode)
        self.trials = trials
        self.default_metric = default_metric
        self.default_mode = default_mode
        self._trial_dataframes: dict[str, Any] | None = None

    @staticmethod
    def _load(path: str, metric, mode):
        from raylite.tune._experiment_state import load_json_state
        file = path if path.endswith(".json") else os.path.join(path, "experiment_state.json")
        if not os.path.exists(file):
            raise ValueError(f"no experiment at {path!r}: {file} does not exist")
        state = load_json_state(file)
        trials = [Trial.from_state(t) for t in state["trials"]]
        return trials, metric or state.get("metric"), mode or state.get("mode")

    # ---- best trial -----------------------------------------------------------------------
    def _resolve(self, metric: str | None, mode: str | None, what: str) -> tuple[str, str]:
        metric = metric or self.default_metric
        mode = mode or self.default_mode
        if not metric or not mode:
            raise ValueError(f"To fetch the {what}, pass a metric and a mode: to tune.run(metric=..., "
                             f"mode=...) or to get_{what.replace('best ', 'best_')}(metric, mode)")
        check_mode(mode, what)
        return metric, mode

    def get_best_trial(self, metric: str | None = None, mode: str | None = None,
                       scope: str = "last", filter_nan_and_inf: bool = True) -> Trial | None:
        """The trial with the best ``metric`` (under ``scope``: "last", "avg", "all", "last-5-avg")."""
        metric, mode = self._resolve(metric, mode, "best trial")
        best, best_value = None, None
        for trial in self.trials:
            value = trial.metric_value(metric, mode, scope)
            if value is None or (filter_nan_and_inf and not _finite(value)):
                continue
            if best is None or (value > best_value if mode == "max" else value < best_value):
                best, best_value = trial, value
        if best is None:
            reported = sorted({k for t in self.trials for k in t.last_result
                               if k not in ("config",)})
            if not any(metric in t.metric_analysis or metric in t.last_result for t in self.trials):
                raise ValueError(f"no trial reported the metric {metric!r}; the metrics reported "
                                 f"were: {reported}")
        return best

    def get_best_config(self, metric: str | None = None, mode: str | None = None,
                        scope: str = "last") -> dict | None:
        """The config of :meth:`get_best_trial`."""
        trial = self.get_best_trial(metric, mode, scope)
        return trial.config if trial else None

    def get_best_logdir(self, metric: str | None = None, mode: str | None = None,
                        scope: str = "last") -> str | None:
        trial = self.get_best_trial(metric, mode, scope)
        return trial.logdir if trial else None

    def get_best_checkpoint(self, trial: Trial | None = None, metric: str | None = None,
                            mode: str | None = None) -> Checkpoint | None:
        trial = trial or self.get_best_trial(metric, mode)
        return Checkpoint.from_directory(trial.checkpoint) if trial and trial.checkpoint else None

    @property
    def best_trial(self) -> Trial | None:
        return self.get_best_trial(*self._resolve(None, None, "best trial"))

    @property
    def best_config(self) -> dict | None:
        return self.get_best_config(*self._resolve(None, None, "best config"))

    @property
    def best_logdir(self) -> str | None:
        return self.get_best_logdir(*self._resolve(None, None, "best logdir"))

    @property
    def best_result(self) -> dict | None:
        trial = self.get_best_trial(*self._resolve(None, None, "best result"))
        return trial.last_result if trial else None

    @property
    def best_checkpoint(self) -> Checkpoint | None:
        return self.get_best_checkpoint(None, *self._resolve(None, None, "best checkpoint"))

    @property
    def best_dataframe(self):
        trial = self.best_trial
        return self.trial_dataframes.get(trial.logdir) if trial else None

    @property
    def best_result_df(self):
        import pandas as pd
        result = self.best_result
        return pd.DataFrame.from_records([flatten_result(result)], index="trial_id") if result else None

    # ---- all trials -----------------------------------------------------------------------
    @property
    def results(self) -> dict[str, dict]:
        """Each trial's last result, by trial id."""
        return {t.trial_id: t.last_result for t in self.trials}

    @property
    def results_df(self):
        """A DataFrame of every trial's last result (config flattened to ``config/...``)."""
        import pandas as pd
        records = [flatten_result({**t.last_result, "trial_id": t.trial_id, "config": t.config})
                   for t in self.trials]
        return pd.DataFrame.from_records(records, index="trial_id") if records else pd.DataFrame()

    def dataframe(self, metric: str | None = None, mode: str | None = None):
        """One row per trial: its last result, or with ``metric`` and ``mode`` its best one."""
        import pandas as pd
        rows = []
        for trial in self.trials:
            row = trial.last_result
            if metric and mode:
                frame = self.trial_dataframes.get(trial.logdir)
                if frame is not None and metric in frame and len(frame):
                    index = frame[metric].idxmax() if mode == "max" else frame[metric].idxmin()
                    row = frame.loc[index].to_dict()
            row = flatten_result({**row, "config": trial.config})
            row["logdir"] = trial.logdir
            rows.append(row)
        return pd.DataFrame(rows)

    @property
    def trial_dataframes(self) -> dict[str, Any]:
        """Each trial's progress.csv as a DataFrame, by trial directory."""
        if self._trial_dataframes is None:
            self._trial_dataframes = self.fetch_trial_dataframes()
        return self._trial_dataframes

    def fetch_trial_dataframes(self) -> dict[str, Any]:
        import pandas as pd
        frames = {}
        for trial in self.trials:
            path = os.path.join(trial.logdir or "", "progress.csv")
            if trial.logdir and os.path.exists(path) and os.path.getsize(path):
                frames[trial.logdir] = pd.read_csv(path)
            elif trial.logdir:
                frames[trial.logdir] = pd.DataFrame()
        return frames

    def get_all_configs(self, prefix: bool = False) -> dict[str, dict]:
        return {t.logdir: ({f"config/{k}": v for k, v in flatten_result(t.config).items()}
                           if prefix else t.config) for t in self.trials}

    def get_trial_checkpoints_paths(self, trial: Trial, metric: str | None = None) -> list:
        metric = metric or "training_iteration"
        return [(trial.checkpoint, trial.last_result.get(metric))] if trial.checkpoint else []

    @property
    def experiment_dir(self) -> str:
        return self.experiment_path

    def __repr__(self) -> str:
        return f"ExperimentAnalysis({self.experiment_path!r}, {len(self.trials)} trials)"


class Result(AirResult):
    """One trial's outcome (Ray 2.x): ``metrics``, ``config``, ``path``, ``error``,
    ``checkpoint``, ``best_checkpoints``, ``metrics_dataframe``."""

    def __init__(self, trial: Trial):
        metrics = {**trial.last_result, "config": trial.config} if trial.last_result else {}
        folder = trial.checkpoint
        if folder and os.path.isfile(folder):  # a class trainable's file inside its folder
            folder = os.path.dirname(folder)
        checkpoint = Checkpoint.from_directory(folder) if folder and os.path.isdir(folder) \
            else None
        super().__init__(metrics=metrics, checkpoint=checkpoint, path=trial.logdir,
                         config=trial.config)
        self._trial = trial
        if trial.status == Trial.ERROR:
            from raylite.tune._runner import TuneError
            text = ""
            if trial.error_file and os.path.exists(trial.error_file):
                with open(trial.error_file) as f:
                    text = f.read()
            self.error = TuneError(f"trial {trial} failed: {trial.error_msg}\n{text}".rstrip())
        self.best_checkpoints = self._kept_checkpoints()

    def _kept_checkpoints(self) -> list:
        """Each ``checkpoint_NNNNNN`` folder left in the trial's folder, with the result of
        iteration NNNNNN (the one reported with it), oldest first."""
        if not self.path or not os.path.isdir(self.path):
            return [(self.checkpoint, self.metrics)] if self.checkpoint else []
        by_iteration = {}
        results = os.path.join(self.path, "result.json")
        if os.path.exists(results):
            import json
            with open(results) as f:
                for line in f:
                    if line.strip():
                        row = json.loads(line)
                        by_iteration[row.get("training_iteration")] = row
        kept = []
        for name in sorted(os.listdir(self.path)):
            folder = os.path.join(self.path, name)
            if name.startswith("checkpoint_") and name[11:].isdigit() and os.path.isdir(folder):
                kept.append((Checkpoint.from_directory(folder),
                             by_iteration.get(int(name[11:]), {})))
        return kept

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.metrics.items() if k != "config"}
        return f"Result(metrics={shown!r:.200}, path={self.path!r}, error={self.error!r})"


class ResultGrid:
    """The results of ``Tuner.fit()``: iterate, index, ``get_best_result``, ``get_dataframe``.

    Example:
        >>> from raylite import tune
        >>> def trainable(config):
        ...     tune.report({"score": config["x"]})
        >>> grid = tune.Tuner(trainable, param_space={"x": tune.grid_search([1, 3])},
        ...                   run_config=tune.RunConfig(verbose=0)).fit()
        >>> grid.get_best_result("score", "max").config
        {'x': 3}
    """

    def __init__(self, analysis: ExperimentAnalysis):
        self._analysis = analysis
        self._results = [Result(t) for t in analysis.trials]

    @property
    def experiment_path(self) -> str:
        return self._analysis.experiment_path

    def get_best_result(self, metric: str | None = None, mode: str | None = None,
                        scope: str = "last", filter_nan_and_inf: bool = True) -> Result:
        """The Result of the best trial by ``metric``; raises if none reported it."""
        if len(self._analysis.trials) == 1 and not (metric or self._analysis.default_metric):
            return self._results[0]
        trial = self._analysis.get_best_trial(metric, mode, scope, filter_nan_and_inf)
        if trial is None:
            raise RuntimeError(f"no trial has a finite value of {metric or self._analysis.default_metric!r}")
        return self._results[self._analysis.trials.index(trial)]

    def get_dataframe(self, filter_metric: str | None = None, filter_mode: str | None = None):
        return self._analysis.dataframe(filter_metric, filter_mode)

    @property
    def errors(self) -> list[BaseException]:
        return [r.error for r in self._results if r.error is not None]

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    @property
    def num_terminated(self) -> int:
        return sum(1 for t in self._analysis.trials if t.status == Trial.TERMINATED)

    def __len__(self) -> int:
        return len(self._results)

    def __getitem__(self, index: int) -> Result:
        return self._results[index]

    def __iter__(self) -> Iterator[Result]:
        return iter(self._results)

    def __repr__(self) -> str:
        return f"ResultGrid<{len(self)} results>"
