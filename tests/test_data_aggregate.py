"""raylite.data aggregations: groupby with count/sum/min/max/mean/std, aggregate(), map_groups,
unique, and the same aggregations over a whole dataset. Results are checked against pandas."""

from __future__ import annotations

import pytest

import raylite as ray

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")


pytestmark = pytest.mark.usefixtures("ray")  # conftest: a 2-CPU runtime for this module


ROWS = [{"k": (i * 7) % 5, "g": "ab"[i % 2], "x": float(i) * 1.5, "n": i}
        for i in range(203)]


@pytest.fixture(params=["dict rows", "arrow"])
def dataset(request):
    """The same rows as Python dict blocks (from_items) and as Arrow blocks (from_pandas)."""
    if request.param == "dict rows":
        return ray.data.from_items(ROWS, parallelism=7)
    frame = pd.DataFrame(ROWS)
    return ray.data.from_pandas([frame.iloc[:90], frame.iloc[90:]])


def _column(ds, name):
    return [row[name] for row in ds.take_all()]


@pytest.mark.parametrize("method, pandas_method", [
    ("sum", "sum"), ("min", "min"), ("max", "max"), ("mean", "mean"), ("std", "std")])
def test_groupby_aggregations_match_pandas(dataset, method, pandas_method):
    expected = getattr(pd.DataFrame(ROWS).groupby("k")["x"], pandas_method)()
    result = getattr(dataset.groupby("k"), method)("x")
    rows = result.take_all()
    assert [r["k"] for r in rows] == sorted(expected.index)  # one row per group, by key
    assert list(rows[0]) == ["k", f"{method}(x)"]
    for row in rows:
        assert row[f"{method}(x)"] == pytest.approx(expected[row["k"]])


def test_groupby_count_multiple_keys_and_columns(dataset):
    counts = dataset.groupby("k").count().take_all()
    expected = pd.DataFrame(ROWS).groupby("k").size()
    assert [(r["k"], r["count()"]) for r in counts] == list(expected.items())
    two_keys = dataset.groupby(["g", "k"]).count().take_all()
    assert [(r["g"], r["k"]) for r in two_keys] == sorted({(r["g"], r["k"]) for r in ROWS})
    assert sum(r["count()"] for r in two_keys) == len(ROWS)
    sums = dataset.groupby("g").sum(["x", "n"]).take_all()
    assert list(sums[0]) == ["g", "sum(x)", "sum(n)"]
    assert sums[1]["sum(n)"] == sum(r["n"] for r in ROWS if r["g"] == "b")


def test_aggregate_with_several_functions(dataset):
    from raylite.data.aggregate import Count, Max, Mean, Min, Std, Sum
    rows = dataset.groupby("g").aggregate(Count(), Sum("n"), Min("x"), Max("x"), Mean("n"),
                                          Std("n", ddof=0)).take_all()
    frame = pd.DataFrame(ROWS)
    for row in rows:
        part = frame[frame["g"] == row["g"]]
        assert row["count()"] == len(part)
        assert row["sum(n)"] == part["n"].sum()
        assert (row["min(x)"], row["max(x)"]) == (part["x"].min(), part["x"].max())
        assert row["mean(n)"] == pytest.approx(part["n"].mean())
        assert row["std(n)"] == pytest.approx(part["n"].std(ddof=0))


def test_whole_dataset_aggregations(dataset):
    frame = pd.DataFrame(ROWS)
    assert dataset.sum("n") == frame["n"].sum()
    assert dataset.min("x") == frame["x"].min() and dataset.max("n") == frame["n"].max()
    assert dataset.mean("x") == pytest.approx(frame["x"].mean())
    assert dataset.std("x") == pytest.approx(frame["x"].std())
    assert dataset.sum(["n", "x"]) == {"sum(n)": frame["n"].sum(), "sum(x)": frame["x"].sum()}
    from raylite.data.aggregate import Count, Max
    assert dataset.aggregate(Count(), Max("n")) == {"count()": len(ROWS), "max(n)": 202}


