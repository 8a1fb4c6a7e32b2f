"""memory:// URIs: a folder of the running session in /dev/shm that the driver and every worker
see (fsspec's memory filesystem would live inside one process), for Data's read_*/write_*,
Tune's and Train's storage_path, checkpoints and Tuner.restore; gone at shutdown, also after a
killed driver; a clear error with no session running."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
from _support import poll

import raylite
from raylite import train, tune
from raylite.air import Checkpoint, RunConfig

pafs = pytest.importorskip("pyarrow.fs")
pytest.importorskip("pyarrow.parquet")


@pytest.fixture
def session(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYLITE_RESULTS_DIR", str(tmp_path / "local"))
    raylite.shutdown()
    raylite.init(num_cpus=2)
    yield raylite
    raylite.shutdown()


def _memory_root() -> str:
    from raylite._storage import memory_filesystem
    return memory_filesystem().base_path


ROWS = [{"a": i, "b": f"row {i}", "c": i * 0.5} for i in range(12)]


def _count_in_a_worker(uri):
    return raylite.data.read_parquet(uri).count()


def test_write_parquet_then_read_back(session):
    session.data.from_items(ROWS, parallelism=3).write_parquet("memory://tables/rows")
    assert len(os.listdir(os.path.join(_memory_root(), "tables", "rows"))) == 3
    back = session.data.read_parquet("memory://tables/rows").take_all()
    assert sorted(tuple(r.values()) for r in back) == [tuple(r.values()) for r in ROWS]
    # memory:///path names the same files, and a worker process sees them too
    assert session.data.read_parquet("memory:///tables/rows").count() == 12
    assert session.get(session.remote(_count_in_a_worker).remote("memory://tables/rows")) == 12
    session.data.from_items(ROWS).write_json("memory://tables/json")
    assert session.data.read_json("memory://tables/json").count() == 12
    with pytest.raises(FileNotFoundError, match="memory://nothing/here"):
        session.data.read_parquet("memory://nothing/here")
    with pytest.raises(ValueError, match=r"'\.\.' are not allowed"):
        session.data.read_parquet("memory://tables/../../escape")


def _scored(config):
    for step in range(3):
        tune.report(score=config["x"] * step)


def test_tune_storage_path_and_restore(session, tmp_path):
    tuner = tune.Tuner(_scored, param_space={"x": tune.grid_search([1, 2])},
                       tune_config=tune.TuneConfig(metric="score", mode="max"),
                       run_config=RunConfig(name="exp", storage_path="memory://tune",
                                            verbose=0))
    best = tuner.fit().get_best_result()
    assert best.path.startswith("tune/exp/") and best.config["x"] == 2
    assert list(best.metrics_dataframe["score"]) == [0, 2, 4]  # progress.csv, read from memory
    assert os.path.isdir(os.path.join(_memory_root(), "tune", "exp"))
    shutil.rmtree(tmp_path / "local" / "exp")  # only the memory:// copy is left
    assert tune.Tuner.can_restore("memory://tune/exp")
    assert not tune.Tuner.can_restore("memory://tune/other")
    restored = tune.Tuner.restore("memory://tune/exp", _scored)
    grid = restored.get_results()
    assert len(grid) == 2 and grid.get_best_result().config["x"] == 2
    assert sorted(r.metrics["score"] for r in restored.fit()) == [2, 4]
    # tune.run (the book's form) takes the same URI
    analysis = tune.run(_scored, config={"x": tune.grid_search([3])}, verbose=0,
                        storage_path="memory://tune", name="run")
    assert analysis.trials[0].last_result["score"] == 6
    assert os.path.isfile(os.path.join(_memory_root(), "tune", "run", "experiment_state.pkl"))


def test_checkpoint_to_and_from_uri(session, tmp_path):
    assert Checkpoint.from_dict({"w": [1.0, 2.0]}).to_uri("memory://ckpt/dict") == \
        "memory://ckpt/dict"
    back = Checkpoint.from_uri("memory://ckpt/dict")
    assert back.to_dict() == {"w": [1.0, 2.0]} and back.uri == "memory://ckpt/dict"
    folder = tmp_path / "files"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01\x02")
    Checkpoint.from_directory(folder).to_uri("memory:///ckpt/files")
    with Checkpoint.from_uri("memory://ckpt/files").as_directory() as path, \
            open(os.path.join(path, "sub", "weights.bin"), "rb") as f:
        assert f.read() == b"\x00\x01\x02"
    with pytest.raises(FileNotFoundError, match=r"Checkpoint.from_uri\('memory://ckpt/none'\)"):
        Checkpoint.from_uri("memory://ckpt/none")


def _loop(config):
    for step in range(2):
        train.report({"step": step}, checkpoint=Checkpoint.from_dict({"step": step}))


def test_a_trainer_stores_on_memory(session):
    from raylite.train import DataParallelTrainer
    result = DataParallelTrainer(_loop, backend_config="tensorflow", run_config=RunConfig(
        name="run", storage_path="memory://train")).fit()
    assert result.path.startswith("train/run/")
    assert result.checkpoint.uri.startswith("memory://train/run/")
    assert Checkpoint.from_uri(result.checkpoint.uri).to_dict() == {"step": 1}


def test_files_go_at_shutdown_and_need_a_session(session):
    session.data.from_items(ROWS).write_csv("memory://gone")
    root = _memory_root()
    assert os.listdir(os.path.join(root, "gone"))
    session.shutdown()
    assert not os.path.exists(root)
    with pytest.raises(ValueError, match="none is running; call raylite.init"):
        session.data.read_csv("memory://gone")
    with pytest.raises(ValueError, match="none is running"):
        Checkpoint.from_uri("memory://ckpt")


def test_local_mode_has_its_own_folder_removed_at_shutdown():
    raylite.shutdown()
    raylite.init(local_mode=True)
    try:
        raylite.data.from_items(ROWS).write_parquet("memory://local")
        assert raylite.data.read_parquet("memory://local").count() == 12
        root = _memory_root()
    finally:
        raylite.shutdown()
    assert not os.path.exists(root)


_DRIVER = textwrap.dedent("""
    import json, sys, raylite
    from raylite._storage import memory_filesystem
    raylite.init(num_cpus=1, include_dashboard=False)
    raylite.data.from_items([{"a": 1}]).write_parquet("memory://kept")
    print(json.dumps({"root": memory_filesystem().base_path}), flush=True)
    sys.stdin.read()
""")


def test_a_killed_driver_leaves_no_memory_files(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, HOME=str(tmp_path)))
    try:
        root = json.loads(proc.stdout.readline())["root"]
        assert os.listdir(os.path.join(root, "kept"))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    poll(lambda: not os.path.exists(root), f"{root} to be removed by the session's workers")
