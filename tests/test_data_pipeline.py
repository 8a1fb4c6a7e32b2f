"""raylite.data DatasetPipeline: windows, per-window transforms, one-window-ahead execution."""

from __future__ import annotations

import pytest

import raylite as ray

pytest.importorskip("pyarrow")


pytestmark = pytest.mark.usefixtures("ray")  # conftest: a 2-CPU runtime for this module


def test_window_splits_blocks_and_transforms_apply_per_window():
    pipe = ray.data.range(20, parallelism=5).window(blocks_per_window=2)
    assert pipe.num_windows() == 3
    windows = [w.take_all() for w in pipe.iter_datasets()]
    assert windows == [list(range(8)), list(range(8, 16)), list(range(16, 20))]
    out = pipe.map(lambda x: x * 2).filter(lambda x: x % 3 == 0).flat_map(lambda x: [x, -x])
    assert out.take_all() == [y for x in range(20) if (2 * x) % 3 == 0 for y in (2 * x, -2 * x)]
    assert out.take(3) == [0, 0, 6]
    assert pipe.count() == 20
    assert repr(out) == "DatasetPipeline(num_windows=3, num_stages=3)"


def test_windows_run_one_ahead_of_consumption():
    pipe = ray.data.range(40, parallelism=8).window(blocks_per_window=2).map(lambda x: x + 1)
    rows = pipe.iter_rows()
    assert next(rows) == 1
    # while window 0 is being consumed, window 1 is already submitted, and no further
    assert pipe._events == [("start", 0), ("start", 1), ("consume", 0)]
    assert list(rows) == list(range(2, 41))
    events = pipe._events
    for k in range(1, 3):
        assert events.index(("start", k)) < events.index(("consume", k - 1))
        assert events.index(("start", k + 1)) > events.index(("consume", k - 1))


def test_each_window_is_fused_into_one_task_per_block():
    pipe = ray.data.range(40, parallelism=4).window(blocks_per_window=2)
    windows = list(pipe.map(lambda x: x).filter(lambda x: True).iter_datasets())
    assert [w._stats.tasks_submitted for w in windows] == [2, 2]


def test_pipeline_batches_span_windows_and_map_batches():
    pipe = ray.data.range_table(10, parallelism=5).window(blocks_per_window=2)
    doubled = pipe.map_batches(lambda df: df * 2, batch_format="pandas")
    batches = list(doubled.iter_batches(batch_size=3, batch_format="numpy"))
    assert [b["value"].tolist() for b in batches] == [[0, 2, 4], [6, 8, 10], [12, 14, 16], [18]]
    with pytest.raises(ValueError, match="batch_format must be one of"):
        pipe.map_batches(lambda b: b, batch_format="feather")


def test_foreach_window_and_show(capsys):
    pipe = ray.data.range(6, parallelism=3).window(blocks_per_window=1)
    reversed_windows = pipe.foreach_window(lambda w: w.sort(descending=True))
    assert reversed_windows.take_all() == [1, 0, 3, 2, 5, 4]
    reversed_windows.show(3)
    assert capsys.readouterr().out == "1\n0\n3\n"
    with pytest.raises(TypeError, match="must return a Dataset"):
        pipe.foreach_window(lambda w: 42).take()


def test_repeat_yields_the_dataset_again():
    pipe = ray.data.range(3).repeat(2).map(lambda x: x * 10)
    assert pipe.take_all() == [0, 10, 20, 0, 10, 20]


def test_pipeline_errors_name_the_operation():
    pipe = ray.data.range(10, parallelism=2).window(blocks_per_window=1)
    with pytest.raises(ZeroDivisionError, match=r"map\(<lambda>\) failed on row 7"):
        pipe.map(lambda x: 1 / (x - 7)).take_all()
    with pytest.raises(ValueError, match="positive int"):
        ray.data.range(3).window(blocks_per_window=0)
