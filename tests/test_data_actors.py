"""raylite.data: callable classes on actor pools in map, filter and flat_map (Ray 2.x), the way
map_batches runs them: constructed once per actor, rows in order, clear errors."""

from __future__ import annotations

import os

import pytest

import raylite as ray
from _support import Counter

pytest.importorskip("pyarrow")


pytestmark = pytest.mark.usefixtures("ray")  # conftest: a 2-CPU runtime for this module


class _AddOffset:
    """map: counts its constructions, tags each row with the instance that made it."""

    def __init__(self, counter, offset=0):
        ray.get(counter.add.remote(1))
        self.offset = offset
        self.tag = (os.getpid(), id(self))

    def __call__(self, row):
        return (row + self.offset, self.tag)


class _IsMultiple:
    """filter: keeps multiples of ``n``."""

    def __init__(self, counter, n=2):
        ray.get(counter.add.remote(1))
        self.n = n

    def __call__(self, row):
        return row % self.n == 0


class _Repeat:
    """flat_map: each row ``times`` times, shifted by ``offset``."""

    def __init__(self, counter, times, *, offset=0):
        ray.get(counter.add.remote(1))
        self.times, self.offset = times, offset

    def __call__(self, row):
        return [row + self.offset] * self.times


CASES = {
    "map": (_AddOffset, (), {"offset": 100}, lambda x: x + 100),
    "filter": (_IsMultiple, (), {"n": 3}, lambda x: x % 3 == 0),
    "flat_map": (_Repeat, (2,), {"offset": 7}, lambda x: [x + 7] * 2),
}

OPTIONS = [
    {"concurrency": 2},
    {"concurrency": (1, 2)},
    {"compute": "ActorPoolStrategy(size=2)"},
    {"compute": "actors"},
    {},  # a class runs on an actor pool even when not told
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "default")
@pytest.mark.parametrize("operation", sorted(CASES))
def test_callable_class_in_row_transforms_matches_function_and_is_built_once_per_actor(
        operation, options):
    if options.get("compute") == "ActorPoolStrategy(size=2)":
        options = {"compute": ray.data.ActorPoolStrategy(size=2)}
    cls, extra_args, kwargs, function = CASES[operation]
    counter = Counter.remote()
    source = ray.data.range(40, parallelism=8)
    ds = getattr(source, operation)(cls, fn_constructor_args=(counter,) + extra_args,
                                    fn_constructor_kwargs=kwargs, **options)
    rows = ds.take_all()
    expected = getattr(source, operation)(function).take_all()
    if operation == "map":
        assert [x for x, _ in rows] == expected == list(range(100, 140))  # in order
        tags = {tag for _, tag in rows}
    else:
        assert rows == expected
    actors = ds._stats.actors_started
    assert 1 <= actors <= 2
    assert ray.get(counter.value.remote()) == actors  # constructed once per actor
    if operation == "map":
        assert len(tags) == actors
    assert ds.stats().startswith(f"8 tasks, {actors} actors")
    assert ds._plan.describe() == [f"{operation}({cls.__name__})"]


def test_fused_callable_classes_share_one_pool_and_are_each_built_once_per_actor():
    counter = Counter.remote()
    ds = (ray.data.range(30, parallelism=6)
          .map(_AddOffset, fn_constructor_args=(counter,), concurrency=1)
          .map(lambda pair: pair[0])
          .filter(_IsMultiple, fn_constructor_args=(counter,), fn_constructor_kwargs={"n": 2})
          .flat_map(_Repeat, fn_constructor_args=(counter, 1)))
    assert ds.take_all() == [x for x in range(30) if x % 2 == 0]
    assert ds._stats.actors_started == 1
    assert ray.get(counter.value.remote()) == 3  # three classes, one actor


