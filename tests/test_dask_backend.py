"""The core API on a real Dask cluster: ``raylite start`` starts a scheduler and two worker
processes on 127.0.0.1 (one thread and CPU=1 each; the second also has ``accel=1``), then the
same contract as the local runtime runs through ``raylite.init(address="dask://...")``.

Tasks that must stay running for a while wait on a Dask ``Event`` the test sets, never on time.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

pytest.importorskip("distributed")

import test_core_api as core_contract
from distributed import Client, Event, Queue

from raylite import exceptions

# The local runtime's contract tests that hold for any backend, run here on Dask (with this
# module's `ray` fixture). Left out: those that block a worker thread for many seconds with an
# uninterruptible sleep (Dask cannot kill a running task), and local-only details (ref id length).
CONTRACT = [
    core_contract.test_tasks_options_and_multiple_returns,
    core_contract.test_top_level_refs_resolved_nested_refs_stay_refs,
    core_contract.test_refs_in_closures_and_nested_tasks,
    core_contract.test_deep_nesting_does_not_deadlock,
    core_contract.test_exception_is_original_class_with_remote_traceback,
    core_contract.test_dependency_error_propagates,
    core_contract.test_retry_exceptions,
    core_contract.test_actor_order_state_and_handles_in_tasks,
    core_contract.test_actor_method_num_returns_and_errors,
    core_contract.test_threaded_actor_runs_calls_concurrently,
    core_contract.test_async_actor_interleaves_and_awaits_refs,
    core_contract.test_named_actors_and_get_actor,
    core_contract.test_actor_constructor_error_surfaces_on_calls,
]

EVENT_TIMEOUT_S = 60


def _cli(*args: str, state_dir: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAYLITE_STATE_DIR=state_dir)
    env.pop("RAYLITE_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "raylite.cli._cluster", *args], check=False,
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def cluster():
    """(address, raw Dask client, state dir): a scheduler and two workers, stopped at the end."""
    state_dir = tempfile.mkdtemp(prefix="raylite-dask-test-")
    try:
        head = _cli("start", "--head", "--port", "0", "--num-cpus", "1",
                    "--include-dashboard", "false", "--idle-timeout", "120",  # if we are killed
                    state_dir=state_dir)
        assert head.returncode == 0, head.stdout + head.stderr
        with open(os.path.join(state_dir, "cluster.json")) as f:
            address = json.load(f)["address"]
        assert f'raylite.init(address="dask://{address.split("://")[1]}")' in head.stdout
        assert "export RAYLITE_ADDRESS=dask://" in head.stdout
        joined = _cli("start", "--address", address, "--num-cpus", "1",
                      "--resources", '{"accel": 1}', state_dir=state_dir)
        assert joined.returncode == 0, joined.stdout + joined.stderr
        client = Client(address, set_as_default=False, timeout=30)
        try:
            client.wait_for_workers(2, timeout=60)
            yield address, client, state_dir
        finally:
            client.close()
    finally:
        stopped = _cli("stop", state_dir=state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


@pytest.fixture(scope="module")
def ray(cluster):
    import raylite
    raylite.shutdown()
    raylite.init(address="dask://" + cluster[0].split("://")[1])
    yield raylite
    raylite.shutdown()


def _gate(client: Client, name: str) -> Event:
    return Event(name, client=client)


# ==========================================================================================
# tasks and objects
# ==========================================================================================
@pytest.mark.parametrize("contract", CONTRACT, ids=lambda test: test.__name__[len("test_"):])
def test_core_api_contract(contract, ray, request):
    """The same test function as on the local runtime, with this module's Dask `ray`."""
    names = inspect.signature(contract).parameters
    contract(**{name: ray if name == "ray" else request.getfixturevalue(name) for name in names})


def test_init_reports_the_dask_cluster(ray, cluster):
    ctx = ray.core._api._context
    assert ctx["address"] == "dask://" + cluster[0].split("://")[1]
    assert ctx["node_ip_address"] == "127.0.0.1" and ctx["namespace"]
    assert len(ray.nodes()) == 2 and all(node["Alive"] for node in ray.nodes())
    total = ray.cluster_resources()
    assert total["CPU"] == 2 and total["accel"] == 1
    assert ray.available_resources()["CPU"] <= 2


