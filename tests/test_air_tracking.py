"""Experiment tracking with no network: MLflow to a local file store, W&B offline."""

import os

import pytest

from raylite import tune
from raylite.air import RunConfig, session


def _trainable(config):
    for step in range(3):
        session.report({"loss": config["x"] / (step + 1), "nested": {"acc": 0.5 * step}})


def test_mlflow_logger_callback_and_setup_mlflow(ray, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    from raylite.air.integrations.mlflow import MLflowLoggerCallback, setup_mlflow
    uri = f"sqlite:///{tmp_path}/mlflow.db"  # a local database file: no server, no network
    callback = MLflowLoggerCallback(tracking_uri=uri, experiment_name="exp")
    tune.Tuner(_trainable, param_space={"x": tune.grid_search([1.0, 2.0])},
               run_config=RunConfig(storage_path=str(tmp_path), verbose=0,
                                    callbacks=[callback])).fit()
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("exp")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["x"] for r in runs) == ["1.0", "2.0"]
    assert all(r.info.status == "FINISHED" for r in runs)
    history = client.get_metric_history(runs[0].info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert "nested/acc" in runs[0].data.metrics

    # setup_mlflow outside a trial: rank 0 of 1 logs (in a trial the same call names the run
    # after the trial); the same database, so no second schema set-up
    tracker = setup_mlflow({"x": 3}, tracking_uri=uri, experiment_name="inside",
                           create_experiment_if_not_exists=True)
    tracker.log_metric("score", 30)
    tracker.end_run()
    inside = client.get_experiment_by_name("inside")
    (run,) = client.search_runs([inside.experiment_id])
    assert run.data.metrics["score"] == 30 and run.data.params["x"] == "3"


def test_wandb_logger_callback_offline(ray, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from raylite.air.integrations.wandb import WandbLoggerCallback
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    with pytest.raises(ValueError, match="mode='offline'"):
        WandbLoggerCallback(project="p")
    callback = WandbLoggerCallback(project="p", mode="offline")
    grid = tune.Tuner(_trainable, param_space={"x": 1.0},
                      run_config=RunConfig(storage_path=str(tmp_path), verbose=0,
                                           callbacks=[callback])).fit()
    trial_dir = grid[0].path
    runs = [d for d in os.listdir(os.path.join(trial_dir, "wandb")) if d.startswith("offline-run")]
    assert len(runs) == 1
    files = os.listdir(os.path.join(trial_dir, "wandb", runs[0]))
    assert any(f.endswith(".wandb") for f in files)
