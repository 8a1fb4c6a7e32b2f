"""The Ray 2.x surface: ``Tuner(trainable, param_space, tune_config, run_config).fit()``.

It translates into one ``tune.run`` call and wraps the outcome in a ResultGrid. Unlike
``tune.run``, failed trials do not raise: they appear in ``ResultGrid.errors``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from raylite.air.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from raylite.tune._analysis import ResultGrid


@dataclasses.dataclass
class TuneConfig:
    """How to search: metric, mode, number of samples, searcher, scheduler, concurrency."""

    metric: str | None = None
    mode: str | None = None
    search_alg: Any = None
    scheduler: Any = None
    num_samples: int = 1
    max_concurrent_trials: int | None = None
    time_budget_s: float | None = None
    reuse_actors: bool | None = None
    trial_name_creator: Callable | None = None
    trial_dirname_creator: Callable | None = None


class Tuner:
    """Tune a trainable over a parameter space (Ray 2.x API).

    Example:
        >>> from raylite import tune
        >>> def trainable(config):
        ...     tune.report({"loss": (config["x"] - 1) ** 2})
        >>> tuner = tune.Tuner(trainable, param_space={"x": tune.grid_search([0, 1, 2])},
        ...                    tune_config=tune.TuneConfig(metric="loss", mode="min"),
        ...                    run_config=tune.RunConfig(verbose=0))
        >>> tuner.fit().get_best_result().config
        {'x': 1}
    """

    def __init__(self, trainable: Any = None, *, param_space: dict | None = None,
                 tune_config: TuneConfig | None = None, run_config: RunConfig | None = None):
        if trainable is None:
            raise TypeError("Tuner needs a trainable: Tuner(train_function, param_space=...)")
        for value, kind, name in ((tune_config, TuneConfig, "tune_config"),
                                  (run_config, RunConfig, "run_config")):
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{name} must be a tune.{kind.__name__}, got {type(value).__name__}")
        if callable(getattr(trainable, "as_trainable", None)):  # a Train trainer (Ray 2.x AIR)
            self.trainer = trainable
            fixed = (param_space or {}).get("scaling_config")
            if isinstance(fixed, ScalingConfig):  # every trial's resources, known up front
                trainable = trainable._with_overrides({"scaling_config": fixed})
            trainable = trainable.as_trainable()
            if run_config is None:
                run_config = self.trainer.run_config
        self.trainable = trainable
        self.param_space = param_space
        self.tune_config = tune_config or TuneConfig()
        self.run_config = run_config or RunConfig()
        self._resume: bool | str = False
        self._restored_path: str | None = None
        self._results: ResultGrid | None = None

    @classmethod
    def restore(cls, path: str, trainable: Any, *, param_space: dict | None = None,
                resume_errored: bool = False, tune_config: TuneConfig | None = None,
                run_config: RunConfig | None = None) -> Tuner:
        """Take up the experiment in ``path`` where it stopped (after a crash or Ctrl-C):
        finished trials are kept, the others run again from their last checkpoint.

        Example:
            >>> tuner = Tuner.restore("~/ray_results/my_experiment", trainable=train)  # doctest: +SKIP
        """
        import os

        from raylite.tune._runner import load_state
        uri = os.fspath(path)
        path, storage_path = _local_experiment(uri)
        state = load_state(path)
        if state is None:
            raise ValueError(f"no experiment to restore in {uri!r}")
        run_config = dataclasses.replace(run_config or RunConfig(),
                                         name=os.path.basename(path), storage_path=storage_path)
        tune_config = tune_config or TuneConfig(metric=state.get("metric"), mode=state.get("mode"))
        tuner = cls(trainable, param_space=param_space if param_space is not None else state["space"],
                    tune_config=tune_config, run_config=run_config)
        tuner._resume = "ERRORED_ONLY" if resume_errored else True
        tuner._restored_path = path
        return tuner

    @classmethod
    def can_restore(cls, path: str) -> bool:
        """Whether ``path`` holds an experiment that :meth:`restore` can take up."""
        import os

        from raylite._storage import is_remote, resolve
        from raylite.tune._runner import STATE_PICKLE
        if is_remote(path):
            import pyarrow.fs as pafs
            filesystem, remote = resolve(path)
            state = f"{remote.rstrip('/')}/{STATE_PICKLE}"
            return filesystem.get_file_info(state).type == pafs.FileType.File
        return os.path.exists(os.path.join(os.path.expanduser(os.fspath(path)), STATE_PICKLE))

    def fit(self) -> ResultGrid:
        """Run the experiment; returns a ResultGrid (failed trials are in ``.errors``)."""
        from raylite.tune._run import run
        tc, rc = self.tune_config, self.run_config
        if rc.storage_filesystem is not None:
            raise ValueError("RunConfig(storage_filesystem=...) is supported by Train's fit(), "
                             "not by a Tuner; give the Tuner a storage_path URI (s3://...)")
        failure = rc.failure_config or FailureConfig()
        checkpoint = rc.checkpoint_config or CheckpointConfig()
        analysis = run(
            self.trainable, config=self.param_space, metric=tc.metric, mode=tc.mode,
            search_alg=tc.search_alg, scheduler=tc.scheduler, num_samples=tc.num_samples,
            max_concurrent_trials=tc.max_concurrent_trials, time_budget_s=tc.time_budget_s,
            reuse_actors=tc.reuse_actors, trial_name_creator=tc.trial_name_creator,
            trial_dirname_creator=tc.trial_dirname_creator, name=rc.name,
            storage_path=rc.storage_path or rc.local_dir, stop=rc.stop, callbacks=rc.callbacks,
            progress_reporter=rc.progress_reporter, verbose=rc.verbose,
            max_failures=failure.max_failures, fail_fast=failure.fail_fast,
            checkpoint_freq=checkpoint.checkpoint_frequency,
            checkpoint_at_end=bool(checkpoint.checkpoint_at_end),
            keep_checkpoints_num=checkpoint.num_to_keep,
            checkpoint_score_attr=_score_attr(checkpoint),
            raise_on_failed_trial=False, resume=self._resume)
        self._results = ResultGrid(analysis)
        _point_at_storage(self._results, rc.storage_path or rc.local_dir)
        return self._results

    def get_results(self) -> ResultGrid:
        """The ResultGrid of the last ``fit()``; for a restored Tuner, the results saved in
        its experiment folder (no trial runs)."""
        if self._results is not None:
            return self._results
        if self._restored_path is not None:
            from raylite.tune._analysis import ExperimentAnalysis
            state = self.tune_config
            return ResultGrid(ExperimentAnalysis(self._restored_path, default_metric=state.metric,
                                                 default_mode=state.mode))
        raise RuntimeError("call Tuner.fit() first (or Tuner.restore(path, trainable)); "
                           "get_results() returns what it produced")


def _point_at_storage(grid: ResultGrid, storage: Any) -> None:
    """With a remote storage_path (the experiment was uploaded there at its end), each
    Result's ``path``, ``filesystem`` and checkpoints point at the uploaded copy."""
    import os

    from raylite._storage import is_remote, resolve
    if storage is None or not is_remote(storage):
        return
    filesystem, root = resolve(storage)
    local = grid.experiment_path
    target = f"{root.rstrip('/')}/{os.path.basename(local)}"
    for result in grid:
        result._stored_at(local, filesystem, target)


