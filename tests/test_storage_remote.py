"""Train's and Tune's storage on S3 (a moto server on 127.0.0.1, tests/_support.py): a
trainer's results and checkpoints reach the storage_path URI, checkpoints go to and come from
s3:// URIs, Tuner.restore takes up an experiment stored on S3, and a missing bucket or a denied
write is a one-line error that leaves nothing behind."""

from __future__ import annotations

import os

import pytest
from _support import moto_s3

import raylite
from raylite import train, tune
from raylite.air import Checkpoint, CheckpointConfig, RunConfig
from raylite.train import DataParallelTrainer

pafs = pytest.importorskip("pyarrow.fs")
fsspec_local = pytest.importorskip("fsspec.implementations.local")


@pytest.fixture(scope="module")
def s3():
    with moto_s3("bucket") as admin:
        raylite.shutdown()
        raylite.init(num_cpus=2)
        yield admin
        raylite.shutdown()


@pytest.fixture(autouse=True)
def local_results(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYLITE_RESULTS_DIR", str(tmp_path / "local"))
    return tmp_path / "local"


def _listing(fs, path):
    return sorted(info.path for info in fs.get_file_info(
        pafs.FileSelector(path, recursive=True, allow_not_found=True)))


def _loop(config):
    for step, loss in enumerate([3.0, 1.0, 2.0]):
        train.report({"loss": loss, "step": step}, checkpoint=Checkpoint.from_dict({"step": step}))


def test_a_trainer_stores_results_and_checkpoints_on_s3(s3):
    result = DataParallelTrainer(
        _loop, backend_config="tensorflow",
        run_config=RunConfig(name="run", storage_path="s3://bucket/train", checkpoint_config=(
            CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="loss",
                             checkpoint_score_order="min"))),
    ).fit()
    assert isinstance(result.filesystem, pafs.S3FileSystem)
    assert result.path.startswith("bucket/train/run/")
    files = _listing(s3, "bucket/train/run")
    checkpoint_dirs = sorted({f.split("/checkpoints/")[1].split("/")[0]
                              for f in files if "/checkpoints/checkpoint_" in f})
    assert checkpoint_dirs == ["checkpoint_000002", "checkpoint_000003"]  # best and latest
    assert result.checkpoint.uri.startswith("s3://bucket/train/run/")
    assert result.checkpoint.uri.endswith("/checkpoints/checkpoint_000003")
    assert isinstance(result.checkpoint.filesystem, pafs.S3FileSystem)
    # the stored checkpoint reads back from S3 alone
    assert Checkpoint.from_uri(result.checkpoint.uri).to_dict() == {"step": 2}
    assert [c.uri.rsplit("/", 1)[1] for c, _ in result.best_checkpoints] == checkpoint_dirs
    # a new run resumes from the checkpoint stored on S3
    resumed = DataParallelTrainer(
        _loop_resuming, backend_config="tensorflow",
        resume_from_checkpoint=Checkpoint.from_uri(result.checkpoint.uri)).fit()
    assert resumed.metrics["start"] == 3


def _loop_resuming(config):
    checkpoint = train.get_checkpoint()
    train.report({"start": checkpoint.to_dict()["step"] + 1 if checkpoint else 0})


def test_checkpoint_to_and_from_s3_uris(s3, tmp_path):
    assert Checkpoint.from_dict({"a": 1}).to_uri("s3://bucket/ckpt/dict") == \
        "s3://bucket/ckpt/dict"
    back = Checkpoint.from_uri("s3://bucket/ckpt/dict")
    assert back.to_dict() == {"a": 1} and back.uri == "s3://bucket/ckpt/dict"
    folder = tmp_path / "files"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    Checkpoint.from_directory(folder).to_uri("s3://bucket/ckpt/files")
    with Checkpoint(uri="s3://bucket/ckpt/files").as_directory() as path:
        assert _read(os.path.join(path, "sub", "weights.bin")) == "\x00\x01"
    with pytest.raises(FileNotFoundError, match=r"Checkpoint.from_uri\('s3://bucket/nothing'\)"):
        Checkpoint.from_uri("s3://bucket/nothing")
    with pytest.raises(FileNotFoundError, match="bucket 'nobucket' does not exist"):
        Checkpoint.from_dict({"a": 1}).to_uri("s3://nobucket/ckpt")


