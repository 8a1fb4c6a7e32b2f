"""The book's ``Trainer`` (Ray Train 1.x): a framework backend on a gang of worker actors.

    trainer = Trainer(backend="torch", num_workers=2)
    trainer.start()                  # WorkerGroup.start(), initialization_hook, backend.on_start
    results = trainer.run(train_func, config={"lr": 0.1})    # one return value per worker
    trainer.shutdown()

Each ``run`` gets a directory ``<logdir>/run_001/`` with the checkpoints that rank 0 saved.
A run that fails stops its workers; the next ``run`` starts a fresh group by itself.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any

import raylite
from raylite.train._backend import BackendConfig, resolve_backend
from raylite.train._checkpoint import (Checkpoint, CheckpointManager, CheckpointStrategy,
                                       payload_to_dict, to_payload, write_payload)
from raylite.train._run import DatasetShards, GroupOwner, TrainingIterator, shard_datasets
from raylite.train._worker_group import WorkerGroup


class Trainer:
    """Run a training function on ``num_workers`` workers with a framework backend.

    Args:
        backend: "torch" or "tensorflow", or a TorchConfig / TensorflowConfig.
        num_workers: how many worker processes train together.
        use_gpu: give each worker one GPU (torch then uses nccl).
        resources_per_worker: e.g. ``{"CPU": 2}``; default one CPU (and one GPU with use_gpu).
        logdir: where runs and checkpoints go; default
            ``$RAYLITE_RESULTS_DIR`` or ``~/ray_results``, in ``train_<date>``.
        max_retries: restarts of the whole group, from the latest checkpoint, when a worker
            dies during a run (-1: unlimited; 0: fail at once).

    Example:
        >>> from raylite.train import Trainer
        >>> def training_function():
        ...     pass
        >>> trainer = Trainer(backend="tensorflow", num_workers=2)
        >>> trainer.start()
        >>> results = trainer.run(training_function)
        >>> trainer.shutdown()
        >>> results
        [None, None]
    """

    def __init__(self, backend: str | BackendConfig, num_workers: int = 1, use_gpu: bool = False,
                 resources_per_worker: dict[str, float] | None = None,
                 logdir: str | os.PathLike | None = None, max_retries: int = 3):
        self._backend = resolve_backend(backend)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be an int >= 1, got {num_workers!r}")
        if not isinstance(use_gpu, bool):
            raise TypeError(f"use_gpu must be True or False, got {use_gpu!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < -1:
            raise ValueError(f"max_retries must be an int >= -1 (-1: unlimited), got {max_retries!r}")
        self._num_workers = num_workers
        self._use_gpu = use_gpu
        self._resources_per_worker = resources_per_worker
        self._resources = worker_resources(use_gpu, resources_per_worker)
        self._max_retries = max_retries
        self._logdir_arg = os.fspath(logdir) if logdir is not None else None
        self.logdir: str | None = None
        self._hook: Callable | None = None
        self._group: WorkerGroup | None = None
        self._started = False
        self._runs = 0
        self._run_dir: str | None = None
        self._checkpoints: CheckpointManager | None = None
        self._iterator: TrainingIterator | None = None
        self._placement_strategy = "PACK"  # ScalingConfig(placement_strategy=...) sets it
        self._worker_runtime_env = None  # RunConfig(worker_runtime_env=...) sets it

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self, initialization_hook: Callable[[], None] | None = None) -> None:
        """Start the workers and the backend; ``initialization_hook()`` runs first on each
        worker (to set environment variables, say)."""
        if self._started:
            raise RuntimeError("this Trainer is already started; call shutdown() before start()")
        if initialization_hook is not None and not callable(initialization_hook):
            raise TypeError(f"initialization_hook must be a function, got "
                            f"{type(initialization_hook).__name__}")
        if not raylite.is_initialized():
            raylite.init()
        self.logdir = self._make_logdir()
        self._hook = initialization_hook
        self._start_group()
        self._started = True

    def shutdown(self) -> None:
        """Stop the workers (a run still going is abandoned). ``start()`` may follow."""
        if self._iterator is not None:
            self._iterator.close()
            self._iterator = None
        group = self._group
        if group is not None:
            try:
                self._backend.on_shutdown(group)
            except Exception:  # noqa: BLE001, S110 - the workers are stopped anyway
                pass
        self._discard_group()
        self._started = False

    def _make_logdir(self) -> str:
        if self._logdir_arg is not None:
            path = os.path.abspath(os.path.expanduser(self._logdir_arg))
        else:
            from raylite._storage import results_dir
            stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
            path = _fresh(os.path.join(results_dir(), f"train_{stamp}"))
        os.makedirs(path, exist_ok=True)
        return path

    def _start_group(self) -> None:
        group = WorkerGroup(self._num_workers, self._resources, self._placement_strategy,
                            self._backend.share_cuda_visible_devices, self._backend.worker_imports,
                            runtime_env=self._worker_runtime_env)
        group.start()
        try:
            if self._hook is not None:
                group.execute(self._hook)
            self._backend.on_start(group, self._use_gpu)
        except BaseException:
            group.shutdown()
            raise
        self._group = group

    def _current_group(self) -> WorkerGroup:
        if self._group is None:  # the last run failed and stopped its workers
            self._start_group()
        return self._group

    def _restart_group(self) -> None:
        self._discard_group()
        self._start_group()

    def _discard_group(self) -> None:
        group, self._group = self._group, None
        if group is not None:
            group.shutdown()

    def _require_started(self, what: str) -> None:
        if not self._started:
            raise RuntimeError(f"call trainer.start() before trainer.{what}()")

    # ---- running -----------------------------------------------------------------------------
    def run(self, train_func: Callable, config: dict | None = None,
            callbacks: list | None = None, dataset: Any = None, checkpoint: Any = None,
            checkpoint_strategy: CheckpointStrategy | None = None) -> list:
        """Run ``train_func`` (taking ``config``, or nothing) on every worker until it returns.

        Args:
            train_func: the training function; it calls ``train.report``, ``train.save_checkpoint``...
            config: passed to ``train_func`` if it takes an argument.
            callbacks: TrainingCallback objects; each gets every iteration's reports.
            dataset: a raylite Dataset (or a dict of them), split across the workers
                (``train.get_dataset_shard()``).
            checkpoint: a dict, Checkpoint or checkpoint path to start from
                (``train.load_checkpoint()``).
            checkpoint_strategy: which checkpoints to keep.

        Returns:
            Each worker's return value, in rank order.
        """
        callbacks = list(callbacks or [])
        for callback in callbacks:
            if not callable(getattr(callback, "handle_result", None)):
                raise TypeError(f"callbacks must be TrainingCallback objects, got "
                                f"{type(callback).__name__}")
        iterator = self.run_iterator(train_func, config, dataset=dataset, checkpoint=checkpoint,
                                     checkpoint_strategy=checkpoint_strategy)
        for callback in callbacks:
            callback.start_training(logdir=self._run_dir, config=dict(config or {}))
        failed = True
        try:
            for results in iterator:
                for callback in callbacks:
                    callback.handle_result(results)
            outputs = iterator.get_final_results()
            failed = False
            return outputs
        finally:
            iterator.close()
            for callback in callbacks:
                callback.finish_training(error=failed)

    def run_iterator(self, train_func: Callable, config: dict | None = None, dataset: Any = None,
                     checkpoint: Any = None,
                     checkpoint_strategy: CheckpointStrategy | None = None, *,
                     score_by_metrics: bool = False, preprocessor: Any = None,
                     retry_errors: bool = False) -> TrainingIterator:
        """Like :meth:`run`, but yield every iteration's reports (one dict per worker) as they come."""
        self._require_started("run")
        if not callable(train_func):
            raise TypeError(f"train_func must be a function, got {type(train_func).__name__}")
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        if self._iterator is not None and not self._iterator.is_finished():
            self._iterator.close()  # one run at a time: an abandoned one is stopped
        payload = to_payload(checkpoint) if checkpoint is not None else None
        self._runs += 1
        self._run_dir = os.path.join(self.logdir, f"run_{self._runs:03d}")
        os.makedirs(self._run_dir, exist_ok=True)
        self._checkpoints = CheckpointManager(os.path.join(self._run_dir, "checkpoints"),
                                              checkpoint_strategy,
                                              score_by_metrics=score_by_metrics,
                                              preprocessor=preprocessor)
        owner = GroupOwner(self._num_workers, self._current_group,
                           lambda: self._group is not None, self._restart_group,
                           self._discard_group, self._backend.explain_failure)
        self._iterator = TrainingIterator(owner, train_func, config, dataset, payload,
                                          self._checkpoints, self._max_retries, retry_errors)
        return self._iterator

    def execute(self, func: Callable, *args: Any, **kwargs: Any) -> list:
        """Run ``func(*args, **kwargs)`` on every worker; the results in rank order."""
        self._require_started("execute")
        return self._current_group().execute(func, *args, **kwargs)

    def execute_single(self, func: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run ``func(*args, **kwargs)`` on the rank 0 worker."""
        self._require_started("execute_single")
        return self._current_group().execute_single(0, func, *args, **kwargs)

    # ---- checkpoints of the latest run --------------------------------------------------------
    @property
    def latest_checkpoint(self) -> dict | Checkpoint | None:
        """The latest checkpoint rank 0 saved in the latest run (a dict; a Checkpoint when it
        was a directory), or None."""
        manager = self._checkpoints
        if manager is None or manager.latest_payload is None:
            return None
        if manager.latest_payload[0] == "dict":
            return payload_to_dict(manager.latest_payload)
        return Checkpoint.from_directory(manager.latest_path)

    @property
    def latest_run_dir(self) -> str | None:
        return self._run_dir

    @property
    def latest_checkpoint_dir(self) -> str | None:
        return self._checkpoints.checkpoint_dir if self._checkpoints else None

    @property
    def latest_checkpoint_path(self) -> str | None:
        return self._checkpoints.latest_path if self._checkpoints else None

    @property
    def best_checkpoint_path(self) -> str | None:
        return self._checkpoints.best_path if self._checkpoints else None

    # ---- Tune ---------------------------------------------------------------------------------
    def to_tune_trainable(self, train_func: Callable, dataset: Any = None) -> Callable:
        """A function trainable for ``tune.run``: each trial runs ``train_func(config)`` on its
        own group of workers like this Trainer's, and reports rank 0's results to Tune.

        Example:
            >>> from raylite import train, tune                          # doctest: +SKIP
            >>> trainable = Trainer("torch", num_workers=2).to_tune_trainable(train_func)
            >>> tune.run(trainable, config={"lr": tune.grid_search([0.01, 0.1])})
        """
        if self._started:
            raise ValueError("to_tune_trainable() needs a Trainer that is not started: each trial "
                             "starts workers of its own. Call shutdown() first, or do not start it.")
        if not callable(train_func):
            raise TypeError(f"train_func must be a function, got {type(train_func).__name__}")
        settings = {"backend": self._backend, "num_workers": self._num_workers,
                    "use_gpu": self._use_gpu, "resources_per_worker": self._resources_per_worker,
                    "max_retries": self._max_retries}
        return make_tune_trainable(settings, train_func, dataset)

    def __repr__(self) -> str:
        state = "started" if self._started else "not started"
        return (f"Trainer(backend={self._backend.name!r}, num_workers={self._num_workers}, "
                f"use_gpu={self._use_gpu}, {state})")


def make_tune_trainable(settings: dict, train_func: Callable, dataset: Any) -> Callable:
    """The function trainable behind ``Trainer.to_tune_trainable``."""

    def train_with_tune(config: dict, checkpoint_dir: str | None = None) -> None:
        from raylite import tune
        trainer = Trainer(logdir=tune.get_trial_dir(), **settings)
        shards = split_before_start(dataset, settings["num_workers"])
        trainer.start()
        try:
            iterator = trainer.run_iterator(train_func, config, dataset=shards,
                                            checkpoint=checkpoint_dir or None)
            seen = 0
            for results in iterator:
                if iterator.checkpoints.count != seen:  # rank 0 saved one: Tune keeps it too
                    seen = iterator.checkpoints.count
                    with tune.checkpoint_dir() as directory:
                        write_payload(iterator.checkpoints.latest_payload, directory)
                tune.report(**results[0])
        finally:
            trainer.shutdown()

    train_with_tune.__name__ = getattr(train_func, "__name__", "train_func")
    train_with_tune.__qualname__ = train_with_tune.__name__
    # The trial's actor only waits on the workers; they hold the CPUs (see the report's notes).
    train_with_tune.__raylite_resources__ = {"cpu": 0}
    return train_with_tune


def split_before_start(dataset: Any, num_workers: int) -> Any:
    """The dataset split for ``num_workers`` now, while the workers hold no CPUs yet: the
    split's tasks (reads, transforms, slices) have finished when this returns, so that
    workers holding every CPU still find their shards ready."""
    if dataset is None:
        return None
    if not raylite.is_initialized():
        raylite.init()
    shards = shard_datasets(dataset, num_workers)
    refs = [ref for shard in shards
            for part in (shard.values() if isinstance(shard, dict) else [shard])
            for ref in part.get_internal_block_refs()]
    if refs:
        raylite.wait(refs, num_returns=len(refs), fetch_local=False)
    return DatasetShards(shards)


def worker_resources(use_gpu: bool, resources_per_worker: dict | None) -> dict[str, float]:
    """One worker's bundle: {"CPU": 1} (+ {"GPU": 1} with use_gpu), updated by the argument."""
    resources: dict[str, float] = {"CPU": 1.0}
    if use_gpu:
        resources["GPU"] = 1.0
    if resources_per_worker is not None:
        if not isinstance(resources_per_worker, dict):
            raise TypeError(f"resources_per_worker must be a dict like {{'CPU': 2}}, got "
                            f"{type(resources_per_worker).__name__}")
        for key, amount in resources_per_worker.items():
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
                raise ValueError(f"resources_per_worker[{key!r}] must be a non-negative number, "
                                 f"got {amount!r}")
            name = {"cpu": "CPU", "gpu": "GPU", "num_cpus": "CPU", "num_gpus": "GPU"}.get(key, key)
            resources[name] = float(amount)
    if resources.get("GPU", 0) > 0 and not use_gpu:
        raise ValueError("resources_per_worker asks for GPUs but use_gpu is False; pass "
                         "use_gpu=True, or leave GPU out of resources_per_worker")
    if use_gpu and resources.get("GPU", 0) <= 0:
        raise ValueError("use_gpu=True needs a GPU per worker, but resources_per_worker sets "
                         "GPU to 0")
    resources = {k: v for k, v in resources.items() if v > 0}
    if not resources:
        raise ValueError("resources_per_worker asks for nothing; each worker needs at least "
                         "some CPU (e.g. {'CPU': 1})")
    return resources


def _fresh(path: str) -> str:
    candidate, suffix = path, 1
    while os.path.exists(candidate):
        suffix += 1
        candidate = f"{path}_{suffix}"
    return candidate
