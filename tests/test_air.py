"""raylite.air: sessions, the one Checkpoint, trainers with datasets= and preprocessor=,
framework checkpoints and predictors, BatchPredictor, restarts, Tuner(trainer), restore.

Trainers here use the "tensorflow" backend where torch is not needed (it only sets TF_CONFIG:
workers start fast); the torch pipeline test imports torch on its workers.
"""

import os
import pickle

import numpy as np
import pandas as pd
import pytest

import raylite
from raylite import train, tune
from raylite.air import (Checkpoint, CheckpointConfig, FailureConfig, Result, RunConfig,
                         ScalingConfig, session)
from raylite.data.preprocessors import Concatenator, StandardScaler
from raylite.train import DataParallelTrainer


def test_ray_air_names_and_module_paths():
    import importlib
    assert raylite.air.session is session
    for module in ("raylite.air.config", "raylite.air.checkpoint", "raylite.air.result",
                   "raylite.air.session"):
        importlib.import_module(module)
    from raylite.air.checkpoint import Checkpoint as C1
    from raylite.air.config import RunConfig as R1
    from raylite.air.result import Result as Res
    # one class for Train, Tune and AIR
    assert C1 is Checkpoint is train.Checkpoint is tune.Checkpoint
    assert R1 is RunConfig is train.RunConfig is tune.RunConfig
    assert train.ScalingConfig is ScalingConfig and tune.FailureConfig is FailureConfig
    assert issubclass(tune.Result, Res) and train.Result is Res is Result


def test_checkpoint_dict_directory_bytes_roundtrips(tmp_path):
    ckpt = Checkpoint.from_dict({"epoch": 3, "weights": [1.0, 2.0]})
    assert Checkpoint.from_bytes(ckpt.to_bytes()).to_dict() == ckpt.to_dict()
    path = ckpt.to_directory(str(tmp_path / "c"))
    assert Checkpoint.from_directory(path).to_dict()["epoch"] == 3
    with ckpt.as_directory() as d:
        assert os.path.exists(os.path.join(d, "dict_checkpoint.pkl"))
    assert not os.path.exists(d)  # the temporary copy is gone
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "w.txt").write_text("42")
    files = Checkpoint.from_directory(tmp_path / "files")
    with files.as_directory() as d:
        assert open(os.path.join(d, "w.txt")).read() == "42"
    copy = pickle.loads(pickle.dumps(files))  # travels as its files
    assert open(os.path.join(copy.path, "w.txt")).read() == "42"
    assert Checkpoint.from_uri(files.uri).path == files.path
    with pytest.raises(ValueError, match="holds files, not a dict"):
        files.to_dict()
    # s3:// URIs are tested against a local S3 server in test_storage_remote.py
    # memory:// URIs are tested in test_storage_memory.py
    with pytest.raises(ValueError, match="not a directory"):
        Checkpoint.from_directory(tmp_path / "missing")


def test_framework_checkpoint_keeps_its_class_through_a_directory(tmp_path):
    torch = pytest.importorskip("torch")
    from raylite.train.torch import TorchCheckpoint
    scaler = StandardScaler(["x"])
    scaler.stats_ = {"mean(x)": 1.0, "std(x)": 2.0}
    ckpt = TorchCheckpoint.from_model(torch.nn.Linear(2, 1), preprocessor=scaler)
    path = ckpt.to_directory(str(tmp_path / "t"))
    loaded = Checkpoint.from_directory(path)
    assert type(loaded) is TorchCheckpoint
    assert isinstance(loaded.get_model(), torch.nn.Linear)
    assert loaded.get_preprocessor().stats_ == scaler.stats_
    state = TorchCheckpoint.from_state_dict(torch.nn.Linear(2, 1).state_dict())
    with pytest.raises(ValueError, match="pass the model"):
        state.get_model()
    assert isinstance(state.get_model(torch.nn.Linear(2, 1)), torch.nn.Linear)


def test_session_outside_a_run_says_where_to_call_it():
    with pytest.raises(RuntimeError, match="outside a training loop"):
        session.report({"x": 1})
    with pytest.raises(RuntimeError, match="outside"):
        session.get_world_rank()


