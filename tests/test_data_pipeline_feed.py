"""Pipelines and iterators that feed trainers: DatasetPipeline.repeat/iter_epochs/rewindow/
split/write_*, per-window shuffles, and Dataset.streaming_split's DataIterators consumed by n
actors at the same time."""

from __future__ import annotations

import concurrent.futures
import os

import pytest

import raylite as ray

np = pytest.importorskip("numpy")
pytest.importorskip("pyarrow")

pytestmark = pytest.mark.usefixtures("ray")  # conftest: a 2-CPU runtime for this module


@ray.remote(num_cpus=0)
class Trainer:
    """A train worker: consumes its pipeline or iterator, epoch by epoch."""

    def epochs_of_pipeline(self, pipeline):
        return [sorted(epoch.take_all()) for epoch in pipeline.iter_epochs()]

    def rows_of_pipeline(self, pipeline):
        return [row for row in pipeline.iter_rows()]

    def epochs_of_iterator(self, iterator, epochs):
        seen = []
        for _ in range(epochs):
            seen.append([int(v) for batch in iterator.iter_batches(batch_size=3,
                                                                   batch_format="numpy")
                         for v in batch])
        return seen


def test_repeat_and_iter_epochs():
    pipe = ray.data.range(6, parallelism=3).window(blocks_per_window=2).repeat(3)
    assert pipe.num_windows() == 6
    epochs = list(pipe.iter_epochs())
    assert len(epochs) == 3
    assert [e.take_all() for e in epochs] == [list(range(6))] * 3
    assert ray.data.range(4).repeat(2).take_all() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert [e.count() for e in ray.data.range(3).repeat(2).iter_epochs()] == [3, 3]
    forever = ray.data.range(2).repeat()
    assert forever.take(5) == [0, 1, 0, 1, 0]
    assert len(list(forever.iter_epochs(max_epoch=4))) == 4
    with pytest.raises(ValueError):
        ray.data.range(2).window(blocks_per_window=1).repeat(0)


def test_shuffle_and_repartition_each_window():
    pipe = ray.data.range(40, parallelism=4).window(blocks_per_window=2)
    windows = list(pipe.random_shuffle_each_window(seed=1).iter_datasets())
    assert [sorted(w.take_all()) for w in windows] == [list(range(20)), list(range(20, 40))]
    assert [w.take_all() for w in windows] != [list(range(20)), list(range(20, 40))]
    assert [w.num_blocks() for w in pipe.repartition_each_window(5).iter_datasets()] == [5, 5]


def test_rewindow_keeps_epochs_apart():
    pipe = ray.data.range(6, parallelism=6).window(blocks_per_window=1).repeat(2)
    rewindowed = pipe.rewindow(blocks_per_window=4)
    sizes = [w.num_blocks() for w in rewindowed.iter_datasets()]
    assert sizes == [4, 2, 4, 2]  # no window spans the epoch boundary
    assert [e.take_all() for e in rewindowed.iter_epochs()] == [list(range(6))] * 2
    merged = pipe.rewindow(blocks_per_window=4, preserve_epoch=False)
    assert [w.num_blocks() for w in merged.iter_datasets()] == [4, 4, 4]


def test_split_is_consumed_by_actors_at_the_same_time():
    pipe = ray.data.range(40, parallelism=8).window(blocks_per_window=2).repeat(2)
    trainers = [Trainer.remote() for _ in range(2)]
    parts = pipe.split(2, equal=True, locality_hints=trainers)
    epochs = ray.get([t.epochs_of_pipeline.remote(p) for t, p in zip(trainers, parts)],
                     timeout=120)
    for epoch in range(2):
        together = sorted(epochs[0][epoch] + epochs[1][epoch])
        assert together == list(range(40))
        assert len(epochs[0][epoch]) == len(epochs[1][epoch]) == 20
    with pytest.raises(ValueError, match="one hint per split"):
        pipe.split(2, locality_hints=trainers[:1])


def test_split_holds_back_a_part_until_the_other_consumer_takes_its_own():
    # memory stays bounded: one split cannot run through the windows ahead of the other
    first, second = ray.data.range(8, parallelism=4).window(blocks_per_window=1).split(2)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        ahead = pool.submit(first.take_all)
        with pytest.raises(concurrent.futures.TimeoutError):
            ahead.result(timeout=1.0)  # waits for split 1 to take its parts
        behind = pool.submit(second.take_all)
        assert ahead.result(timeout=60) == [0, 2, 4, 6]
        assert behind.result(timeout=60) == [1, 3, 5, 7]


def test_pipeline_writes_window_by_window(tmp_path):
    pipe = ray.data.from_items([{"a": i, "b": str(i)} for i in range(9)],
                               parallelism=3).window(blocks_per_window=1)
    pipe.write_parquet(str(tmp_path / "pq"))
    pipe.write_csv(str(tmp_path / "csv"))
    pipe.write_json(str(tmp_path / "json"))
    for folder, reader in (("pq", ray.data.read_parquet), ("csv", ray.data.read_csv),
                           ("json", ray.data.read_json)):
        assert len(os.listdir(tmp_path / folder)) == 3
        assert [row["a"] for row in reader(str(tmp_path / folder)).take_all()] == list(range(9))


def test_streaming_split_feeds_n_workers_each_epoch():
    ds = ray.data.range(50, parallelism=7).map(lambda x: x * 2)
    iterators = ds.streaming_split(2, equal=True)
    trainers = [Trainer.remote() for _ in range(2)]
    seen = ray.get([t.epochs_of_iterator.remote(it, 2) for t, it in zip(trainers, iterators)],
                   timeout=120)
    for epoch in range(2):
        assert len(seen[0][epoch]) == len(seen[1][epoch]) == 25
        assert sorted(seen[0][epoch] + seen[1][epoch]) == [2 * i for i in range(50)]
    uneven = ray.data.range(10, parallelism=3).streaming_split(3)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        parts = list(pool.map(lambda it: list(it.iter_rows()), uneven))
    assert sorted(sum(parts, [])) == list(range(10))


def test_data_iterator_methods():
    torch = pytest.importorskip("torch")
    it = ray.data.from_items([{"x": float(i)} for i in range(5)]).iterator()
    batches = list(it.iter_torch_batches(batch_size=2))
    assert [b["x"].tolist() for b in batches] == [[0.0, 1.0], [2.0, 3.0], [4.0]]
    assert isinstance(batches[0]["x"], torch.Tensor)
    assert it.materialize().count() == 5
    assert [r["x"] for r in it.iter_rows()] == [0.0, 1.0, 2.0, 3.0, 4.0]
    shuffled = [b["x"].tolist() for b in it.iter_batches(
        batch_size=None, batch_format="numpy", local_shuffle_buffer_size=5, local_shuffle_seed=3)]
    assert sorted(sum(shuffled, [])) == [0.0, 1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="local_shuffle_buffer_size"):
        next(it.iter_batches(local_shuffle_buffer_size=0))
