"""The scheduler state machine, without processes: events in, actions out."""

from __future__ import annotations

import pytest

from raylite.core.local._scheduler import (PIPELINE_DEPTH, TASK_TRANSITIONS, Actor, Fail, Interrupt,
                                     PlacementGroup, Scheduler, StopWorker, Task, TaskState)


def task(name: str, cpus: float = 1.0, fn: bytes = b"f", retries: int = 0, **res) -> Task:
    resources = {"CPU": cpus, **res} if cpus else dict(res)
    return Task(name.encode(), name, resources, fn, retries)


def kinds(actions) -> list[str]:
    return [type(a).__name__ for a in actions]


def started(s: Scheduler, n: int) -> list[bytes]:
    """Bring n workers up, as the I/O shell would after start_worker actions."""
    ids = []
    for i in range(n):
        wid = f"w{i}".encode()
        s.worker_started(wid)
        ids.append(wid)
    return ids


def test_init_asks_for_one_worker_per_cpu():
    s = Scheduler({"CPU": 3})
    assert kinds(s.schedule()) == ["StartWorker"] * 3
    assert s.schedule() == []  # already starting: no more


def test_dispatch_takes_resources_and_finish_returns_them():
    s = Scheduler({"CPU": 2})
    s.schedule()
    w0, w1 = started(s, 2)
    a = s.submit(task("a"), set())
    assert kinds(a) == ["Dispatch"]
    assert s.available()["CPU"] == 1
    s.task_finished(a[0].worker_id, b"a", 0.01)
    assert s.available()["CPU"] == 2
    assert s.workers[w0].state.value == "IDLE" and s.workers[w1].state.value == "IDLE"


def test_tasks_queue_until_resources_free_in_fifo_order():
    s = Scheduler({"CPU": 1})
    s.schedule()
    (w,) = started(s, 1)
    first = s.submit(task("a"), set())
    assert kinds(first) == ["Dispatch"]
    assert s.submit(task("b"), set()) == []
    assert s.submit(task("c"), set()) == []
    nxt = s.task_finished(w, b"a", 0.5)
    assert [a.task.name for a in nxt if type(a).__name__ == "Dispatch"] == ["b"]


def test_waiting_for_dependencies_then_ready():
    s = Scheduler({"CPU": 1})
    s.schedule()
    started(s, 1)
    t = task("t")
    assert s.submit(t, {b"x", b"y"}) == []
    assert t.state is TaskState.WAITING
    assert s.object_available(b"x") == []
    assert kinds(s.object_available(b"y")) == ["Dispatch"]
    assert t.state is TaskState.RUNNING


def test_failed_dependency_fails_the_dependent():
    s = Scheduler({"CPU": 1})
    t = task("t")
    s.submit(t, {b"x"})
    actions = s.object_failed(b"x")
    assert actions == [Fail(t, "dependency_failed", b"x")]
    assert t.state is TaskState.FAILED


def test_a_task_that_cannot_fit_does_not_block_other_classes():
    s = Scheduler({"CPU": 2, "GPU": 1})
    s.schedule()
    started(s, 2)
    gpu_a = s.submit(task("g1", 1, GPU=1), set())
    assert kinds(gpu_a) == ["Dispatch"] and gpu_a[0].gpu_ids == [0]  # gets GPU id 0
    assert kinds(s.submit(task("g2", 1, GPU=1), set())) == []
    assert kinds(s.submit(task("cpu"), set())) == ["Dispatch"]


def test_infeasible_request_warns_once_and_waits():
    s = Scheduler({"CPU": 2})
    actions = s.submit(task("big", 4), set())
    warns = [a for a in actions if type(a).__name__ == "Warn"]
    assert len(warns) == 1 and "big needs {CPU: 4}" in warns[0].message and "num_cpus" in warns[0].message
    assert [a for a in s.submit(task("big", 4), set()) if type(a).__name__ == "Warn"] == []
    assert s.tasks[b"big"].state is TaskState.READY