def test_aggregations_of_plain_rows_and_nulls():
    ints = ray.data.range(10, parallelism=3)
    assert (ints.sum(), ints.min(), ints.max(), ints.mean()) == (45, 0, 9, 4.5)
    assert ints.std() == pytest.approx(pd.Series(range(10)).std())
    with_nulls = ray.data.from_items([{"k": 1, "x": 2.0}, {"k": 1, "x": None}, {"k": 2, "x": 4.0}])
    assert [r["mean(x)"] for r in with_nulls.groupby("k").mean("x").take_all()] == [2.0, 4.0]
    assert with_nulls.groupby("k").count().take_all()[0]["count()"] == 2  # rows, nulls too
    single = ray.data.from_items([{"k": 1, "x": 1.0}]).groupby("k").std("x").take_all()
    assert single[0]["std(x)"] is None  # one value: no sample deviation (ddof=1)
    assert ray.data.from_items([]).sum() is None


def test_map_groups_sees_each_group_whole(dataset):
    def summarize(frame):
        return pd.DataFrame({"k": [frame["k"].iloc[0]], "rows": [len(frame)],
                             "total": [frame["n"].sum()]})

    rows = dataset.groupby("k").map_groups(summarize).take_all()
    expected = pd.DataFrame(ROWS).groupby("k")["n"].agg(["size", "sum"])
    assert [(r["k"], r["rows"], r["total"]) for r in rows] == [
        (k, s, t) for k, (s, t) in expected.iterrows()]


def test_map_groups_batch_formats_and_errors():
    ds = ray.data.from_items([{"k": i % 3, "v": i} for i in range(12)], parallelism=4)
    firsts = ds.groupby("k").map_groups(lambda b: {"k": b["k"][:1], "v": b["v"][:1]},
                                        batch_format="numpy")
    assert firsts.take_all() == [{"k": 0, "v": 0}, {"k": 1, "v": 1}, {"k": 2, "v": 2}]

    def fails_on_two(frame):
        if frame["k"].iloc[0] == 2:
            raise RuntimeError("bad group")
        return frame

    with pytest.raises(RuntimeError, match=r"map_groups\(fails_on_two\) failed on the group 2"):
        ds.groupby("k").map_groups(fails_on_two).take_all()


def test_unique_values():
    ds = ray.data.from_items([{"c": v} for v in "abcabcdd"], parallelism=3)
    assert ds.unique("c") == ["a", "b", "c", "d"]
    assert ray.data.from_items([3, 1, 3, 2, 1]).unique() == [3, 1, 2]


def test_groupby_and_aggregation_errors_name_the_problem():
    ds = ray.data.from_items([{"k": 1, "x": 2}])
    with pytest.raises(ValueError, match=r"no column 'nope'.*\['k', 'x'\]"):
        ds.groupby("nope")
    with pytest.raises(ValueError, match=r"no column 'y'.*\['k', 'x'\]"):
        ds.groupby("k").sum("y")
    with pytest.raises(ValueError, match=r"no column 'y'.*\['k', 'x'\]"):
        ds.mean("y")
    with pytest.raises(ValueError, match=r"needs on=<column>"):
        ds.sum()
    with pytest.raises(ValueError, match=r"needs a tabular dataset.*ints"):
        ray.data.from_items([1, 2]).groupby("k")
    with pytest.raises(TypeError, match="column name"):
        ds.groupby(3)
    with pytest.raises(TypeError, match="aggregations"):
        ds.groupby("k").aggregate("sum")
    with pytest.raises(ValueError, match=r"no column 'zz'"):
        ds.unique("zz")
    with pytest.raises(ValueError, match=r"no column 'y'"):  # found when the plan runs
        ds.map(lambda r: r).groupby("k").max("y").take_all()
    with pytest.raises(ValueError, match="batch_format must be one of"):
        ds.groupby("k").map_groups(lambda b: b, batch_format="table")
