"""raylite.data: the book's examples, transforms, consumption, fusion, backpressure, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import time

import pytest

import raylite as ray
from _support import Counter

pytest.importorskip("pyarrow")
pytest.importorskip("pandas")


pytestmark = pytest.mark.usefixtures("ray")  # conftest: a 2-CPU runtime for this module


# ==========================================================================================
# the book: Examples 1-2, 1-3 and 1-4, run as written
# ==========================================================================================
EXAMPLE_1_2 = """
import raylite as ray

items = [{"name": str(i), "data": i} for i in range(10000)]
ds = ray.data.from_items(items)
ds.show(5)
"""

EXAMPLE_1_3 = """
squares = ds.map(lambda x: x["data"] ** 2)

evens = squares.filter(lambda x: x % 2 == 0)
evens.count()

cubes = evens.flat_map(lambda x: [x, x**3])
sample = cubes.take(10)
print(sample)
"""

EXAMPLE_1_4 = """
pipe = ds.window()
result = pipe\\
    .map(lambda x: x["data"] ** 2)\\
    .filter(lambda x: x % 2 == 0)\\
    .flat_map(lambda x: [x, x**3])
result.show(10)
"""

BOOK_SHOW_5 = """\
ArrowRow({'name': '0', 'data': 0})
ArrowRow({'name': '1', 'data': 1})
ArrowRow({'name': '2', 'data': 2})
ArrowRow({'name': '3', 'data': 3})
ArrowRow({'name': '4', 'data': 4})
"""

FIRST_TEN = [0, 0, 4, 64, 16, 4096, 36, 46656, 64, 262144]


def test_book_examples_1_2_to_1_4(capsys):
    namespace: dict = {}
    exec(EXAMPLE_1_2, namespace)
    assert capsys.readouterr().out == BOOK_SHOW_5

    exec(EXAMPLE_1_3, namespace)
    assert namespace["evens"].count() == 5000
    assert capsys.readouterr().out == f"{FIRST_TEN}\n"
    assert namespace["sample"] == FIRST_TEN

    exec(EXAMPLE_1_4, namespace)
    assert capsys.readouterr().out == "".join(f"{v}\n" for v in FIRST_TEN)


def test_range_is_plain_ints_and_range_table_has_value_column():
    ds = ray.data.range(10000)
    assert ds.take(5) == [0, 1, 2, 3, 4]
    assert ds.map(lambda x: x ** 2).take(4) == [0, 1, 4, 9]
    assert ds.count() == 10000
    assert ds.schema() is int
    table = ray.data.range_table(3)
    assert table.take_all() == [{"value": 0}, {"value": 1}, {"value": 2}]
    assert table.columns() == ["value"]


def test_rows_are_dicts_and_map_to_ints_is_not_tabular():
    ds = ray.data.from_items([{"data": i} for i in range(10)])
    row = ds.take(1)[0]
    assert isinstance(row, dict) and row == {"data": 0} and repr(row) == "ArrowRow({'data': 0})"
    squares = ds.map(lambda x: x["data"] ** 2)
    assert squares.take_all() == [i * i for i in range(10)]
    assert squares.schema() is int and squares.columns() is None
    assert repr(ds) == "Dataset(num_blocks=1, num_rows=10, schema={data: int64})"


def test_the_book_examples_run_on_python_rows_without_pyarrow_or_pandas():
    """Cold start: Examples 1-2/1-3 import neither pyarrow nor pandas nor numpy in the driver
    (together they cost ~0.5 s), yet the rows still print as ArrowRow and the schema is
    Arrow's when asked for."""
    code = EXAMPLE_1_2 + EXAMPLE_1_3 + textwrap.dedent("""
        import sys
        print([m for m in ("pyarrow", "pandas", "numpy") if m in sys.modules])
        print(repr(ds))
        print(ds.schema().types)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    lines = out.stdout.splitlines()
    assert lines[:5] == BOOK_SHOW_5.splitlines()
    assert lines[5] == str(FIRST_TEN)
    assert lines[6] == "[]"
    assert lines[7] == "Dataset(num_blocks=10, num_rows=10000, schema={name: string, data: int64})"
    assert lines[8] == "[DataType(string), DataType(int64)]"


def test_import_raylite_stays_free_of_pyarrow():
    code = ("import sys, raylite, raylite.data; "
            "print('pyarrow' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ==========================================================================================
# row-wise transforms and batches
# ==========================================================================================
def test_map_filter_flat_map_keep_order_across_blocks():
    ds = ray.data.range(100, parallelism=7)
    out = ds.map(lambda x: x + 1).filter(lambda x: x % 3 == 0).flat_map(lambda x: [x, -x])
    expected = [y for x in range(1, 101) if x % 3 == 0 for y in (x, -x)]
    assert out.take_all() == expected
    assert out.count() == len(expected)


def test_map_returning_dicts_makes_a_table():
    ds = ray.data.range(4).map(lambda x: {"x": x, "sq": x * x})
    assert ds.columns() == ["x", "sq"]
    assert ds.take_all()[3] == {"x": 3, "sq": 9}


@pytest.mark.parametrize("batch_format, check", [
    ("pandas", lambda b: type(b).__name__ == "DataFrame"),
    ("default", lambda b: type(b).__name__ == "DataFrame"),
    ("pyarrow", lambda b: type(b).__name__ == "Table"),
    ("numpy", lambda b: isinstance(b, dict) and b["a"].dtype.kind == "i"),
])
def test_map_batches_formats_on_tables(batch_format, check):
    ds = ray.data.from_items([{"a": i} for i in range(10)], parallelism=2)

    def double(batch):
        assert check(batch), type(batch)
        if batch_format == "pyarrow":
            import pyarrow.compute as pc
            return batch.set_column(0, "a", pc.multiply(batch.column("a"), 2))
        if batch_format == "numpy":
            return {"a": batch["a"] * 2}
        return batch.assign(a=batch["a"] * 2)

    out = ds.map_batches(double, batch_size=3, batch_format=batch_format)
    assert [r["a"] for r in out.take_all()] == [2 * i for i in range(10)]


def test_map_batches_batch_size_and_non_tabular_batches():
    sizes = ray.data.range(10, parallelism=1).map_batches(lambda b: [len(b)], batch_size=4)
    assert sizes.take_all() == [4, 4, 2]
    tripled = ray.data.range(6).map_batches(lambda b: b * 3, batch_format="numpy")
    assert tripled.take_all() == [0, 3, 6, 9, 12, 15]
    whole_blocks = ray.data.range(10, parallelism=2).map_batches(lambda b: [len(b)],
                                                                 batch_size=None, num_cpus=0.5)
    assert whole_blocks.take_all() == [5, 5]
    assert ray.data.range(4).map(lambda x: -x, num_cpus=0.25).take_all() == [0, -1, -2, -3]


def test_map_batches_with_a_callable_class():
    class AddOffset:
        def __init__(self, offset):
            self.offset = offset

        def __call__(self, batch):
            return [x + self.offset for x in batch]

    ds = ray.data.range(5).map_batches(AddOffset, fn_constructor_args=(100,), compute="actors")
    assert ds.take_all() == [100, 101, 102, 103, 104]


class _Tagged:
    """A stateful batch function: remembers its process and which instance it is."""

    def __init__(self, counter, offset=0):
        ray.get(counter.add.remote(1))  # one construction per actor
        self.offset = offset
        self.tag = (os.getpid(), id(self))

    def __call__(self, batch):
        return [(x + self.offset, self.tag) for x in batch]


@pytest.mark.parametrize("options", [
    {"compute": "actors"},
    {"concurrency": (1, 2)},
    {"compute": "ActorPoolStrategy(size=2)"},
    {},  # a class runs on an actor pool even when not told
])
def test_callable_class_runs_on_an_actor_pool_built_once_per_actor(options):
    if options.get("compute") == "ActorPoolStrategy(size=2)":
        options = {"compute": ray.data.ActorPoolStrategy(size=2)}
    counter = Counter.remote()
    ds = ray.data.range(40, parallelism=8).map(lambda x: x + 1).map_batches(
        _Tagged, batch_size=3, fn_constructor_args=(counter,),
        fn_constructor_kwargs={"offset": 100}, **options)
    rows = ds.take_all()
    assert [x for x, _ in rows] == list(range(101, 141))
    actors = ds._stats.actors_started
    assert 1 <= actors <= 2
    assert ray.get(counter.value.remote()) == actors  # constructed once per actor
    assert len({tag for _, tag in rows}) == actors
    assert ds.stats().startswith(f"8 tasks, {actors} actors")


def test_actor_pool_options_and_errors():
    with pytest.raises(ValueError, match=r"compute='gpu'.*'tasks', 'actors' or ActorPoolStr"):
        ray.data.range(3).map_batches(lambda b: b, compute="gpu")
    with pytest.raises(ValueError, match=r"concurrency=0.*positive int"):
        ray.data.range(3).map_batches(lambda b: b, concurrency=0)
    with pytest.raises(ValueError, match="max_size .1. is smaller than min_size .2."):
        ray.data.ActorPoolStrategy(2, 1)
    with pytest.raises(ValueError, match="positive int"):
        ray.data.ActorPoolStrategy(size=0)

    class Broken:
        def __init__(self):
            raise OSError("no model file")

        def __call__(self, batch):
            return batch

    with pytest.raises(OSError, match=r"map_batches\(Broken\) failed on constructing Broken"):
        ray.data.range(3).map_batches(Broken, compute="actors").take_all()
    plain = ray.data.range(6, parallelism=2).map(lambda x: -x, compute="actors", num_cpus=0.5)
    assert plain.take_all() == [0, -1, -2, -3, -4, -5]
    too_big = ray.data.range(4, parallelism=2).map_batches(
        lambda b: b, compute=ray.data.ActorPoolStrategy(size=3), num_cpus=1)
    with pytest.warns(UserWarning, match="pool of 3 actors, each with num_cpus=1, does not fit"
                                         " in the cluster; using 2"):
        assert too_big.take_all() == [0, 1, 2, 3]
    window = ray.data.range(6, parallelism=3).window(blocks_per_window=1).map_batches(
        lambda b: [x * 2 for x in b], compute=ray.data.ActorPoolStrategy(size=1))
    assert window.take_all() == [0, 2, 4, 6, 8, 10]


def test_numpy_batches_of_range_skip_python_ints_but_match():
    fast = ray.data.range(1000, parallelism=3).map_batches(
        lambda b: {"y": b * 2}, batch_format="numpy", batch_size=128)
    slow = ray.data.range(1000, parallelism=3).map(lambda x: x).map_batches(
        lambda b: {"y": b * 2}, batch_format="numpy", batch_size=128)
    assert fast.take_all() == slow.take_all() == [{"y": 2 * i} for i in range(1000)]
    with pytest.raises(ValueError, match=r"map_batches\(bad\) failed on a batch of 128 rows "
                                         r"\(rows 256..\) starting with row 256"):
        def bad(batch):
            if batch[0] == 256:
                raise ValueError("nope")
            return batch
        ray.data.range(1000, parallelism=1).map_batches(bad, batch_format="numpy",
                                                        batch_size=128).take_all()


# ==========================================================================================
# progress bars
# ==========================================================================================
class _FakeTerminal:
    """A text stream that says it is a terminal."""

    def __init__(self):
        self.parts: list[str] = []

    def write(self, text):
        self.parts.append(text)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return True


def test_progress_bars_are_off_when_not_a_terminal(capsys):
    from raylite.data import _progress
    assert not _progress.bars_enabled()  # pytest captures stdout: not a terminal
    ray.data.range(100, parallelism=4).map(lambda x: x).take_all()
    assert capsys.readouterr().err == ""


def test_progress_bar_shows_one_line_per_operator_on_a_terminal(monkeypatch):
    pytest.importorskip("rich")
    monkeypatch.delenv("RAYLITE_PROGRESS", raising=False)
    context = ray.data.DataContext.get_current()
    monkeypatch.setattr(context, "progress_bar_delay_s", 0.0)
    terminal = _FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    ray.data.range(100, parallelism=4).map(lambda x: x).filter(lambda x: x % 2).take_all()
    text = "".join(terminal.parts)
    assert "map(<lambda>)->filter(<lambda>)" in text and "4/4" in text
    monkeypatch.setattr(context, "enable_progress_bars", False)
    terminal.parts.clear()
    ray.data.range(10).map(lambda x: x).take_all()
    assert terminal.parts == []
    monkeypatch.setattr(context, "enable_progress_bars", True)
    monkeypatch.setenv("RAYLITE_PROGRESS", "0")   # raylite's switch for every library's bars
    ray.data.range(10).map(lambda x: x).take_all()
    assert terminal.parts == []


def test_columns_add_drop_select():
    ds = ray.data.from_items([{"a": i, "b": str(i)} for i in range(4)])
    added = ds.add_column("c", lambda df: df["a"] * 10)
    assert added.take(2) == [{"a": 0, "b": "0", "c": 0}, {"a": 1, "b": "1", "c": 10}]
    assert added.drop_columns(["b"]).columns() == ["a", "c"]
    assert added.select_columns(["c", "a"]).take(1) == [{"c": 0, "a": 0}]
    assert list(added.select_columns("c").take(1)[0]) == ["c"]


# ==========================================================================================
# consuming
# ==========================================================================================
def test_iter_rows_iter_batches_and_conversions():
    ds = ray.data.range_table(10, parallelism=3)
    assert [r["value"] for r in ds.iter_rows()] == list(range(10))
    batches = list(ds.iter_batches(batch_size=4, batch_format="numpy"))
    assert [b["value"].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [len(b) for b in ds.iter_batches(batch_size=4, drop_last=True)] == [4, 4]
    assert ds.to_pandas()["value"].tolist() == list(range(10))
    assert ds.to_numpy().tolist() == list(range(10))
    assert ray.data.range(3).to_numpy().tolist() == [0, 1, 2]
    assert ray.data.range(3).to_pandas()["value"].tolist() == [0, 1, 2]


def test_show_take_count_schema_num_blocks(capsys):
    ds = ray.data.range(50, parallelism=5)
    ds.show(3)
    assert capsys.readouterr().out == "0\n1\n2\n"
    assert ds.take(0) == [] and ds.take(100) == list(range(50))
    assert ds.num_blocks() == 5 and ds.count() == 50
    table = ray.data.from_items([{"a": 1.5, "b": "x"}])
    assert str(table.schema()) == "a: double\nb: string"


def test_materialize_runs_once_and_keeps_blocks():
    counter = Counter.remote()
    ds = ray.data.range(20, parallelism=4).map_batches(
        lambda b, c=counter: (ray.get(c.add.remote(1)), b)[1], batch_size=None)
    done = ds.materialize()
    assert ray.get(counter.value.remote()) == 4
    assert done.count() == 20 and done.take_all() == list(range(20))
    assert ray.get(counter.value.remote()) == 4  # nothing ran again


def test_dataset_travels_into_tasks():
    shards = ray.data.range(100, parallelism=4).map(lambda x: x * 2).split(2)

    @ray.remote
    def total(shard):
        return sum(shard.iter_rows())

    assert ray.get([total.remote(s) for s in shards]) == [sum(range(0, 100, 2)),
                                                         sum(range(100, 200, 2))]


# ==========================================================================================
# fusion and backpressure
# ==========================================================================================
def test_row_stages_fuse_into_one_task_per_block():
    def task_id(_=None):
        return ray.get_runtime_context().get_task_id()

    ds = ray.data.range(400, parallelism=4)
    out = (ds.map(lambda x: (x, task_id()))
             .filter(lambda r: r[0] % 2 == 0)
             .map(lambda r: (r[0], r[1], task_id())))
    rows = out.take_all()
    assert len(rows) == 200
    assert all(first == second for _, first, second in rows)  # both maps ran in one task
    assert len({first for _, first, _ in rows}) == 4
    assert out._stats.tasks_submitted == 4
    assert out._plan.describe() == ["map(<lambda>)->filter(<lambda>)->map(<lambda>)"]
    assert out.stats().startswith("4 tasks")


def test_backpressure_bounds_blocks_in_flight():
    bound = 2 * int(ray.cluster_resources()["CPU"])
    started = Counter.remote()

    def mark(block, counter=started):
        ray.get(counter.add.remote(1))
        return block

    ds = ray.data.range(40 * 100, parallelism=40).map_batches(mark, batch_size=None)
    for consumed, batch in enumerate(ds.iter_batches(batch_size=None)):
        assert len(batch) == 100
        assert ray.get(started.value.remote()) <= consumed + bound
    stats = ds._stats
    assert stats.tasks_submitted == 40 and stats.max_in_flight == bound
    assert 1 <= stats.peak_in_flight <= bound
    assert max(stats.in_flight_at_output) <= bound


def test_take_runs_only_the_blocks_it_needs():
    ds = ray.data.range(100 * 10, parallelism=100).map(lambda x: x)
    assert ds.take(5) == [0, 1, 2, 3, 4]
    assert ds._stats.tasks_submitted <= 2 * int(ray.cluster_resources()["CPU"])


def test_early_stop_leaves_no_stuck_workers():
    """take() stops early with tasks still queued; those must finish, not hang a worker.

    (raylite's core can free a queued task's argument once the driver drops every ref to it
    and to its results; the worker running it then blocks forever in get and the scheduler
    starts a replacement. raylite.data holds task arguments until each task finishes.)
    """
    psutil = pytest.importorskip("psutil")
    ray.shutdown()
    ray.init(num_cpus=2)  # a fresh runtime: 2 workers, no actors
    ds = ray.data.from_items([{"data": i} for i in range(10000)])
    for _ in range(20):
        assert ds.map(lambda x: x["data"]).take(1) == [0]
    assert ray.get(_square.remote(3)) == 9
    # Workers started while others waited in get() are extra; idle, they exit within seconds.
    deadline = time.monotonic() + 20
    while True:
        pids = ray.core._api._backend_obj.worker_pids()  # this runtime's, not other tests' children
        workers = [pid for pid in pids if psutil.pid_exists(pid)
                   and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        if len(workers) <= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # polling the process table, with a deadline
    assert len(workers) <= 2, f"{len(workers)} worker processes for num_cpus=2"


@ray.remote
def _square(x):
    return x * x


# ==========================================================================================
# errors
# ==========================================================================================
@pytest.mark.parametrize("build, pattern", [
    (lambda ds: ds.map(lambda x: 1 / (x - 3)), r"map\(<lambda>\) failed on row 3"),
    (lambda ds: ds.filter(lambda x: [][x]), r"filter\(<lambda>\) failed on row 0"),
    (lambda ds: ds.flat_map(lambda x: x), r"flat_map\(<lambda>\) failed on row 0"),
])
def test_user_function_errors_name_the_operation_and_row(build, pattern):
    with pytest.raises(Exception, match=pattern) as info:
        build(ray.data.range(10, parallelism=2)).take_all()
    assert isinstance(info.value, (ZeroDivisionError, IndexError, TypeError))


def test_map_batches_error_names_function_and_batch():
    def explode(batch):
        raise KeyError("boom")

    with pytest.raises(KeyError, match=r"map_batches\(explode\) failed on a batch of 5 rows"):
        ray.data.range(10, parallelism=2).map_batches(explode).take()
    with pytest.raises(TypeError, match=r"map_batches\(<lambda>\) must return a batch"):
        ray.data.range(3).map_batches(lambda b: 7).take()


def test_bad_inputs_are_rejected_with_clear_errors():
    ds = ray.data.from_items([{"a": 1, "b": 2}])
    with pytest.raises(ValueError, match=r"'default', 'native', 'numpy', 'pandas', 'pyarrow'"):
        ds.map_batches(lambda b: b, batch_format="arrow")
    with pytest.raises(ValueError, match=r"batch_format must be one of"):
        next(ds.iter_batches(batch_format="tensor"))
    with pytest.raises(ValueError, match=r"no column 'zz'.*columns \['a', 'b'\]"):
        ds.select_columns(["zz"])
    with pytest.raises(ValueError, match=r"no column 'zz'.*columns \['a', 'b'\]"):
        ds.drop_columns("zz")
    with pytest.raises(ValueError, match=r"no column 'zz'.*columns \['a'\]"):
        ds.map(lambda r: {"a": r["a"]}).select_columns(["zz"]).take()  # found when it runs
    with pytest.raises(TypeError, match="needs a function"):
        ds.map(42)
    with pytest.raises(ValueError, match=r"batch_size=...\) must be a positive int"):
        ds.map_batches(lambda b: b, batch_size=0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        ds.map(lambda r: r, num_cpu=1)
    with pytest.raises(TypeError, match="takes a list of items"):
        ray.data.from_items("abc")
    with pytest.raises(ValueError, match="non-negative int"):
        ray.data.range(-1)
    with pytest.raises(ValueError, match="needs a tabular dataset.*ints"):
        ray.data.from_items([1, 2]).add_column("x", lambda df: df)  # known at once
    with pytest.raises(ValueError, match="needs a tabular dataset.*ints"):
        ray.data.range(3).add_column("x", lambda df: df).take()  # found when it runs
    with pytest.raises(ValueError, match="more rows than that"):
        ray.data.range(10).to_pandas(limit=5)
    with pytest.raises(TypeError, match="not iterable"):
        iter(ray.data.range(3))


def test_datasets_work_without_explicit_init():
    code = textwrap.dedent("""
        import raylite as ray
        print(ray.data.range(10).filter(lambda x: x % 2).take(3))
    """)
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60, env=env)
    assert out.stdout.strip() == "[1, 3, 5]"
