"""gs:// URIs against a Google Cloud Storage emulator started here on 127.0.0.1
(gcp-storage-emulator, tests/_support.py), through pyarrow's GCS client: datasets, checkpoints,
Tune's and Train's storage_path, Tuner.restore, and a missing bucket as one clear line (never a
bucket made by the write). The emulator checks no credentials, so the URIs are the anonymous
``gs://anonymous@bucket/...`` form."""

from __future__ import annotations

import shutil

import pytest
from _support import gcs_emulator

import raylite
from raylite import train, tune
from raylite.air import Checkpoint, RunConfig

pafs = pytest.importorskip("pyarrow.fs")
pytest.importorskip("pyarrow.parquet")

BUCKET = "gs://anonymous@gbucket"


@pytest.fixture(scope="module")
def gcs():
    with gcs_emulator("gbucket") as admin:
        raylite.shutdown()
        raylite.init(num_cpus=2)  # its workers inherit the emulator's address
        yield admin
        raylite.shutdown()


@pytest.fixture(autouse=True)
def local_results(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYLITE_RESULTS_DIR", str(tmp_path / "local"))
    return tmp_path / "local"


def _listing(fs, path):
    return sorted(info.path for info in fs.get_file_info(
        pafs.FileSelector(path, recursive=True, allow_not_found=True)))


ROWS = [{"a": i, "b": f"row {i}"} for i in range(10)]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_write_and_read_back_a_dataset(gcs, fmt):
    getattr(raylite.data.from_items(ROWS, parallelism=3), f"write_{fmt}")(f"{BUCKET}/{fmt}")
    assert len(_listing(gcs, f"gbucket/{fmt}")) == 3
    back = getattr(raylite.data, f"read_{fmt}")(f"{BUCKET}/{fmt}").take_all()
    assert sorted((row["a"], row["b"]) for row in back) == [(r["a"], r["b"]) for r in ROWS]


def test_checkpoint_to_and_from_uri(gcs, tmp_path):
    uri = f"{BUCKET}/ckpt/dict"
    assert Checkpoint.from_dict({"w": [1.0, 2.0]}).to_uri(uri) == uri
    back = Checkpoint.from_uri(uri)
    assert back.to_dict() == {"w": [1.0, 2.0]} and back.uri == uri
    assert type(back.filesystem).__name__ == "GcsFileSystem"
    folder = tmp_path / "files"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    Checkpoint.from_directory(folder).to_uri(f"{BUCKET}/ckpt/files")
    assert _listing(gcs, "gbucket/ckpt/files")[-1] == "gbucket/ckpt/files/sub/weights.bin"
    with Checkpoint.from_uri(f"{BUCKET}/ckpt/files").as_directory() as path:
        assert (tmp_path / path / "sub" / "weights.bin").read_bytes() == b"\x00\x01"


def _scored(config):
    for step in range(3):
        tune.report(score=config["x"] * step)


def test_tune_storage_path_and_restore(gcs, local_results):
    tuner = tune.Tuner(_scored, param_space={"x": tune.grid_search([1, 2])},
                       tune_config=tune.TuneConfig(metric="score", mode="max"),
                       run_config=RunConfig(name="exp", storage_path=f"{BUCKET}/tune",
                                            verbose=0))
    best = tuner.fit().get_best_result()
    assert best.path.startswith("gbucket/tune/exp/")
    assert type(best.filesystem).__name__ == "GcsFileSystem"
    assert list(best.metrics_dataframe["score"]) == [0, 2, 4]  # progress.csv, read from GCS
    assert "gbucket/tune/exp/experiment_state.pkl" in _listing(gcs, "gbucket/tune/exp")
    shutil.rmtree(local_results / "exp")  # as on another machine: only GCS has it
    assert tune.Tuner.can_restore(f"{BUCKET}/tune/exp")
    restored = tune.Tuner.restore(f"{BUCKET}/tune/exp", _scored)
    assert restored.get_results().get_best_result().config["x"] == 2


def _loop(config):
    for step in range(2):
        train.report({"step": step}, checkpoint=Checkpoint.from_dict({"step": step}))


def test_a_trainer_stores_its_checkpoints(gcs):
    from raylite.train import DataParallelTrainer
    result = DataParallelTrainer(_loop, backend_config="tensorflow", run_config=RunConfig(
        name="run", storage_path=f"{BUCKET}/train")).fit()
    assert result.path.startswith("gbucket/train/run/")
    assert result.checkpoint.uri.startswith(f"{BUCKET}/train/run/")  # readable as it stands
    assert Checkpoint.from_uri(result.checkpoint.uri).to_dict() == {"step": 1}


def test_a_missing_bucket_is_one_clear_line_and_is_not_made(gcs):
    with pytest.raises(FileNotFoundError, match="bucket 'nobucket' does not exist") as info:
        raylite.data.from_items(ROWS).write_parquet("gs://anonymous@nobucket/out")
    assert "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="bucket 'nobucket' does not exist"):
        Checkpoint.from_dict({"a": 1}).to_uri("gs://anonymous@nobucket/ckpt")
    with pytest.raises(FileNotFoundError, match="bucket 'nobucket' does not exist"):
        tune.run(_scored, config={"x": 1}, verbose=0, storage_path="gs://anonymous@nobucket/t")
    assert gcs.get_file_info("nobucket").type == pafs.FileType.NotFound
    with pytest.raises(FileNotFoundError, match="gs://anonymous@nobucket/in"):
        raylite.data.read_parquet("gs://anonymous@nobucket/in")


def test_gs_calls_give_up_in_seconds_not_minutes():
    from raylite._storage import GCS_RETRY_LIMIT_S, _gcs_options, resolve
    fs, path = resolve("gs://anonymous@gbucket/x")
    assert path == "gbucket/x"
    assert _gcs_options(fs)["retry_time_limit"].total_seconds() == GCS_RETRY_LIMIT_S
    fs, _ = resolve("gs://anonymous@gbucket/x?retry_limit_seconds=3")
    assert _gcs_options(fs)["retry_time_limit"].total_seconds() == 3


def test_no_credentials_is_one_clear_line(gcs):
    # without anonymous@, pyarrow's GCS client wants an OAuth token it cannot get here
    with pytest.raises(PermissionError, match="cannot reach the bucket 'gbucket'.*check the "
                                              "credentials") as info:
        raylite.data.from_items(ROWS).write_parquet("gs://gbucket/out?retry_limit_seconds=1")
    assert "\n" not in str(info.value)
