"""The Ray 2.x surface: ``TorchTrainer(train_loop_per_worker, scaling_config=...).fit()``.

A thin layer over :class:`Trainer`::

    fit()
      preprocessor.fit(datasets["train"]); every dataset transformed     (preprocessor=)
      datasets split, one shard per worker, before the workers start      (datasets=)
      workers started; the loop runs; rank 0's reports and checkpoints come back
      a checkpoint is kept with the metrics reported with it (CheckpointConfig) and the
      fitted preprocessor; a failure restarts from the latest one (FailureConfig)
      -> Result(metrics, checkpoint, best_checkpoints, path, metrics_history)

With ``RunConfig(callbacks=..., stop=...)`` the run goes through a one-trial ``Tuner``, as in
Ray, so Tune's callbacks and stoppers see it. ``Tuner(trainer, param_space={...})`` runs the
trainer in each trial with ``train_loop_config`` / ``scaling_config`` / ``datasets`` ... of
the trial's config merged in (:meth:`BaseTrainer.as_trainable`).
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Callable
from typing import Any

from raylite.air.checkpoint import Checkpoint
from raylite.air.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from raylite.air.result import Result
from raylite.train._backend import BackendConfig
from raylite.train._checkpoint import CheckpointStrategy

__all__ = ["BaseTrainer", "DataParallelTrainer", "TorchTrainer", "TensorflowTrainer",
           "ScalingConfig", "RunConfig", "FailureConfig", "CheckpointConfig", "Result"]

# keys of a Tuner's param_space that set a trainer's own arguments
_TRAINER_KEYS = ("train_loop_config", "scaling_config", "datasets", "preprocessor",
                 "resume_from_checkpoint", "params", "num_boost_round", "label_column")


class BaseTrainer:
    """What every Ray 2.x trainer shares: configs, datasets, a preprocessor, ``fit()`` and
    the Tune trainable. Subclasses implement :meth:`_run` (one run, on a worker group)."""

    def __init__(self, *, scaling_config: ScalingConfig | None = None,
                 run_config: RunConfig | None = None, datasets: dict[str, Any] | None = None,
                 preprocessor: Any = None, resume_from_checkpoint: Checkpoint | None = None,
                 metadata: dict | None = None):
        for name, value, kind in (("scaling_config", scaling_config, ScalingConfig),
                                  ("run_config", run_config, RunConfig)):
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{name} must be a raylite.air.{kind.__name__}, got "
                                f"{type(value).__name__}")
        if datasets is not None and not isinstance(datasets, dict):
            raise TypeError(f"datasets must be a dict like {{'train': dataset}}, got "
                            f"{type(datasets).__name__}")
        if preprocessor is not None and not callable(getattr(preprocessor, "transform", None)):
            raise TypeError(f"preprocessor must be a raylite.data.preprocessors Preprocessor, "
                            f"got {type(preprocessor).__name__}")
        if resume_from_checkpoint is not None and not isinstance(resume_from_checkpoint,
                                                                 Checkpoint):
            raise TypeError(f"resume_from_checkpoint must be a Checkpoint, got "
                            f"{type(resume_from_checkpoint).__name__}")
        self.scaling_config = scaling_config or ScalingConfig()
        self.run_config = run_config or RunConfig()
        self.datasets = dict(datasets) if datasets else {}
        self.preprocessor = preprocessor
        self.resume_from_checkpoint = resume_from_checkpoint
        self.metadata = metadata

    # ---- running -----------------------------------------------------------------------------
    def fit(self) -> Result:
        """Train to the end and return the :class:`Result`; a failure (after the restarts
        ``FailureConfig(max_failures=...)`` allows) raises TrainingFailedError."""
        run = self.run_config
        if run.callbacks or run.stop is not None:
            return self._fit_through_tune()
        remote = self._remote_storage()
        if remote is None:
            return self._fit(logdir=self._logdir(), resume=self.resume_from_checkpoint)
        # as Tune does: the run happens in the local results dir, which is uploaded at the end
        from raylite._storage import upload_dir_or_clean
        filesystem, target = remote
        logdir = self._logdir(local=True)
        try:
            result = self._fit(logdir=logdir, resume=self.resume_from_checkpoint)
        finally:
            if os.path.isdir(logdir):
                upload_dir_or_clean(logdir, filesystem, target,
                                    f"RunConfig(storage_path={self.run_config.storage_path!r})")
        return result._stored_at(logdir, filesystem, target)

    def _fit(self, logdir: str | None, resume: Checkpoint | None,
             on_result: Callable[[dict, str | None], None] | None = None,
             trial: dict | None = None) -> Result:
        datasets = self.preprocess_datasets()
        return self._run(datasets, logdir, resume, on_result, trial)

    def preprocess_datasets(self) -> dict[str, Any]:
        """Fit the preprocessor on ``datasets["train"]`` (unless already fitted) and apply it to
        every dataset; returns the transformed datasets."""
        datasets = dict(self.datasets)
        if self.preprocessor is None:
            return datasets
        if "train" not in datasets:
            raise ValueError(f"a preprocessor is fitted on datasets['train'], but the datasets "
                             f"are {sorted(datasets) or 'none'}; name the training set 'train'")
        if self.preprocessor.fit_status() != "FITTED":
            self.preprocessor.fit(datasets["train"])
        return {name: self.preprocessor.transform(ds) for name, ds in datasets.items()}

    def _run(self, datasets: dict, logdir: str | None, resume: Checkpoint | None,
             on_result: Callable | None, trial: dict | None) -> Result:
        raise NotImplementedError

    def _logdir(self, local: bool = False) -> str | None:
        """The run's local folder: ``<storage_path>/<name>``; with a remote storage path
        (``local``), ``<local results dir>/<name>``."""
        run = self.run_config
        if run.storage_path is None and run.local_dir is None and run.name is None:
            return None
        from raylite._storage import results_dir
        root = results_dir(None if local else run.storage_path or run.local_dir)
        return os.path.join(root, self._run_name())

    def _run_name(self) -> str:
        return self.run_config.name or f"{type(self).__name__}_{os.getpid()}"

    def _remote_storage(self) -> tuple[Any, str] | None:
        """``(filesystem, <path>/<name> on it)`` when ``storage_path`` is a URI (or comes with
        ``storage_filesystem``); checks now that it can be written, so that a bad one fails
        before training."""
        from raylite._storage import check_writable_root, is_remote, resolve
        run = self.run_config
        storage, filesystem = run.storage_path or run.local_dir, run.storage_filesystem
        if storage is None or not is_remote(storage, filesystem):
            if filesystem is not None:
                raise ValueError("RunConfig(storage_filesystem=...) needs storage_path=, the "
                                 "path on that filesystem")
            return None
        import raylite
        if not raylite.is_initialized():  # first: a memory:// storage path is the session's
            raylite.init()
        filesystem, root = resolve(storage, filesystem)
        check_writable_root(filesystem, root, f"RunConfig(storage_path={storage!r})")
        return filesystem, f"{root.rstrip('/')}/{self._run_name()}"

    def _strategy(self) -> CheckpointStrategy | None:
        config = self.run_config.checkpoint_config
        if config is None:
            return None
        return CheckpointStrategy(config.num_to_keep, config.checkpoint_score_attribute,
                                  config.checkpoint_score_order)

    # ---- Tune ----------------------------------------------------------------------------------
    def as_trainable(self) -> Callable:
        """A Tune function trainable running this trainer per trial; the trial's config may
        set ``train_loop_config`` (merged), ``scaling_config``, ``datasets``, ``params`` ..."""
        template = self

        def train_trainer(config: dict) -> None:
            from raylite import tune
            trainer = template._with_overrides(config or {})

            def on_result(metrics: dict, checkpoint_path: str | None) -> None:
                checkpoint = Checkpoint.from_directory(checkpoint_path) if checkpoint_path else None
                tune.report({k: v for k, v in metrics.items() if not k.startswith("_")},
                            checkpoint=checkpoint)

            trial = {"trial_name": tune.get_trial_name(), "trial_id": tune.get_trial_id(),
                     "logdir": tune.get_trial_dir()}
            resume = tune.get_checkpoint() or trainer.resume_from_checkpoint
            trainer._fit(logdir=tune.get_trial_dir(), resume=resume, on_result=on_result,
                         trial=trial)

        train_trainer.__name__ = type(self).__name__
        train_trainer.__qualname__ = train_trainer.__name__
        # As in Ray, each trial reserves one placement group up front: the trainer's bundle and
        # one per worker of the trial's own ScalingConfig (param_space may set it per trial).
        # The trial's actor runs in it, capturing its children: the worker group takes the
        # bundles reserved for it, and the Data tasks that prepare the datasets run there too.
        train_trainer.__raylite_resources__ = _scaling(self.scaling_config).as_placement_group_factory()
        train_trainer.__raylite_trial_resources__ = functools.partial(_trial_resources,
                                                                      self.scaling_config)
        return train_trainer

    def _with_overrides(self, config: dict) -> BaseTrainer:
        unknown = [k for k in config if k not in _TRAINER_KEYS]
        if unknown:
            import difflib
            hints = [difflib.get_close_matches(k, _TRAINER_KEYS, n=1) for k in unknown]
            raise ValueError(f"param_space keys {unknown} are not trainer arguments; a Tuner "
                             f"over a trainer takes {list(_TRAINER_KEYS)}"
                             + "".join(f" (did you mean {h[0]!r} for {k!r}?)"
                                       for k, h in zip(unknown, hints) if h))
        trainer = copy.copy(self)
        for key, value in config.items():
            if key in ("train_loop_config", "params") and isinstance(value, dict):
                value = {**(getattr(self, key, None) or {}), **value}
            if key == "datasets":
                value = {**self.datasets, **value}
            if key == "preprocessor" and value is not None:
                value = copy.deepcopy(value)
            setattr(trainer, key, value)
        if isinstance(trainer.scaling_config, dict):
            trainer.scaling_config = ScalingConfig(**trainer.scaling_config)
        if trainer.preprocessor is self.preprocessor and self.preprocessor is not None:
            trainer.preprocessor = copy.deepcopy(self.preprocessor)
        return trainer

    def _fit_through_tune(self) -> Result:
        from raylite.tune import Tuner
        from raylite.tune._runner import TuneError
        run = self.run_config
        grid = Tuner(self, run_config=run).fit()  # Tune restarts a failed run (FailureConfig)
        result = grid[0]
        if result.error is not None:
            from raylite.train._errors import TrainingFailedError
            raise TrainingFailedError(str(result.error)) from (
                result.error if isinstance(result.error, TuneError) else None)
        return result


class DataParallelTrainer(BaseTrainer):
    """Run ``train_loop_per_worker`` on ``scaling_config.num_workers`` workers (Ray 2.x).

    Subclasses name the backend; use :class:`TorchTrainer` or :class:`TensorflowTrainer`.
    """

    _default_backend: str = ""

    def __init__(self, train_loop_per_worker: Callable, *, train_loop_config: dict | None = None,
                 backend_config: BackendConfig | None = None,
                 scaling_config: ScalingConfig | None = None, dataset_config: Any = None,
                 run_config: RunConfig | None = None, datasets: dict[str, Any] | None = None,
                 preprocessor: Any = None, resume_from_checkpoint: Checkpoint | None = None,
                 metadata: dict | None = None):
        if not callable(train_loop_per_worker):
            raise TypeError(f"train_loop_per_worker must be a function, got "
                            f"{type(train_loop_per_worker).__name__}")
        if dataset_config is not None:
            raise ValueError("dataset_config is not supported by raylite: every dataset is split "
                             "evenly across the workers; leave dataset_config out")
        super().__init__(scaling_config=scaling_config, run_config=run_config,
                         datasets=datasets, preprocessor=preprocessor,
                         resume_from_checkpoint=resume_from_checkpoint, metadata=metadata)
        self.train_loop_per_worker = train_loop_per_worker
        self.train_loop_config = train_loop_config
        self.backend_config = backend_config or self._default_backend

    def _run(self, datasets: dict, logdir: str | None, resume: Checkpoint | None,
             on_result: Callable | None, trial: dict | None) -> Result:
        from raylite.train._trainer import Trainer, split_before_start
        scaling, run = self.scaling_config, self.run_config
        failures = run.failure_config or FailureConfig()
        if trial is not None:
            # In a Tune trial a failure fails the trial, and Tune restarts it from its latest
            # checkpoint as the Tuner's FailureConfig allows: one level of retries, as in Ray.
            failures = FailureConfig(max_failures=0)
        trainer = Trainer(self.backend_config, num_workers=scaling.num_workers,
                          use_gpu=scaling.use_gpu,
                          resources_per_worker=scaling.resources_per_worker,
                          logdir=logdir, max_retries=failures.max_failures)
        trainer._placement_strategy = scaling.placement_strategy
        trainer._worker_runtime_env = run.worker_runtime_env
        shards = split_before_start(datasets or None, scaling.num_workers)
        trainer.start(_trial_hook(trial) if trial else None)
        history: list[dict] = []
        try:
            iterator = trainer.run_iterator(
                self.train_loop_per_worker, self.train_loop_config, dataset=shards,
                checkpoint=resume, checkpoint_strategy=self._strategy(),
                score_by_metrics=True, preprocessor=self.preprocessor,
                retry_errors=failures.max_failures != 0)
            for results in iterator:
                history.append(results[0])
                new = iterator.report_checkpoints.popleft() if iterator.report_checkpoints \
                    else None
                if on_result is not None:
                    on_result(results[0], new)
            return _result(trainer, history, self.train_loop_config)
        finally:
            trainer.shutdown()


def _result(trainer: Any, history: list[dict], config: dict | None) -> Result:
    manager = trainer._checkpoints
    path = trainer.latest_checkpoint_path
    best = [(Checkpoint.from_directory(p), m) for p, m in manager.kept()] if manager else []
    return Result(metrics=dict(history[-1]) if history else {},
                  checkpoint=Checkpoint.from_directory(path) if path else None,
                  path=trainer.latest_run_dir, metrics_history=history, best_checkpoints=best,
                  config=config)


def _scaling(scaling: ScalingConfig | dict) -> ScalingConfig:
    return ScalingConfig(**scaling) if isinstance(scaling, dict) else scaling


def _trial_resources(default: ScalingConfig, config: dict) -> Any:
    """The bundles one trial reserves: its config's ``scaling_config``, else the trainer's."""
    return _scaling((config or {}).get("scaling_config") or default).as_placement_group_factory()


def _trial_hook(trial: dict) -> Callable[[], None]:
    """Tell each worker which Tune trial it trains for (``session.get_trial_name()``)."""

    def set_trial() -> None:
        from raylite.train._session import worker_context
        context = worker_context()
        context.trial_name = trial["trial_name"]
        context.trial_id = trial["trial_id"]
        context.logdir = trial["logdir"]

    return set_trial


class TorchTrainer(DataParallelTrainer):
    """Data-parallel PyTorch training (a torch.distributed process group over the workers).

    ``torch_config`` is a :class:`raylite.train.torch.TorchConfig` (gloo on CPU, nccl on GPU).
    """

    _default_backend = "torch"

    def __init__(self, train_loop_per_worker: Callable, *, train_loop_config: dict | None = None,
                 torch_config: BackendConfig | None = None, **kwargs: Any):
        super().__init__(train_loop_per_worker, train_loop_config=train_loop_config,
                         backend_config=torch_config or kwargs.pop("backend_config", None),
                         **kwargs)


class TensorflowTrainer(DataParallelTrainer):
    """Data-parallel TensorFlow training: each worker gets TF_CONFIG for
    ``tf.distribute.MultiWorkerMirroredStrategy``."""

    _default_backend = "tensorflow"

    def __init__(self, train_loop_per_worker: Callable, *, train_loop_config: dict | None = None,
                 tensorflow_config: BackendConfig | None = None, **kwargs: Any):
        super().__init__(train_loop_per_worker, train_loop_config=train_loop_config,
                         backend_config=tensorflow_config or kwargs.pop("backend_config", None),
                         **kwargs)