def test_custom_and_fractional_resources():
    s = Scheduler({"CPU": 1, "custom": 1})
    s.schedule()
    started(s, 1)
    assert kinds(s.submit(task("h1", 0.5), set())) == ["Dispatch"]
    actions = s.submit(task("h2", 0.5), set())  # fits, but no idle worker: start one more
    assert kinds(actions) == ["StartWorker"]
    s.worker_started(b"extra")
    assert s.available()["CPU"] == 0.0
    assert kinds(s.submit(task("c", 0, custom=1), set())) == ["StartWorker"]


def test_worker_death_retries_then_fails():
    s = Scheduler({"CPU": 1})
    s.schedule()
    (w,) = started(s, 1)
    t = task("t", retries=1)
    s.submit(t, set())
    actions = s.worker_died(w)
    assert kinds(actions) == ["StartWorker"] and t.state is TaskState.READY and t.attempt == 1
    s.worker_started(b"w-new")
    assert t.state is TaskState.RUNNING
    actions = s.worker_died(b"w-new")
    assert Fail(t, "worker_crashed", b"w-new") in actions
    assert s.available()["CPU"] == 1


def test_blocked_worker_lends_its_cpu_and_takes_it_back():
    s = Scheduler({"CPU": 1})
    s.schedule()
    (w,) = started(s, 1)
    s.submit(task("outer"), set())
    s.submit(task("inner"), set())
    actions = s.worker_blocked(w)
    assert kinds(actions) == ["StartWorker"]  # the inner task gets a new worker
    assert kinds(s.worker_started(b"w2")) == ["Dispatch"]
    s.task_finished(b"w2", b"inner", 0.1)
    s.worker_unblocked(w)
    assert s.available()["CPU"] == 0


def test_fast_functions_are_pipelined_and_slow_ones_are_not():
    s = Scheduler({"CPU": 1})
    s.schedule()
    (w,) = started(s, 1)
    for i in range(3):  # teach it that "fast" is fast
        s.submit(task(f"warm{i}", fn=b"fast"), set())
        s.task_finished(w, f"warm{i}".encode(), 0.0001)
    actions = []
    for i in range(PIPELINE_DEPTH + 4):
        actions += s.submit(task(f"t{i}", fn=b"fast"), set())
    assert kinds(actions).count("Dispatch") == PIPELINE_DEPTH
    s2 = Scheduler({"CPU": 1})
    s2.schedule()
    (w2,) = started(s2, 1)
    for i in range(3):
        s2.submit(task(f"warm{i}", fn=b"slow"), set())
        s2.task_finished(w2, f"warm{i}".encode(), 0.5)
    actions = s2.submit(task("a", fn=b"slow"), set()) + s2.submit(task("b", fn=b"slow"), set())
    assert kinds(actions).count("Dispatch") == 1


def test_blocking_revokes_pipelined_tasks():
    s = Scheduler({"CPU": 1})
    s.schedule()
    (w,) = started(s, 1)
    for i in range(3):
        s.submit(task(f"warm{i}", fn=b"fast"), set())
        s.task_finished(w, f"warm{i}".encode(), 0.0001)
    for i in range(3):
        s.submit(task(f"t{i}", fn=b"fast"), set())
    actions = s.worker_blocked(w)
    revoked = [a.task.name for a in actions if type(a).__name__ == "Revoke"]
    assert sorted(revoked) == ["t1", "t2"]
    assert all(s.tasks[n.encode()].state is TaskState.READY for n in revoked)


def test_cancel_in_each_state():
    s = Scheduler({"CPU": 1})
    s.schedule()
    (w,) = started(s, 1)
    waiting, queued, running = task("w"), task("q"), task("r")
    s.submit(running, set())
    s.submit(waiting, {b"x"})
    s.submit(queued, set())
    assert kinds(s.cancel(b"w", False)) == ["Fail"] and waiting.state is TaskState.CANCELLED
    assert kinds(s.cancel(b"q", False)) == ["Fail"] and queued.state is TaskState.CANCELLED
    assert s.cancel(b"r", True) == [Interrupt(running, w, True)]
    assert kinds(s.worker_died(w)) == ["Fail", "StartWorker"]
    assert running.state is TaskState.CANCELLED


