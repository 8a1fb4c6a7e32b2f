"""Failure injection: killed workers, actors and drivers; lost, spilled and freed objects."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import psutil
import pytest

import raylite
from raylite import exceptions
from _support import poll


@pytest.fixture
def fresh():
    raylite.shutdown()
    yield raylite
    raylite.shutdown()


def _wait_gone(pids, timeout=10.0):
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def test_worker_killed_mid_task_is_replaced_and_task_retried(fresh, tmp_path):
    fresh.init(num_cpus=2)
    started = tmp_path / "started"

    @fresh.remote(max_retries=2)
    def victim(path):
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(str(os.getpid()))
            threading.Event().wait(30)  # killed while here
        return os.getpid()

    ref = victim.remote(str(started))
    ready = threading.Event()
    while not ready.wait(0.02):  # wait for the first attempt to start, by its marker file
        if started.exists() and started.read_text():
            break
    first_pid = int(started.read_text())
    os.kill(first_pid, signal.SIGKILL)
    second_pid = fresh.get(ref, timeout=30)
    assert second_pid != first_pid
    assert fresh.get(victim.remote(str(started)), timeout=10) > 0


def test_retries_spent_gives_worker_crashed_error(fresh):
    fresh.init(num_cpus=1)

    @fresh.remote(max_retries=1)
    def crash():
        os._exit(3)

    with pytest.raises(exceptions.WorkerCrashedError, match="max_retries"):
        fresh.get(crash.remote(), timeout=30)

    @fresh.remote
    def fine():
        return "still works"

    assert fresh.get(fine.remote(), timeout=10) == "still works"


def test_actor_restarts_and_retries_calls(fresh):
    fresh.init(num_cpus=2)

    @fresh.remote(max_restarts=1, max_task_retries=1)
    class Phoenix:
        def __init__(self):
            self.calls = 0

        def pid(self):
            return os.getpid()

        def die(self):
            os._exit(1)

    actor = Phoenix.remote()
    pid = fresh.get(actor.pid.remote(), timeout=10)
    os.kill(pid, signal.SIGKILL)
    new_pid = fresh.get(actor.pid.remote(), timeout=20)
    assert new_pid != pid
    with pytest.raises(exceptions.ActorDiedError):
        fresh.get(actor.die.remote(), timeout=20)  # retried once, dies again, out of restarts
    with pytest.raises(exceptions.ActorDiedError):
        fresh.get(actor.pid.remote(), timeout=10)


def test_call_right_after_a_kill_waits_for_the_restart(fresh):
    """Issue 16: a call made just after SIGKILL (death not yet noticed) runs on the restarted
    actor, as in Ray; once restarts are spent the error says what happened."""
    fresh.init(num_cpus=1)

    @fresh.remote(max_restarts=2)
    class Survivor:
        def pid(self):
            return os.getpid()

    actor = Survivor.remote()
    pids = [fresh.get(actor.pid.remote(), timeout=20)]
    for _ in range(2):
        os.kill(pids[-1], signal.SIGKILL)
        pids.append(fresh.get(actor.pid.remote(), timeout=20))  # no error: it waited
    assert len(set(pids)) == 3
    os.kill(pids[-1], signal.SIGKILL)
    with pytest.raises(exceptions.ActorDiedError, match="SIGKILL.*max_restarts=2 restarts were spent"):
        fresh.get(actor.pid.remote(), timeout=20)


def test_call_running_when_the_actor_is_killed_says_so(fresh, tmp_path):
    fresh.init(num_cpus=1)
    marker = str(tmp_path / "started")

    @fresh.remote(max_restarts=1)
    class Sleeper:
        def pid(self):
            return os.getpid()

        def sleep(self, marker):
            open(marker, "w").close()
            threading.Event().wait(60)

    actor = Sleeper.remote()
    pid = fresh.get(actor.pid.remote(), timeout=20)
    running = actor.sleep.remote(marker)
    poll(lambda: os.path.exists(marker), "the call to start")
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(exceptions.ActorDiedError,
                       match=r"died \(killed by SIGKILL\) while running it.*set max_task_retries"):
        fresh.get(running, timeout=20)
    assert fresh.get(actor.pid.remote(), timeout=20) != pid


def test_killed_driver_leaves_no_workers_and_no_shm(tmp_path):
    script = textwrap.dedent("""
        import os, sys, raylite
        raylite.init(num_cpus=2)
        @raylite.remote
        class A:
            def pid(self):
                return os.getpid()
        @raylite.remote
        def pid():
            return os.getpid()
        a = A.remote()
        ref = raylite.put(bytes(1_000_000))
        node = raylite.core._api._backend_obj
        raylite.get([pid.remote() for _ in range(4)] + [a.pid.remote()])
        print(node.shm_dir, *node.worker_pids(), flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    shm_dir, pids = line[0], [int(p) for p in line[1:]]
    assert os.path.isdir(shm_dir) and len(pids) >= 3
    proc.kill()
    proc.wait()
    assert _wait_gone(pids) == []
    raylite.init(num_cpus=1)  # and the next init sweeps whatever is left
    raylite.shutdown()
    assert not os.path.exists(shm_dir)


_SESSION_DRIVER = textwrap.dedent("""
    import json, os, sys, numpy as np, raylite
    from raylite.core._control import SESSIONS_DIR
    raylite.init(num_cpus=1, object_store_memory=3_000_000, include_dashboard=False)
    node = raylite.core._api._backend_obj
    @raylite.remote
    def pid():
        return os.getpid()
    refs = [raylite.put(np.ones(250_000)) for _ in range(3)]  # 2 MB each: some spill to disk
    raylite.get([pid.remote() for _ in range(3)])
    print(json.dumps({"shm": node.shm_dir, "session": node.session_dir,
                      "spill": os.path.join(node.session_dir, "spill"),
                      "record": os.path.join(SESSIONS_DIR, f"{os.getpid()}.json"),
                      "pids": node.worker_pids()}), flush=True)
    sys.stdin.read()
""")


def _start_session_driver(home) -> tuple[subprocess.Popen, dict]:
    import json
    proc = subprocess.Popen([sys.executable, "-c", _SESSION_DRIVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ, HOME=str(home)))
    info = json.loads(proc.stdout.readline())
    assert os.path.isdir(info["shm"]) and os.listdir(info["spill"]) and os.path.exists(info["record"])
    return proc, info


def _left_behind(info: dict) -> list[str]:
    return [info[k] for k in ("shm", "session", "record") if os.path.exists(info[k])]


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_killed_driver_leaves_nothing_behind(tmp_path, how):
    """Issue 16: kill -9 of a driver left its session folder (spill files, key, socket) and its
    ~/.raylite/sessions record until a later init(); the workers now remove them as they go.
    SIGTERM runs the normal shutdown."""
    proc, info = _start_session_driver(tmp_path)
    proc.send_signal(getattr(signal, how))
    assert proc.wait(timeout=20) == -getattr(signal, how)
    assert _wait_gone(info["pids"]) == []
    poll(lambda: not _left_behind(info), f"the session's files to go (left: {_left_behind(info)})")


def test_shutdown_leaves_nothing_behind(fresh):
    fresh.init(num_cpus=2)
    node = fresh.core._api._backend_obj
    ref = fresh.put(np.ones(1_000_000))
    pids, shm_dir = node.worker_pids(), node.shm_dir
    assert os.listdir(shm_dir)
    fresh.shutdown()
    assert _wait_gone(pids, timeout=5) == []
    assert not os.path.exists(shm_dir) and not os.path.exists(node.session_dir)
    del ref


def test_objects_are_freed_when_no_ref_remains(fresh):
    fresh.init(num_cpus=1)
    node = fresh.core._api._backend_obj
    ref = fresh.put(np.ones(1_000_000))
    assert len(os.listdir(node.shm_dir)) == 1
    del ref
    fresh.get(fresh.put(1))  # any API call drains released refs
    assert os.listdir(node.shm_dir) == []

    @fresh.remote
    def make():
        return np.ones(1_000_000)

    @fresh.remote
    def total(x):
        return float(x.sum())

    assert fresh.get(total.remote(make.remote())) == 1_000_000  # intermediate freed too
    fresh.get(fresh.put(1))
    assert os.listdir(node.shm_dir) == []


def test_spill_to_disk_and_restore(fresh):
    fresh.init(num_cpus=1, object_store_memory=20 << 20)
    node = fresh.core._api._backend_obj
    arrays = [np.full(1_000_000, i, dtype=np.float64) for i in range(5)]  # 8 MB each
    refs = [fresh.put(a) for a in arrays]
    stats = node.memory_summary()
    assert stats["shm_bytes"] <= 20 << 20 and stats["spill_count"] >= 3
    for i, ref in enumerate(refs):  # every one readable, the spilled ones restored
        assert fresh.get(ref)[0] == i
    assert node.memory_summary()["restore_count"] >= 3

    @fresh.remote
    def first(x):
        return float(x[0])

    assert fresh.get([first.remote(r) for r in refs]) == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_lost_object_is_rebuilt_from_lineage(fresh, capfd):
    fresh.init(num_cpus=1)
    node = fresh.core._api._backend_obj

    @fresh.remote
    def make(n):
        return np.arange(n)

    ref = make.remote(300_000)
    fresh.wait([ref], timeout=10)
    for name in os.listdir(node.shm_dir):  # the object vanishes from shared memory
        os.unlink(os.path.join(node.shm_dir, name))
    assert fresh.get(ref, timeout=20)[-1] == 299_999
    assert "re-running make" in capfd.readouterr().err
    lost = fresh.put(np.arange(300_000))
    for name in os.listdir(node.shm_dir):
        if name.startswith(lost.hex()):
            os.unlink(os.path.join(node.shm_dir, name))
    with pytest.raises(exceptions.ObjectLostError, match="put"):
        fresh.get(lost, timeout=10)


def test_bad_input_errors_name_the_problem_and_fix(fresh, capfd):
    fresh.init(num_cpus=2)

    @fresh.remote
    def f(x=None):
        return x

    with pytest.raises(TypeError, match=r"f\.remote\(\)"):
        f(1)
    with pytest.raises(TypeError, match="expects an ObjectRef.*got int 5"):
        fresh.get(5)
    with pytest.raises(TypeError, match="call it with .remote"):
        fresh.get(f)
    lock = threading.Lock()
    with pytest.raises(TypeError, match=r"argument 'x'\['lock'\].*lock"):
        f.remote(x={"ok": 1, "lock": lock})
    with pytest.raises(TypeError, match="did you mean 'num_cpus'"):
        f.options(num_cpu=1)
    with pytest.raises(ValueError, match="non-negative"):
        f.options(num_cpus=-1)
    with pytest.raises(ValueError, match="non-negative"):
        f.options(resources={"x": -2})
    with pytest.raises(TypeError, match="did you mean 'num_cpus'"):
        fresh.remote(num_cpu=1)(lambda: 1)
    with pytest.raises(TypeError, match="put\\(\\) of an ObjectRef"):
        fresh.put(f.remote())
    with pytest.raises(TypeError, match="did you mean"):
        fresh.shutdown() or fresh.init(num_cpu=2)
    fresh.init(num_cpus=2)

    @fresh.remote(num_gpus=1)
    def needs_gpu():
        return 1

    ref = needs_gpu.remote()
    with pytest.raises(exceptions.GetTimeoutError):
        fresh.get(ref, timeout=0.3)
    err = capfd.readouterr().err
    assert "needs_gpu needs {CPU: 1, GPU: 1}" in err and "num_gpus" in err


def test_unnamed_actor_exits_when_its_last_handle_goes(fresh):
    fresh.init(num_cpus=1)

    @fresh.remote
    class Worker:
        def pid(self):
            return os.getpid()

        def slow_echo(self, x):
            threading.Event().wait(0.2)
            return x

    actor = Worker.remote()
    pid = fresh.get(actor.pid.remote())
    pending = actor.slow_echo.remote("queued before the handle went")
    named = Worker.options(name="keeper").remote()
    named_pid = fresh.get(named.pid.remote())

    @fresh.remote
    def use(handle):
        return fresh.get(handle.pid.remote())

    assert fresh.get(use.remote(actor)) == pid  # a handle inside a task keeps it alive meanwhile
    del actor, named
    assert fresh.get(pending, timeout=10) == "queued before the handle went"
    assert _wait_gone([pid]) == []
    assert psutil.pid_exists(named_pid)  # named actors live until killed or shutdown
    assert fresh.get(fresh.get_actor("keeper").pid.remote()) == named_pid


def test_long_chain_of_dependent_tasks_frees_without_recursion(fresh):
    fresh.init(num_cpus=2)

    @fresh.remote
    def step(x):
        return x + 1

    ref = fresh.put(0)
    for _ in range(3000):
        ref = step.remote(ref)
    assert fresh.get(ref, timeout=60) == 3000
    del ref
    assert fresh.get(step.remote(1), timeout=10) == 2  # the I/O thread survived the free


def test_driver_exiting_without_shutdown_cleans_up():
    script = ("import raylite\nraylite.init(num_cpus=1)\nnode = raylite.core._api._backend_obj\n"
              "raylite.get(raylite.put(bytes(1_000_000)))\nprint(node.shm_dir, node.session_dir)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    shm_dir, session_dir = out.stdout.split()
    assert not os.path.exists(shm_dir) and not os.path.exists(session_dir)


def test_dropping_refs_of_queued_tasks_keeps_their_arguments(fresh):
    fresh.init(num_cpus=2)

    @fresh.remote
    def work(block, config):
        return [x * config[0] for x in block]

    blocks = [fresh.put(list(range(1000))) for _ in range(4)]
    for i in range(20):
        config = fresh.put([i])
        pending = [work.remote(b, config) for b in blocks]
        assert fresh.get(pending[0], timeout=20)[1] == i
        del pending, config  # the other results and the argument go while still queued
    assert fresh.get(work.remote(blocks[0], [2]), timeout=20)[1] == 2
    node = fresh.core._api._backend_obj
    assert len(node.processes) == 2  # nobody blocked on a freed argument, no extra workers


_CTRL_C_DRIVER = textwrap.dedent("""
    import os, signal, sys, threading, raylite
    raylite.init(num_cpus=1, include_dashboard=False)
    interrupted = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: interrupted.set())  # the driver survives Ctrl-C

    @raylite.remote(max_concurrency=2)
    class Flag:  # tells the driver the host is inside its call (no call on the host ends)
        def __init__(self):
            self.event = threading.Event()
        def set(self):
            self.event.set()
        def wait(self):
            return self.event.wait(60)

    @raylite.remote(max_concurrency=2)
    class Host:  # a threaded actor in a long call, as Tune's trial hosts are
        def __init__(self):
            self.release = threading.Event()
        def wait(self, flag):
            raylite.get(flag.set.remote())
            return self.release.wait(60)
        def let_go(self):
            self.release.set()
            return os.getpid()

    flag = Flag.remote()
    host = Host.remote()
    waiting = host.wait.remote(flag)
    assert raylite.get(flag.wait.remote(), timeout=60)
    print("ready", flush=True)
    sys.stdin.readline()                       # the test pressed Ctrl-C meanwhile
    assert interrupted.wait(30)
    pid = raylite.get(host.let_go.remote(), timeout=30)
    print("alive", raylite.get(waiting, timeout=30), pid, flush=True)
""")


def test_a_terminal_ctrl_c_does_not_kill_the_workers():
    """A Ctrl-C at a terminal signals the whole foreground process group; it reached every
    worker and killed a threaded actor in the middle of a call (its socket loop got the
    KeyboardInterrupt). Workers now live in a session of their own."""
    proc = subprocess.Popen([sys.executable, "-c", _CTRL_C_DRIVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group, like a terminal's job
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.killpg(proc.pid, signal.SIGINT)             # what the terminal does on Ctrl-C
        out, err = proc.communicate("go\n", timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.split()[:2] == ["alive", "True"], out + err
