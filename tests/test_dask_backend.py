"""The core API on a real Dask cluster: ``raylite start`` starts a scheduler and two worker
processes on 127.0.0.1 (one thread and CPU=1 each; the second also has ``accel=1``) speaking
mutual TLS (the state folder holding the credentials is this process's RAYLITE_STATE_DIR while
the cluster runs), once per test session (test_dask_libraries runs on the same cluster), then the same contract as the local
runtime runs through ``raylite.init(address="dask://...")``, with what is Dask's own: direct actor
calls in each caller's order, actor restarts after a worker dies, placement groups that are
checked but not reserved, and a worker killed mid-run.

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
    core_contract.test_kill_actor_fails_pending_and_future_calls,  # sleeps in the actor's thread
    core_contract.test_actor_constructor_error_surfaces_on_calls,
    core_contract.test_placement_group_created_inside_a_task,
]

EVENT_TIMEOUT_S = 60


def _cli(*args: str, state_dir: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAYLITE_STATE_DIR=state_dir)
    env.pop("RAYLITE_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "raylite.cli._cluster", *args], check=False,
                          capture_output=True, text=True, timeout=timeout, env=env)


_shared: dict = {}


def shared_cluster(config) -> tuple:
    """(address, raw Dask client, state dir): a scheduler and two workers, started once per
    test session by ``raylite start`` (the Dask test modules share it)."""
    if "cluster" in _shared:
        return _shared["cluster"]
    state_dir = tempfile.mkdtemp(prefix="raylite-dask-test-")
    previous_state_dir = os.environ.get("RAYLITE_STATE_DIR")
    os.environ["RAYLITE_STATE_DIR"] = state_dir  # this process and its children find the keys

    def stop():
        if _shared.pop("cluster", None) is None:
            return
        _shared.pop("client").close()
        stopped = _cli("stop", state_dir=state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
        if previous_state_dir is None:
            os.environ.pop("RAYLITE_STATE_DIR", None)
        else:
            os.environ["RAYLITE_STATE_DIR"] = previous_state_dir
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr

    _shared["stop"] = stop
    config.add_cleanup(stop)  # at the latest
    head = _cli("start", "--head", "--port", "0", "--num-cpus", "1",
                "--include-dashboard", "false", "--idle-timeout", "120",  # if we are killed
                state_dir=state_dir)
    assert head.returncode == 0, head.stdout + head.stderr
    with open(os.path.join(state_dir, "cluster.json")) as f:
        address = json.load(f)["address"]
    assert address.startswith("tls://")
    assert f'raylite.init(address="{address}")' in head.stdout
    assert f"export RAYLITE_ADDRESS={address}" in head.stdout
    joined = _cli("start", "--address", address, "--num-cpus", "1",
                  "--resources", '{"accel": 1}', state_dir=state_dir)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    from raylite.core.dask import _tls as _dask_tls
    client = _shared["client"] = Client(address, set_as_default=False, timeout=30,
                                        security=_dask_tls.load().security())
    client.wait_for_workers(2, timeout=60)
    _shared["cluster"] = (address, client, state_dir)
    return _shared["cluster"]


def using_cluster(request):
    """The body of each Dask test module's ``cluster`` fixture: the shared cluster, stopped
    after the last module of this session that uses it."""
    address, client, state_dir = shared_cluster(request.config)
    client.wait_for_workers(2, timeout=60)  # a test before may have killed one (it restarts)
    yield address, client, state_dir
    users = {item.module.__name__ for item in request.session.items
             if "cluster" in getattr(item, "fixturenames", ())}
    finished = _shared.setdefault("finished", set())
    finished.add(request.module.__name__)
    if finished >= users:
        _shared["stop"]()


@pytest.fixture(scope="module")
def cluster(request):
    """(address, raw Dask client, state dir) of the session's two-worker cluster."""
    yield from using_cluster(request)


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


def test_wait_on_tasks_and_actor_calls_together(ray, cluster):
    gate = _gate(cluster[1], "mixed-gate")

    @ray.remote
    class Gated:
        def wait(self, name):
            from distributed import Event
            Event(name).wait(EVENT_TIMEOUT_S)
            return "call"

    @ray.remote
    def quick():
        return "task"

    slow_call, fast_task = Gated.remote().wait.remote("mixed-gate"), quick.remote()
    assert ray.wait([slow_call, fast_task], num_returns=1, timeout=30) == ([fast_task],
                                                                          [slow_call])
    with pytest.raises(exceptions.GetTimeoutError):
        ray.get([fast_task, slow_call], timeout=0.1)
    gate.set()  # the call waited on above is still going, and answers
    assert ray.get([slow_call, fast_task], timeout=30) == ["call", "task"]


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

    # two run, one queued; Dask cannot interrupt the running two: they are marked cancelled
    # (get raises TaskCancelledError) and run on until the gate opens, their results dropped
    refs = [gated.remote("cancel-gate") for _ in range(3)]
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


