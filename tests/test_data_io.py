"""raylite.data readers and writers: the same round-trip contract for every format, paths
(files, directories, globs, lists), and the in-memory creation functions."""

from __future__ import annotations

import json
import os
import pathlib

import pytest

import raylite as ray

np = pytest.importorskip("numpy")
pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")


pytestmark = pytest.mark.usefixtures("ray")  # conftest: a 2-CPU runtime for this module


ROWS = [{"id": i, "name": f"item-{i}", "score": i / 4} for i in range(25)]
FORMATS = ["parquet", "csv", "json"]


def _write(ds, fmt, path):
    getattr(ds, f"write_{fmt}")(path)


def _read(fmt, paths, **kwargs):
    return getattr(ray.data, f"read_{fmt}")(paths, **kwargs)


# ==========================================================================================
# the contract every format meets
# ==========================================================================================
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_keeps_rows_and_order(fmt, tmp_path):
    ds = ray.data.from_items(ROWS, parallelism=4)
    _write(ds, fmt, tmp_path / "out")
    files = sorted(os.listdir(tmp_path / "out"))
    assert len(files) == 4 and all(f.endswith(f"_{i:06d}.{fmt}") for i, f in enumerate(files))
    back = _read(fmt, tmp_path / "out")
    assert back.num_blocks() == 4
    assert back.count() == len(ROWS)
    assert back.take_all() == ROWS
    assert back.columns() == ["id", "name", "score"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_of_non_tabular_rows_uses_a_value_column(fmt, tmp_path):
    _write(ray.data.range(10, parallelism=2).map(lambda x: x * 3), fmt, str(tmp_path))
    assert [r["value"] for r in _read(fmt, str(tmp_path)).take_all()] == [3 * i for i in range(10)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_runs_the_plan_and_skips_empty_blocks(fmt, tmp_path):
    ds = ray.data.from_items(ROWS, parallelism=5).filter(lambda r: r["id"] < 5)  # 1 block left
    _write(ds, fmt, tmp_path)
    assert len(os.listdir(tmp_path)) == 1
    assert [r["id"] for r in _read(fmt, tmp_path).take_all()] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("fmt", FORMATS)
def test_paths_files_globs_lists_and_directories(fmt, tmp_path):
    _write(ray.data.from_items(ROWS[:10], parallelism=2), fmt, tmp_path / "a")
    _write(ray.data.from_items(ROWS[10:], parallelism=1), fmt, tmp_path / "b")
    (tmp_path / "a" / "_SUCCESS").write_text("")   # marker files are left out
    (tmp_path / "a" / ".hidden").write_text("junk")
    one_file = sorted((tmp_path / "a").glob(f"*.{fmt}"))[0]
    assert _read(fmt, one_file).count() == 5
    assert _read(fmt, str(tmp_path / "*" / f"*.{fmt}")).take_all() == ROWS
    assert _read(fmt, [tmp_path / "a", tmp_path / "b"]).take_all() == ROWS
    assert _read(fmt, tmp_path).count() == len(ROWS)  # directories are walked
    assert _read(fmt, tmp_path, parallelism=1).num_blocks() == 1


@pytest.mark.parametrize("fmt", FORMATS + ["text"])
def test_missing_path_is_file_not_found_naming_it(fmt, tmp_path):
    missing = tmp_path / f"nowhere.{fmt}"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        _read(fmt, missing)
    with pytest.raises(FileNotFoundError, match=r"\*\.nothing"):
        _read(fmt, str(tmp_path / "*.nothing"))


# ==========================================================================================
# format specifics
# ==========================================================================================
def test_read_parquet_columns(tmp_path):
    ray.data.from_items(ROWS).write_parquet(tmp_path)
    assert ray.data.read_parquet(tmp_path, columns=["name"]).take(1) == [{"name": "item-0"}]


def test_read_csv_passes_arrow_options(tmp_path):
    import pyarrow.csv as pcsv
    (tmp_path / "x.csv").write_text("a;b\n1;x\n2;y\n")
    ds = ray.data.read_csv(tmp_path / "x.csv", parse_options=pcsv.ParseOptions(delimiter=";"))
    assert ds.take_all() == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_read_json_lines_and_json_array(tmp_path):
    (tmp_path / "lines.json").write_text('{"a": 1}\n{"a": 2}\n')
    (tmp_path / "array.json").write_text(json.dumps([{"a": 3}, {"a": 4}]))
    assert [r["a"] for r in ray.data.read_json(tmp_path).take_all()] == [3, 4, 1, 2]


def test_read_text_lines(tmp_path):
    (tmp_path / "one.txt").write_text("hello\nworld\n\nend\n")
    (tmp_path / "two.txt").write_text("more")
    ds = ray.data.read_text(tmp_path / "one.txt")
    assert ds.take_all() == ["hello", "world", "", "end"]
    assert ds.schema() is str
    both = ray.data.read_text([tmp_path / "one.txt", tmp_path / "two.txt"], drop_empty_lines=True)
    assert both.take_all() == ["hello", "world", "end", "more"]
    assert both.map(str.upper).filter(lambda s: s != "END").take_all() == ["HELLO", "WORLD",
                                                                              "MORE"]


def test_reading_is_lazy_and_fused_with_the_stages_after_it(tmp_path):
    ray.data.from_items(ROWS, parallelism=3).write_parquet(tmp_path)
    ds = ray.data.read_parquet(tmp_path).map(lambda r: r["id"]).filter(lambda i: i % 2 == 0)
    assert ds.take_all() == list(range(0, 25, 2))
    assert ds._stats.tasks_submitted == 3


def test_write_into_a_file_is_an_error(tmp_path):
    target = tmp_path / "file"
    target.write_text("")
    with pytest.raises(FileExistsError, match="must be a directory"):
        ray.data.range(3).write_parquet(target)


# ==========================================================================================
# in-memory sources
# ==========================================================================================
def test_from_pandas_arrow_numpy():
    frames = [pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [3]})]
    ds = ray.data.from_pandas(frames)
    assert ds.num_blocks() == 2 and [r["x"] for r in ds.take_all()] == [1, 2, 3]
    assert ray.data.from_pandas(frames[0]).to_pandas().equals(frames[0])

    table = pa.table({"y": ["a", "b"]})
    assert ray.data.from_arrow(table).take_all() == [{"y": "a"}, {"y": "b"}]
    assert ray.data.from_arrow([table, table]).count() == 4

    assert ray.data.from_numpy(np.arange(4)).take_all() == [{"value": i} for i in range(4)]
    images = np.arange(24).reshape(4, 2, 3)
    tensors = ray.data.from_numpy(images)
    assert tensors.count() == 4
    assert np.array_equal(tensors.take(2)[1]["value"], images[1])
    assert np.array_equal(tensors.to_numpy(), images)
    batch = next(tensors.iter_batches(batch_size=3, batch_format="numpy"))
    assert batch["value"].shape == (3, 2, 3)


