"""Ray 2.x Data, as today's Ray documentation writes it (Quickstart, Transforming data,
Iterating over data, Aggregating data, Expressions), run with the switch on; the switch
itself; the errors that name it; and what both conventions share (take_batch, schema(),
expressions, local:// paths, write_* making its directory, materialize, stats).

The examples read local files instead of the documentation's S3 buckets (no network here).
Each test's datasets are made under ``DataContext.api = 2`` by the ``api2`` fixture, which puts
the previous value back afterwards, so the other modules keep the book's convention.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Dict, Iterator, List

import pytest

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

import raylite as ray  # noqa: E402
from raylite.data.expressions import col, lit  # noqa: E402

pytestmark = pytest.mark.usefixtures("ray")  # conftest: a 2-CPU runtime for this module

IRIS_HEADER = "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm),target"
IRIS_ROWS = ["5.1,3.5,1.4,0.2,0", "4.9,3.0,1.4,0.2,0", "4.7,3.2,1.3,0.2,0",
             "6.2,3.4,5.4,2.3,2", "5.9,3.0,5.1,1.8,2", "5.7,2.8,4.1,1.3,1"]


@pytest.fixture
def api(request):
    """Set DataContext.api for this test's datasets; the old value comes back afterwards."""
    context = ray.data.DataContext.get_current()
    previous = context.api
    context.api = getattr(request, "param", 2)
    yield context
    context.api = previous


@pytest.fixture
def api2(api):
    assert api.api == 2
    return api


@pytest.fixture
def api1(api):
    api.api = 1
    return api