def test_pipelined_actor_calls_keep_each_callers_order(ray):
    """Calls are sent at once, without waiting for replies, and still run in each caller's order
    (the driver's, and each task's): the actor's host orders them by their numbers."""
    @ray.remote
    class Log:
        def __init__(self):
            self.items = []

        def add(self, item):
            self.items.append(item)
            return len(self.items)

        def read(self):
            return self.items

    log = Log.remote()
    refs = [log.add.remote(i) for i in range(300)]

    @ray.remote
    def from_a_task(log, base):
        return ray.get([log.add.remote(base + i) for i in range(50)])

    in_tasks = [from_a_task.remote(log, 1000), from_a_task.remote(log, 2000)]
    for counts in [ray.get(refs, timeout=60), *ray.get(in_tasks, timeout=60)]:
        assert counts == sorted(counts)  # each caller's calls ran one after the other
    items = ray.get(log.read.remote())
    assert len(items) == 400
    for base, n in ((0, 300), (1000, 50), (2000, 50)):  # interleaved, each caller in its order
        assert [x for x in items if base <= x < base + n] == list(range(base, base + n))


def test_actor_call_results_travel_to_tasks_objects_and_back(ray):
    """A call's result lives with its caller until Dask needs it: passed to a task (top level
    and nested), put inside an object, or returned from a task that made the call."""
    @ray.remote
    class Source:
        def make(self, n):
            return list(range(n))

    source = Source.remote()

    @ray.remote
    def total(values, nested):
        return sum(values) + sum(ray.get(nested[0]))

    made = source.make.remote(4)
    assert ray.get(total.remote(made, [made])) == 12

    @ray.remote
    def call_and_return(source):
        return [source.make.remote(3)]  # the ref leaves the task in its return value

    [inner] = ray.get(call_and_return.remote(source))
    assert ray.get(inner, timeout=30) == [0, 1, 2]
    boxed = ray.put({"ref": source.make.remote(2)})
    del made
    assert ray.get(ray.get(boxed)["ref"]) == [0, 1]


def test_an_unnamed_actor_ends_with_its_last_handle(ray, cluster):
    client = cluster[1]

    @ray.remote
    class Short:
        def ping(self):
            return "pong"

    short = Short.remote()
    key = short._actor_id.decode()
    reply = short.ping.remote()
    del short  # the call made before still runs
    assert ray.get(reply, timeout=30) == "pong"
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while client.sync(client.scheduler.get_task_status, keys=[key]).get(key) == "memory":
        assert time.monotonic() < deadline, "the actor outlived its handles"
        ray.put(None)  # any API call lets go of dropped refs and handles
        time.sleep(0.02)


def test_cancel_of_a_running_actor_call_says_to_kill_the_actor(ray):
    @ray.remote
    class Slow:
        def wait(self, name):
            from distributed import Event
            return Event(name).wait(EVENT_TIMEOUT_S)

    slow = Slow.remote()
    pending = slow.wait.remote("never-set")
    with pytest.raises(TypeError, match=r"raylite\.kill"):
        ray.cancel(pending)
    ray.kill(slow)
    with pytest.raises(exceptions.ActorDiedError):
        ray.get(pending, timeout=30)


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


def test_placement_group_ready_says_whether_the_bundles_fit(ray, capsys):
    """Dask reserves nothing, so ready() reports only whether the workers can hold the bundles
    under the strategy: at once when they can; a warning and a pending ref when they cannot."""
    from raylite.util import placement_group, remove_placement_group
    capsys.readouterr()
    spread = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    assert ray.get(spread.ready(), timeout=10) is True and capsys.readouterr().err == ""
    packed = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")  # 1 CPU a worker
    err = capsys.readouterr().err
    assert "placement group" in err and "does not fit the Dask workers" in err
    assert "STRICT_PACK" in err and "CPU=1" in err
    assert not packed.wait(timeout_seconds=0.2)
    assert ray.wait([packed.ready()], timeout=0) == ([], [packed.ready()])
    too_many = placement_group([{"accel": 1}, {"accel": 1}])  # one worker has accel=1
    assert "does not fit" in capsys.readouterr().err and not too_many.wait(0.1)
    for group in (spread, packed, too_many):
        remove_placement_group(group)


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
    from raylite.core import _api
    from raylite.core.dask import _remote as _dask_remote
    monkeypatch.setattr(_dask_remote, "PROTOCOL", _dask_remote.PROTOCOL + 1)
    _api._backend_obj._check_workers()
    err = capsys.readouterr().err
    assert err.count("raylite: warning: Dask worker tls://") == 2
    assert f"(protocol {_dask_remote.PROTOCOL - 1})" in err and "restart the workers" in err


