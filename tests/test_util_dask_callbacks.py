"""RayDaskCallback (ray.util.dask): the hooks raylite's Dask scheduler calls, in the driver
around each submission and in the worker around each task, as a context manager, registered,
or for one call with ray_callbacks=; Ray's documented examples (a timing callback, a caching
callback whose presubmit hook answers for a task) run unchanged."""

from __future__ import annotations

import os
from timeit import default_timer as timer

import pytest

import raylite as ray

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

from raylite.util.dask import RayDaskCallback, ray_dask_get, ray_dask_get_sync  # noqa: E402

pytestmark = pytest.mark.usefixtures("ray")  # conftest: a 2-CPU runtime for this module


@ray.remote
class Recorder:
    def __init__(self):
        self.entries = []

    def add(self, entry):
        self.entries.append(entry)

    def get(self):
        return self.entries


class TimerCallback(RayDaskCallback):
    """Ray's timing example, recording into an actor instead of printing."""

    def __init__(self, recorder):
        self.recorder = recorder
        self.submitted = []

    def _ray_postsubmit(self, task, key, deps, object_ref):
        self.submitted.append(str(key))  # in the driver

    def _ray_pretask(self, key, object_refs):
        return timer(), os.getpid()

    def _ray_posttask(self, key, result, pre_state):
        start, pid = pre_state
        ray.get(self.recorder.add.remote((str(key), timer() - start, pid, os.getpid())))


def test_timer_callback_runs_around_each_task_in_the_worker():
    recorder = Recorder.remote()
    z = da.ones(100, chunks=25).sum()
    with TimerCallback(recorder) as callback:
        assert z.compute(scheduler=ray_dask_get) == 100
    entries = ray.get(recorder.get.remote())
    assert len(callback.submitted) >= 5  # 4 chunks (fused by Dask with their sums), a total
    assert sorted(entry[0] for entry in entries) == sorted(callback.submitted)
    for _key, elapsed, pre_pid, post_pid in entries:
        assert elapsed >= 0 and pre_pid == post_pid != os.getpid()
    assert not RayDaskCallback.ray_active  # gone with the with block
    z.compute(scheduler=ray_dask_get)
    assert len(ray.get(recorder.get.remote())) == len(entries)


@ray.remote
class SimpleCacheActor:
    def __init__(self):
        self.cache = {}

    def get(self, key):
        return self.cache[key]  # KeyError if not there

    def put(self, key, value):
        self.cache[key] = value


class SimpleCacheCallback(RayDaskCallback):
    """Ray's caching example (threshold 0: every result is cached), counting submissions."""

    def __init__(self, cache_actor_handle, put_threshold=10):
        self.cache_actor = cache_actor_handle
        self.put_threshold = put_threshold
        self.submitted = []

    def _ray_presubmit(self, task, key, deps):
        try:
            return ray.get(self.cache_actor.get.remote(str(key)))
        except KeyError:
            return None

    def _ray_postsubmit(self, task, key, deps, object_ref):
        assert isinstance(object_ref, ray.ObjectRef)
        self.submitted.append(key)

    def _ray_pretask(self, key, object_refs):
        return timer()

    def _ray_posttask(self, key, result, pre_state):
        if timer() - pre_state >= self.put_threshold:
            ray.get(self.cache_actor.put.remote(str(key), result))


def _inc(x):
    return x + 1


def _add(x, y):
    return x + y


@pytest.mark.parametrize("scheduler", [ray_dask_get, ray_dask_get_sync])
def test_caching_callback_answers_for_tasks_through_presubmit(scheduler):
    x, y = dask.delayed(_inc)(1), dask.delayed(_inc)(2)
    z = dask.delayed(_add)(x, y)
    cache = SimpleCacheActor.remote()
    callback = SimpleCacheCallback(cache, put_threshold=0)
    with callback:
        assert z.compute(scheduler=scheduler) == 5
    assert len(callback.submitted) == 3
    callback.submitted.clear()
    with callback:  # every key is cached now: nothing is submitted
        assert z.compute(scheduler=scheduler) == 5
    assert callback.submitted == []
    # a presubmit value stands for the task's result in the tasks that read it
    fresh = SimpleCacheActor.remote()
    ray.get(fresh.put.remote(str(x.key), 100))
    partial = SimpleCacheCallback(fresh, put_threshold=1e9)  # caches nothing more
    with partial:
        assert z.compute(scheduler=scheduler) == 100 + 3
    assert sorted(map(str, partial.submitted)) == sorted([str(y.key), str(z.key)])


def test_hooks_given_by_keyword_and_ray_callbacks_for_one_call():
    seen = []

    def presubmit(task, key, deps):
        seen.append(("presubmit", key, dict(deps)))

    def postsubmit_all(object_refs, dsk):
        seen.append(("postsubmit_all", object_refs, dsk))

    def finish(result):
        seen.append(("finish", result))

    x = dask.delayed(_inc)(1)
    z = dask.delayed(_add)(x, 10)
    active = RayDaskCallback(ray_presubmit=lambda task, key, deps: 999)  # would answer all
    with active:  # ray_callbacks= replaces the active callbacks for this call
        assert z.compute(scheduler=ray_dask_get, ray_callbacks=[RayDaskCallback(
            ray_presubmit=presubmit, ray_postsubmit_all=postsubmit_all,
            ray_finish=finish)]) == 12
    kinds = [entry[0] for entry in seen]
    assert kinds == ["presubmit", "presubmit", "postsubmit_all", "finish"]
    assert seen[0][1] == x.key and seen[0][2] == {}
    assert seen[1][1] == z.key and isinstance(seen[1][2][x.key], ray.ObjectRef)
    refs = seen[2][1]  # in the shape of the keys Dask asked for: [z.key]
    assert len(refs) == 1 and ray.get(refs[0]) == 12
    assert seen[3][1] == [12]
    with pytest.raises(TypeError, match="ray_presubmit"):
        RayDaskCallback(ray_presubmt=presubmit)
    with pytest.raises(TypeError, match="RayDaskCallback objects"):
        z.compute(scheduler=ray_dask_get, ray_callbacks=[presubmit])


def test_register_and_persist():
    finished = []
    callback = RayDaskCallback(ray_finish=finished.append)
    callback.register()
    try:
        persisted = da.arange(10, chunks=5).persist(scheduler=ray_dask_get)
    finally:
        callback.unregister()
    assert finished and all(isinstance(ref, ray.ObjectRef)
                            for ref in _flatten(finished[0]))  # persist: refs, not values
    assert int(persisted.sum().compute(scheduler=ray_dask_get)) == 45
    assert len(finished) == 1 and not RayDaskCallback.ray_active


def _flatten(value):
    if isinstance(value, (list, tuple)):
        return [v for part in value for v in _flatten(part)]
    return [value]


def test_dasks_own_scheduler_hooks_are_not_called_and_it_says_so(monkeypatch):
    from dask.callbacks import Callback

    from raylite.util.dask import callbacks
    monkeypatch.setattr(callbacks, "_warned", False)
    called = []
    with Callback(pretask=lambda key, dsk, state: called.append(key)), \
            pytest.warns(UserWarning, match="does not call Dask's own scheduler callbacks"):
        assert dask.delayed(_inc)(1).compute(scheduler=ray_dask_get) == 2
    assert called == []