def test_refs_of_unfinished_tasks_as_arguments(ray):
    @ray.remote
    def kinds(x, nested, keyword=None):
        return type(x).__name__, type(nested[0]).__name__, ray.get(nested[0]), keyword

    @ray.remote
    def double(x):
        return 2 * x

    ref = ray.put(41)
    produced = double.remote(ref)  # a task's result, not yet computed when passed on
    assert ray.get(kinds.remote(ref, [ref], keyword=ref)) == ("int", "ObjectRef", 41, 41)
    assert ray.get(kinds.remote(produced, [produced])) == ("int", "ObjectRef", 82, None)


def test_wait_and_get_timeout(ray, cluster):
    client = cluster[1]
    gate = _gate(client, "wait-gate")

    @ray.remote
    def gated(name, value):
        from distributed import Event
        Event(name).wait(EVENT_TIMEOUT_S)
        return value

    @ray.remote
    def quick(value):
        return value

    slow, fast = gated.remote("wait-gate", "slow"), quick.remote("fast")
    ready, not_ready = ray.wait([slow, fast], num_returns=1, timeout=30)
    assert ready == [fast] and not_ready == [slow]
    ready, not_ready = ray.wait([slow], timeout=0.05)
    assert ready == [] and not_ready == [slow]
    start = time.monotonic()
    with pytest.raises(exceptions.GetTimeoutError) as info:
        ray.get(slow, timeout=0.2)
    assert isinstance(info.value, TimeoutError) and time.monotonic() - start < 5
    gate.set()
    assert ray.get(slow, timeout=30) == "slow"
    ready, not_ready = ray.wait([fast, slow], num_returns=2, timeout=30)
    assert ready == [fast, slow] and not_ready == []


def test_errors_keep_their_type_and_remote_traceback(ray):
    class MyError(Exception):
        pass

    @ray.remote
    def fail():
        raise MyError("boom")

    @ray.remote
    def use(x):
        return x

    @ray.remote
    def nested_failure():
        return ray.get(fail.remote())

    with pytest.raises(MyError) as info:
        ray.get(fail.remote())
    err = info.value
    assert isinstance(err, exceptions.TaskError) and isinstance(err, exceptions.RayTaskError)
    assert "fail" in str(err) and "boom" in str(err) and "Traceback" in str(err)
    assert 'raise MyError("boom")' in str(err)  # the remote source line
    assert isinstance(err.__cause__, MyError)
    with pytest.raises(MyError):
        ray.get(use.remote(fail.remote()))
    with pytest.raises(MyError, match="nested_failure"):
        ray.get(nested_failure.remote())


def test_put_get_numpy_and_refs_inside_values(ray):
    array = np.arange(2_000_000, dtype=np.float64)  # 16 MB
    ref = ray.put(array)
    np.testing.assert_array_equal(ray.get(ref), array)

    @ray.remote
    def total(x):
        return float(x.sum())

    assert ray.get(total.remote(ref)) == float(array.sum())
    inner = ray.put("inner")
    outer = ray.put({"refs": [inner]})
    del inner
    assert ray.get(ray.get(outer)["refs"][0]) == "inner"


def test_cancel(ray, cluster):
    gate = _gate(cluster[1], "cancel-gate")

    @ray.remote
    def gated(name):
        from distributed import Event
        return Event(name).wait(EVENT_TIMEOUT_S)

    refs = [gated.remote("cancel-gate") for _ in range(3)]  # two run, one queued
    for ref in refs:
        ray.cancel(ref)
    for ref in refs:
        with pytest.raises(exceptions.TaskCancelledError):
            ray.get(ref, timeout=10)
    gate.set()

    @ray.remote
    def quick():
        return 0

    assert ray.get(quick.remote(), timeout=30) == 0


# ==========================================================================================
# actors
# ==========================================================================================
def test_actor_errors_keep_the_actor_going(ray):
    @ray.remote
    class A:
        def __init__(self):
            self.calls = 0

        @ray.method(num_returns=2)
        def two(self):
            self.calls += 1
            return 1, 2

        def bad(self):
            self.calls += 1
            raise RuntimeError("nope")

        def count(self):
            return self.calls

    a = A.remote()
    x, y = a.two.remote()
    failing = a.bad.remote()
    after = a.count.remote()
    assert ray.get([x, y]) == [1, 2]
    with pytest.raises(RuntimeError, match="nope"):
        ray.get(failing)
    assert ray.get(after) == 2
    assert ray.get(a.two.options(num_returns=1).remote()) == (1, 2)


