"""``tune.run``: checks its arguments, names or resumes the experiment, builds the searcher,
scheduler, stoppers and loggers, and hands them to the experiment loop
(``raylite.tune._runner.ExperimentRunner``); uploads the experiment when its storage is remote.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import raylite
from raylite._suggest import did_you_mean
from raylite.tune import _search_space as space_mod
from raylite.tune._checkpoints import CheckpointKeeper
from raylite.tune._experiment_state import STATE_PICKLE, load_state
from raylite._storage import (check_writable_root, is_remote, resolve,
                              upload_dir_or_clean)
from raylite.tune._logger import Callback, default_loggers
from raylite.tune._progress import CLIReporter, ProgressReporter
from raylite.tune._resources import TrialGroups, concurrency_limit, trial_actor_options
from raylite.tune._scheduler import FIFOScheduler, TrialScheduler, scheduler_from_name
from raylite.tune._searcher import (BasicVariantGenerator, Searcher, check_mode,
                                    searcher_from_name)
from raylite.tune._session import timestamp_string
from raylite.tune._stopper import make_stopper
from raylite.tune._runner import ExperimentRunner, TuneError, results_root
from raylite.tune._trainable import (check_trainable, default_resources, resolve_trainable,
                                     trainable_name)
from raylite.tune._trial import Trial

RESUME_MODES = (False, True, "LOCAL", "AUTO", "ERRORED_ONLY")
__all__ = ["run"]


def run(run_or_experiment: Any, name: str | None = None, metric: str | None = None,
        mode: str | None = None, stop: Any = None, time_budget_s: float | None = None,
        config: dict | None = None, resources_per_trial: Any = None, num_samples: int = 1,
        local_dir: str | None = None, storage_path: str | None = None,
        search_alg: Searcher | str | None = None, scheduler: TrialScheduler | str | None = None,
        checkpoint_freq: int = 0, checkpoint_at_end: bool = False, verbose: int = 3,
        progress_reporter: ProgressReporter | None = None, max_failures: int = 0,
        fail_fast: bool | str = False, reuse_actors: bool | None = None,
        raise_on_failed_trial: bool = True, callbacks: list[Callback] | None = None,
        max_concurrent_trials: int | None = None, trial_name_creator: Callable | None = None,
        trial_dirname_creator: Callable | None = None, seed: int | None = None,
        resume: bool | str = False, keep_checkpoints_num: int | None = None,
        checkpoint_score_attr: str | None = None, **unsupported: Any):
    """Run an experiment: ``num_samples`` x grid trials of ``run_or_experiment`` over ``config``.

    Args:
        run_or_experiment: a function ``f(config)`` that calls ``tune.report``, a
            ``tune.Trainable`` subclass, or the name of one (``tune.register_trainable``, or
            an RLlib algorithm such as ``"PPO"``).
        config: the search space: plain values, ``tune.grid_search([...])``, ``tune.uniform``...
        num_samples: samples of the space (each grid point is run this many times).
        metric, mode: the metric to optimize and "min"/"max"; used by searchers, schedulers
            and the ``best_*`` properties of the result.
        search_alg: a Searcher (OptunaSearch, HyperOptSearch, ...); default: grid/random.
        scheduler: a TrialScheduler (ASHAScheduler, MedianStoppingRule, ...); default: FIFO.
        stop: a dict ``{"training_iteration": 10}``, a function ``(trial_id, result) -> bool``
            or a ``tune.Stopper``.
        resources_per_trial: e.g. ``{"cpu": 1, "gpu": 0}`` (the default, or what a class
            trainable's ``default_resource_request(config)`` asks), or a
            ``tune.PlacementGroupFactory``: each trial reserves its bundles as one placement
            group before it starts; the trial's actor takes the first and captures its
            children (tasks, actors, a Train trainer's workers) into the group.
        local_dir / storage_path: where experiments go (default ``~/ray_results`` or
            $RAYLITE_RESULTS_DIR); ``name``: the experiment's directory name. A URI
            (``s3://bucket/prefix``, ``gs://...``) runs the experiment in the local results dir
            and copies it to ``<URI>/<name>`` when the run ends (its bucket is checked first).
        max_concurrent_trials: at most this many trials at once.
        max_failures: retries of a failing trial (from its last checkpoint).
        checkpoint_freq, checkpoint_at_end: when class trainables save.
        keep_checkpoints_num: keep only this many checkpoints per trial (the latest, and the
            best by ``checkpoint_score_attr``, e.g. "mean_accuracy" or "min-loss").
        raise_on_failed_trial: raise TuneError at the end if any trial failed.
        verbose: 0 silent, 1 the status table, 2 + trial ends, 3 + every result.
        callbacks: ``tune.Callback`` objects.
        resume: True to take up the experiment ``name`` where it stopped (its finished trials
            are kept, the others run again from their last checkpoint); "AUTO" to resume if
            there is something to resume, else start afresh; "ERRORED_ONLY" to also rerun the
            trials that failed.

    Returns:
        An :class:`ExperimentAnalysis`.

    Example:
        >>> from raylite import tune
        >>> def trainable(config):
        ...     tune.report(score=config["x"] ** 2)
        >>> analysis = tune.run(trainable, config={"x": tune.grid_search([1, 2])}, verbose=0)
        >>> analysis.get_best_config(metric="score", mode="min")
        {'x': 1}
    """
    from raylite.tune._analysis import ExperimentAnalysis
    loggers = _file_loggers(unsupported.pop("loggers", None))
    _reject_unsupported(unsupported)
    trainable = resolve_trainable(run_or_experiment)
    check_trainable(trainable)
    shown_name = run_or_experiment if isinstance(run_or_experiment, str) else trainable_name(trainable)
    check_mode(mode, "tune.run")
    if not isinstance(num_samples, int) or (num_samples < 1 and num_samples != -1):
        raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
    if num_samples == -1:
        num_samples = 2**62
    config = dict(config or {})
    space_mod.validate_space(config)
    resources = (getattr(trainable, "__raylite_resources__", None) or resources_per_trial
                 or default_resources(trainable, config))
    actor_options, shown = trial_actor_options(resources)
    # A PlacementGroupFactory (a trainer's: its own bundle + one per worker) is reserved per
    # trial, as one placement group, before the trial starts (see _resources.py)
    trial_groups = TrialGroups.for_trials(trainable, resources)
    keeper = CheckpointKeeper(keep_checkpoints_num, checkpoint_score_attr)
    searcher = _make_searcher(search_alg, metric, mode, config, num_samples)
    scheduler = _make_scheduler(scheduler, metric, mode)
    metric = metric or searcher.metric or scheduler.metric
    mode = mode or searcher.mode or scheduler.mode
    if resume not in RESUME_MODES:
        raise ValueError(f"resume must be one of {RESUME_MODES}, got {resume!r}")
    if resume and not name:
        raise ValueError("resume=... needs the name of the experiment to take up: "
                         "tune.run(..., name='my_experiment', resume=True)")
    if not raylite.is_initialized():  # before the storage: a memory:// one is the session's
        raylite.init()
    storage, remote = storage_path or local_dir, None
    if storage is not None and is_remote(storage):  # run in the local results dir, then copy
        remote = resolve(storage)
        check_writable_root(*remote, "tune.run(storage_path=...)")
        storage = None
    root = results_root(storage)
    name = name or _fresh_name(root, shown_name)
    experiment_dir = os.path.join(root, name)
    if not resume and os.path.exists(os.path.join(experiment_dir, STATE_PICKLE)):
        _warn_existing_experiment(experiment_dir)
    state = load_state(experiment_dir) if resume else None
    if resume and resume != "AUTO" and state is None:
        raise ValueError(f"nothing to resume in {experiment_dir}: no {STATE_PICKLE} there")
    if progress_reporter is None and verbose >= 1:
        progress_reporter = CLIReporter()
    if progress_reporter is not None:
        progress_reporter.setup(start_time=time.time(), total_samples=searcher.total_samples(),
                                metric=metric, mode=mode)
    runner = ExperimentRunner(
        trainable, config, searcher=searcher, scheduler=scheduler, stopper=make_stopper(stop),
        num_samples=num_samples, metric=metric, mode=mode, experiment_dir=experiment_dir,
        name=name, actor_options=actor_options, resources=shown,
        max_concurrent=concurrency_limit(shown, max_concurrent_trials),
        max_failures=max_failures, fail_fast=fail_fast,
        callbacks=loggers + list(callbacks or []),
        reporter=progress_reporter if verbose >= 1 else None, verbose=verbose,
        time_budget_s=time_budget_s, checkpoint_freq=checkpoint_freq,
        checkpoint_at_end=checkpoint_at_end,
        reuse_actors=True if reuse_actors is None else reuse_actors,
        trial_name_creator=trial_name_creator, trial_dirname_creator=trial_dirname_creator,
        seed=seed, keeper=keeper, trial_groups=trial_groups)
    runner.trainable_name = shown_name
    if state is not None:
        runner.restore_state(state, restart_errored=resume == "ERRORED_ONLY")
    try:
        trials = runner.run()
    finally:
        if remote is not None:
            upload_dir_or_clean(experiment_dir, remote[0], f"{remote[1].rstrip('/')}/{name}",
                                f"tune.run(storage_path={storage_path or local_dir!r})")
    failed = [t for t in trials if t.status == Trial.ERROR]
    if failed and raise_on_failed_trial:
        lines = "\n".join(f"  {t}: {t.error_msg} (error file: {t.error_file})" for t in failed)
        raise TuneError(f"{len(failed)} of {len(trials)} trials did not complete:\n{lines}")
    return ExperimentAnalysis(experiment_dir, trials=trials, default_metric=metric,
                              default_mode=mode)


def _file_loggers(loggers: Any) -> list[Callback]:
    """The default logger callbacks, or Ray 1.x ``loggers=[JsonLogger, ...]`` in their place."""
    if loggers is None:
        return default_loggers()
    from raylite.tune.logger import LegacyLoggerCallback
    return [LegacyLoggerCallback(loggers)]


_UNSUPPORTED_OK = {"sync_config", "log_to_file", "queue_trials", "server_port",
                   "export_formats", "max_pending_trials", "chdir_to_trial_dir"}


def _warn_existing_experiment(experiment_dir: str) -> None:
    """Said when a run reuses the name of an experiment on disk without ``resume``."""
    print(f"tune.run: warning: the experiment {os.path.basename(experiment_dir)!r} already "
          f"exists in {experiment_dir}; this run starts new trials beside its trial folders and "
          "replaces its experiment state. To take it up where it stopped, pass resume=True "
          "(or Tuner.restore(path, trainable)); to keep both, give this run another name.",
          file=sys.stderr, flush=True)


def _fresh_name(root: str, trainable: str) -> str:
    """``<trainable>_<date>``, with a suffix if another run this second took that name."""
    base = name = f"{trainable}_{timestamp_string()}"
    suffix = 1
    while os.path.exists(os.path.join(root, name)):
        suffix += 1
        name = f"{base}_{suffix}"
    return name


def _reject_unsupported(unsupported: dict) -> None:
    import inspect
    known = set(inspect.signature(run).parameters) | _UNSUPPORTED_OK | {"loggers"}
    for key in unsupported:
        if key not in _UNSUPPORTED_OK:
            raise TypeError(f"tune.run() got an unexpected keyword argument {key!r}"
                            f"{did_you_mean(key, known)}")


def _make_searcher(search_alg: Any, metric: str | None, mode: str | None, config: dict,
                   num_samples: int) -> Searcher:
    if search_alg is None:
        search_alg = BasicVariantGenerator()
    elif isinstance(search_alg, str):
        search_alg = searcher_from_name(search_alg)
    if not isinstance(search_alg, Searcher):
        raise TypeError(f"search_alg must be a tune Searcher (OptunaSearch, HyperOptSearch, ...), "
                        f"got {type(search_alg).__name__}")
    ok = search_alg.set_search_properties(metric, mode, config, num_samples=num_samples)
    if not ok:
        raise ValueError(f"{type(search_alg).__name__} already has a search space, and "
                         "tune.run(config=...) has one too; give the space in one place only")
    return search_alg


def _make_scheduler(scheduler: Any, metric: str | None, mode: str | None) -> TrialScheduler:
    if scheduler is None:
        scheduler = FIFOScheduler()
    elif isinstance(scheduler, str):
        scheduler = scheduler_from_name(scheduler)
    if not isinstance(scheduler, TrialScheduler):
        raise TypeError(f"scheduler must be a tune TrialScheduler (ASHAScheduler, ...), got "
                        f"{type(scheduler).__name__}")
    if not scheduler.set_search_properties(metric, mode):
        raise ValueError(f"tune.run(metric={metric!r}, mode={mode!r}) conflicts with the metric/"
                         f"mode of {type(scheduler).__name__} ({scheduler.metric!r}, "
                         f"{scheduler.mode!r}); pass them once")
    return scheduler