@pytest.fixture
def iris(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text("\n".join([IRIS_HEADER, *IRIS_ROWS]) + "\n")
    return f"local://{path}"


# ==========================================================================================
# Quickstart
# ==========================================================================================
def test_quickstart_load_transform_consume_save(api2, iris, tmp_path, capsys):
    ds = ray.data.read_csv(iris)
    ds.show(limit=1)
    assert capsys.readouterr().out == (
        "{'sepal length (cm)': 5.1, 'sepal width (cm)': 3.5, 'petal length (cm)': 1.4, "
        "'petal width (cm)': 0.2, 'target': 0}\n")

    def transform_batch(batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        vec_a = batch["petal length (cm)"]
        vec_b = batch["petal width (cm)"]
        batch["petal area (cm^2)"] = vec_a * vec_b
        return batch

    transformed_ds = ds.map_batches(transform_batch)
    materialized = transformed_ds.materialize()
    assert isinstance(materialized, ray.data.MaterializedDataset)
    text = repr(materialized)
    assert text.startswith("MaterializedDataset(") and "num_rows=6" in text
    assert "petal area (cm^2): double" in text

    batch = transformed_ds.take_batch(batch_size=3)
    assert isinstance(batch, dict) and list(batch)[-1] == "petal area (cm^2)"
    assert batch["sepal length (cm)"].tolist() == [5.1, 4.9, 4.7]
    assert batch["target"].tolist() == [0, 0, 0]
    np.testing.assert_allclose(batch["petal area (cm^2)"], [0.28, 0.28, 0.26])

    target = tmp_path / "not" / "there" / "iris"  # write_* makes the directories
    transformed_ds.repartition(2).write_parquet(f"local://{target}")
    files = sorted(os.listdir(target))
    assert len(files) == 2 and all(f.endswith(".parquet") for f in files)
    assert ray.data.read_parquet(str(target)).count() == 6


# ==========================================================================================
# Transforming data
# ==========================================================================================
def test_transforming_rows_map_and_flat_map(api2):
    def parse_filename(row: Dict[str, Any]) -> Dict[str, Any]:
        row["filename"] = os.path.basename(row["path"])
        return row

    ds = ray.data.from_items([{"path": f"/images/{i}.png"} for i in range(3)]).map(parse_filename)
    assert [row["filename"] for row in ds.take_all()] == ["0.png", "1.png", "2.png"]

    def duplicate_row(row: Dict[str, Any]) -> List[Dict[str, Any]]:
        return [row] * 2

    assert ray.data.range(3).flat_map(duplicate_row).take_all() == [
        {"id": 0}, {"id": 0}, {"id": 1}, {"id": 1}, {"id": 2}, {"id": 2}]


def test_transforming_batches_numpy_by_default_pandas_on_request(api2):
    def increase_brightness(batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        batch["image"] = np.clip(batch["image"] + 4, 0, 255)
        return batch

    images = [{"image": np.full((4, 4, 3), 250 + i, dtype=np.int64)} for i in range(4)]
    brightened = ray.data.from_items(images).map_batches(increase_brightness)
    batch = brightened.take_batch(4)
    assert batch["image"].shape == (4, 4, 4, 3)
    assert batch["image"][:, 0, 0, 0].tolist() == [254, 255, 255, 255]
    same = ray.data.from_items(images).map_batches(increase_brightness, batch_format="numpy",
                                                  batch_size="auto")
    assert same.take_batch(4)["image"].tolist() == batch["image"].tolist()

    def drop_nas(batch: pd.DataFrame) -> pd.DataFrame:
        return batch.dropna()

    rows = [{"a": 1.0}, {"a": None}, {"a": 3.0}]
    assert ray.data.from_items(rows).map_batches(drop_nas, batch_format="pandas").take_all() \
        == [{"a": 1.0}, {"a": 3.0}]


def test_batch_function_may_be_a_generator(api2):
    def fn(batch: Dict[str, np.ndarray]) -> Iterator[Dict[str, np.ndarray]]:
        for _ in range(10):
            yield batch

    assert ray.data.range(4).map_batches(fn).count() == 40


def test_stateful_transform_with_concurrency_and_preserve_order(api2, monkeypatch):
    context = ray.data.DataContext().get_current()
    monkeypatch.setattr(context.execution_options, "preserve_order", True)

    class Predictor:
        def __init__(self):
            self.weight = 2.0

        def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
            batch["output"] = batch["data"].sum(axis=1) * self.weight
            return batch

    ds = ray.data.from_numpy(np.ones((32, 100))).map_batches(Predictor, concurrency=2,
                                                              batch_size=4)
    out = ds.take_batch(32)
    assert out["data"].shape == (32, 100) and out["output"].tolist() == [200.0] * 32


def test_groupby_map_groups_gets_numpy_batches(api2):
    items = [{"image": np.arange(4.0) + label, "label": label}
             for _ in range(3) for label in range(4)]

    def normalize_images(group: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        group["image"] = (group["image"] - group["image"].mean()) / group["image"].std()
        return group

    ds = ray.data.from_items(items).groupby("label").map_groups(normalize_images)
    rows = ds.take_all()
    assert len(rows) == 12 and sorted({row["label"] for row in rows}) == [0, 1, 2, 3]
    np.testing.assert_allclose(rows[0]["image"], (np.arange(4.0) - 1.5) / np.arange(4.0).std())


# ==========================================================================================
# Iterating over data
# ==========================================================================================
def test_iterating_over_rows_and_batches(api2, iris):
    assert list(ray.data.range(3).iter_rows()) == [{"id": 0}, {"id": 1}, {"id": 2}]
    ds = ray.data.read_csv(iris)
    rows = list(ds.iter_rows())
    assert rows[1] == {"sepal length (cm)": 4.9, "sepal width (cm)": 3.0,
                       "petal length (cm)": 1.4, "petal width (cm)": 0.2, "target": 0}
    numpy_batches = list(ds.iter_batches(batch_size=2, batch_format="numpy"))
    assert len(numpy_batches) == 3 and numpy_batches[0]["target"].tolist() == [0, 0]
    default_batches = list(ds.iter_batches(batch_size=4))
    assert isinstance(default_batches[0], dict) and len(default_batches[1]["target"]) == 2
    frames = list(ds.iter_batches(batch_size=2, batch_format="pandas"))
    assert isinstance(frames[0], pd.DataFrame) and frames[2]["target"].tolist() == [2, 1]


def test_iterating_with_local_shuffle_keeps_every_row(api2):
    ds = ray.data.range(1000, parallelism=4)
    batches = list(ds.iter_batches(batch_size=100, local_shuffle_buffer_size=250,
                                   local_shuffle_seed=0))
    ids = np.concatenate([b["id"] for b in batches]).tolist()
    assert sorted(ids) == list(range(1000)) and ids != list(range(1000))
    again = ds.iter_batches(batch_size=100, local_shuffle_buffer_size=250, local_shuffle_seed=0)
    assert np.concatenate([b["id"] for b in again]).tolist() == ids


def test_random_sample_and_block_order(api2):
    ds = ray.data.range(1000, parallelism=4)
    sample = ds.random_sample(0.25, seed=7)
    ids = [row["id"] for row in sample.take_all()]
    assert 150 < len(ids) < 350 and ids == sorted(set(ids))
    assert [row["id"] for row in sample.take_all()] == ids  # seeded: the same rows again
    assert ds.random_sample(0.0).count() == 0 and ds.random_sample(1.0).count() == 1000
    with pytest.raises(ValueError, match=r"random_sample\(fraction\) needs a number in \[0, 1\]"):
        ds.random_sample(1.5)
    reordered = [row["id"] for row in ds.randomize_block_order(seed=3).take_all()]
    assert sorted(reordered) == list(range(1000))
    assert [reordered[i * 250] % 250 for i in range(4)] == [0, 0, 0, 0]  # whole blocks moved


def test_iter_torch_batches_and_the_data_iterator(api2):
    torch = pytest.importorskip("torch")
    batch = next(iter(ray.data.range(5).iter_torch_batches(batch_size=2)))
    assert list(batch) == ["id"] and torch.equal(batch["id"], torch.tensor([0, 1]))
    shuffled = ray.data.range(50).iter_torch_batches(batch_size=10, local_shuffle_buffer_size=25,
                                                    local_shuffle_seed=1)
    assert sorted(torch.cat([b["id"] for b in shuffled]).tolist()) == list(range(50))
    iterator = ray.data.range(10).iterator()
    assert isinstance(iterator, ray.data.DataIterator)
    assert next(iter(iterator.iter_rows())) == {"id": 0}
    assert [len(b["id"]) for b in iterator.iter_batches(batch_size=4)] == [4, 4, 2]


# ==========================================================================================
# Aggregating data, columns
# ==========================================================================================
def test_aggregations_as_documented(api2):
    from raylite.data.aggregate import Count, Mean
    ds = ray.data.range(100)
    ds = ds.add_column("group_key", lambda x: x % 3)
    assert ds.schema().names == ["id", "group_key"]
    assert ds.max("id") == 99
    assert ds.groupby("group_key").min("id").take_all() == [
        {"group_key": 0, "min(id)": 0}, {"group_key": 1, "min(id)": 1},
        {"group_key": 2, "min(id)": 2}]
    assert ds.aggregate(Count()) == {"count()": 100}
    means = ds.groupby("group_key").aggregate(Mean(on="id")).take_all()
    assert [row["mean(id)"] for row in means] == [49.5, 49.0, 50.0]


@pytest.mark.parametrize("api", [1, 2], indirect=True)
def test_custom_aggregate_fn_as_documented(api):
    from raylite.data.aggregate import AggregateFn, Count
    ds = ray.data.from_items([{"number": i} for i in range(1, 10)], parallelism=3)
    aggregation = AggregateFn(
        init=lambda column: 1,
        accumulate_row=lambda a, row: a * row["number"],
        merge=lambda a1, a2: a1 * a2,
        name="prod",
    )
    assert ds.aggregate(aggregation) == {"prod": 362880}
    grouped = ds.map(lambda row: {"k": row["number"] % 2, **row}).groupby("k").aggregate(
        AggregateFn(init=lambda key: [], accumulate_block=lambda acc, table: acc + [len(table)],
                    merge=lambda a, b: a + b, finalize=sum, name="rows"))
    assert [(row["k"], row["rows"]) for row in grouped.take_all()] == [(0, 4), (1, 5)]
    with pytest.raises(TypeError, match="cannot be mixed with built-in ones"):
        ds.aggregate(aggregation, Count())
    with pytest.raises(ValueError, match="exactly one of accumulate_row= and accumulate_block="):
        AggregateFn(init=lambda k: 0, merge=lambda a, b: a + b, name="x")


def test_add_drop_select_columns_on_dict_rows(api2):
    ds = ray.data.range(4).add_column("double", lambda df: df["id"] * 2)
    assert ds.take(2) == [{"id": 0, "double": 0}, {"id": 1, "double": 2}]
    numpy_column = ray.data.range(3).add_column("sq", lambda b: b["id"] ** 2,
                                                batch_format="numpy")
    assert [row["sq"] for row in numpy_column.take_all()] == [0, 1, 4]
    assert ds.drop_columns(["id"]).take(2) == [{"double": 0}, {"double": 2}]
    assert ds.select_columns(["double", "id"]).take(1) == [{"double": 0, "id": 0}]
    assert ray.data.from_items([1, 2]).take_all() == [{"item": 1}, {"item": 2}]
    renamed = ds.rename_columns({"double": "twice"})
    assert renamed.take(2) == [{"id": 0, "twice": 0}, {"id": 1, "twice": 2}]
    assert renamed.rename_columns(["a", "b"]).columns() == ["a", "b"]
    with pytest.raises(ValueError, match=r"rename_columns\(\{'nope': 'x'\}\): no column 'nope'"):
        renamed.rename_columns({"nope": "x"}).take_all()


def test_schema_is_rays_schema_under_2(api2):
    ds = ray.data.range(100)
    schema = ds.schema()
    assert isinstance(schema, ray.data.Schema)
    assert schema.names == ["id"] and [str(t) for t in schema.types] == ["int64"]
    assert str(schema) == "Column  Type\n------  ----\nid      int64"
    tensors = ray.data.from_numpy(np.zeros((3, 2, 2))).schema()
    assert str(tensors) == ("Column  Type\n------  ----\n"
                            "data    numpy.ndarray(shape=(2, 2), dtype=double)")
    wide = ds.with_columns({"new_id": col("id") * 2, "new_id_2": col("id") * 3}).schema()
    assert str(wide) == ("Column    Type\n------    ----\nid        int64\nnew_id    int64\n"
                         "new_id_2  int64")


# ==========================================================================================
# Expressions (both conventions: tabular rows)
# ==========================================================================================
def test_with_column_and_filter_expressions_as_documented(api2, capsys):
    ds = ray.data.range(100)
    ds.with_column("id_2", col("id") * 2).show(2)
    assert capsys.readouterr().out == "{'id': 0, 'id_2': 0}\n{'id': 1, 'id_2': 2}\n"
    assert ds.filter(expr="id <= 4").take_all() == [{"id": i} for i in range(5)]
    assert ds.filter(expr=(col("id") > 95) | (col("id") == lit(3))).take_all() == [
        {"id": 3}, {"id": 96}, {"id": 97}, {"id": 98}, {"id": 99}]
    prices = ray.data.from_items([{"price": 10, "quantity": 2}])
    assert prices.with_column("total", col("price") * col("quantity")).take_all() == [
        {"price": 10, "quantity": 2, "total": 20}]


@pytest.mark.parametrize("api", [1, 2], indirect=True)
def test_expressions_in_both_conventions(api):
    rows = [{"x": i, "name": "abc"[i % 3], "score": None if i == 4 else i / 2} for i in range(6)]
    ds = ray.data.from_items(rows)
    kept = ds.filter(expr=(col("x") >= 1) & ~col("name").is_in(["b"]) & col("score").is_not_null())
    assert [row["x"] for row in kept.take_all()] == [2, 3, 5]
    assert [row["x"] for row in ds.filter(expr="x % 2 == 0 and name != 'c'").take_all()] == [0, 4]
    derived = ds.with_column("y", (col("x") + 1) ** 2 - lit(1)).with_column("flag", col("x") > 2)
    assert [(r["y"], r["flag"]) for r in derived.take(4)] == [
        (0, False), (3, False), (8, False), (15, True)]
    assert [r["missing"] for r in ds.with_column("missing", col("score").is_null()).take_all()] \
        == [False] * 4 + [True, False]
    # missing values follow Arrow's rules: null in, null out; a null predicate drops the row
    assert [r["x"] for r in ds.filter(expr=col("score") != 1.0).take_all()] == [0, 1, 3, 5]
    assert [r["x"] for r in ds.filter(expr=(col("score") > 100) | (col("x") == 4)).take_all()] \
        == [4]
    halves = ds.with_column("h", col("score") * 2).with_column("tag", col("name") + "!")
    assert [(r["h"], r["tag"]) for r in halves.take_all()][3:5] == [(3.0, "a!"), (None, "b!")]
    on_arrow = ray.data.from_pandas(pd.DataFrame({"a": [1.0, 2.0, 3.0]}))
    assert [r["b"] for r in on_arrow.with_column("b", 10 - col("a")).take_all()] == [9, 8, 7]


def test_expression_errors_are_clear():
    ds = ray.data.from_items([{"x": 1}])
    with pytest.raises(ValueError, match=r"with_column: no column 'nope'; the dataset has "
                                         r"columns \['x'\]"):
        ds.with_column("y", col("nope") + 1)
    with pytest.raises(TypeError, match="needs an expression from raylite.data.expressions"):
        ds.with_column("y", lambda row: 1)
    with pytest.raises(TypeError, match="no truth value"):
        ds.filter(expr=(col("x") > 0) and (col("x") < 5))
    with pytest.raises(ValueError, match=r"'f\(x\)' is not supported"):
        ds.filter(expr="f(x) > 1")
    with pytest.raises(TypeError, match="a function or expr=, not both"):
        ds.filter(lambda row: True, expr="x > 0")


# ==========================================================================================
# the switch
# ==========================================================================================
def test_environment_variable_selects_the_convention_at_import(tmp_path):
    code = ("import raylite as ray; ray.init(num_cpus=1); "
            "print(ray.data.DataContext.get_current().api, ray.data.range(2).take(), "
            "ray.data.from_items([7]).take())")
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "RAYLITE_API": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2 [{'id': 0}, {'id': 1}] [{'item': 7}]"
    env["RAYLITE_API"] = "3"
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, cwd=tmp_path)
    assert bad.returncode != 0
    assert "RAYLITE_API must be 1 (the book's Ray 1.9 Data" in bad.stderr.splitlines()[-1]


def test_each_dataset_keeps_the_convention_it_was_created_with(api1):
    assert ray.data.expressions.col is col  # ray.data.expressions, loaded on first use
    book = ray.data.range(3)
    api1.api = 2
    modern = ray.data.range(3)
    assert book.map(lambda x: x * 10).take_all() == [0, 10, 20]
    assert modern.map(lambda row: {"id": row["id"] * 10}).take_all() == [
        {"id": 0}, {"id": 10}, {"id": 20}]
    assert book.take_batch(2).tolist() == [0, 1]
    with pytest.raises(ValueError, match="follow different Ray Data conventions"):
        book.union(modern)
    with pytest.raises(ValueError, match=r"DataContext.api must be 1 .* or 2 .*, got 3"):
        api1.api = 3



def test_settings_raylite_does_not_have_are_warned_about(api1, monkeypatch):
    with pytest.warns(UserWarning, match="raylite.data ignores DataContext.target_max_block_size"):
        monkeypatch.setattr(api1, "target_max_block_size", 1 << 20, raising=False)
    with pytest.warns(UserWarning, match="ignores ExecutionOptions.resource_limits"):
        monkeypatch.setattr(api1.execution_options, "resource_limits", None, raising=False)
    from raylite.data.context import DataContext, ShuffleStrategy
    assert DataContext.get_current() is api1
    with pytest.warns(UserWarning, match="ignores DataContext.shuffle_strategy"):
        monkeypatch.setattr(api1, "shuffle_strategy", ShuffleStrategy.HASH_SHUFFLE, raising=False)
    with pytest.warns(UserWarning, match=r"ignores DataContext.set_config\('debug_limit"):
        api1.set_config("debug_limit_shuffle_execution_to_num_blocks", 2)
    assert api1.get_config("debug_limit_shuffle_execution_to_num_blocks") == 2
    api1.remove_config("debug_limit_shuffle_execution_to_num_blocks")
    assert api1.get_config("debug_limit_shuffle_execution_to_num_blocks") is None


def test_book_convention_is_the_default_and_unchanged(api1):
    assert ray.data.range(3).take_all() == [0, 1, 2]
    assert ray.data.from_items([1, 2]).take_all() == [1, 2]
    row = ray.data.from_items([{"a": 1}]).take(1)[0]
    assert repr(row) == "ArrowRow({'a': 1})"
    assert ray.data.range(4).map_batches(lambda batch: [x * 2 for x in batch]).take_all() == [
        0, 2, 4, 6]
    tabular = ray.data.from_items([{"a": 1.5, "b": "x"}])
    assert isinstance(tabular.map_batches(lambda df: df).take_batch(batch_format="pandas"),
                      pd.DataFrame)
    assert ray.data.range_table(3).map_batches(
        lambda df: df.assign(value=df["value"] * 2)).take_all() == [
            {"value": 0}, {"value": 2}, {"value": 4}]  # the book's default batch: a DataFrame
    batch = tabular.take_batch()  # take_batch: Ray 2.x's form under both conventions
    assert list(batch) == ["a", "b"] and batch["a"].tolist() == [1.5]
    assert str(ray.data.from_items([{"a": 1.5, "b": "x"}]).schema()) == "a: double\nb: string"
    assert ray.data.from_numpy(np.arange(2)).take_all() == [{"value": 0}, {"value": 1}]


# ==========================================================================================
# errors from the other convention name the switch
# ==========================================================================================
def test_ray2_code_on_book_rows_names_the_switch(api1):
    with pytest.raises(TypeError, match=r"not subscriptable[\s\S]*set RAYLITE_API=2"):
        ray.data.range(3).map(lambda row: {"id2": row["id"] * 2}).take_all()
    with pytest.raises(TypeError, match=r"indices must be integers[\s\S]*set RAYLITE_API=2"):
        ray.data.range(3).map_batches(lambda batch: {"y": batch["id"]}).take_all()
    with pytest.raises(KeyError, match=r"'item'[\s\S]*set RAYLITE_API=2"):
        ray.data.from_items([{"a": 1}]).map(lambda row: row["item"]).take_all()
    with pytest.raises(ValueError, match=r"needs a tabular dataset[\s\S]*set RAYLITE_API=2"):
        ray.data.range(3).add_column("x", lambda df: df["id"]).take_all()
    with pytest.raises(ValueError, match=r"no column 'id'; the dataset has columns \['value'\]"
                                         r"[\s\S]*set RAYLITE_API=2"):
        ray.data.range(10).sum("id")


def test_book_code_on_ray2_rows_names_the_switch(api2):
    with pytest.raises(TypeError, match=r"'dict' and 'int'[\s\S]*unset RAYLITE_API"):
        ray.data.range(10).map(lambda x: x ** 2).take(5)
    with pytest.raises(TypeError, match=r"'dict' and 'int'[\s\S]*unset RAYLITE_API"):
        ray.data.range(10).filter(lambda x: x % 2 == 0).count()
    with pytest.raises(TypeError, match=r"'dict' and 'int'[\s\S]*unset RAYLITE_API"):
        ray.data.range(4).map_batches(lambda batch: batch * 2).take_all()
    with pytest.raises(AttributeError, match=r"'dict' object has no attribute 'dropna'"
                                             r"[\s\S]*batch_format='pandas'"):
        ray.data.from_items([{"a": 1}]).map_batches(lambda df: df.dropna()).take_all()
    with pytest.raises(TypeError, match=r"map\(<lambda>\) returned int 0; .*every row is a dict"
                                        r"[\s\S]*unset RAYLITE_API"):
        ray.data.range(3).map(lambda row: row["id"] * 2).take_all()
    with pytest.raises(TypeError, match=r"returned ndarray; under Ray 2.x's convention a "
                                        r"batch is a dict"):
        ray.data.range(3).map_batches(lambda batch: batch["id"] * 2).take_all()
    with pytest.raises(ValueError, match=r"no column 'value'[\s\S]*unset RAYLITE_API"):
        ray.data.from_numpy(np.arange(3)).select_columns(["value"]).take_all()


def test_an_unrelated_error_does_not_mention_the_switch(api2):
    with pytest.raises(ZeroDivisionError) as info:
        ray.data.range(3).map(lambda row: {"x": 1 / (row["id"] - 1)}).take_all()
    text = str(info.value) + "".join(getattr(info.value, "__notes__", []))
    assert "failed on row {'id': 1}" in text and "RAYLITE_API" not in text


# ==========================================================================================
# shared by both: take_batch, materialize, stats, local://
# ==========================================================================================
@pytest.mark.parametrize("api", [1, 2], indirect=True)
def test_take_batch_materialize_stats_and_local_paths(api, tmp_path):
    ds = ray.data.from_items([{"k": i, "v": float(i)} for i in range(10)], parallelism=2)
    batch = ds.take_batch(4, batch_format="numpy")
    assert batch["k"].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="the dataset is empty"):
        ds.filter(expr="k > 100").take_batch()
    done = ds.map(lambda row: {**row, "w": row["v"] * 2}).materialize()
    assert isinstance(done, ray.data.MaterializedDataset) and done.count() == 10
    stats = done.stats()
    assert isinstance(stats, str) and stats.startswith("2 tasks") and "map(<lambda>)" in stats
    target = tmp_path / "deep" / "out"
    done.write_json(f"local://{target}")
    back = ray.data.read_json(f"local://{target}")
    assert sorted(row["w"] for row in back.take_all()) == [2.0 * i for i in range(10)]
    schema = back.schema()
    assert sorted(schema.names) == ["k", "v", "w"] and len(schema.types) == 3


# ==========================================================================================
# the docstring examples of the modules this work added (test_data_docs.py runs the others)
# ==========================================================================================
@pytest.mark.parametrize("name", ["raylite.data._aggregate_methods", "raylite.data._columns",
                                  "raylite.data.context", "raylite.data._schema",
                                  "raylite.data._iterator",
                                  "raylite.data.expressions"])
def test_docstring_examples_run(api1, name):
    import doctest
    import importlib
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