def test_actor_holds_resources_for_its_life():
    s = Scheduler({"CPU": 2})
    a = Actor(b"a", "A", {"CPU": 2})
    assert "StartActor" in kinds(s.request_actor(a))
    b = Actor(b"b", "B", {"CPU": 1})
    assert "StartActor" not in kinds(s.request_actor(b))
    assert "StartActor" in kinds(s.actor_exited(b"a"))


def test_placement_group_reserves_bundles_and_tasks_use_them():
    s = Scheduler({"CPU": 2})
    s.schedule()
    started(s, 2)
    group = PlacementGroup(b"pg", [{"CPU": 1}, {"CPU": 1}], "PACK")
    assert kinds(s.create_group(group)) == ["GroupReady"]
    assert s.available()["CPU"] == 0
    t = Task(b"t", "t", {"CPU": 1}, b"f", 0, (b"pg", 1))
    assert kinds(s.submit(t, set())) == ["Dispatch"]
    outside = task("outside")
    assert kinds(s.submit(outside, set())) == []
    s.task_finished(t.worker_id, b"t", 0.1)
    assert kinds(s.remove_group(b"pg")) == ["Dispatch"]


def test_placement_group_bundles_get_distinct_gpus_and_give_them_back():
    s = Scheduler({"CPU": 4, "GPU": 2})
    group = PlacementGroup(b"pg", [{"CPU": 1, "GPU": 1}, {"CPU": 1, "GPU": 1}], "PACK")
    assert "GroupReady" in kinds(s.create_group(group))
    assert sorted(group.gpu_ids) == [0, 1]
    assert [p.acquire({"GPU": 1}) for p in group.pools] == [[0], [1]]   # one device each
    s.remove_group(b"pg")
    again = PlacementGroup(b"pg2", [{"GPU": 1}, {"GPU": 1}], "PACK")
    assert "GroupReady" in kinds(s.create_group(again))
    assert sorted(again.gpu_ids) == [0, 1]                               # returned, reused


def test_fractional_gpu_bundles_share_a_device_while_they_fit():
    from raylite.core.local._scheduler import _bundle_gpu_ids
    assert _bundle_gpu_ids([{"GPU": 0.5}] * 3, [0, 1]) == [[0], [0], [1]]
    assert _bundle_gpu_ids([{"GPU": 1}, {"CPU": 1}, {"GPU": 2}], [3, 4, 5]) == [[3], [], [4, 5]]
    assert _bundle_gpu_ids([{"GPU": 0.5}, {"GPU": 1}], [0, 1]) == [[0], [1]]


def test_strict_spread_is_infeasible_on_one_node():
    s = Scheduler({"CPU": 4})
    actions = s.create_group(PlacementGroup(b"pg", [{"CPU": 1}, {"CPU": 1}], "STRICT_SPREAD"))
    assert kinds(actions) == ["Warn"] and "STRICT_SPREAD" in actions[0].message


def test_transition_table_rejects_illegal_moves():
    t = task("t")
    t.state = TaskState.FINISHED
    assert TASK_TRANSITIONS[TaskState.FINISHED] == set()
    with pytest.raises(AssertionError):
        t.to(TaskState.RUNNING)


def test_retry_on_error_requeues_and_frees_the_worker():
    s = Scheduler({"CPU": 1})
    s.schedule()
    (w,) = started(s, 1)
    t = task("t", retries=2)
    s.submit(t, set())
    actions = s.task_errored(w, b"t", 0.01, retryable=True)
    assert kinds(actions) == ["Retry", "Dispatch"] and t.attempt == 1 and t.state is TaskState.RUNNING
    s.task_errored(t.worker_id, b"t", 0.01, retryable=True)
    assert t.attempt == 2
    actions = s.task_errored(t.worker_id, b"t", 0.01, retryable=True)  # retries spent
    assert "Retry" not in kinds(actions) and b"t" not in s.tasks
    other = task("u", retries=2)
    s.submit(other, set())
    assert "Retry" not in kinds(s.task_errored(other.worker_id, b"u", 0.01, retryable=False))


