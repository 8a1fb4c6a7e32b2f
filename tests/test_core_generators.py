"""Ray generators (tasks and actor methods that yield), from Ray's "Ray Generators" and
"Dynamic generators" documentation: num_returns="streaming" (the default for a generator
function), "dynamic", and an exact int count."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from raylite import exceptions


def _signal(ray):
    """A threaded actor holding an event: the generator waits on it, the caller sets it."""
    @ray.remote(max_concurrency=4)
    class Signal:
        def __init__(self):
            self.event = threading.Event()

        def send(self):
            self.event.set()

        def wait(self, timeout):
            return self.event.wait(timeout)

    return Signal.remote()


def test_streaming_is_the_default_and_yields_each_value_in_order(ray):
    @ray.remote
    def task():
        for i in range(5):
            yield i

    gen = task.remote()
    assert isinstance(gen, ray.ObjectRefGenerator)
    assert [ray.get(ref) for ref in gen] == [0, 1, 2, 3, 4]
    with pytest.raises(StopIteration):
        next(gen)

    @ray.remote(num_returns="streaming")
    def explicit(n):
        yield from range(n)

    gen = explicit.remote(3)
    assert ray.get(next(gen)) == 0
    assert ray.get(next(gen)) == 1
    assert ray.get(next(gen)) == 2
    with pytest.raises(StopIteration):
        next(gen)
    assert [ray.get(r) for r in explicit.options(num_returns="streaming").remote(0)] == []


def test_large_items_and_a_generator_consumed_inside_a_task(ray):
    import numpy as np

    @ray.remote
    def arrays(n):
        for i in range(n):
            yield np.full(500_000, i, dtype=np.float32)  # 2 MB: in shared memory, not inline

    @ray.remote
    def consume(n):
        return [float(ray.get(ref)[0]) for ref in arrays.remote(n)]

    assert [float(ray.get(ref)[-1]) for ref in arrays.remote(3)] == [0.0, 1.0, 2.0]
    assert ray.get(consume.remote(3)) == [0.0, 1.0, 2.0]


def test_the_caller_gets_items_before_the_generator_finishes(ray):
    signal = _signal(ray)

    @ray.remote
    def task(signal):
        yield "first"
        # only the caller, having received "first", sets the event: so this is True only if
        # the first item reached the caller while this task was still running
        yield ray.get(signal.wait.remote(30))

    gen = task.remote(signal)
    assert ray.get(next(gen)) == "first"
    assert not gen.is_finished()
    signal.send.remote()
    assert ray.get(next(gen)) is True
    with pytest.raises(StopIteration):
        next(gen)
    assert gen.is_finished()


def test_an_exception_surfaces_at_the_item_where_it_was_raised(ray):
    @ray.remote
    def task():
        for i in range(5):
            if i == 2:
                raise ValueError(f"failed at {i}")
            yield i

    gen = task.remote()
    assert ray.get(next(gen)) == 0
    assert ray.get(next(gen)) == 1
    ref = next(gen)
    with pytest.raises(ValueError, match="failed at 2") as info:
        ray.get(ref)
    assert isinstance(info.value, exceptions.RayTaskError)
    with pytest.raises(StopIteration):
        next(gen)
    assert ray.get(gen.completed()) == 3  # the task itself finished: its items, error included


def test_async_for_in_asyncio_code(ray):
    @ray.remote
    def task(n):
        for i in range(n):
            yield i * i

    async def consume():
        return [await ref async for ref in task.remote(4)]

    assert asyncio.run(consume()) == [0, 1, 4, 9]


def test_generators_on_sync_threaded_and_async_actors(ray):
    @ray.remote
    class Actor:
        def f(self):
            for i in range(3):
                yield i

    @ray.remote(max_concurrency=3)
    class ThreadedActor:
        def f(self):
            for i in range(3):
                yield i

    @ray.remote
    class DecoratedActor:
        @ray.method(num_returns="dynamic")
        def dyn(self):
            yield from range(3)

        @ray.method()  # no num_returns: still Ray 2.x's streaming default for a generator
        def f(self):
            yield from range(3)

    decorated = DecoratedActor.remote()
    assert ray.get(list(ray.get(decorated.dyn.remote()))) == [0, 1, 2]
    assert [ray.get(ref) for ref in decorated.f.remote()] == [0, 1, 2]

    @ray.remote
    class AsyncActor:
        async def f(self):
            for i in range(3):
                await asyncio.sleep(0)
                yield i

    for cls in (Actor, ThreadedActor, AsyncActor):
        actor = cls.remote()
        assert [ray.get(ref) for ref in actor.f.remote()] == [0, 1, 2], cls


def test_wait_on_generators_and_refs(ray):
    signal = _signal(ray)

    @ray.remote
    def task(signal):
        ray.get(signal.wait.remote(30))
        yield "item"

    gen = task.remote(signal)
    plain = ray.put(1)
    ready, unready = ray.wait([gen], timeout=0)
    assert (ready, unready) == ([], [gen])
    with pytest.raises(ValueError, match="more than once"):
        ray.wait([gen, plain, ray.ObjectRef(plain.binary())])
    ready, unready = ray.wait([gen, plain], num_returns=1)
    assert ready == [plain] and unready == [gen]
    signal.send.remote()
    ready, unready = ray.wait([gen, plain], num_returns=2, timeout=30)
    assert ready == [gen, plain] and unready == []
    assert ray.get(next(gen)) == "item"
    ready, _ = ray.wait([gen], timeout=30)  # the end: next() would not block either
    assert ready == [gen]
    with pytest.raises(StopIteration):
        next(gen)


def test_cancel_a_streaming_task(ray):
    signal = _signal(ray)

    @ray.remote(max_retries=0)
    def task(signal):
        yield 0
        ray.get(signal.wait.remote(60))  # interrupted here by cancel()
        yield 1

    gen = task.remote(signal)
    assert ray.get(next(gen)) == 0
    ray.cancel(gen)
    ref = next(gen)
    with pytest.raises(exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)
    with pytest.raises(StopIteration):
        next(gen)
    with pytest.raises(exceptions.TaskCancelledError):
        ray.get(gen.completed())


def test_a_killed_worker_is_retried_without_duplicating_items(ray, tmp_path):
    marker = str(tmp_path / "attempted")

    @ray.remote(max_retries=2)
    def task(marker):
        attempt = 2 if os.path.exists(marker) else 1
        for i in range(5):
            yield (i, attempt)
            if i == 1 and attempt == 1:
                open(marker, "w").close()
                os._exit(1)  # the worker dies after yielding two items

    items = [ray.get(ref) for ref in task.remote(marker)]
    assert [i for i, _ in items] == [0, 1, 2, 3, 4]
    assert items == [(0, 1), (1, 1), (2, 2), (3, 2), (4, 2)]


def test_retry_exceptions_reruns_a_generator_without_duplicating_items(ray, tmp_path):
    marker = str(tmp_path / "failed-once")

    @ray.remote(max_retries=1, retry_exceptions=True)
    def task(marker):
        attempt = 2 if os.path.exists(marker) else 1
        for i in range(4):
            if i == 2 and attempt == 1:
                open(marker, "w").close()
                raise ConnectionError("flaky")
            yield (i, attempt)

    assert [ray.get(ref) for ref in task.remote(marker)] == [(0, 1), (1, 1), (2, 2), (3, 2)]

    @ray.remote(max_retries=1, retry_exceptions=True)
    def always_fails():
        yield "kept"
        raise ConnectionError("still flaky")

    gen = always_fails.remote()
    assert ray.get(next(gen)) == "kept"
    with pytest.raises(ConnectionError, match="still flaky"):
        ray.get(next(gen))  # retries spent: the error comes after the items
    with pytest.raises(StopIteration):
        next(gen)


def test_dynamic_returns_one_ref_to_a_generator_of_refs(ray):
    @ray.remote(num_returns="dynamic")
    def split(array, chunk_size):
        for i in range(0, len(array), chunk_size):
            yield array[i:i + chunk_size]

    dynamic_ref = split.remote(list(range(10)), 4)
    ref_generator = ray.get(dynamic_ref)
    assert isinstance(ref_generator, ray.DynamicObjectRefGenerator)
    assert [ray.get(ref) for ref in ref_generator] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]

    @ray.remote
    def total(ref_generator):
        return sum(len(ray.get(ref)) for ref in ref_generator)

    assert ray.get(total.remote(dynamic_ref)) == 10  # resolved to the generator in a task


def test_an_int_num_returns_takes_exactly_that_many_yields(ray):
    @ray.remote(num_returns=3)
    def three():
        for i in range(3):
            yield i

    assert ray.get(list(three.remote())) == [0, 1, 2]
    refs = three.options(num_returns=2).remote()
    with pytest.raises(ValueError, match=r"three was declared with num_returns=2 but its "
                                         r"generator yielded 3"):
        ray.get(refs[0])

    @ray.remote
    class Actor:
        @ray.method(num_returns=2)
        def two(self):
            yield "a"
            yield "b"

    actor = Actor.remote()
    assert ray.get(actor.two.remote()) == ["a", "b"]
    with pytest.raises(ValueError, match=r"Actor.two was declared with num_returns=1"):
        ray.get(actor.two.options(num_returns=1).remote())


def test_bad_num_returns_and_passing_a_generator_are_refused(ray):
    @ray.remote
    def task():
        yield 1

    with pytest.raises(ValueError, match="'streaming' or 'dynamic'"):
        task.options(num_returns="stream")

    @ray.remote
    def use(gen):
        return gen

    gen = task.remote()
    with pytest.raises(TypeError, match="cannot be passed to another task"):
        use.remote(gen)
    with pytest.raises(TypeError, match=r"iterate it \(for ref in gen: get\(ref\)\)"):
        ray.get(gen)
    assert [ray.get(r) for r in gen] == [1]


def test_items_are_freed_with_the_generator(ray):
    store = ray.core._api._backend().store

    @ray.remote
    def task(n):
        for i in range(n):
            yield b"x" * 100

    anchor = ray.put(0)
    ray.get(anchor)  # get() settles the refs dropped so far
    before = len(store.entries)
    gen = task.remote(20)
    first = next(gen)
    ray.get(gen.completed())
    assert len(store.entries) >= before + 21  # the end and every item, taken or not
    del gen, first
    ray.get(anchor)
    assert len(store.entries) == before


def test_local_mode(ray):
    ray.shutdown()
    ray.init(local_mode=True)
    try:
        @ray.remote
        def task(n):
            for i in range(n):
                if i == 2:
                    raise KeyError("two")
                yield i

        gen = task.remote(4)
        assert ray.get(next(gen)) == 0
        assert ray.get(next(gen)) == 1
        with pytest.raises(KeyError):
            ray.get(next(gen))
        with pytest.raises(StopIteration):
            next(gen)

        @ray.remote(num_returns="dynamic")
        def dyn():
            yield "a"
            yield "b"

        assert ray.get(list(ray.get(dyn.remote()))) == ["a", "b"]

        @ray.remote(num_returns=2)
        def two():
            yield 1

        with pytest.raises(ValueError, match="yielded 1 value"):
            ray.get(two.remote()[0])

        @ray.remote
        class Actor:
            def f(self):
                yield from "xy"

        assert [ray.get(r) for r in Actor.remote().f.remote()] == ["x", "y"]
    finally:
        ray.shutdown()
