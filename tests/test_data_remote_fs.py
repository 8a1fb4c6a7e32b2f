"""Reading and writing datasets on remote filesystems: s3:// URIs against a real S3-compatible
server (moto's, started here on 127.0.0.1), credentials from the environment or anonymous,
filesystem= objects (pyarrow.fs and fsspec), file:// URIs, and clear errors that leave nothing
behind; and Tune's storage_path on S3."""

from __future__ import annotations

import os

import pytest
from _support import moto_s3

import raylite as ray

pytest.importorskip("moto")
pafs = pytest.importorskip("pyarrow.fs")
np = pytest.importorskip("numpy")


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 (tests/_support.py), then a 2-CPU runtime whose workers
    inherit its address from the environment."""
    with moto_s3("data") as admin:
        ray.shutdown()
        ray.init(num_cpus=2)
        yield admin
        ray.shutdown()


def _listing(fs, path):
    return sorted(info.path for info in fs.get_file_info(pafs.FileSelector(path, recursive=True,
                                                                            allow_not_found=True)))


ROWS = [{"a": i, "b": f"row {i}"} for i in range(10)]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_write_and_read_back_through_s3_uris(s3, fmt):
    ds = ray.data.from_items(ROWS, parallelism=3)
    getattr(ds, f"write_{fmt}")(f"s3://data/{fmt}")
    assert len(_listing(s3, f"data/{fmt}")) == 3
    back = getattr(ray.data, f"read_{fmt}")(f"s3://data/{fmt}")
    assert [row["a"] for row in back.take_all()] == list(range(10))


def test_text_numpy_and_anonymous_access(s3):
    with s3.open_output_stream("data/text/lines.txt") as out:
        out.write(b"first\nsecond\n\nthird\n")
    assert ray.data.read_text("s3://data/text").take_all() == ["first", "second", "", "third"]
    ray.data.range_tensor(6, shape=(2,), parallelism=2).write_numpy("s3://data/npy")
    assert ray.data.read_numpy("s3://data/npy").count() == 6
    # s3://anonymous@bucket/...: no credentials are sent (moto serves anyone)
    assert ray.data.read_text("s3://anonymous@data/text/lines.txt").count() == 4


def test_filesystem_objects(s3, tmp_path):
    fs = pafs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"])
    ray.data.from_items(ROWS).write_parquet("data/by-object", filesystem=fs)
    assert ray.data.read_parquet("data/by-object", filesystem=fs).count() == 10
    fsspec = pytest.importorskip("fsspec")
    local = fsspec.filesystem("file")
    ray.data.from_items(ROWS, parallelism=2).write_json(str(tmp_path / "fsspec"),
                                                        filesystem=local)
    assert len(os.listdir(tmp_path / "fsspec")) == 2
    assert ray.data.read_json(str(tmp_path / "fsspec"), filesystem=local).count() == 10
    with pytest.raises(TypeError, match="pyarrow.fs.FileSystem or an fsspec"):
        ray.data.read_json(str(tmp_path), filesystem="s3")


def test_file_uris_are_local_paths(s3, tmp_path):
    ray.data.from_items(ROWS).write_csv(f"file://{tmp_path}/csv")
    assert ray.data.read_csv(f"file://{tmp_path}/csv").count() == 10
    assert ray.data.read_csv(str(tmp_path / "csv")).count() == 10


def test_missing_bucket_is_a_clear_error(s3):
    with pytest.raises(FileNotFoundError, match="bucket 'nobucket' does not exist"):
        ray.data.from_items(ROWS).write_parquet("s3://nobucket/out")
    with pytest.raises(FileNotFoundError, match="s3://nobucket/in"):
        ray.data.read_parquet("s3://nobucket/in")
    with pytest.raises(FileNotFoundError, match="memory://somewhere"):
        ray.data.read_parquet("memory://somewhere")  # the session's memory:// has no such file


def _fail_on_seven(row):
    if row["a"] == 7:
        raise ValueError("row seven is bad")
    return row


@pytest.mark.parametrize("where", ["s3", "local"])
def test_a_failed_write_leaves_no_partial_output(s3, tmp_path, where):
    ds = ray.data.from_items(ROWS, parallelism=5).map(_fail_on_seven)
    target = "s3://data/partial" if where == "s3" else str(tmp_path / "partial")
    with pytest.raises(ValueError, match="row seven"):
        ds.write_parquet(target)
    if where == "s3":
        assert _listing(s3, "data/partial") == []
    else:
        assert os.listdir(tmp_path / "partial") == []


def _scored(config):
    from raylite import tune
    for step in range(2):
        tune.report(score=config["x"] * step)


def test_tune_storage_path_on_s3(s3, tmp_path, monkeypatch):
    from raylite import tune
    monkeypatch.setenv("RAYLITE_RESULTS_DIR", str(tmp_path))
    analysis = tune.run(_scored, config={"x": tune.grid_search([1, 2])}, verbose=0,
                        storage_path="s3://data/tune", name="exp")
    assert len(analysis.trials) == 2
    files = _listing(s3, "data/tune/exp")
    assert sum(f.endswith("/result.json") for f in files) == 2
    assert any(f.endswith("/progress.csv") for f in files)
    with pytest.raises(FileNotFoundError, match="bucket 'nobucket'"):
        tune.run(_scored, config={"x": 1}, verbose=0, storage_path="s3://nobucket/tune")