def _loop_with_shards(config):
    shard = session.get_dataset_shard("train")
    rows = sum(len(b) for b in shard.iter_batches(batch_size=4, batch_format="pandas"))
    means = [float(b["x"].mean()) for b in shard.iter_batches(batch_size=None,
                                                              batch_format="pandas")]
    valid = session.get_dataset_shard("valid")
    session.report({"rows": rows, "rank": session.get_world_rank(),
                    "size": session.get_world_size(), "mean_x": float(np.mean(means)),
                    "valid_rows": valid.count()},
                   checkpoint=Checkpoint.from_dict({"rank": session.get_world_rank()}))


def test_trainer_with_datasets_and_preprocessor(ray, tmp_path):
    frame = pd.DataFrame({"x": np.arange(16, dtype=float), "y": np.arange(16) % 2})
    train_ds = ray.data.from_pandas(frame)
    valid_ds = ray.data.from_pandas(frame.iloc[:8])
    scaler = StandardScaler(["x"])
    trainer = DataParallelTrainer(
        _loop_with_shards, backend_config="tensorflow",
        scaling_config=ScalingConfig(num_workers=2),
        datasets={"train": train_ds, "valid": valid_ds}, preprocessor=scaler,
        run_config=RunConfig(name="shards", storage_path=str(tmp_path)))
    result = trainer.fit()
    assert result.metrics["rows"] == 8 and result.metrics["size"] == 2
    assert result.metrics["valid_rows"] == 4
    assert abs(result.metrics["mean_x"]) < 1.0  # scaled: the raw mean of rank 0's half is 3.5
    assert scaler.stats_["mean(x)"] == pytest.approx(7.5)  # fitted on "train"
    # the fitted preprocessor is saved in the checkpoint
    assert result.checkpoint.get_preprocessor().stats_ == scaler.stats_
    assert result.checkpoint.to_dict()["rank"] == 0
    assert result.path.startswith(str(tmp_path)) and result.filesystem is not None


def _loop_best(config):
    for step, loss in enumerate([5.0, 1.0, 3.0, 2.0, 4.0]):
        train.report({"loss": loss, "step": step},
                     checkpoint=Checkpoint.from_dict({"step": step}))


def test_best_checkpoints_honour_num_to_keep(ray, tmp_path):
    result = DataParallelTrainer(
        _loop_best, backend_config="tensorflow",
        run_config=RunConfig(storage_path=str(tmp_path), checkpoint_config=CheckpointConfig(
            num_to_keep=2, checkpoint_score_attribute="loss", checkpoint_score_order="min")),
    ).fit()
    kept = sorted(m["step"] for _, m in result.best_checkpoints)
    # the two best by loss (steps 1 and 3) and the latest (step 4), which is kept to restart
    assert kept == [1, 3, 4]
    assert [c.to_dict()["step"] for c, m in result.best_checkpoints] == [1, 3, 4]
    assert result.checkpoint.to_dict()["step"] == 4
    frame = result.metrics_dataframe
    assert list(frame["loss"]) == [5.0, 1.0, 3.0, 2.0, 4.0]


def _loop_failing_once(config):
    checkpoint = train.get_checkpoint()
    start = checkpoint.to_dict()["step"] + 1 if checkpoint else 0
    for step in range(start, 4):
        if step == 2 and not os.path.exists(config["marker"]):
            open(config["marker"], "w").close()
            raise RuntimeError("boom at step 2")
        train.report({"step": step, "start": start},
                     checkpoint=Checkpoint.from_dict({"step": step}))


def test_failure_config_restarts_from_the_latest_checkpoint(ray, tmp_path):
    config = {"marker": str(tmp_path / "failed_once")}
    result = DataParallelTrainer(
        _loop_failing_once, train_loop_config=config, backend_config="tensorflow",
        run_config=RunConfig(storage_path=str(tmp_path),
                             failure_config=FailureConfig(max_failures=1))).fit()
    assert result.metrics["step"] == 3 and result.metrics["start"] == 2
    os.remove(config["marker"])
    with pytest.raises(train.TrainingFailedError, match="boom at step 2"):
        DataParallelTrainer(_loop_failing_once, train_loop_config=config,
                            backend_config="tensorflow",
                            run_config=RunConfig(storage_path=str(tmp_path))).fit()