def test_get_actor_inside_a_task(ray):
    @ray.remote
    class Named:
        def ping(self):
            return "pong"

    Named.options(name="lookup-target").remote()

    @ray.remote
    def lookup():
        return ray.get(ray.get_actor("lookup-target").ping.remote())

    assert ray.get(lookup.remote(), timeout=30) == "pong"
    with pytest.raises(ValueError, match="Failed to look up actor with name 'nope'"):
        ray.get_actor("nope")


def test_kill_actor_fails_pending_and_later_calls(ray):
    @ray.remote
    class Sleeper:
        def nap(self):
            for _ in range(1200):  # long-running work; kill interrupts it
                time.sleep(0.05)

        def ping(self):
            return 1

    sleeper = Sleeper.options(name="sleeper").remote()
    assert ray.get(sleeper.ping.remote(), timeout=30) == 1
    napping = sleeper.nap.remote()
    queued = sleeper.ping.remote()
    ray.kill(sleeper)
    for ref in (napping, queued):
        with pytest.raises(exceptions.ActorDiedError, match="killed"):
            ray.get(ref, timeout=10)
    with pytest.raises(exceptions.ActorDiedError):
        ray.get(sleeper.ping.remote(), timeout=10)
    with pytest.raises(ValueError, match="Failed to look up"):
        ray.get_actor("sleeper")


# ==========================================================================================
# resources
# ==========================================================================================
def test_custom_resources_and_a_resource_no_worker_has(ray, capsys):
    @ray.remote
    def where():
        return ray.get_runtime_context().get_node_id()

    accel_nodes = {n["NodeID"] for n in ray.nodes() if n["Resources"].get("accel")}
    assert len(accel_nodes) == 1
    placed = ray.get([where.options(resources={"accel": 1}).remote() for _ in range(4)],
                     timeout=30)
    assert set(placed) == accel_nodes

    capsys.readouterr()
    stuck = where.options(resources={"TPU": 1}).remote()
    err = capsys.readouterr().err
    assert "'TPU'" in err and "no Dask worker has the resource" in err
    assert "CPU=1" in err and "accel=1" in err  # the workers' resources, named
    ready, _ = ray.wait([stuck], timeout=0.2)
    assert ready == []
    ray.cancel(stuck)


# ==========================================================================================
# the book's chapter 2
# ==========================================================================================
def test_book_chapter_2_examples(ray, capsys):
    # Example 2-2.
    database = [
        "Learning", "Ray",
        "Flexible", "Distributed", "Python", "for", "Data", "Science"
    ]

    def retrieve(item):
        time.sleep(item / 10.)
        return item, database[item]

    # Example 2-3.
    def print_runtime(input_data, start_time, decimals=1):
        print(f'Runtime: {time.time() - start_time:.{decimals}f} seconds, data:')
        print(*input_data, sep="\n")

    # Example 2-4.
    @ray.remote
    def retrieve_task(item):
        return retrieve(item)

    # Example 2-5.
    start = time.time()
    data_references = [retrieve_task.remote(item) for item in range(8)]
    data = ray.get(data_references)
    print_runtime(data, start, 2)
    assert data == list(enumerate(database))

    # Example 2-6.
    database_object_ref = ray.put(database)

    @ray.remote
    def retrieve_task(item):
        obj_store_data = ray.get(database_object_ref)
        time.sleep(item / 10.)
        return item, obj_store_data[item]

    # Example 2-7.
    start = time.time()
    data_references = [retrieve_task.remote(item) for item in range(8)]
    all_data = []
    while len(data_references) > 0:
        finished, data_references = ray.wait(data_references, num_returns=2, timeout=7.0)
        data = ray.get(finished)
        print_runtime(data, start, 3)
        all_data.extend(data)
    assert sorted(all_data) == list(enumerate(database))

    # Example 2-8.
    @ray.remote
    def follow_up_task(retrieve_result):
        original_item, _ = retrieve_result
        follow_up_result = retrieve(original_item + 1)
        return retrieve_result, follow_up_result

    retrieve_refs = [retrieve_task.remote(item) for item in [0, 2, 4, 6]]
    follow_up_refs = [follow_up_task.remote(ref) for ref in retrieve_refs]
    result = [print(data) for data in ray.get(follow_up_refs)]
    assert len(result) == 4
    assert ray.get(follow_up_refs[1]) == ((2, "Flexible"), (3, "Distributed"))

    # Example 2-9.
    @ray.remote
    class DataTracker:
        def __init__(self):
            self._counts = 0

        def increment(self):
            self._counts += 1

        def counts(self):
            return self._counts

    # Example 2-10.
    @ray.remote
    def retrieve_tracker_task(item, tracker):
        obj_store_data = ray.get(database_object_ref)
        time.sleep(item / 10.)
        tracker.increment.remote()
        return item, obj_store_data[item]

    tracker = DataTracker.remote()
    data_references = [retrieve_tracker_task.remote(item, tracker) for item in range(8)]
    data = ray.get(data_references)
    print(ray.get(tracker.counts.remote()))
    out = capsys.readouterr().out
    assert "Runtime:" in out and "(7, 'Science')" in out
    assert out.rstrip().splitlines()[-1] == "8"