def test_cli_status_and_argument_errors(cluster, capsys):
    address, _, state_dir = cluster
    status = _cli("status", state_dir=state_dir)
    assert status.returncode == 0, status.stderr
    rows = [line for line in status.stdout.splitlines() if line.startswith("tls://")]
    assert len(rows) == 2 and any("accel=1" in row for row in rows)
    assert "2 node(s); CPU 2" in status.stdout and address in status.stdout

    from raylite.cli import _cluster
    with pytest.raises(SystemExit) as exit_info:
        _cluster.main(["start", "--head", "--resources", "{not json"])
    assert exit_info.value.code == 2 and "--resources" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _cluster.main(["start"])  # neither --head nor --address


def _kill_worker(client: Client, pid: int) -> None:
    """SIGKILL the worker process ``pid``; return once its nanny's replacement has joined."""
    [address] = [a for a, p in client.run(os.getpid).items() if p == pid]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        if len(workers) == 2 and address not in workers:
            return
        assert time.monotonic() < deadline, f"the killed worker {address} was not replaced"
        time.sleep(0.05)


def test_actor_restarts_on_a_live_worker_up_to_max_restarts(ray, cluster):
    """SIGKILL the worker holding an actor: its running call fails, the actor comes back fresh
    on a live worker (max_restarts=1); the second time it stays dead and says why."""
    client = cluster[1]

    @ray.remote(max_restarts=1)
    class Counter:
        def __init__(self):
            self.count = 0

        def add(self):
            self.count += 1
            return self.count

        def pid(self):
            return os.getpid()

        def block(self, name):
            from distributed import Event
            return Event(name).wait(EVENT_TIMEOUT_S)

    counter = Counter.remote()
    assert ray.get([counter.add.remote() for _ in range(3)], timeout=30) == [1, 2, 3]
    first = ray.get(counter.pid.remote())
    running = counter.block.remote("never-set")
    _kill_worker(client, first)
    with pytest.raises(exceptions.ActorDiedError, match="died while running this call"):
        ray.get(running, timeout=EVENT_TIMEOUT_S)
    assert ray.get(counter.add.remote(), timeout=EVENT_TIMEOUT_S) == 1  # a fresh instance
    second = ray.get(counter.pid.remote())
    assert second != first
    _kill_worker(client, second)
    with pytest.raises(exceptions.ActorDiedError, match=r"Counter .*max_restarts=1"):
        ray.get(counter.add.remote(), timeout=EVENT_TIMEOUT_S)


def test_max_task_retries_resends_the_running_call_to_the_restarted_actor(ray, cluster):
    client = cluster[1]
    gate = _gate(client, "retry-gate")

    @ray.remote(max_restarts=1, max_task_retries=1)
    class Patient:
        def pid_after(self, name):
            from distributed import Event
            Event(name).wait(EVENT_TIMEOUT_S)
            return os.getpid()

    patient = Patient.remote()
    _gate(client, "open-gate").set()
    first = ray.get(patient.pid_after.remote("open-gate"), timeout=30)
    running = patient.pid_after.remote("retry-gate")
    _kill_worker(client, first)
    gate.set()
    second = ray.get(running, timeout=EVENT_TIMEOUT_S)  # resent, answered by the new instance
    assert second != first

def test_generators_run_to_their_end_and_hand_back_refs(ray):
    """On Dask a generator call runs to its end in one Dask task; the caller then iterates the
    refs of what it yielded (no streaming before the end, unlike the local runtime)."""
    @ray.remote
    def numbers(n):
        for i in range(n):
            if i == 3:
                raise KeyError("three")
            yield i * 10

    gen = numbers.remote(5)
    assert [ray.get(next(gen)) for _ in range(3)] == [0, 10, 20]
    with pytest.raises(KeyError):
        ray.get(next(gen))
    with pytest.raises(StopIteration):
        next(gen)
    assert [ray.get(r) for r in numbers.remote(2)] == [0, 10]

    @ray.remote(num_returns="dynamic")
    def dynamic(n):
        yield from range(n)

    assert ray.get(list(ray.get(dynamic.remote(3)))) == [0, 1, 2]

    @ray.remote(num_returns=2)
    def two():
        yield "a"
        yield "b"

    assert ray.get(two.remote()) == ["a", "b"]
    with pytest.raises(ValueError, match="num_returns=3 but its generator yielded 2"):
        ray.get(two.options(num_returns=3).remote()[0])

    @ray.remote
    class Actor:
        def letters(self):
            yield from "xy"

    assert [ray.get(r) for r in Actor.remote().letters.remote()] == ["x", "y"]



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
