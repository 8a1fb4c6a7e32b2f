"""raylite.data all-to-all operations: limit, union, repartition, random_shuffle, sort, split,
train_test_split. Each keeps every row exactly once (or drops exactly what it says)."""

from __future__ import annotations

import random

import pytest

import raylite as ray

pytest.importorskip("pyarrow")


pytestmark = pytest.mark.usefixtures("ray")  # conftest: a 2-CPU runtime for this module


def test_limit_is_lazy_and_runs_only_needed_blocks():
    ds = ray.data.range(100 * 50, parallelism=100).map(lambda x: x + 1)
    limited = ds.limit(75)  # nothing runs yet
    assert limited.stats().startswith("not executed yet")
    assert limited.take_all() == list(range(1, 76))
    assert limited.count() == 75
    assert limited.map(lambda x: -x).take(2) == [-1, -2]
    assert ds.limit(0).take_all() == []
    assert ray.data.range(3).limit(10).take_all() == [0, 1, 2]
    with pytest.raises(ValueError, match="non-negative int"):
        ds.limit(-1)


def test_union_keeps_order_and_stays_lazy_through_barriers():
    a = ray.data.range(5, parallelism=2)
    b = ray.data.range(3).map(lambda x: x + 100)
    c = ray.data.range(4).sort(descending=True)
    assert a.union(b, c).take_all() == [0, 1, 2, 3, 4, 100, 101, 102, 3, 2, 1, 0]
    assert a.union(b).num_blocks() == 3
    tables = ray.data.from_items([{"k": 1}]).union(ray.data.from_items([{"k": 2}]))
    assert tables.take_all() == [{"k": 1}, {"k": 2}]


def test_union_rejects_mismatched_schemas():
    ints = ray.data.range(3)
    table = ray.data.from_items([{"a": 1, "b": "x"}])
    with pytest.raises(ValueError, match=r"<class 'int'>.*\{a: int64, b: string\}.*cannot be"):
        ints.union(table)
    with pytest.raises(ValueError, match=r"schemas differ.*\{a: int64, b: string\}.*\{value: "):
        table.union(ray.data.range_table(2))
    with pytest.raises(TypeError, match="takes Datasets"):
        ints.union([1, 2])


def test_repartition_keeps_order_and_balances():
    ds = ray.data.range(100, parallelism=3).repartition(7)
    assert ds.num_blocks() == 7
    sizes = [t.source.metadata().num_rows for t in ds.materialize()._plan.block_tasks()]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 100
    assert ds.take_all() == list(range(100))
    shuffled = ray.data.range(100, parallelism=3).repartition(4, shuffle=True)
    assert shuffled.num_blocks() == 4 and sorted(shuffled.take_all()) == list(range(100))
    with pytest.raises(ValueError, match="positive int"):
        ds.repartition(0)


def test_random_shuffle_is_a_seeded_permutation():
    ds = ray.data.range(200, parallelism=5)
    first = ds.random_shuffle(seed=7).take_all()
    assert sorted(first) == list(range(200)) and first != list(range(200))
    assert ds.random_shuffle(seed=7).take_all() == first
    assert ds.random_shuffle(seed=8).take_all() != first
    assert ds.random_shuffle(seed=7, num_blocks=2).num_blocks() == 2
    table = ray.data.range_table(50, parallelism=3).random_shuffle(seed=1)
    assert sorted(r["value"] for r in table.take_all()) == list(range(50))
    with pytest.raises(TypeError, match="seed"):
        ds.random_shuffle(seed="x")


def test_sort_values_keys_and_columns():
    rng = random.Random(0)
    values = [rng.random() for _ in range(500)]
    ds = ray.data.from_items(values, parallelism=6)
    assert ds.sort().take_all() == sorted(values)
    assert ds.sort(descending=True).take_all() == sorted(values, reverse=True)
    words = ray.data.from_items(["bb", "a", "ccc", "dddd"] * 10, parallelism=3)
    assert words.sort(key=len).take(4) == ["a"] * 4

    rows = [{"k": (i * 37) % 11, "i": i} for i in range(300)]
    table = ray.data.from_items(rows, parallelism=5)
    ascending = table.sort("k").take_all()
    assert [r["k"] for r in ascending] == sorted(r["k"] for r in rows)
    assert sorted(r["i"] for r in ascending) == list(range(300))
    by_two = table.sort(["k", "i"], descending=True).take_all()
    assert [(r["k"], r["i"]) for r in by_two] == sorted(((r["k"], r["i"]) for r in rows),
                                                        reverse=True)


def test_sort_rejects_bad_keys():
    table = ray.data.from_items([{"k": 1}])
    with pytest.raises(ValueError, match=r"no column 'nope'.*\['k'\]"):
        table.sort("nope")
    with pytest.raises(ValueError, match="needs key="):
        table.sort()
    with pytest.raises(ValueError, match="not tables"):
        ray.data.from_items([1, 2]).sort("k")
    with pytest.raises(TypeError, match="column name"):
        table.sort(3)


def test_split_equal_and_unequal():
    ds = ray.data.range(10, parallelism=3)
    parts = ds.split(3)
    assert [p.take_all() for p in parts] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    equal = ds.split(3, equal=True)
    assert [p.count() for p in equal] == [3, 3, 3]
    assert [x for p in equal for x in p.take_all()] == list(range(9))
    assert [p.count() for p in ray.data.range(2).split(4)] == [1, 1, 0, 0]
    with pytest.raises(ValueError, match="positive int"):
        ds.split(0)


def test_split_at_indices_and_train_test_split():
    ds = ray.data.range(10, parallelism=4)
    assert [p.take_all() for p in ds.split_at_indices([3, 3, 20])] == [
        [0, 1, 2], [], list(range(3, 10)), []]
    train, test = ds.train_test_split(0.2)
    assert train.take_all() == list(range(8)) and test.take_all() == [8, 9]
    train, test = ds.train_test_split(3, shuffle=True, seed=0)
    assert train.count() == 7 and test.count() == 3
    assert sorted(train.take_all() + test.take_all()) == list(range(10))
    assert ds.train_test_split(3, shuffle=True, seed=0)[1].take_all() == test.take_all()
    with pytest.raises(ValueError, match="fraction"):
        ds.train_test_split(1.5)
    with pytest.raises(ValueError, match="more test rows"):
        ds.train_test_split(11)
    with pytest.raises(ValueError, match="sorted list"):
        ds.split_at_indices([5, 2])


def test_zip_joins_rows_across_different_block_boundaries():
    left = ray.data.range(10, parallelism=3)
    right = ray.data.range(10, parallelism=4).map(lambda x: x * 10)
    zipped = left.zip(right)
    assert zipped.num_blocks() == 3
    assert zipped.take_all() == [(i, 10 * i) for i in range(10)]
    a = ray.data.from_items([{"x": i, "y": -i} for i in range(5)], parallelism=2)
    b = ray.data.range_table(5, parallelism=3).map_batches(lambda df: df, batch_format="pandas")
    both = a.zip(b).zip(a)
    assert both.columns() == ["x", "y", "value", "x_1", "y_1"]
    assert both.take(2)[1] == {"x": 1, "y": -1, "value": 1, "x_1": 1, "y_1": -1}
    with pytest.raises(ValueError, match="same number of rows; this one has 10, the other 5"):
        left.zip(ray.data.range(5)).take_all()
    with pytest.raises(TypeError, match="takes a Dataset"):
        left.zip([1, 2])