# ==========================================================================================
# connecting, the CLI, and a worker that dies
# ==========================================================================================
def test_unreachable_address_fails_fast_and_says_how_to_start(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    env = dict(os.environ, RAYLITE_CONNECT_TIMEOUT="5")
    env.pop("RAYLITE_ADDRESS", None)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", f"import raylite; raylite.init(address='dask://127.0.0.1:{port}')"],
        check=False, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert done.returncode != 0
    assert time.monotonic() - start < 30
    assert "ConnectionError" in done.stderr
    assert f"127.0.0.1:{port}" in done.stderr and "raylite start --head" in done.stderr


def test_workers_running_another_raylite_are_reported(ray, monkeypatch, capsys):
    from raylite.core import _api, _dask_remote
    monkeypatch.setattr(_dask_remote, "PROTOCOL", _dask_remote.PROTOCOL + 1)
    _api._backend_obj._check_workers()
    err = capsys.readouterr().err
    assert err.count("raylite: warning: Dask worker tcp://") == 2
    assert f"(protocol {_dask_remote.PROTOCOL - 1})" in err and "restart the workers" in err


def test_cli_status_and_argument_errors(cluster, capsys):
    address, _, state_dir = cluster
    status = _cli("status", state_dir=state_dir)
    assert status.returncode == 0, status.stderr
    rows = [line for line in status.stdout.splitlines() if line.startswith("tcp://")]
    assert len(rows) == 2 and any("accel=1" in row for row in rows)
    assert "2 node(s); CPU 2" in status.stdout and address in status.stdout

    from raylite.cli import _cluster
    with pytest.raises(SystemExit) as exit_info:
        _cluster.main(["start", "--head", "--resources", "{not json"])
    assert exit_info.value.code == 2 and "--resources" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _cluster.main(["start"])  # neither --head nor --address


def test_worker_killed_mid_run_tasks_are_retried(ray, cluster):
    """Last in the module: SIGKILL a worker process while tasks run on it."""
    client = cluster[1]
    started = Queue("started", client=client)
    release = _gate(client, "release-after-kill")

    @ray.remote
    def job(i):
        import os

        from distributed import Event, Queue
        Queue("started").put((i, os.getpid()))
        Event("release-after-kill").wait(EVENT_TIMEOUT_S)
        return i, os.getpid()

    pids = client.run(os.getpid)
    refs = [job.remote(i) for i in range(6)]
    running_on = {}
    while len(set(running_on.values())) < 2:  # wait until both workers run one
        i, pid = started.get(timeout=EVENT_TIMEOUT_S)
        running_on[i] = pid
    victim = next(iter(running_on.values()))
    assert victim in pids.values()
    os.kill(victim, signal.SIGKILL)
    release.set()
    results = ray.get(refs, timeout=90)
    assert [i for i, _ in results] == list(range(6))
    assert victim not in {pid for _, pid in results}
    retried = [i for i, pid in running_on.items() if pid == victim]
    assert retried, "a task was running on the killed worker"
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the worker
