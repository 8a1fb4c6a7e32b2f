"""raylite.train: the book's Example 1-6, reports and checkpoints, datasets, Tune, the 2.x
TorchTrainer, bad input, and dying workers.

Most tests run on the "tensorflow" backend without TensorFlow: it only sets TF_CONFIG, so its
workers start in a fraction of a second (torch workers import torch: seconds each on 2 cores).
The torch process group and DDP are in test_train_torch.py, Keras in test_train_tensorflow.py.
"""

import importlib.util
import json
import os
import pickle
import signal
import subprocess
import sys

import pytest

from raylite import train
from raylite.train import Checkpoint, CheckpointStrategy, Trainer, TrainingCallback
from raylite.train.callbacks import JsonLoggerCallback

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")

BOOK_EXAMPLE_1_6 = '''
from ray.train import Trainer

def training_function():
    pass

trainer = Trainer(backend="tensorflow", num_workers=4)
trainer.start()

results = trainer.run(training_function)
trainer.shutdown()
'''


@pytest.fixture
def quick_trainer(ray, tmp_path):
    trainer = Trainer(backend="tensorflow", num_workers=2, logdir=tmp_path / "train")
    trainer.start()
    yield trainer
    trainer.shutdown()


class Recorder(TrainingCallback):
    def __init__(self):
        self.calls = []

    def start_training(self, logdir, config, **info):
        self.calls.append(("start", logdir, config))

    def handle_result(self, results, **info):
        self.calls.append(("result", results))

    def finish_training(self, error=False, **info):
        self.calls.append(("finish", error))


# ------------------------------------------------------------------------------------------
# the book, and the module's promises
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", [
    pytest.param("torch", marks=needs_torch),
    "tensorflow"])
def test_book_example_1_6(ray, backend, tmp_path, monkeypatch):
    # As printed, but on this 2-CPU runtime: 2 workers instead of 4.
    source = (BOOK_EXAMPLE_1_6.replace("from ray.train", "from raylite.train")
              .replace('backend="tensorflow", num_workers=4', f'backend="{backend}", num_workers=2'))
    monkeypatch.setenv("RAYLITE_RESULTS_DIR", str(tmp_path))
    namespace = {"__name__": "learning_ray_example_1_6"}
    exec(compile(source, "example_1_6.py", "exec"), namespace)
    assert namespace["results"] == [None, None]
    assert ray.available_resources()["CPU"] == 2  # the workers are gone
    assert next(p.name for p in tmp_path.iterdir()).startswith("train_")


