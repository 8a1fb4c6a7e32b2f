"""MLflow tracking: :class:`MLflowLoggerCallback` (a Tune callback: one MLflow run per trial,
its config as params and every result as metrics) and :func:`setup_mlflow` (inside a trainable
or training loop). Nothing here talks to a network unless ``tracking_uri`` says so; tests use a
local database file, ``tracking_uri="sqlite:////tmp/mlflow.db"`` (MLflow 3 refuses its old
file store unless MLFLOW_ALLOW_FILE_STORE=true). mlflow is imported only when used.
"""

from __future__ import annotations

from typing import Any

from raylite.air.integrations._flatten import flatten, numeric_metrics
from raylite.tune._logger import LoggerCallback

__all__ = ["MLflowLoggerCallback", "setup_mlflow"]


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise ImportError("MLflow tracking needs the mlflow package: pip install mlflow-skinny") \
            from None
    return mlflow


class MLflowLoggerCallback(LoggerCallback):
    """Log each trial to MLflow as a run of ``experiment_name`` (created when missing).

    Example:
        >>> callback = MLflowLoggerCallback(tracking_uri="sqlite:////tmp/mlflow.db",
        ...                                 experiment_name="demo")    # doctest: +SKIP
        >>> tune.Tuner(train, run_config=RunConfig(callbacks=[callback])).fit()
    """

    def __init__(self, tracking_uri: str | None = None, *, registry_uri: str | None = None,
                 experiment_name: str | None = None, tags: dict | None = None,
                 tracking_token: str | None = None, save_artifact: bool = False):
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.experiment_name = experiment_name
        self.tags = dict(tags or {})
        self.save_artifact = save_artifact
        if tracking_token is not None:
            import os
            os.environ["MLFLOW_TRACKING_TOKEN"] = tracking_token
        self._client: Any = None
        self._experiment_id: str | None = None
        self._runs: dict[str, str] = {}  # trial id -> MLflow run id

    def setup(self, **info: Any) -> None:
        mlflow = _mlflow()
        self._client = mlflow.tracking.MlflowClient(tracking_uri=self.tracking_uri,
                                                    registry_uri=self.registry_uri)
        name = self.experiment_name or info.get("experiment_name") or "raylite"
        experiment = self._client.get_experiment_by_name(name)
        self._experiment_id = experiment.experiment_id if experiment is not None \
            else self._client.create_experiment(name)

    def _ensure_setup(self) -> None:
        if self._client is None:
            self.setup()

    def log_trial_start(self, trial: Any) -> None:
        self._ensure_setup()
        if trial.trial_id in self._runs:
            return
        tags = {"trial_name": str(trial), "mlflow.runName": str(trial), **self.tags}
        run = self._client.create_run(self._experiment_id, tags=tags)
        self._runs[trial.trial_id] = run.info.run_id
        for key, value in flatten(trial.config or {}).items():
            self._client.log_param(run.info.run_id, key, str(value)[:500])

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        if trial.trial_id not in self._runs:
            self.log_trial_start(trial)
        run_id = self._runs[trial.trial_id]
        step = int(result.get("training_iteration", iteration) or 0)
        for key, value in numeric_metrics(result).items():
            self._client.log_metric(run_id, key, value, step=step)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        run_id = self._runs.get(trial.trial_id)
        if run_id is None:
            return
        if self.save_artifact and trial.logdir:
            self._client.log_artifacts(run_id, trial.logdir)
        self._client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


def setup_mlflow(config: dict | None = None, tracking_uri: str | None = None,
                 registry_uri: str | None = None, experiment_id: str | None = None,
                 experiment_name: str | None = None, tracking_token: str | None = None,
                 create_experiment_if_not_exists: bool = False, tags: dict | None = None,
                 rank_zero_only: bool = True) -> Any:
    """Point the ``mlflow`` module at the tracking store and start a run for this trial (or
    training worker); returns the module, so ``mlflow.log_metric(...)`` follows. On workers
    other than rank 0 (with ``rank_zero_only``) it returns a stand-in that logs nothing."""
    from raylite.air import session
    try:
        rank = session.get_world_rank()
    except RuntimeError:
        rank = 0
    if rank_zero_only and rank != 0:
        return _NoOp()
    mlflow = _mlflow()
    if tracking_token is not None:
        import os
        os.environ["MLFLOW_TRACKING_TOKEN"] = tracking_token
    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
    if registry_uri is not None:
        mlflow.set_registry_uri(registry_uri)
    if experiment_id is None and experiment_name is not None:
        experiment = mlflow.get_experiment_by_name(experiment_name)
        if experiment is None:
            if not create_experiment_if_not_exists:
                raise ValueError(f"no MLflow experiment named {experiment_name!r}; pass "
                                 "create_experiment_if_not_exists=True to create it")
            experiment_id = mlflow.create_experiment(experiment_name)
        else:
            experiment_id = experiment.experiment_id
    try:
        run_name = session.get_trial_name() or None
    except RuntimeError:
        run_name = None
    mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)
    if config:
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(config).items()})
    return mlflow


class _NoOp:
    """What setup_mlflow returns on ranks that do not log: every call does nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None