def test_extra_workers_retire_when_idle_long_enough():
    now = [0.0]
    s = Scheduler({"CPU": 1}, clock=lambda: now[0])
    s.schedule()
    (w,) = started(s, 1)
    s.submit(task("outer"), set())
    s.submit(task("inner"), set())
    s.worker_blocked(w)
    s.worker_started(b"extra")
    s.task_finished(b"extra", b"inner", 0.1)
    s.worker_unblocked(w)
    s.task_finished(w, b"outer", 0.2)
    now[0] = 1.0
    assert s.retire_idle(2.0) == []
    now[0] = 5.0
    assert s.retire_idle(2.0) == [StopWorker(w)]  # the longest idle goes, one stays
    assert list(s.workers) == [b"extra"] and s.retire_idle(2.0) == []


def test_blocked_actor_lends_its_cpu():
    s = Scheduler({"CPU": 1})
    s.schedule()
    started(s, 1)
    s.request_actor(Actor(b"a", "A", {"CPU": 1}))
    assert kinds(s.submit(task("child"), set())) == []  # the actor holds the only CPU
    assert kinds(s.actor_blocked(b"a")) == ["Dispatch"]
    assert s.actor_blocked(b"a") == []  # a second waiting call lends nothing more
    s.actor_unblocked(b"a")
    s.actor_unblocked(b"a")
    assert s.available()["CPU"] == 0  # taken back (the child still runs: overcommitted)


# ----- runtime envs: a worker runs only tasks of the env it was started in ----------------------
def env_task(name: str, env: str, cpus: float = 1.0) -> Task:
    return Task(name.encode(), name, {"CPU": cpus}, b"f", 0, env=env)


def test_a_task_with_an_env_starts_a_worker_of_that_env_and_never_uses_a_default_one():
    from raylite.core.local._scheduler import StartWorker
    s = Scheduler({"CPU": 2})
    s.schedule()
    started(s, 2)  # two idle default workers
    actions = s.submit(env_task("a", "envA"), set())
    assert actions == [StartWorker("envA")]
    placed = s.worker_started(b"wa", "envA")
    assert kinds(placed) == ["Dispatch"] and placed[0].worker_id == b"wa"  # when it came up
    s.task_finished(b"wa", b"a", 0.5)
    again = s.submit(env_task("a2", "envA"), set())
    assert kinds(again) == ["Dispatch"] and again[0].worker_id == b"wa"  # reused
    s.task_finished(b"wa", b"a2", 0.5)
    plain = s.submit(task("p"), set())
    assert kinds(plain) == ["Dispatch"] and plain[0].worker_id in (b"w0", b"w1")


def test_a_worker_of_another_env_is_stopped_to_make_room_when_the_pool_is_full():
    from raylite.core.local._scheduler import StartWorker
    s = Scheduler({"CPU": 1}, max_extra_workers=0)
    s.schedule()
    (w,) = started(s, 1)  # the pool is full: one worker, of the default env
    actions = s.submit(env_task("a", "envA"), set())
    assert actions == [StopWorker(w), StartWorker("envA")]
    assert w not in s.workers
    s.worker_started(b"wa", "envA")
    assert s.tasks[b"a"].worker_id == b"wa"
    s.task_finished(b"wa", b"a", 0.1)
    back = s.submit(task("p"), set())  # and back again for a default task
    assert back == [StopWorker(b"wa"), StartWorker("")]