def _loop_tuned(config):
    for step in range(3):
        session.report({"score": config["lr"] * (step + 1), "trial": session.get_trial_name()},
                       checkpoint=Checkpoint.from_dict({"lr": config["lr"], "step": step}))


def test_tuner_over_a_trainer_and_restore(ray, tmp_path):
    trainer = DataParallelTrainer(_loop_tuned, train_loop_config={"lr": 0.0},
                                  backend_config="tensorflow",
                                  scaling_config=ScalingConfig(num_workers=1))
    tuner = tune.Tuner(
        trainer,
        param_space={"train_loop_config": {"lr": tune.grid_search([0.1, 0.3])},
                     "scaling_config": ScalingConfig(num_workers=2)},
        tune_config=tune.TuneConfig(metric="score", mode="max"),
        run_config=RunConfig(name="tuned", storage_path=str(tmp_path), verbose=0))
    grid = tuner.fit()
    assert not grid.errors and len(grid) == 2
    best = grid.get_best_result()
    assert best.metrics["score"] == pytest.approx(0.9)
    assert best.metrics["trial"]  # the workers know their trial
    assert best.checkpoint.to_dict() == {"lr": 0.3, "step": 2}
    assert len(best.best_checkpoints) == 3
    assert best.metrics_dataframe["score"].iloc[-1] == pytest.approx(0.9)
    # restore without fit(): the results are read back
    restored = tune.Tuner.restore(str(tmp_path / "tuned"), trainable=trainer)
    again = restored.get_results()
    assert sorted(r.metrics["score"] for r in again) == pytest.approx([0.3, 0.9])
    assert again.get_best_result().checkpoint.to_dict()["lr"] == 0.3
    with pytest.raises(ValueError, match="did you mean 'train_loop_config'"):
        trainer._with_overrides({"train_loop_confg": {}})


