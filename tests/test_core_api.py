"""Contract tests of the core API on the local multi-process runtime."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import numpy as np
import pytest

from raylite import exceptions


def test_init_context_reads_like_rays(ray):
    ctx = ray.core._api._context
    assert ctx["node_ip_address"] == "127.0.0.1"
    assert ctx["node_id"] and ctx.address_info["node_id"] == ctx["node_id"]
    assert "webui_url" in ctx and isinstance(ctx.dashboard_url, str)
    assert ray.is_initialized()
    with pytest.raises(RuntimeError, match="ignore_reinit_error"):
        ray.init()
    assert ray.init(ignore_reinit_error=True) is ctx


def test_tasks_options_and_multiple_returns(ray):
    @ray.remote
    def add(a, b=10):
        return a + b

    @ray.remote(num_returns=2)
    def pair(x):
        return x, -x

    assert ray.get(add.remote(1)) == 11
    assert ray.get(add.remote(1, b=2)) == 3
    assert ray.get(add.options(num_cpus=0.5, name="renamed").remote(2, 2)) == 4
    a, b = pair.remote(5)
    assert ray.get([a, b]) == [5, -5]
    c, d = add.options(num_returns=2).remote(1, 1), None
    with pytest.raises(ValueError, match="num_returns=2"):
        ray.get(c[0])


def test_top_level_refs_resolved_nested_refs_stay_refs(ray):
    @ray.remote
    def kinds(x, nested):
        return type(x).__name__, type(nested[0]).__name__, ray.get(nested[0])

    ref = ray.put(41)
    assert ray.get(kinds.remote(ref, [ref])) == ("int", "ObjectRef", 41)


def test_refs_in_closures_and_nested_tasks(ray):
    data = ray.put({"k": "v"})

    @ray.remote
    def leaf(i):
        return ray.get(data)["k"] * i

    @ray.remote
    def parent(n):
        return ray.get([leaf.remote(i) for i in range(n)])

    assert ray.get([parent.remote(3) for _ in range(4)], timeout=30) == [["", "v", "vv"]] * 4


def test_deep_nesting_does_not_deadlock(ray):
    @ray.remote
    def depth(n):
        return 0 if n == 0 else 1 + ray.get(depth.remote(n - 1))

    assert ray.get(depth.remote(6), timeout=60) == 6


def test_wait_num_returns_and_timeout(ray):
    @ray.remote
    def sleepy(t):
        time.sleep(t)
        return t

    fast, slow = sleepy.remote(0), sleepy.remote(5)
    ready, not_ready = ray.wait([slow, fast], num_returns=1, timeout=4)
    assert ready == [fast] and not_ready == [slow]
    ready, not_ready = ray.wait([slow], timeout=0.05)
    assert ready == [] and not_ready == [slow]
    ray.cancel(slow, force=True)


def test_get_timeout(ray):
    @ray.remote
    def slow():
        time.sleep(3)

    ref = slow.remote()
    start = time.monotonic()
    with pytest.raises(exceptions.GetTimeoutError) as info:
        ray.get(ref, timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - start < 2
    ray.cancel(ref, force=True)


def test_exception_is_original_class_with_remote_traceback(ray):
    class MyError(Exception):
        pass

    @ray.remote
    def fail():
        raise MyError("boom")

    with pytest.raises(MyError) as info:
        ray.get(fail.remote())
    err = info.value
    assert isinstance(err, exceptions.TaskError) and isinstance(err, exceptions.RayTaskError)
    assert "fail" in str(err) and "boom" in str(err) and "Traceback" in str(err)
    assert isinstance(err.__cause__, MyError)


def test_dependency_error_propagates(ray):
    @ray.remote
    def fail():
        raise KeyError("missing")

    @ray.remote
    def use(x):
        return x

    with pytest.raises(KeyError):
        ray.get(use.remote(fail.remote()))


def test_retry_exceptions(ray, tmp_path):
    marker = tmp_path / "attempts"

    @ray.remote(max_retries=2, retry_exceptions=[OSError])
    def flaky(path):
        with open(path, "a") as f:
            f.write("x")
        if len(open(path).read()) < 3:
            raise OSError("transient")
        return "ok"

    assert ray.get(flaky.remote(str(marker)), timeout=30) == "ok"
    assert marker.read_text() == "xxx"


def test_actor_order_state_and_handles_in_tasks(ray):
    @ray.remote
    class Counter:
        def __init__(self, start):
            self.value = start
            self.seen = []

        def add(self, i):
            self.seen.append(i)
            self.value += 1
            return self.value

        def history(self):
            return self.seen

    counter = Counter.remote(10)
    refs = [counter.add.remote(i) for i in range(50)]
    assert ray.get(refs) == list(range(11, 61))
    assert ray.get(counter.history.remote()) == list(range(50))

    @ray.remote
    def bump(c):
        return ray.get(c.add.remote(-1))

    assert ray.get(bump.remote(counter)) == 61

    @ray.remote
    class Holder:
        def __init__(self, c):
            self.c = c

        def call(self):
            return ray.get(self.c.add.remote(0))

    assert ray.get(Holder.remote(counter).call.remote()) == 62


def test_actor_method_num_returns_and_errors(ray):
    @ray.remote
    class A:
        @ray.method(num_returns=2)
        def two(self):
            return 1, 2

        def bad(self):
            raise RuntimeError("nope")

    a = A.remote()
    x, y = a.two.remote()
    assert ray.get([x, y]) == [1, 2]
    with pytest.raises(RuntimeError, match="nope"):
        ray.get(a.bad.remote())
    assert ray.get(a.two.options(num_returns=1).remote()) == (1, 2)
    with pytest.raises(AttributeError, match="did you mean 'two'"):
        a.tow


def test_threaded_actor_runs_calls_concurrently(ray):
    @ray.remote(max_concurrency=2)
    class Gate:
        def __init__(self):
            self.event = threading.Event()

        def wait(self):
            return self.event.wait(10)

        def open(self):
            self.event.set()
            return True

    gate = Gate.remote()
    waiting = gate.wait.remote()
    assert ray.get(gate.open.remote(), timeout=10)
    assert ray.get(waiting, timeout=10) is True


def test_async_actor_interleaves_and_awaits_refs(ray):
    @ray.remote
    class AsyncActor:
        def __init__(self):
            self.event = asyncio.Event()

        async def wait(self):
            await asyncio.wait_for(self.event.wait(), 10)
            return "released"

        async def release(self):
            self.event.set()
            return True

    actor = AsyncActor.remote()
    waiting = actor.wait.remote()
    assert ray.get(actor.release.remote(), timeout=10)
    assert ray.get(waiting, timeout=10) == "released"


def test_object_ref_is_awaitable_and_has_future(ray):
    @ray.remote
    def f():
        return 7

    async def main():
        return await f.remote()

    assert asyncio.run(main()) == 7
    assert f.remote().future().result(timeout=10) == 7
    ref = f.remote()
    assert ref == ref and len({ref, ref}) == 1 and len(ref.hex()) == 32


def test_cancelled_future_is_left_alone_when_its_value_arrives(ray):
    @ray.remote
    class Gate:
        def __init__(self):
            self.event = asyncio.Event()

        async def wait(self, value):
            await asyncio.wait_for(self.event.wait(), 10)
            return value

        async def open(self):
            self.event.set()

    gate = Gate.remote()
    small, large = gate.wait.remote(1), gate.wait.remote(b"x" * (1 << 20))  # inline and in shm
    futures = [small.future(), large.future()]
    assert all(f.cancel() for f in futures)

    async def abandoned():   # an asyncio task awaiting a ref, cancelled, as a web server does
        waiter = asyncio.ensure_future(gate.wait.remote(2))
        await asyncio.sleep(0)
        waiter.cancel()
        return waiter

    waiter = asyncio.run(abandoned())
    ray.get(gate.open.remote(), timeout=10)
    assert ray.get([small, large], timeout=10) == [1, b"x" * (1 << 20)]
    assert waiter.cancelled() and all(f.cancelled() for f in futures)

    @ray.remote
    def still_works():
        return "ok"

    assert ray.get(still_works.remote(), timeout=10) == "ok"


def test_named_actors_and_get_actor(ray):
    @ray.remote
    class Named:
        def ping(self):
            return "pong"

    Named.options(name="svc").remote()
    assert ray.get(ray.get_actor("svc").ping.remote()) == "pong"
    with pytest.raises(ValueError, match="already exists"):
        Named.options(name="svc").remote()
    same = Named.options(name="svc", get_if_exists=True).remote()
    assert ray.get(same.ping.remote()) == "pong"
    with pytest.raises(ValueError, match="Failed to look up actor with name 'nope'.*svc"):
        ray.get_actor("nope")


def test_kill_actor_fails_pending_and_future_calls(ray):
    @ray.remote
    class Sleeper:
        def nap(self):
            time.sleep(30)

        def ping(self):
            return 1

    s = Sleeper.remote()
    assert ray.get(s.ping.remote()) == 1
    napping = s.nap.remote()
    ray.kill(s)
    with pytest.raises(exceptions.ActorDiedError, match="killed"):
        ray.get(napping, timeout=10)
    with pytest.raises(exceptions.ActorDiedError):
        ray.get(s.ping.remote(), timeout=10)


def test_actor_constructor_error_surfaces_on_calls(ray):
    @ray.remote
    class Broken:
        def __init__(self):
            raise ValueError("bad config")

        def f(self):
            return 1

    b = Broken.remote()
    with pytest.raises(ValueError, match="bad config"):
        ray.get(b.f.remote(), timeout=10)


def test_cancel_queued_and_running_tasks(ray):
    @ray.remote
    def sleep(t):
        time.sleep(t)
        return t

    blockers = [sleep.remote(20) for _ in range(2)]
    queued = sleep.remote(0)
    ray.cancel(queued)
    with pytest.raises(exceptions.TaskCancelledError):
        ray.get(queued, timeout=5)
    for ref in blockers:
        ray.cancel(ref)
    for ref in blockers:
        with pytest.raises(exceptions.TaskCancelledError):
            ray.get(ref, timeout=10)
    assert ray.get(sleep.remote(0), timeout=10) == 0


def test_resources_and_introspection(ray):
    total = ray.cluster_resources()
    assert total["CPU"] == 2
    assert ray.available_resources()["CPU"] <= 2
    (node,) = ray.nodes()
    assert node["Alive"] and node["Resources"]["CPU"] == 2
    ctx = ray.get_runtime_context()
    assert ctx.get_node_id() == ray.core._api._context["node_id"]

    @ray.remote
    def inside():
        c = ray.get_runtime_context()
        return c.get_task_id(), c.get_node_id()

    task_id, node_id = ray.get(inside.remote())
    assert task_id and node_id == ctx.get_node_id()


def test_gpu_ids_through_cuda_visible_devices():
    import raylite
    raylite.shutdown()
    raylite.init(num_cpus=2, num_gpus=2)
    try:
        @raylite.remote(num_gpus=1)
        def which():
            return os.environ["CUDA_VISIBLE_DEVICES"], raylite.get_gpu_ids()

        results = raylite.get([which.remote() for _ in range(2)])
        assert all(len(ids) == 1 for _, ids in results)
        assert {v for v, _ in results} <= {"0", "1"}

        @raylite.remote(num_gpus=1)
        def widened():   # as Train's torch backend does: every GPU visible, its own by index
            os.environ["CUDA_VISIBLE_DEVICES"] = "0,1"
            return raylite.get_gpu_ids()

        assert len(raylite.get(widened.remote())) == 1   # still the assignment, not both
        after = raylite.get([which.remote() for _ in range(4)])
        assert all(v in ("0", "1") for v, _ in after)     # the next tasks see their own again
    finally:
        raylite.shutdown()


def test_custom_resources_and_placement_groups():
    import raylite
    from raylite.util import placement_group, remove_placement_group
    from raylite.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    raylite.shutdown()
    raylite.init(num_cpus=2, resources={"accelerator": 1})
    try:
        @raylite.remote(resources={"accelerator": 1})
        def special():
            return "ran"

        assert raylite.get(special.remote(), timeout=10) == "ran"
        pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
        assert raylite.get(pg.ready(), timeout=10) is True
        assert raylite.available_resources()["CPU"] == 0

        @raylite.remote
        class Member:
            def where(self):
                return os.getpid()

        members = [Member.options(num_cpus=1, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)).remote()
                   for i in range(2)]
        assert len(set(raylite.get([m.where.remote() for m in members], timeout=10))) == 2
        for m in members:
            raylite.kill(m)
        remove_placement_group(pg)
        with pytest.raises(ValueError, match="STRICT_PACK"):
            placement_group([{"CPU": 1}], strategy="TIGHT")
    finally:
        raylite.shutdown()


def test_zero_copy_numpy_and_task_on_big_ref(ray):
    array = np.arange(2_000_000, dtype=np.float64)
    ref = ray.put(array)
    start = time.perf_counter()
    value = ray.get(ref)
    assert time.perf_counter() - start < 0.05
    assert not value.flags.writeable and value.flags.owndata is False
    np.testing.assert_array_equal(value, array)

    @ray.remote
    def head_sum(x):
        return float(x[:10].sum()), x.flags.writeable

    assert ray.get(head_sum.remote(ref)) == (45.0, False)

    @ray.remote
    def make():
        return np.ones(500_000)

    assert ray.get(make.remote()).sum() == 500_000


def test_local_mode_runs_inline():
    import raylite
    raylite.shutdown()
    raylite.init(local_mode=True)
    try:
        @raylite.remote
        def where():
            return os.getpid(), threading.current_thread().name

        assert raylite.get(where.remote()) == (os.getpid(), threading.current_thread().name)

        @raylite.remote
        class A:
            def f(self, x):
                return x + 1

        assert raylite.get(A.remote().f.remote(raylite.put(1))) == 2

        @raylite.remote
        def fail():
            raise ValueError("x")

        with pytest.raises(ValueError):
            raylite.get(fail.remote())
    finally:
        raylite.shutdown()


def test_auto_init_on_first_use():
    import raylite
    raylite.shutdown()
    try:
        assert not raylite.is_initialized()
        assert raylite.get(raylite.put("auto")) == "auto"
        assert raylite.is_initialized()
    finally:
        raylite.shutdown()
    raylite.shutdown()  # idempotent


def test_placement_group_created_inside_a_task(ray):
    from raylite.util import placement_group, remove_placement_group

    @ray.remote(num_cpus=0)
    def make_group():
        pg = placement_group([{"CPU": 1}])
        ready = ray.get(pg.ready(), timeout=10)
        remove_placement_group(pg)
        return ready

    assert ray.get(make_group.remote(), timeout=20) is True


def test_child_tasks_captured_into_the_parents_placement_group(ray):
    """Ray's placement_group_capture_child_tasks: a capturing parent's children (and theirs)
    land in its group, in any bundle with room (here the one the parent lends while it waits
    in get), unless they opt out; get_current_placement_group() names the group, None outside."""
    from raylite.util import (
        get_current_placement_group,
        placement_group,
        remove_placement_group,
    )
    from raylite.util.scheduling_strategies import (
        PlacementGroupSchedulingStrategy as InGroup,
    )

    @ray.remote
    def where():
        group = get_current_placement_group()
        context = ray.get_runtime_context()
        return (group.id.hex() if group else None,
                context.should_capture_child_tasks_in_placement_group)

    @ray.remote
    def parent(opt_out):
        child = where.options(scheduling_strategy=InGroup(None)) if opt_out else where
        return ray.get(where.remote()), ray.get(child.remote()), ray.get(grandchild.remote())

    @ray.remote
    def grandchild():
        return ray.get(where.remote())

    assert get_current_placement_group() is None        # the driver is in no group
    pg = placement_group([{"CPU": 1}])
    ray.get(pg.ready(), timeout=10)
    try:
        assert ray.available_resources()["CPU"] == 1
        me = pg.id.hex()
        captured = parent.options(scheduling_strategy=InGroup(
            pg, placement_group_capture_child_tasks=True)).remote(False)
        assert ray.get(captured, timeout=30) == ((me, True), (me, True), (me, True))
        opted_out = parent.options(placement_group=pg, placement_group_capture_child_tasks=True)
        assert ray.get(opted_out.remote(True), timeout=30)[1] == (None, False)
        plain = parent.options(scheduling_strategy=InGroup(pg)).remote(False)
        assert ray.get(plain, timeout=30) == ((None, False),) * 3  # not capturing: no group
        assert ray.get(where.options(scheduling_strategy=InGroup(pg)).remote()) == (me, False)
    finally:
        remove_placement_group(pg)


def test_a_task_blocked_in_wait_lends_its_cpu(ray):
    """Like get: a task holding every CPU that waits for its child lends its CPU to it."""
    @ray.remote(num_cpus=1)
    def child():
        return "done"

    @ray.remote(num_cpus=2)
    def parent():
        ready, _ = ray.wait([child.remote()], num_returns=1, timeout=20)
        return len(ready)

    assert ray.get(parent.remote(), timeout=30) == 1


def test_removing_a_placement_group_kills_its_actors(ray):
    from raylite.util import placement_group, remove_placement_group
    from raylite.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    @ray.remote(num_cpus=1)
    class Member:
        def ping(self):
            return "pong"

    pg = placement_group([{"CPU": 1}])
    member = Member.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    assert ray.get(member.ping.remote(), timeout=10) == "pong"
    remove_placement_group(pg)
    with pytest.raises(exceptions.RayActorError):
        ray.get(member.ping.remote(), timeout=10)
    assert ray.available_resources()["CPU"] == 2       # nothing held past the group


def test_zero_copy_arrow_table(ray):
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"x": np.arange(1_000_000, dtype=np.int64)})
    ref = ray.put(table)
    value = ray.get(ref)
    assert value.equals(table)
    path = ray.core._api._backend_obj.store.entries[ref._id].path
    address = value.column("x").chunk(0).buffers()[1].address
    with open("/proc/self/maps") as maps:  # the column lies inside the mapping of the object file
        ranges = [line.split()[0] for line in maps if line.rstrip().endswith(path)]
    assert any(int(lo, 16) <= address < int(hi, 16)
               for lo, hi in (r.split("-") for r in ranges)), (path, ranges)


def test_refs_turn_into_futures_inside_workers_too(ray):
    """Item 4 of issue 17: a worker (task or actor) awaits refs or takes their Future; the
    driver tells it when the object is ready, no thread of its own waits for each ref."""
    @ray.remote
    def double(x):
        return 2 * x

    @ray.remote
    def fail():
        raise KeyError("boom")

    @ray.remote
    class Awaiter:
        async def awaited(self, refs):
            return [await ref for ref in refs]

        def through_futures(self, refs):
            futures = [ref.future() for ref in refs]
            values = [f.result(timeout=20) for f in futures]
            return values, sorted({t.name for t in threading.enumerate()
                                   if t.name.startswith("raylite-futures")})

        def failing(self, refs):
            try:
                refs[0].future().result(timeout=20)
            except KeyError as error:
                return str(error)

    refs = [double.remote(i) for i in range(4)]
    awaiter = Awaiter.remote()
    assert ray.get(awaiter.awaited.remote(refs), timeout=30) == [0, 2, 4, 6]
    values, threads = ray.get(awaiter.through_futures.remote(refs + refs[:1]), timeout=30)
    assert values == [0, 2, 4, 6, 0] and threads == ["raylite-futures"]  # one, not one per ref
    assert "boom" in ray.get(awaiter.failing.remote([fail.remote()]), timeout=30)


def test_options_raylite_does_not_implement_are_refused_or_warned_never_ignored(ray, capfd):
    """Issue 16: init / @remote / .options accepted options and then ignored them."""
    @ray.remote
    def f():
        return 1

    @ray.remote
    class A:
        def m(self):
            return 1

    with pytest.raises(ValueError, match="runtime_env\\['conda'\\] is not supported"):
        f.options(runtime_env={"conda": "env"})  # runtime_env itself: tests/test_runtime_env.py
    with pytest.raises(ValueError, match="max_pending_calls"):
        A.options(max_pending_calls=10)
    for key, value in (("_plasma_directory", "/tmp"), ("storage", "/tmp/s"),
                       ("job_config", object()), ("labels", {"zone": "a"}), ("_temp_dir", "/x")):
        with pytest.raises(ValueError, match=f"init\\({key}=.*not supported"):
            ray.init(**{key: value})
    assert ray.get(f.options(runtime_env={}, max_calls=3).remote()) == 1  # empty / a hint: fine
    assert ray.get(f.options(max_calls=5).remote()) == 1
    err = capfd.readouterr().err
    assert err.count("max_calls is accepted and ignored") == 1  # warned once
    assert "infeasible" not in err
    ref = f.options(accelerator_type="V100").remote()  # as in Ray: needs a node of that type
    assert ray.wait([ref], timeout=0.3)[0] == []
    assert "accelerator_type:V100" in capfd.readouterr().err
    ray.cancel(ref)


def test_actor_concurrency_groups_threaded(ray):
    """Issue 16: concurrency groups were accepted and ignored; each group now has its own
    threads, the default group its max_concurrency."""
    @ray.remote(concurrency_groups={"io": 2, "compute": 1})
    class Service:
        def __init__(self):
            self.gate = threading.Event()

        @ray.method(concurrency_group="io")
        def wait_io(self):
            self.gate.wait(20)
            return "io"

        @ray.method(concurrency_group="compute")
        def compute(self):
            return threading.current_thread().name

        def release(self):
            self.gate.set()
            return "default"

    service = Service.remote()
    blocked = [service.wait_io.remote() for _ in range(2)]  # the io group's two threads
    assert ray.get(service.compute.remote(), timeout=20).startswith("actor-compute")
    third = service.wait_io.remote()  # waits for a free io thread
    assert ray.wait([third], timeout=0.3)[0] == []
    assert ray.get(service.release.remote(), timeout=20) == "default"
    assert ray.get(blocked + [third], timeout=20) == ["io"] * 3
    assert ray.get(service.compute.options(concurrency_group="io").remote(),
                   timeout=20).startswith("actor-io")
    with pytest.raises(ValueError, match="no concurrency group 'nope'"):
        ray.get(service.compute.options(concurrency_group="nope").remote(), timeout=20)

    @ray.remote(concurrency_groups={"a": 1})
    class Undeclared:
        @ray.method(concurrency_group="b")
        def m(self):
            return 1

    with pytest.raises(ValueError, match="does not declare"):
        Undeclared.remote()
    with pytest.raises(ValueError, match="concurrency_groups must be a dict"):
        Service.options(concurrency_groups={"io": 0})


def test_actor_concurrency_groups_async(ray):
    @ray.remote(concurrency_groups={"one_at_a_time": 1})
    class AsyncService:
        def __init__(self):
            self.inside = {"one_at_a_time": 0, "default": 0}
            self.most = {"one_at_a_time": 0, "default": 0}

        async def _visit(self, group):
            self.inside[group] += 1
            self.most[group] = max(self.most[group], self.inside[group])
            await asyncio.sleep(0.05)
            self.inside[group] -= 1

        @ray.method(concurrency_group="one_at_a_time")
        async def serial(self):
            await self._visit("one_at_a_time")

        async def free(self):
            await self._visit("default")

        async def most_inside(self):
            return self.most

    service = AsyncService.remote()
    ray.get([service.serial.remote() for _ in range(4)] + [service.free.remote() for _ in range(4)],
            timeout=30)
    most = ray.get(service.most_inside.remote(), timeout=20)
    assert most["one_at_a_time"] == 1 and most["default"] > 1
