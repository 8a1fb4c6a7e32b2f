"""raylite.data and other frameworks: torch (iter_torch_batches, to_torch, from_torch),
TensorFlow (to_tf, kept tiny: importing TensorFlow takes seconds) and Dask (to/from_dask)."""

from __future__ import annotations

import pytest

import raylite as ray

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")


pytestmark = pytest.mark.usefixtures("ray")  # conftest: a 2-CPU runtime for this module


def test_iter_torch_batches_gives_tensors():
    torch = pytest.importorskip("torch")
    ds = ray.data.from_items([{"x": float(i), "y": i % 2} for i in range(10)], parallelism=3)
    batches = list(ds.iter_torch_batches(batch_size=4, dtypes={"x": torch.float32}))
    assert [len(b["x"]) for b in batches] == [4, 4, 2]
    assert batches[0]["x"].dtype == torch.float32 and batches[0]["y"].dtype == torch.int64
    assert torch.cat([b["x"] for b in batches]).tolist() == [float(i) for i in range(10)]
    plain = next(ray.data.range(6).iter_torch_batches(batch_size=None))
    assert isinstance(plain, torch.Tensor) and plain.tolist() == list(range(6))
    images = next(ray.data.range_tensor(4, shape=(2, 2)).iter_torch_batches(batch_size=4))
    assert images["value"].shape == (4, 2, 2)
    collated = next(ds.iter_torch_batches(batch_size=2, collate_fn=lambda b: len(b["x"])))
    assert collated == 2
    pipeline = ray.data.range(4, parallelism=2).window(blocks_per_window=1)
    assert [t.tolist() for t in pipeline.iter_torch_batches(batch_size=3)] == [[0, 1, 2], [3]]
    with pytest.raises(TypeError, match="cannot become a tensor"):
        next(ray.data.from_items([{"s": "text"}]).iter_torch_batches())


def test_to_torch_and_from_torch():
    torch = pytest.importorskip("torch")
    ds = ray.data.from_items([{"a": float(i), "b": 2.0 * i, "label": i % 2} for i in range(6)])
    features, labels = next(iter(ds.to_torch(label_column="label", batch_size=4)))
    assert features.shape == (4, 2) and labels.shape == (4, 1)
    assert features[1].tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="no such column"):
        ds.to_torch(label_column="nope")

    samples = torch.utils.data.TensorDataset(torch.arange(5), torch.arange(5) * 10)
    back = ray.data.from_torch(samples)
    assert back.count() == 5
    item = back.take(3)[2]["item"]
    assert [int(v) for v in item] == [2, 20]
    with pytest.raises(TypeError, match="torch Dataset"):
        ray.data.from_torch(42)


def test_to_tf_batches_features_and_labels():
    tf = pytest.importorskip("tensorflow")
    ds = ray.data.from_items([{"x": float(i), "z": i, "y": i % 2} for i in range(5)])
    batches = list(ds.to_tf("x", "y", batch_size=2))
    assert [len(x) for x, _ in batches] == [2, 2, 1]
    assert batches[0][0].dtype == tf.float64 and batches[2][1].numpy().tolist() == [0]
    as_dicts = next(iter(ds.to_tf(["x", "z"], batch_size=5)))
    assert sorted(as_dicts) == ["x", "z"] and as_dicts["z"].numpy().tolist() == list(range(5))
    with pytest.raises(ValueError, match=r"no column 'w'"):
        ds.to_tf("w", "y")


def test_dask_round_trip():
    pytest.importorskip("dask.dataframe")
    import dask.dataframe as dd
    frame = pd.DataFrame({"a": range(10), "b": [str(i) for i in range(10)]})
    ds = ray.data.from_dask(dd.from_pandas(frame, npartitions=3))
    assert ds.num_blocks() == 3 and ds.count() == 10
    assert [r["a"] for r in ds.take_all()] == list(range(10))
    back = ds.map(lambda r: {"a": r["a"] * 2, "b": r["b"]}).to_dask()
    assert back.npartitions == 3
    computed = back.compute()
    assert computed["a"].tolist() == [2 * i for i in range(10)]
    assert computed["b"].tolist() == frame["b"].tolist()
    with pytest.raises(TypeError, match="dask DataFrame"):
        ray.data.from_dask(frame)
