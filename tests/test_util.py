"""Contract tests of raylite.util: ActorPool, Queue, multiprocessing.Pool, inspect_serializability.

Nothing here sleeps to wait for something: work that must stay unfinished waits on a ``Signal``
actor's event, and every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import os
import pickle
import queue as stdlib_queue
import threading

import pytest

import raylite
from raylite.util import ActorPool, Queue, inspect_serializability
from raylite.util.multiprocessing import Pool
from raylite.util.queue import Empty, Full

WAIT = 20  # seconds: the most any test waits for something that should happen at once


@pytest.fixture(scope="module")
def ray():
    """A 2-CPU runtime shared by the tests of this module."""
    raylite.shutdown()
    raylite.init(num_cpus=2)
    yield raylite
    raylite.shutdown()


@raylite.remote
class Signal:
    """An event other work can wait on: ``wait`` finishes once ``send`` was called."""

    def __init__(self):
        self.event = asyncio.Event()

    async def wait(self):
        await self.event.wait()
        return True

    async def send(self):
        self.event.set()


@raylite.remote
class Worker:
    def double(self, value):
        return 2 * value

    def double_after(self, signal, value):
        raylite.get(signal.wait.remote())
        return 2 * value

    def fail(self, value):
        raise ValueError(f"bad value {value}")

    @raylite.method(num_returns=2)
    def pair(self, value):
        return value, -value

    def pid(self):
        return os.getpid()


def double(actor, value):
    return actor.double.remote(value)


@pytest.fixture(scope="module")
def workers(ray):
    return [Worker.remote(), Worker.remote()]


@pytest.fixture
def signal(ray):
    signal = Signal.remote()
    yield signal
    raylite.kill(signal)


def test_public_exports():
    import raylite.util as util
    for name in ("ActorPool", "Queue", "inspect_serializability", "placement_group",
                 "PlacementGroup"):
        assert name in util.__all__ and hasattr(util, name)
    assert issubclass(Empty, stdlib_queue.Empty) and issubclass(Full, stdlib_queue.Full)


# ==========================================================================================
# ActorPool
# ==========================================================================================
def test_actor_pool_map_keeps_order_and_map_unordered_returns_all(workers):
    pool = ActorPool(workers)
    assert list(pool.map(double, range(7))) == [0, 2, 4, 6, 8, 10, 12]
    assert sorted(pool.map_unordered(double, range(7))) == [0, 2, 4, 6, 8, 10, 12]
    assert not pool.has_next() and pool.has_free()


def test_actor_pool_queues_work_beyond_its_actors(workers):
    pool = ActorPool(workers)
    for value in range(5):
        pool.submit(double, value)
    assert pool.has_next() and not pool.has_free() and pool.pop_idle() is None
    assert [pool.get_next(timeout=WAIT) for _ in range(5)] == [0, 2, 4, 6, 8]
    assert not pool.has_next() and pool.has_free()


def test_actor_pool_get_next_without_work_raises_stop_iteration(workers):
    pool = ActorPool(workers)
    with pytest.raises(StopIteration, match="no more results"):
        pool.get_next()
    with pytest.raises(StopIteration, match="no more results"):
        pool.get_next_unordered()


def test_actor_pool_get_next_timeout_keeps_or_ignores_the_task(ray, signal):
    pool = ActorPool([Worker.remote()])
    pool.submit(lambda actor, v: actor.double_after.remote(signal, v), 1)
    pool.submit(double, 2)
    with pytest.raises(TimeoutError, match="timed out"):
        pool.get_next(timeout=0.1)
    assert pool.has_next()  # still pending: not ignored
    with pytest.raises(TimeoutError, match="given up"):
        pool.get_next_unordered(timeout=0.1, ignore_if_timedout=True)
    ray.get(signal.send.remote())
    assert pool.get_next(timeout=WAIT) == 4  # the first submission was given up
    assert not pool.has_next()


def test_actor_pool_get_next_unordered_returns_the_first_finished(workers, signal):
    pool = ActorPool(workers)
    pool.submit(lambda actor, v: actor.double_after.remote(signal, v), 1)
    pool.submit(double, 2)
    assert pool.get_next_unordered(timeout=WAIT) == 4
    raylite.get(signal.send.remote())
    assert pool.get_next(timeout=WAIT) == 2


def test_actor_pool_pop_idle_and_push(ray, workers):
    pool = ActorPool(workers[:1])
    actor = pool.pop_idle()
    assert actor == workers[0] and not pool.has_free() and pool.pop_idle() is None
    pool.submit(double, 21)  # no actor: waits for one
    with pytest.raises(ValueError, match="no actors"):
        pool.get_next()
    pool.push(actor)  # takes the waiting submission at once
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(actor)
    assert pool.get_next(timeout=WAIT) == 42


def test_actor_pool_multiple_returns_and_task_errors(workers):
    pool = ActorPool(workers)
    pool.submit(lambda actor, v: actor.pair.remote(v), 3)
    assert pool.get_next(timeout=WAIT) == [3, -3]
    pool.submit(lambda actor, v: actor.fail.remote(v), 7)
    with pytest.raises(ValueError, match="bad value 7"):
        pool.get_next(timeout=WAIT)
    assert list(pool.map(double, [1])) == [2]  # the actor came back to the pool


def test_actor_pool_rejects_bad_input(workers):
    with pytest.raises(TypeError, match="actor handles"):
        ActorPool("not actors")
    with pytest.raises(TypeError, match="actor handles"):
        ActorPool([1, 2])
    with pytest.raises(ValueError, match="more than once"):
        ActorPool([workers[0], workers[0]])
    pool = ActorPool(workers)
    with pytest.raises(TypeError, match="callable"):
        pool.submit("double", 1)
    with pytest.raises(TypeError, match="must return the ObjectRef"):
        pool.submit(lambda actor, v: v, 1)
    assert pool.has_free() and not pool.has_next()  # the actor was not lost
    pool.submit(double, 1)
    with pytest.raises(ValueError, match="timeout"):
        pool.get_next(timeout=-1)
    assert pool.get_next() == 2


# ==========================================================================================
# Queue
# ==========================================================================================
@pytest.fixture
def make_queue(ray):
    queues = []

    def make(*args, **kwargs):
        queues.append(Queue(*args, **kwargs))
        return queues[-1]

    yield make
    for q in queues:
        q.shutdown()


def test_queue_is_fifo_and_reports_its_size(make_queue):
    q = make_queue(maxsize=3)
    assert q.empty() and not q.full() and q.qsize() == 0
    for item in ("a", "b", "c"):
        q.put(item)
    assert q.full() and q.qsize() == q.size() == len(q) == 3
    assert [q.get(), q.get_nowait(), q.get(timeout=1)] == ["a", "b", "c"]
    assert q.empty()


def test_queue_empty_and_full_raise_after_timeout_or_at_once(make_queue):
    q = make_queue(maxsize=1)
    with pytest.raises(Empty, match="empty after waiting 0.1 s"):
        q.get(timeout=0.1)
    with pytest.raises(stdlib_queue.Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.get(block=False)
    q.put_nowait(1)
    with pytest.raises(Full, match="full"):
        q.put(2, timeout=0.1)
    with pytest.raises(stdlib_queue.Full):
        q.put_nowait(2)
    assert q.get() == 1 and q.empty()


def test_queue_batches_are_all_or_nothing(make_queue):
    q = make_queue(maxsize=3)
    q.put_nowait_batch([1, 2])
    with pytest.raises(Full, match="cannot add 2 items"):
        q.put_nowait_batch([3, 4])
    assert q.qsize() == 2
    with pytest.raises(Empty, match="cannot get 3 items"):
        q.get_nowait_batch(3)
    assert q.get_nowait_batch(2) == [1, 2] and q.get_nowait_batch(0) == []


def test_queue_blocking_get_waits_for_a_put_from_a_task(ray, make_queue):
    q = make_queue()

    @ray.remote
    def produce(q, n):
        for i in range(n):
            q.put(i)
        return q.qsize()

    ref = produce.remote(q, 3)
    assert [q.get(timeout=WAIT) for _ in range(3)] == [0, 1, 2]
    assert ray.get(ref, timeout=WAIT) in (0, 1, 2, 3)


def test_queue_blocking_put_waits_for_room(ray, make_queue):
    q = make_queue(maxsize=1)
    q.put("first")

    @ray.remote
    def put_second(q):
        q.put("second", timeout=WAIT)
        return "put"

    ref = put_second.remote(q)
    assert q.get(timeout=WAIT) == "first"
    assert q.get(timeout=WAIT) == "second"
    assert ray.get(ref, timeout=WAIT) == "put"


def test_queue_works_inside_actors_and_asyncio(ray, make_queue):
    q = make_queue()

    @ray.remote
    class Consumer:
        def __init__(self, q):
            self.q = q

        def take(self, n):
            return [self.q.get(timeout=WAIT) for _ in range(n)]

    consumer = Consumer.remote(q)
    ref = consumer.take.remote(2)
    q.put_nowait_batch(["x", "y"])
    assert ray.get(ref, timeout=WAIT) == ["x", "y"]
    ray.kill(consumer)

    async def roundtrip():
        await q.put_async("z")
        return await q.get_async(timeout=WAIT)

    assert asyncio.run(roundtrip()) == "z"


def test_queue_rejects_bad_input_and_use_after_shutdown(make_queue):
    with pytest.raises(TypeError, match="maxsize"):
        Queue(maxsize="10")
    with pytest.raises(TypeError, match="actor_options"):
        Queue(actor_options=["num_cpus"])
    q = make_queue()
    with pytest.raises(ValueError, match="timeout"):
        q.get(timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        q.put(1, timeout=-1)
    with pytest.raises(TypeError, match="list of items"):
        q.put_nowait_batch(5)
    with pytest.raises(TypeError, match="needs an int"):
        q.get_nowait_batch(1.5)
    with pytest.raises(ValueError, match=">= 0"):
        q.get_nowait_batch(-1)
    q.shutdown()
    q.shutdown()  # idempotent
    with pytest.raises(RuntimeError, match="shut down"):
        q.put(1)


# ==========================================================================================
# multiprocessing.Pool
# ==========================================================================================
@pytest.fixture(scope="module")
def pool(ray):
    with Pool(processes=2) as pool:
        yield pool


def square(x):
    return x * x


def test_pool_map_and_starmap_match_the_builtins(pool):
    items = list(range(23))
    assert pool.map(square, items) == [x * x for x in items]
    assert pool.map(square, iter(items), chunksize=5) == [x * x for x in items]
    assert pool.map(square, []) == []
    assert pool.starmap(pow, [(2, 3), (3, 2), (5, 0)]) == [8, 9, 1]
    assert pool.map_async(square, items, chunksize=100).get(timeout=WAIT) == pool.map(square, items)
    assert pool.starmap_async(divmod, [(7, 2)]).get(timeout=WAIT) == [(3, 1)]


def test_pool_apply_and_callbacks(pool):
    assert pool.apply(divmod, (7, 2)) == (3, 1)
    assert pool.apply(int, ("ff",), {"base": 16}) == 255
    done = threading.Event()
    seen = []
    result = pool.apply_async(square, (9,), callback=lambda v: (seen.append(v), done.set()))
    assert result.get(timeout=WAIT) == 81
    assert done.wait(WAIT) and seen == [81]
    failed = threading.Event()
    errors = []
    pool.map_async(lambda x: 1 / x, [1, 0], error_callback=lambda e: (errors.append(e),
                                                                       failed.set()))
    assert failed.wait(WAIT) and isinstance(errors[0], ZeroDivisionError)


def test_pool_async_result_states_and_timeout(ray, pool, signal):
    result = pool.apply_async(lambda s: raylite.get(s.wait.remote()), (signal,))
    assert not result.ready()
    with pytest.raises(ValueError, match="not ready"):
        result.successful()
    with pytest.raises(multiprocessing.TimeoutError):
        result.get(timeout=0.1)
    result.wait(timeout=0.05)
    ray.get(signal.send.remote())
    assert result.get(timeout=WAIT) is True
    assert result.ready() and result.successful()


def test_pool_errors_come_back_as_the_original_exception(pool):
    with pytest.raises(ZeroDivisionError, match="division by zero") as info:
        pool.map(lambda x: 1 / x, [1, 2, 0, 3])
    assert type(info.value) is ZeroDivisionError
    assert isinstance(info.value.__cause__, raylite.exceptions.TaskError)
    result = pool.apply_async(lambda: {}["missing"])
    result.wait(timeout=WAIT)
    assert result.ready() and not result.successful()
    with pytest.raises(KeyError):
        result.get()


def test_pool_imap_ordered_unordered_and_lazy(pool):
    assert list(pool.imap(square, range(10), chunksize=3)) == [x * x for x in range(10)]
    assert sorted(pool.imap_unordered(square, range(10))) == [x * x for x in range(10)]
    consumed = []

    def numbers():
        for i in range(1000):
            consumed.append(i)
            yield i

    iterator = pool.imap(square, numbers(), chunksize=2)
    assert [iterator.next(timeout=WAIT) for _ in range(3)] == [0, 1, 4]
    assert len(consumed) < 100  # the input is read as results are needed, not all at once
    iterator = pool.imap(lambda x: 1 / x, [1, 0, 4])
    assert next(iterator) == 1
    with pytest.raises(ZeroDivisionError):
        next(iterator)
    assert list(iterator) == [0.25]  # an error does not end the iteration


def test_pool_imap_next_times_out(ray, pool, signal):
    iterator = pool.imap(lambda s: raylite.get(s.wait.remote()), [signal])
    with pytest.raises(multiprocessing.TimeoutError):
        iterator.next(timeout=0.1)
    ray.get(signal.send.remote())
    assert iterator.next(timeout=WAIT) is True
    with pytest.raises(StopIteration):
        iterator.next(timeout=WAIT)


def _set_greeting(greeting):
    os.environ["RAYLITE_TEST_GREETING"] = greeting


def test_pool_initializer_and_maxtasksperchild(ray):
    with Pool(1, initializer=_set_greeting, initargs=("hello",), maxtasksperchild=1) as pool:
        results = pool.map(lambda _: (os.environ.get("RAYLITE_TEST_GREETING"), os.getpid()),
                           range(3), chunksize=1)
    assert [greeting for greeting, _ in results] == ["hello"] * 3  # every worker initialized
    assert len({pid for _, pid in results}) == 3  # a fresh worker for every chunk


def _fail_to_start():
    raise RuntimeError("initializer failed")


def test_pool_initializer_error_reaches_the_caller(ray):
    with Pool(1, initializer=_fail_to_start) as pool:
        with pytest.raises(RuntimeError, match="initializer failed"):
            pool.apply(square, (2,))


def test_pool_close_join_and_terminate(ray):
    pool = Pool(2)
    with pytest.raises(ValueError, match="still running"):
        pool.join()
    result = pool.map_async(square, range(8))
    iterator = pool.imap(square, range(50))
    pool.close()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.map(square, [1])
    pool.join()
    assert result.get(timeout=WAIT) == [x * x for x in range(8)]
    assert list(iterator) == [x * x for x in range(50)]  # join waited for all of the input
    pool.terminate()  # harmless after join

    pool = Pool(1)
    pool.terminate()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.apply(square, (2,))
    pool.join()


def test_pool_rejects_bad_input(pool):
    with pytest.raises(ValueError, match="at least 1"):
        Pool(0)
    with pytest.raises(TypeError, match="processes"):
        Pool("2")
    with pytest.raises(TypeError, match="initializer"):
        Pool(1, initializer="not callable")
    with pytest.raises(ValueError, match="maxtasksperchild"):
        Pool(1, maxtasksperchild=0)
    with pytest.raises(ValueError, match="chunksize"):
        pool.map(square, [1], chunksize=0)
    with pytest.raises(ValueError, match="chunksize"):
        pool.imap(square, [1], chunksize=-1)
    with pytest.raises(TypeError, match="callable"):
        pool.map("square", [1])
    with pytest.raises(TypeError, match="iterable"):
        pool.map(square, 5)
    with pytest.raises(TypeError, match="tuple of arguments"):
        pool.apply(square, 3)
    with pytest.raises(TypeError, match="kwds"):
        pool.apply(square, (1,), [("x", 1)])
    with pytest.raises(NotImplementedError, match="cannot be passed"):
        pickle.dumps(pool)


# ==========================================================================================
# inspect_serializability
# ==========================================================================================
_global_lock = threading.Lock()


class _Holder:
    def __init__(self):
        self.name = "holder"
        self.inner = {"ok": 1, "lock": threading.Lock()}

    def method(self):
        return self.name


def _check(obj, **kwargs):
    out = io.StringIO()
    ok, failures = inspect_serializability(obj, print_file=out, **kwargs)
    return ok, {f.name for f in failures}, failures, out.getvalue()


def test_inspect_serializability_passes_picklable_objects():
    ok, names, _, report = _check(lambda x: x + 1, name="adder")
    assert ok and names == set()
    assert "Checking Serializability" in report and "FAIL" not in report
    assert _check([1, {"a": (2, 3)}])[0]


def test_inspect_serializability_finds_a_global_and_a_closure_variable():
    def uses_global_lock():  # a local function pickles by value, with the globals it uses
        with _global_lock:
            return 1

    ok, names, failures, report = _check(uses_global_lock, name="uses_global_lock")
    assert not ok and names == {"_global_lock"}
    assert next(iter(failures)).parent is uses_global_lock
    assert "!!! FAIL" in report and "global variables" in report and "_global_lock" in report

    lock = threading.Lock()

    def closure():
        return lock

    ok, names, failures, _ = _check(closure)
    assert not ok and names == {"lock"} and next(iter(failures)).obj is lock


def test_inspect_serializability_walks_attributes_items_and_methods():
    holder = _Holder()
    ok, names, failures, report = _check(holder, name="holder")
    assert not ok and names == {"lock"}
    assert next(iter(failures)).parent is holder.inner
    assert "'inner'" in report and "'lock'" in report
    assert _check(holder.method)[1] == {"lock"}
    assert _check([1, holder])[1] == {"lock"}
    # depth limits the search: the outermost failing part is reported instead
    assert _check(holder, name="holder", depth=0)[1] == {"holder"}
    assert _check(holder, depth=1)[1] == {"inner"}


def test_inspect_serializability_looks_into_classes():
    def make_class():  # a local class pickles by value, with its methods and attributes
        class Service:
            def __init__(self):
                self.lock = _global_lock

        return Service

    service_class = make_class()
    ok, names, failures, _ = _check(service_class)
    assert not ok and names == {"_global_lock"}
    assert next(iter(failures)).parent is service_class.__init__


def test_inspect_serializability_rejects_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        inspect_serializability(1, depth=-1)
    with pytest.raises(TypeError, match="print_file"):
        inspect_serializability(1, print_file="out.txt")


def test_object_store_stats_follow_a_large_object(ray):
    import numpy as np
    from raylite.util import object_store_stats
    # A runtime of its own: the module's earlier tests still free objects in the background,
    # which moved the shared runtime's counts under this test.
    ray.shutdown()
    ray.init(num_cpus=2)
    before = object_store_stats()
    ref = ray.put(np.ones(4 << 20, dtype=np.uint8))
    held = object_store_stats()
    assert held["shm_bytes"] >= before["shm_bytes"] + (4 << 20)
    assert held["objects"] == before["objects"] + 1
    assert {"spilled_bytes", "spill_count", "restore_count", "limit"} <= set(held)
    del ref


def test_object_store_stats_before_init_says_so():
    import subprocess
    import sys
    probe = ("from raylite.util import object_store_stats\n"
             "try:\n    object_store_stats()\nexcept RuntimeError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "not initialized: call raylite.init() first" in out.stdout, out.stderr