def test_run_config_stop_and_callbacks_reach_a_trainer(ray, tmp_path):
    seen = []

    class Recorder(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            seen.append(result["score"])

    result = DataParallelTrainer(
        _loop_tuned, train_loop_config={"lr": 1.0}, backend_config="tensorflow",
        run_config=RunConfig(storage_path=str(tmp_path), verbose=0, callbacks=[Recorder()],
                             stop={"training_iteration": 2})).fit()
    assert seen == [1.0, 2.0]
    assert result.metrics["score"] == 2.0
    assert result.checkpoint.to_dict()["step"] == 1


def test_torch_pipeline_trainer_tuner_batch_predictor(ray, tmp_path):
    torch = pytest.importorskip("torch")
    from raylite.train.batch_predictor import BatchPredictor
    from raylite.train.torch import TorchCheckpoint, TorchPredictor, TorchTrainer

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": 3 * x[:, 0] - 2 * x[:, 1] + 1})
    frame.to_parquet(tmp_path / "data.parquet")
    ds = ray.data.read_parquet(str(tmp_path / "data.parquet"))
    preprocessor = Concatenator(output_column_name="features", exclude=["y"], dtype=np.float32)

    def loop(config):
        import torch as th
        from raylite.train.torch import prepare_model
        th.manual_seed(0)
        model = prepare_model(th.nn.Linear(2, 1))
        optimizer = th.optim.SGD(model.parameters(), lr=config["lr"])
        shard = session.get_dataset_shard("train")
        for epoch in range(config["epochs"]):
            for batch in shard.iter_torch_batches(batch_size=16, dtypes=th.float32):
                loss = th.nn.functional.mse_loss(model(batch["features"]).squeeze(1), batch["y"])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            session.report({"loss": loss.item(), "epoch": epoch},
                           checkpoint=TorchCheckpoint.from_model(model))

    trainer = TorchTrainer(loop, train_loop_config={"epochs": 15, "lr": 0.1},
                           scaling_config=ScalingConfig(num_workers=2),
                           datasets={"train": ds}, preprocessor=preprocessor)
    grid = tune.Tuner(trainer, param_space={"train_loop_config": {"lr": tune.grid_search([0.1])}},
                      tune_config=tune.TuneConfig(metric="loss", mode="min"),
                      run_config=RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    assert not grid.errors
    checkpoint = grid.get_best_result().checkpoint
    assert isinstance(checkpoint, TorchCheckpoint)
    model = checkpoint.get_model()
    assert model.weight.detach().numpy() == pytest.approx(np.array([[3.0, -2.0]]), abs=0.1)

    # a single batch, pandas and numpy
    predictor = TorchPredictor.from_checkpoint(checkpoint)
    out = predictor.predict(frame[["a", "b"]].iloc[:4])
    assert list(out.columns) == ["predictions"]
    np.testing.assert_allclose(np.stack(out["predictions"].to_list())[:, 0],
                               frame["y"].iloc[:4], atol=0.3)
    raw = TorchPredictor(model).predict(x[:4].astype(np.float32))
    np.testing.assert_allclose(raw[:, 0], frame["y"].iloc[:4], atol=0.3)

    # the whole dataset: an actor pool, the preprocessor applied from the checkpoint
    batch_predictor = BatchPredictor.from_checkpoint(checkpoint, TorchPredictor)
    scored = batch_predictor.predict(ds.repartition(4), feature_columns=["features"],
                                     keep_columns=["y"], batch_size=16,
                                     min_scoring_workers=1, max_scoring_workers=2).to_pandas()
    assert len(scored) == 64 and set(scored.columns) == {"predictions", "y"}
    predictions = np.stack(scored["predictions"].to_list())[:, 0]
    np.testing.assert_allclose(predictions, scored["y"], atol=0.3)
    pipelined = batch_predictor.predict_pipelined(ds.repartition(4), blocks_per_window=2,
                                                  feature_columns=["features"],
                                                  keep_columns=["y"])
    rows = pipelined.take_all()
    assert len(rows) == 64
    with pytest.raises(ValueError, match="blocks_per_window"):
        batch_predictor.predict_pipelined(ds)


def _loop_count_rows(config):
    shard = session.get_dataset_shard("train")
    rows = sum(len(b) for b in shard.iter_batches(batch_size=None, batch_format="pandas"))
    session.report({"rows": rows, "free_cpus": raylite.available_resources().get("CPU", 0)})


def test_workers_holding_every_cpu_are_still_fed(ray):
    """2 workers on 2 CPUs: the reads, transforms and slices of the dataset finish before
    the workers take the CPUs, so iterating the shards needs no task (it hung before)."""
    # one block cut in two: the halves are made by slice tasks
    rng = np.random.default_rng(0)
    ds = ray.data.from_pandas(pd.DataFrame({"x": rng.normal(size=200), "y": np.arange(200)}))
    result = DataParallelTrainer(_loop_count_rows, backend_config="tensorflow",
                                 scaling_config=ScalingConfig(num_workers=2),
                                 datasets={"train": ds}).fit()
    assert result.metrics["rows"] == 100 and result.metrics["free_cpus"] == 0


def _tune_loop(config):
    for step, loss in enumerate([4.0, 1.0, 3.0, 2.0]):
        session.report({"loss": loss}, checkpoint=Checkpoint.from_dict({"step": step}))


def test_tune_result_best_checkpoints_honour_num_to_keep(ray, tmp_path):
    grid = tune.Tuner(_tune_loop, run_config=RunConfig(
        storage_path=str(tmp_path), verbose=0, checkpoint_config=CheckpointConfig(
            num_to_keep=2, checkpoint_score_attribute="loss",
            checkpoint_score_order="min"))).fit()
    result = grid[0]
    steps = [c.to_dict()["step"] for c, _ in result.best_checkpoints]
    # the best (step 1, loss 1.0) and the latest (step 3), kept to restore from
    assert steps == [1, 3]
    assert [m["loss"] for _, m in result.best_checkpoints] == [1.0, 2.0]
    assert result.checkpoint.to_dict()["step"] == 3