def test_idle_workers_of_other_envs_retire_first_and_a_dying_starter_is_replaced():
    clock = [0.0]
    s = Scheduler({"CPU": 1}, clock=lambda: clock[0])
    s.schedule()
    started(s, 1)
    s.submit(env_task("a", "envA"), set())
    s.worker_started(b"wa", "envA")
    s.task_finished(b"wa", b"a", 0.1)
    clock[0] = 10.0
    assert s.retire_idle(2.0) == [StopWorker(b"wa")]  # the env worker, not the default one
    s.submit(env_task("b", "envB"), set())
    assert s.starting_envs["envB"] == 1
    from raylite.core.local._scheduler import StartWorker
    assert s.worker_died(b"never-started", "envB") == [StartWorker("envB")]
    assert s.starting_envs["envB"] == 1 and s.starting == 1


def test_a_broken_env_fails_its_tasks_now_and_later_and_starts_no_more_workers():
    from raylite.core.local._scheduler import StartWorker
    s = Scheduler({"CPU": 1})
    s.schedule()
    started(s, 1)
    a = env_task("a", "bad")
    assert s.submit(a, set()) == [StartWorker("bad")]
    assert s.env_failed("bad", "cannot start") == [Fail(a, "runtime_env_failed", "cannot start")]
    later = env_task("b", "bad")
    assert s.submit(later, {b"dep"}) == []
    assert s.object_available(b"dep") == [Fail(later, "runtime_env_failed", "cannot start")]
    assert s.starting == 0 and kinds(s.submit(task("ok"), set())) == ["Dispatch"]


def test_captured_tasks_use_any_bundle_with_room():
    """Bundle index -1 (a child captured into its parent's group) takes the first bundle that
    fits the request, not just the one with the most CPU free."""
    s = Scheduler({"CPU": 3, "GPU": 1})
    s.schedule()
    started(s, 3)
    group = PlacementGroup(b"pg", [{"CPU": 2}, {"CPU": 1, "GPU": 1}], "PACK")
    s.create_group(group)
    gpu_task = Task(b"g", "g", {"CPU": 1, "GPU": 1}, b"f", 0, (b"pg", -1, True))
    (dispatch,) = s.submit(gpu_task, set())
    assert dispatch.gpu_ids == [0]                      # the GPU bundle, though it has less CPU
    assert group.pools[1].available["CPU"] == 0 and group.pools[0].available["CPU"] == 2
    cpu_task = Task(b"c", "c", {"CPU": 2}, b"f", 0, (b"pg", -1, True))
    assert kinds(s.submit(cpu_task, set())) == ["Dispatch"]
    assert kinds(s.submit(Task(b"x", "x", {"CPU": 1}, b"f", 0, (b"pg", -1, True)), set())) == []
    assert s.available()["CPU"] == 0                    # nothing outside the group was used


def test_blocked_actor_in_a_bundle_lends_its_cpu_to_the_tasks_captured_there():
    """A training worker holding a bundle waits (get/wait) on a data task it started; the task,
    captured into the worker's group, runs on the CPU the worker lent to its bundle, while the
    node's own pool (full) and other groups' bundles are never touched."""
    s = Scheduler({"CPU": 2})
    s.schedule()
    started(s, 2)
    s.create_group(PlacementGroup(b"pg", [{"CPU": 1}, {"CPU": 1}], "PACK"))
    for i in range(2):
        assert kinds(s.request_actor(Actor(f"w{i}".encode(), "W", {"CPU": 1}, (b"pg", i, True)))) \
            == ["StartActor"]
    child = Task(b"data", "data", {"CPU": 1}, b"f", 0, (b"pg", -1, True))
    assert kinds(s.submit(child, set())) == []          # every bundle is held
    assert kinds(s.submit(task("outside"), set())) == []
    actions = s.actor_blocked(b"w1")
    assert [a.task.name for a in actions if type(a).__name__ == "Dispatch"] == ["data"]
    s.task_finished(child.worker_id, b"data", 0.1)
    s.actor_unblocked(b"w1")
    assert s.groups[b"pg"].pools[1].available["CPU"] == 0   # held again by its worker
    assert s.available()["CPU"] == 0 and b"outside" in s.tasks  # the node's pool stays full