def _scored(config):
    for step in range(3):
        tune.report(score=config["x"] * step)


def test_tuner_restore_from_s3(s3, local_results):
    tuner = tune.Tuner(_scored, param_space={"x": tune.grid_search([1, 2])},
                       tune_config=tune.TuneConfig(metric="score", mode="max"),
                       run_config=RunConfig(name="exp", storage_path="s3://bucket/tune",
                                            verbose=0))
    best = tuner.fit().get_best_result()
    assert best.path.startswith("bucket/tune/exp/") and isinstance(best.filesystem,
                                                                    pafs.S3FileSystem)
    assert list(best.metrics_dataframe["score"]) == [0, 2, 4]  # progress.csv, read from S3
    import shutil
    shutil.rmtree(local_results / "exp")  # as on another machine: only S3 has it
    assert tune.Tuner.can_restore("s3://bucket/tune/exp")
    assert not tune.Tuner.can_restore("s3://bucket/tune/other")
    restored = tune.Tuner.restore("s3://bucket/tune/exp", _scored)
    grid = restored.get_results()
    assert len(grid) == 2 and grid.get_best_result().config["x"] == 2
    grid = restored.fit()  # everything finished: resuming runs nothing again, results stay
    assert sorted(r.metrics["score"] for r in grid) == [2, 4]
    assert any(f.endswith("/experiment_state.pkl") or "experiment_state" in f
               for f in _listing(s3, "bucket/tune/exp"))
    with pytest.raises(FileNotFoundError, match=r"Tuner.restore\('s3://bucket/tune/missing'\)"):
        tune.Tuner.restore("s3://bucket/tune/missing", _scored)


def test_a_missing_bucket_fails_before_training(s3, local_results):
    trainer = DataParallelTrainer(_loop, backend_config="tensorflow", run_config=RunConfig(
        name="run", storage_path="s3://nobucket/train"))
    with pytest.raises(FileNotFoundError, match="bucket 'nobucket' does not exist.*create it"):
        trainer.fit()
    assert not (local_results / "run").exists()  # nothing ran, nothing written


class _ReadOnlyFS(fsspec_local.LocalFileSystem):
    """A filesystem that lists and makes folders but refuses to write files."""

    def _open(self, path, mode="rb", **kwargs):
        if any(flag in mode for flag in "wax+"):
            raise PermissionError(f"write denied: {path}")
        return super()._open(path, mode=mode, **kwargs)


def test_a_denied_write_is_one_line_and_leaves_nothing(s3, tmp_path):
    target = tmp_path / "readonly"
    trainer = DataParallelTrainer(_loop, backend_config="tensorflow", run_config=RunConfig(
        name="run", storage_path=str(target), storage_filesystem=_ReadOnlyFS()))
    with pytest.raises(PermissionError) as info:
        trainer.fit()
    message = str(info.value)
    assert "\n" not in message and "write denied" in message
    assert f"storage_path={str(target)!r}" in message and "write access" in message
    assert os.listdir(target) == []  # the partial upload was removed
    with pytest.raises(ValueError, match="storage_filesystem.*not by a Tuner"):
        tune.Tuner(_scored, run_config=RunConfig(storage_path="x",
                                                 storage_filesystem=_ReadOnlyFS())).fit()


def _loop_with_files(config):
    import tempfile
    for step in range(2):
        folder = tempfile.mkdtemp()
        with open(os.path.join(folder, "state.txt"), "w") as f:
            f.write(str(step))
        train.report({"step": step}, checkpoint=Checkpoint.from_directory(folder))


def test_a_trainer_through_tune_stores_on_s3(s3):
    result = DataParallelTrainer(_loop_with_files, backend_config="tensorflow", run_config=(
        RunConfig(name="tuned", storage_path="s3://bucket/tuned", stop={"step": 5}, verbose=0)),
    ).fit()
    assert result.path.startswith("bucket/tuned/tuned/")
    assert result.checkpoint.uri.startswith("s3://bucket/tuned/tuned/")
    with Checkpoint.from_uri(result.checkpoint.uri).as_directory() as path:
        assert _read(os.path.join(path, "state.txt")) == "1"


def _read(path):
    with open(path) as f:
        return f.read()