def test_import_loads_no_framework():
    code = ("import sys, raylite.train, raylite.train.torch, raylite.train.tensorflow.keras; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert set(train.__all__) <= set(dir(train))


# ------------------------------------------------------------------------------------------
# reports and checkpoints
# ------------------------------------------------------------------------------------------
def reporting_loop(config):
    start = train.load_checkpoint()
    first = start["epoch"] + 1 if start else 0
    for epoch in range(first, first + config["epochs"]):
        train.save_checkpoint(epoch=epoch, rank=train.world_rank())
        train.report(epoch=epoch, loss=1.0 / (epoch + 1), rank=train.world_rank())
    return first


def test_report_and_checkpoint_round_trip(quick_trainer, tmp_path):
    recorder, json_logger = Recorder(), JsonLoggerCallback()
    first = quick_trainer.run(reporting_loop, {"epochs": 3}, callbacks=[recorder, json_logger])
    assert first == [0, 0]
    kinds = [call[0] for call in recorder.calls]
    assert kinds == ["start", "result", "result", "result", "finish"]
    assert recorder.calls[0][2] == {"epochs": 3} and recorder.calls[-1] == ("finish", False)
    for epoch, (_, results) in enumerate(recorder.calls[1:4]):
        assert [(r["epoch"], r["rank"]) for r in results] == [(epoch, 0), (epoch, 1)]
        assert results[0]["_training_iteration"] == epoch + 1
    # rank 0's checkpoints, on disk, one directory each; the latest in memory
    assert quick_trainer.latest_checkpoint == {"epoch": 2, "rank": 0}
    path = quick_trainer.latest_checkpoint_path
    assert path.endswith("checkpoint_000003") and path.startswith(quick_trainer.latest_run_dir)
    assert Checkpoint.from_directory(path).to_dict() == {"epoch": 2, "rank": 0}
    assert len(os.listdir(quick_trainer.latest_checkpoint_dir)) == 3
    with open(json_logger.log_path) as f:
        assert [entry[0]["epoch"] for entry in json.load(f)] == [0, 1, 2]
    # the next run resumes from it: load_checkpoint() on every worker
    first = quick_trainer.run(reporting_loop, {"epochs": 1}, checkpoint=quick_trainer.latest_checkpoint)
    assert first == [3, 3]
    # a checkpoint given as a directory, and one as a Ray 1.x pickle file, work alike
    assert quick_trainer.run(reporting_loop, {"epochs": 1}, checkpoint=path) == [3, 3]
    file = tmp_path / "checkpoint.pkl"
    file.write_bytes(pickle.dumps({"epoch": 9}))
    assert quick_trainer.run(reporting_loop, {"epochs": 1}, checkpoint=str(file)) == [10, 10]


def test_run_iterator_streams_results(quick_trainer):
    iterator = quick_trainer.run_iterator(reporting_loop, {"epochs": 4})
    with pytest.raises(RuntimeError, match="not finished"):
        iterator.get_final_results()
    epochs = [[r["epoch"] for r in results] for results in iterator]
    assert epochs == [[0, 0], [1, 1], [2, 2], [3, 3]]
    assert iterator.is_finished() and iterator.get_final_results() == [0, 0]


def test_checkpoint_strategy_keeps_the_best(quick_trainer):
    def loop():
        for score in [3, 1, 5, 2]:
            train.save_checkpoint(score=score)

    strategy = CheckpointStrategy(num_to_keep=2, checkpoint_score_attribute="score")
    quick_trainer.run(loop, checkpoint_strategy=strategy)
    kept = sorted(os.listdir(quick_trainer.latest_checkpoint_dir))
    assert kept == ["checkpoint_000001", "checkpoint_000003", "checkpoint_000004"]  # best two + latest
    assert Checkpoint.from_directory(quick_trainer.best_checkpoint_path).to_dict() == {"score": 5}
    assert quick_trainer.latest_checkpoint == {"score": 2}


def test_checkpoint_object():
    checkpoint = Checkpoint.from_dict({"a": 1})
    directory = checkpoint.to_directory()
    assert Checkpoint.from_directory(directory).to_dict() == {"a": 1}
    with Checkpoint.from_directory(directory).as_directory() as path:
        assert path == directory
    with pytest.raises(ValueError, match="not a directory"):
        Checkpoint.from_directory(os.path.join(directory, "missing"))
    with pytest.raises(TypeError, match="dict"):
        Checkpoint.from_dict([1])


# ------------------------------------------------------------------------------------------
# datasets
# ------------------------------------------------------------------------------------------
def test_get_dataset_shard_splits_the_dataset(ray, tmp_path):
    # tensorflow: its workers start fast, and with every CPU held by them, the split restarts them
    trainer = Trainer("tensorflow", num_workers=2, logdir=tmp_path)
    trainer.start()

    def loop():
        shard = train.get_dataset_shard()
        return sorted(shard.take_all())

    try:
        results = trainer.run(loop, dataset=ray.data.range(10).map(lambda x: x * 10))
        assert [len(r) for r in results] == [5, 5]
        assert sorted(results[0] + results[1]) == list(range(0, 100, 10))

        def named():
            return (train.get_dataset_shard("train").count(),
                    train.get_dataset_shard("test").count())

        datasets = {"train": ray.data.range(8), "test": ray.data.range(4)}
        assert trainer.run(named, dataset=datasets) == [(4, 2), (4, 2)]
    finally:
        trainer.shutdown()


# ------------------------------------------------------------------------------------------
# Tune and the 2.x API
# ------------------------------------------------------------------------------------------
def test_trainer_inside_tune_run(ray, tmp_path):
    from raylite import tune

    def loop(config):
        rows = train.get_dataset_shard().count()
        for step in range(2):
            train.save_checkpoint(step=step)
            train.report(score=config["x"] * (step + 1), size=train.world_size(), rows=rows)

    trainable = Trainer(backend="tensorflow", num_workers=2).to_tune_trainable(
        loop, dataset=ray.data.range(8))
    analysis = tune.run(trainable, config={"x": tune.grid_search([1, 2])}, verbose=0,
                        storage_path=str(tmp_path))
    assert analysis.get_best_config(metric="score", mode="max") == {"x": 2}
    for trial in analysis.trials:
        assert trial.last_result["score"] == trial.config["x"] * 2
        assert trial.last_result["size"] == 2 and trial.last_result["training_iteration"] == 2
        assert trial.last_result["rows"] == 4
        assert Checkpoint.from_directory(trial.checkpoint).to_dict() == {"step": 1}
    assert ray.available_resources()["CPU"] == 2


@needs_torch
def test_torch_trainer_fit(ray, tmp_path):
    import tempfile

    from raylite.train import RunConfig, ScalingConfig
    from raylite.train.torch import TorchTrainer

    def loop(config):
        rows = train.get_dataset_shard("train").count()
        context = train.get_context()
        for epoch in range(config["epochs"]):
            with tempfile.TemporaryDirectory() as directory:  # gone right after report
                with open(os.path.join(directory, "model.txt"), "w") as f:
                    f.write(f"epoch {epoch}")
                train.report({"epoch": epoch, "rows": rows, "rank": context.get_world_rank()},
                             checkpoint=Checkpoint.from_directory(directory))

    trainer = TorchTrainer(loop, train_loop_config={"epochs": 2},
                           scaling_config=ScalingConfig(num_workers=2),
                           datasets={"train": ray.data.range(6)},
                           run_config=RunConfig(name="fit", storage_path=str(tmp_path)))
    result = trainer.fit()
    assert result.error is None
    assert (result.metrics["epoch"], result.metrics["rows"], result.metrics["rank"]) == (1, 3, 0)
    assert [m["epoch"] for m in result.metrics_history] == [0, 1]
    with result.checkpoint.as_directory() as directory, \
            open(os.path.join(directory, "model.txt")) as f:
        assert f.read() == "epoch 1"
    assert result.path.startswith(str(tmp_path / "fit"))


def test_tensorflow_trainer_sets_tf_config(ray, tmp_path, monkeypatch):
    monkeypatch.setenv("RAYLITE_RESULTS_DIR", str(tmp_path))
    from raylite.train import ScalingConfig
    from raylite.train.tensorflow import TensorflowTrainer

    def loop():
        train.report({"tf_config": json.loads(os.environ["TF_CONFIG"])},
                     checkpoint=Checkpoint.from_dict({"rank": train.world_rank()}))

    result = TensorflowTrainer(loop, scaling_config=ScalingConfig(num_workers=2)).fit()
    assert result.error is None and result.checkpoint.to_dict() == {"rank": 0}
    tf_config = result.metrics["tf_config"]
    assert tf_config["task"] == {"type": "worker", "index": 0}
    workers = tf_config["cluster"]["worker"]
    assert len(set(workers)) == 2 and all(w.startswith("127.0.0.1:") for w in workers)
    assert result.path.startswith(str(tmp_path))


def test_fit_raises_when_the_loop_fails(ray, tmp_path):
    from raylite.train import RunConfig, ScalingConfig
    from raylite.train.tensorflow import TensorflowTrainer

    def loop():
        train.report({"step": 0})
        raise KeyError("missing column 'label'")

    trainer = TensorflowTrainer(loop, scaling_config=ScalingConfig(num_workers=2),
                                run_config=RunConfig(storage_path=str(tmp_path)))
    with pytest.raises(train.TrainingFailedError, match=r"failed on worker rank \d \(of 2\)") as info:
        trainer.fit()
    assert isinstance(info.value, KeyError)  # `except KeyError` catches it, as in the worker
    assert ray.available_resources()["CPU"] == 2


def test_ranks_devices_and_hosts_are_assigned_like_ray():
    # the pure rank assignment, with the GPU ids two machines would report
    from raylite.train._worker_group import _assign_ranks, _visible_devices
    infos = [{"hostname": h, "gpu_ids": g, "pid": p, "ip": f"10.0.0.{p}"}
             for h, g, p in [("a", [1], 1), ("b", [0], 2), ("a", [0], 3), ("b", [3], 4)]]
    workers = _assign_ranks(["w1", "w2", "w3", "w4"], infos, share_devices=True)
    assert [w.actor for w in workers] == ["w1", "w3", "w2", "w4"]  # contiguous per machine
    assert [(w.context.world_rank, w.context.local_rank, w.context.node_rank,
             w.context.local_world_size) for w in workers] == [
        (0, 0, 0, 2), (1, 1, 0, 2), (2, 0, 1, 2), (3, 1, 1, 2)]
    assert [_visible_devices(w, workers) for w in workers] == ["0,1", "0,1", "0,3", "0,3"]
    assert [w.context.device_index for w in workers] == [1, 0, 0, 1]
    assert {w.ip for w in workers} == {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}
    alone = _assign_ranks(["w1", "w3"], [infos[0], infos[2]], share_devices=False)
    assert [w.context.device_index for w in alone] == [0, 0]  # each sees only its own GPU
    assert {w.ip for w in alone} == {"127.0.0.1"}


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------
def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown backend 'pytorch'.*'torch', 'tensorflow'"):
        Trainer(backend="pytorch", num_workers=2)
    with pytest.raises(ValueError, match="did you mean 'torch'"):
        Trainer(backend="troch")
    with pytest.raises(ValueError, match="Horovod is not supported"):
        Trainer(backend="horovod")
    with pytest.raises(TypeError, match="backend must be"):
        Trainer(backend=3)


def test_bad_settings():
    with pytest.raises(ValueError, match="num_workers must be an int >= 1"):
        Trainer("torch", num_workers=0)
    with pytest.raises(ValueError, match="use_gpu is False"):
        Trainer("torch", resources_per_worker={"GPU": 1})
    with pytest.raises(ValueError, match="max_retries"):
        Trainer("torch", max_retries=-2)
    with pytest.raises(RuntimeError, match=r"call trainer.start\(\) before trainer.run\(\)"):
        Trainer("torch").run(lambda: None)
    with pytest.raises(RuntimeError, match="outside a training function"):
        train.report(loss=1.0)


def test_more_workers_than_cpus_says_how_many_are_free(ray, tmp_path):
    trainer = Trainer("torch", num_workers=3, logdir=tmp_path)
    with pytest.raises(ValueError, match=r"needs 3 CPU, but the cluster has 2 CPU \(2 free now\)"):
        trainer.start()
    assert ray.available_resources()["CPU"] == 2
    trainer = Trainer("torch", num_workers=1, resources_per_worker={"CPU": 4}, logdir=tmp_path)
    with pytest.raises(ValueError, match="needs 4 CPU"):
        trainer.start()
    if not ray.cluster_resources().get("GPU"):
        trainer = Trainer("torch", num_workers=2, use_gpu=True, logdir=tmp_path)
        with pytest.raises(ValueError, match=r"needs 2 GPU, but the cluster has 0 GPU"):
            trainer.start()
    with pytest.raises(RuntimeError, match=r"call trainer.start\(\) before trainer.run\(\)"):
        trainer.run(lambda: None)  # start() failed: nothing is running


def test_bad_run_arguments(ray, quick_trainer):
    with pytest.raises(TypeError, match="train_func must be a function"):
        quick_trainer.run("train")
    with pytest.raises(TypeError, match="raylite.data Dataset"):
        quick_trainer.run(lambda: None, dataset=[1, 2, 3])
    with pytest.raises(TypeError, match="a checkpoint must be"):
        quick_trainer.run(lambda: None, checkpoint=42)

    def wrong_name():
        train.get_dataset_shard("validation")

    with pytest.raises(KeyError, match="no dataset named 'validation'"):
        quick_trainer.run(wrong_name, dataset={"train": ray.data.range(4)})


# ------------------------------------------------------------------------------------------
# failures
# ------------------------------------------------------------------------------------------
DEATHS = {"exit": lambda: os._exit(1),
          "sigkill": lambda: os.kill(os.getpid(), signal.SIGKILL)}


def dying_loop(config):
    start = train.load_checkpoint()
    first = start["epoch"] + 1 if start else 0
    for epoch in range(first, 4):
        train.save_checkpoint(epoch=epoch)  # returns once the driver holds it
        train.report(epoch=epoch)
        if epoch == 1 and start is None and train.world_rank() == config["rank"]:
            DEATHS[config["death"]]()
    return first


def test_an_error_on_one_worker_stops_the_others(quick_trainer):
    import threading
    pids = quick_trainer.execute(os.getpid)

    def loop():
        if train.world_rank() == 1:
            raise ValueError("bad shard on rank 1")
        threading.Event().wait()  # rank 0 never ends by itself: it must be stopped

    with pytest.raises(train.TrainingFailedError) as info:
        quick_trainer.run(loop)
    error = info.value
    assert isinstance(error, ValueError) and error.rank == 1
    assert "failed on worker rank 1 (of 2)" in str(error)
    assert 'raise ValueError("bad shard on rank 1")' in error.remote_traceback
    assert not set(quick_trainer.execute(os.getpid)) & set(pids)  # a fresh group


@pytest.mark.parametrize("death, rank", [("exit", 0), ("sigkill", 1)])
def test_a_dying_worker_fails_the_run_clearly(ray, tmp_path, death, rank):
    trainer = Trainer("tensorflow", num_workers=2, max_retries=0, logdir=tmp_path)
    trainer.start()
    try:
        pids = trainer.execute(os.getpid)
        with pytest.raises(train.TrainingWorkerError,
                           match=rf"training worker rank {rank} \(pid {pids[rank]}\) died.*"
                                 rf"other workers were stopped.*max_retries") as info:
            trainer.run(dying_loop, {"death": death, "rank": rank})
        assert info.value.rank == rank
        if rank == 0:  # it saved epoch 1 before dying, and save_checkpoint waits for the driver
            assert trainer.latest_checkpoint == {"epoch": 1}
        # the survivor was stopped too, and the next run gets a fresh group
        assert not set(trainer.execute(os.getpid)) & set(pids)
    finally:
        trainer.shutdown()
    assert ray.available_resources()["CPU"] == 2


@pytest.mark.parametrize("death", ["exit", "sigkill"])
def test_a_dying_worker_restarts_from_the_latest_checkpoint(ray, tmp_path, death):
    trainer = Trainer("tensorflow", num_workers=2, max_retries=1, logdir=tmp_path)
    trainer.start()
    try:
        recorder = Recorder()
        results = trainer.run(dying_loop, {"death": death, "rank": 0}, callbacks=[recorder])
        assert results == [2, 2]  # both workers resumed after the checkpoint of epoch 1
        assert trainer.latest_checkpoint == {"epoch": 3}
        epochs = [call[1][0]["epoch"] for call in recorder.calls if call[0] == "result"]
        assert epochs[-2:] == [2, 3] and recorder.calls[-1] == ("finish", False)
    finally:
        trainer.shutdown()
    assert ray.available_resources()["CPU"] == 2


def test_a_worker_dying_again_uses_up_the_retries(ray, tmp_path):
    def always_dies():
        if train.world_rank() == 1:
            os._exit(3)
        train.report(alive=True)

    trainer = Trainer("tensorflow", num_workers=2, max_retries=1, logdir=tmp_path)
    trainer.start()
    try:
        with pytest.raises(train.TrainingWorkerError, match="training worker rank 1"):
            trainer.run(always_dies)
    finally:
        trainer.shutdown()


def test_keras_3_fit_failure_comes_with_a_hint(ray, tmp_path):
    # Keras 3's model.fit under MultiWorkerMirroredStrategy fails deep in Keras; the
    # TensorFlow backend recognizes its traceback and the error names the way out.
    from raylite.train.tensorflow import TensorflowConfig
    keras_traceback = (
        'Traceback (most recent call last):\n  File ".../keras/src/backend/tensorflow/trainer.py", '
        'line 731, in _maybe_symbolic_build\nValueError: Attempt to convert a value '
        '(PerReplica:{...}) with an unsupported type')
    assert "pip install tf_keras" in TensorflowConfig().explain_failure(keras_traceback)
    assert TensorflowConfig().explain_failure("ValueError: PerReplica in my own loop") is None

    class Explaining(TensorflowConfig):  # the plumbing: a backend's hint ends the error
        def explain_failure(self, remote_traceback):
            return "Hint: try the other way" if "stand-in" in remote_traceback else None

    def loop():
        raise ValueError("stand-in for a known trap")

    trainer = Trainer(Explaining(), num_workers=2, logdir=tmp_path)
    trainer.start()
    try:
        with pytest.raises(ValueError, match=r"(?s)stand-in for a known trap\n\nHint: try the"):
            trainer.run(loop)
        with pytest.raises(ValueError) as info:
            trainer.run(lambda: int("x"))
        assert "Hint" not in str(info.value)
    finally:
        trainer.shutdown()
