"""Dask collections on the raylite runtime (raylite.util.dask, reached as ray.util.dask):
dask.array, dask.dataframe and dask.delayed graphs run as raylite tasks, persist keeps their
results in the object store, and Dataset.to_dask()/from_dask() go through the same scheduler."""

from __future__ import annotations

import os

import pytest

import raylite as ray

dask = pytest.importorskip("dask")
np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")

from raylite.util.dask import (disable_dask_on_ray, enable_dask_on_ray,  # noqa: E402
                               ray_dask_get, ray_dask_get_sync)

pytestmark = pytest.mark.usefixtures("ray")  # conftest: a 2-CPU runtime for this module


def test_reached_as_ray_util_dask():
    import raylite.util.dask as module
    assert ray.util.dask is module
    assert module.ray_dask_get is ray_dask_get


@pytest.mark.parametrize("scheduler", [ray_dask_get, ray_dask_get_sync])
def test_dask_array_reduction_matches_numpy(scheduler):
    values = np.arange(400 * 300, dtype=np.float64).reshape(400, 300)
    array = da.from_array(values, chunks=(100, 100))
    total, column_means = dask.compute(array.sum(), (array * 2).mean(axis=0),
                                       scheduler=scheduler)
    assert total == values.sum()
    np.testing.assert_allclose(column_means, (values * 2).mean(axis=0))


def test_dask_dataframe_groupby_aggregate_matches_pandas():
    frame = pd.DataFrame({"key": np.arange(2000) % 7, "value": np.arange(2000.0)})
    ddf = dd.from_pandas(frame, npartitions=5)
    result = ddf.groupby("key").value.agg(["sum", "max"]).compute(scheduler=ray_dask_get)
    expected = frame.groupby("key").value.agg(["sum", "max"])
    pd.testing.assert_frame_equal(result.sort_index(), expected)


def test_each_graph_task_runs_in_a_raylite_worker():
    @dask.delayed
    def where(_):
        return os.getpid()

    @dask.delayed
    def pair(a, b):
        return (a, b)

    pids = pair(where(1), where(2)).compute(scheduler=ray_dask_get)
    assert len(pids) == 2 and os.getpid() not in pids


def test_large_intermediate_is_shared_from_the_object_store():
    # a 16 MiB partition is written once to shared memory; its readers map it without a copy
    # (read-only, as in Ray), where Dask's threaded scheduler hands over the writable original
    @dask.delayed
    def make():
        return np.ones(2 ** 21)

    @dask.delayed
    def describe(array):
        return array.flags.writeable, float(array.sum())

    big = make()
    readers = [describe(big), describe(big)]
    assert dask.compute(*readers, scheduler=ray_dask_get) == ((False, 2.0 ** 21),) * 2
    assert dask.compute(*readers, scheduler="threads") == ((True, 2.0 ** 21),) * 2


def test_task_error_keeps_its_class():
    @dask.delayed
    def fail(x):
        raise KeyError(f"no {x}")

    with pytest.raises(KeyError, match="no 3"):
        fail(3).compute(scheduler=ray_dask_get)


def test_enable_and_disable_restore_the_previous_scheduler():
    with dask.config.set(scheduler="threads"):
        with enable_dask_on_ray():
            assert dask.config.get("scheduler") is ray_dask_get
            assert int(da.arange(10, chunks=3).sum().compute()) == 45
        assert dask.config.get("scheduler") == "threads"
        enable_dask_on_ray(sync=True)
        assert dask.config.get("scheduler") is ray_dask_get_sync
        assert dask.config.get("dataframe.shuffle.method") == "tasks"
        disable_dask_on_ray()
        assert dask.config.get("scheduler") == "threads"
    with pytest.raises(ValueError, match="shuffle"):
        enable_dask_on_ray(shuffle="p2p")


def test_persist_computes_once_and_keeps_refs(tmp_path):
    marker = tmp_path / "runs"

    def produce(i):
        with open(marker, "a") as f:
            f.write("x")
        return np.full(1000, float(i))

    parts = [da.from_delayed(dask.delayed(produce)(i), shape=(1000,), dtype=float)
             for i in range(3)]
    array = da.concatenate(parts)
    with enable_dask_on_ray():
        persisted = array.persist()  # returns at once; the tasks run in the background
        assert float(persisted.sum().compute()) == 3000.0
        assert marker.read_text() == "xxx"
        assert float((persisted + 1).max().compute()) == 3.0
    assert marker.read_text() == "xxx"  # not recomputed
    # a persisted collection also computes under Dask's own schedulers
    assert float(persisted.sum().compute(scheduler="threads")) == 3000.0
    refs = ray_dask_get(dict(array.__dask_graph__()), array.__dask_keys__(), ray_persist=True)
    assert all(isinstance(ref, ray.ObjectRef) for ref in refs)
    assert np.concatenate(ray.get(refs)).sum() == 3000.0


def test_options_and_unknown_argument():
    array = da.ones(8, chunks=4)
    assert array.sum().compute(scheduler=ray_dask_get,
                               ray_remote_args={"num_cpus": 2}) == 8
    with pytest.raises(TypeError, match="ray_persist"):
        array.sum().compute(scheduler=ray_dask_get, ray_persits=True)


def test_dataset_to_dask_and_from_dask_run_on_raylite():
    ds = ray.data.from_items([{"a": i, "b": float(i) * 2} for i in range(12)], parallelism=3)
    ddf = ds.to_dask()
    assert ddf.npartitions == 3
    with enable_dask_on_ray():
        assert ddf.b.sum().compute() == sum(2.0 * i for i in range(12))
    assert ddf.a.max().compute(scheduler="threads") == 11

    frame = pd.DataFrame({"x": np.arange(10), "y": np.arange(10) * 0.5})
    back = ray.data.from_dask(dd.from_pandas(frame, npartitions=2).assign(z=lambda f: f.x + 1))
    assert back.num_blocks() == 2 and back.count() == 10
    assert sorted(r["z"] for r in back.take_all()) == list(range(1, 11))