def test_plain_functions_with_concurrency_still_run_in_tasks():
    for operation, function, expected in (("map", lambda x: x * 2, [0, 2, 4, 6]),
                                          ("filter", lambda x: x % 2, [1, 3]),
                                          ("flat_map", lambda x: [x], [0, 1, 2, 3])):
        ds = getattr(ray.data.range(4, parallelism=2), operation)(function, concurrency=2)
        assert ds.take_all() == expected
        assert ds._stats.actors_started == 0
        assert ds.stats().startswith("2 tasks, 2 blocks out")

    class Doubler:
        def __call__(self, row):
            return row * 2

    # an instance of a callable class is a plain callable: tasks are fine
    assert ray.data.range(3).map(Doubler(), compute="tasks").take_all() == [0, 2, 4]
    # classes whose instances are not callable (str, bool, list...) are plain functions
    as_text = ray.data.range(3).map(str, compute="tasks")
    assert as_text.take_all() == ["0", "1", "2"]
    assert as_text._stats.actors_started == 0
    assert ray.data.range(3).filter(bool).take_all() == [1, 2]
    assert ray.data.from_items(["ab"]).flat_map(list).take_all() == ["a", "b"]


@pytest.mark.parametrize("operation", ["map", "filter", "flat_map", "map_batches"])
def test_callable_class_errors_name_the_class_and_the_fix(operation):
    def apply(fn, **kwargs):
        return getattr(ray.data.range(3), operation)(fn, **kwargs)

    with pytest.raises(ValueError, match=rf"{operation}\(_IsMultiple, compute='tasks'\): "
                                         r"_IsMultiple is a callable class.*pass concurrency=n "
                                         r"or compute=ActorPoolStrategy\(size=n\)"):
        apply(_IsMultiple, compute="tasks")
    for bad in (0, -1, "2", True, (2, 1), (0, 2), (1, 2, 3)):
        with pytest.raises(ValueError,
                           match=rf"{operation}\(_IsMultiple, concurrency=.*\): the callable "
                                 r"class _IsMultiple runs on a pool of actors; pass "
                                 r"concurrency=n"):
            apply(_IsMultiple, concurrency=bad)
    with pytest.raises(ValueError, match=rf"{operation}\(concurrency=0\): expected a positive"):
        apply(lambda x: x, concurrency=0)
    with pytest.raises(ValueError, match=r"fn_constructor_args=/fn_constructor_kwargs=\) only "
                                         r"apply to a callable class"):
        apply(lambda x: x, fn_constructor_args=(1,))
    with pytest.raises(TypeError, match=r"fn_constructor_kwargs=\.\.\.\) must be a dict"):
        apply(_IsMultiple, fn_constructor_kwargs=[("n", 2)])
    with pytest.raises(ValueError, match=r"compute='gpu'"):
        apply(_IsMultiple, compute="gpu")


def test_constructor_failure_names_the_operation_and_class():
    class Broken:
        def __init__(self):
            raise OSError("no model file")

        def __call__(self, row):
            return row

    for operation in ("map", "filter", "flat_map"):
        ds = getattr(ray.data.range(3), operation)(Broken, concurrency=1)
        with pytest.raises(OSError, match=rf"{operation}\(Broken\) failed on constructing "
                                          r"Broken"):
            ds.take_all()


def test_row_function_errors_still_name_the_row():
    class Fails:
        def __call__(self, row):
            if row == 2:
                raise KeyError("bad")
            return row

    with pytest.raises(KeyError, match=r"map\(Fails\) failed on row 2"):
        ray.data.range(4).map(Fails, concurrency=1).take_all()


def test_pipeline_row_transforms_take_callable_classes():
    counter = Counter.remote()
    pipe = ray.data.range(12, parallelism=4).window(blocks_per_window=2)
    out = (pipe.map(_AddOffset, fn_constructor_args=(counter,),
                    fn_constructor_kwargs={"offset": 1}, concurrency=1)
           .map(lambda pair: pair[0])
           .filter(_IsMultiple, fn_constructor_args=(counter,), concurrency=1)
           .flat_map(_Repeat, fn_constructor_args=(counter, 2), concurrency=1))
    assert out.take_all() == [y for x in range(1, 13) if x % 2 == 0 for y in (x, x)]
    # each window runs its own pool of one actor: each class is built once per window
    assert ray.get(counter.value.remote()) == 3 * pipe.num_windows()
    with pytest.raises(ValueError, match=r"filter\(_IsMultiple, compute='tasks'\)"):
        pipe.filter(_IsMultiple, compute="tasks")  # checked at once, not at the first window
    with pytest.raises(ValueError, match=r"map\(_AddOffset, concurrency=0\)"):
        pipe.map(_AddOffset, concurrency=0)