def test_from_sources_reject_wrong_types():
    with pytest.raises(TypeError, match="pandas DataFrame"):
        ray.data.from_pandas([{"a": 1}])
    with pytest.raises(TypeError, match="pyarrow Table"):
        ray.data.from_arrow(pd.DataFrame())
    with pytest.raises(TypeError, match="numpy ndarray"):
        ray.data.from_numpy([1, 2, 3])
    with pytest.raises(ValueError, match="at least one dimension"):
        ray.data.from_numpy(np.array(5))


def test_from_items_mixed_and_odd_rows():
    assert ray.data.from_items([1, "a", None]).take_all() == [1, "a", None]
    ragged = ray.data.from_items([{"a": 1}, {"b": 2}])  # missing keys become nulls
    assert ragged.take_all() == [{"a": 1, "b": None}, {"a": None, "b": 2}]
    objects = ray.data.from_items([{"o": pathlib.Path("/x")}])  # not Arrow-able: stays Python
    assert objects.take_all() == [{"o": pathlib.Path("/x")}]
    assert ray.data.from_items([]).count() == 0 and ray.data.from_items([]).take() == []
    mixed = ray.data.from_items([{"a": 1}, 5, {2: "int key"}])  # not tabular: rows as given
    assert mixed.take_all() == [{"a": 1}, 5, {2: "int key"}] and mixed.columns() is None
    assert mixed.map(lambda r: r if isinstance(r, int) else len(r)).take_all() == [1, 5, 1]


# ==========================================================================================
# numpy files and tensors
# ==========================================================================================
def test_read_numpy_round_trip_and_paths(tmp_path):
    images = np.arange(2 * 6 * 4).reshape(12, 2, 2)
    ray.data.from_numpy(images).repartition(3).write_numpy(tmp_path / "t")
    assert len(list((tmp_path / "t").glob("*.npy"))) == 3
    back = ray.data.read_numpy(tmp_path / "t")
    assert back.count() == 12 and back.num_blocks() == 3
    assert np.array_equal(back.to_numpy(), images)  # tensors keep shape and order
    np.save(tmp_path / "one.npy", np.arange(5))
    assert [r["value"] for r in ray.data.read_numpy(tmp_path / "one.npy").take_all()] == [
        0, 1, 2, 3, 4]
    assert ray.data.read_numpy(str(tmp_path / "t" / "*.npy")).count() == 12
    assert ray.data.read_numpy([tmp_path / "one.npy", tmp_path / "t"]).count() == 17
    ray.data.range(6, parallelism=2).write_numpy(tmp_path / "ints")
    assert ray.data.read_numpy(tmp_path / "ints").to_numpy().tolist() == list(range(6))
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        ray.data.read_numpy(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match=r"no column 'nope'"):
        ray.data.from_items([{"a": 1}]).write_numpy(tmp_path / "x", column="nope")


def test_range_tensor_rows_are_filled_arrays():
    ds = ray.data.range_tensor(10, shape=(2, 3), parallelism=3)
    assert ds.count() == 10 and ds.num_blocks() == 3
    row = ds.take(5)[4]["value"]
    assert row.shape == (2, 3) and (row == 4).all()
    batch = next(ds.iter_batches(batch_size=4, batch_format="numpy"))["value"]
    assert batch.shape == (4, 2, 3) and batch[:, 0, 0].tolist() == [0, 1, 2, 3]
    doubled = ds.map_batches(lambda b: {"value": b["value"] * 2}, batch_format="numpy")
    assert doubled.take(2)[1]["value"].tolist() == [[2, 2, 2], [2, 2, 2]]
    with pytest.raises(ValueError, match="shape"):
        ray.data.range_tensor(3, shape=(0,))


def test_to_arrow_pandas_and_numpy_refs():
    ds = ray.data.from_items([{"a": i} for i in range(6)], parallelism=2)
    tables = ray.get(ds.to_arrow_refs())
    assert all(isinstance(t, pa.Table) for t in tables)
    assert sum(t.num_rows for t in tables) == 6
    frames = ray.get(ds.to_pandas_refs())
    assert pd.concat(frames)["a"].tolist() == list(range(6))
    arrays = ray.get(ray.data.range(4, parallelism=2).to_numpy_refs())
    assert [a.tolist() for a in arrays] == [[0, 1], [2, 3]]
    assert ray.get(ray.data.range(3).to_arrow_refs()[0]).column_names == ["value"]