def _local_experiment(path: str) -> tuple[str, str]:
    """``(local experiment folder, storage_path to run it with)``: a remote experiment
    (``s3://bucket/path/exp``) is downloaded into the local results dir first, and goes back
    to where it came from when the restored run ends."""
    import os

    from raylite._storage import download_dir, is_remote, resolve, results_dir
    if not is_remote(path):
        local = os.path.abspath(os.path.expanduser(path.removeprefix("file://")))
        return local, os.path.dirname(local)
    filesystem, remote = resolve(path)
    remote = remote.rstrip("/")
    name = remote.rsplit("/", 1)[-1]
    local = download_dir(filesystem, remote, os.path.join(results_dir(), name),
                         f"Tuner.restore({path!r})")
    return local, path.rstrip("/").rsplit("/", 1)[0]


def _score_attr(checkpoint: CheckpointConfig) -> str | None:
    """CheckpointConfig's attribute and order as tune.run's ``checkpoint_score_attr``."""
    attribute = checkpoint.checkpoint_score_attribute
    if attribute is None:
        return None
    if checkpoint.checkpoint_score_order not in ("min", "max"):
        raise ValueError(f"CheckpointConfig.checkpoint_score_order must be 'min' or 'max', got "
                         f"{checkpoint.checkpoint_score_order!r}")
    return f"min-{attribute}" if checkpoint.checkpoint_score_order == "min" else attribute
