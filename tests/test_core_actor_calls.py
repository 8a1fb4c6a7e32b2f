"""The actor-call path of the local runtime: a caller blocked in get() reads the actor's replies
itself (Channel.borrow), lone calls go straight to the channel, and neither changes the order
of calls, restarts, timeouts, requests an actor makes meanwhile, or a full socket."""

from __future__ import annotations

import os
import threading
import time

import pytest

import raylite
from raylite import exceptions
from raylite.core import _api
from raylite.core.local import _protocol


@pytest.fixture
def fresh():
    raylite.shutdown()
    raylite.init(num_cpus=2)
    yield raylite
    raylite.shutdown()


@raylite.remote
class Log:
    def __init__(self):
        self.entries = []

    def add(self, who, seq):
        self.entries.append((who, seq))
        return seq

    def entries_so_far(self):
        return list(self.entries)

    def pid(self):
        return os.getpid()


def _channel(handle):
    node = _api._backend()
    return node.actor_processes[handle._actor_id].channel


def test_a_sync_call_is_answered_by_reading_the_reply_in_the_calling_thread(fresh, monkeypatch):
    borrowed = []
    original = _protocol.Channel.borrow

    def counting_borrow(self):
        taken = original(self)
        borrowed.append(taken)
        return taken

    monkeypatch.setattr(_protocol.Channel, "borrow", counting_borrow)
    log = Log.remote()
    assert [fresh.get(log.add.remote("main", i)) for i in range(50)] == list(range(50))
    assert any(borrowed), "no get() read its reply itself"
    channel = _channel(log)
    assert not channel.borrowed and not channel.reader.locked()  # given back each time


def test_calls_from_concurrent_threads_keep_each_threads_order(fresh):
    log = Log.remote()
    errors = []

    def submitter(who):
        try:
            pending = []
            for seq in range(150):
                ref = log.add.remote(who, seq)
                if seq % 7 == 0:  # some waited for at once (reading the channel), some later
                    assert fresh.get(ref, timeout=30) == seq
                else:
                    pending.append((seq, ref))
            assert fresh.get([ref for _, ref in pending], timeout=30) == [s for s, _ in pending]
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=submitter, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    entries = fresh.get(log.entries_so_far.remote())
    assert len(entries) == 600
    for who in ("t0", "t1", "t2", "t3"):
        assert [seq for w, seq in entries if w == who] == list(range(150))


def test_a_sync_caller_survives_the_actor_dying_under_it_and_calls_keep_their_order(fresh, tmp_path):
    @fresh.remote(max_restarts=1, max_task_retries=1)
    class Fragile:
        def __init__(self):
            self.seen = []

        def crash_once(self, marker):
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)  # the caller is blocked in get(), reading this channel
            return os.getpid()

        def add(self, seq):
            self.seen.append(seq)
            return seq

        def seen_so_far(self):
            return list(self.seen)

    actor = Fragile.remote()
    assert fresh.get(actor.add.remote(-1)) == -1  # alive: the crash call's get() reads its channel
    first_pid = _api._backend().actor_processes[actor._actor_id].pid
    before = [actor.add.remote(i) for i in range(5)]
    crash = actor.crash_once.remote(str(tmp_path / "crashed"))
    after = [actor.add.remote(i) for i in range(5, 10)]
    assert fresh.get(crash, timeout=30) != first_pid  # retried in the restarted process
    assert fresh.get(before + after, timeout=30) == list(range(10))
    assert fresh.get(actor.seen_so_far.remote()) == list(range(5, 10))  # the new process's calls, in order


def test_a_get_timeout_while_reading_gives_the_channel_back(fresh):
    @fresh.remote
    class Slow:
        def slow(self):
            time.sleep(0.5)  # the call's own duration, not a wait in the test
            return "done"

    actor = Slow.remote()
    ref = actor.slow.remote()
    started = time.monotonic()
    with pytest.raises(exceptions.GetTimeoutError):
        fresh.get(ref, timeout=0.05)
    assert time.monotonic() - started < 0.4
    channel = _channel(actor)
    assert not channel.borrowed and not channel.reader.locked()
    ready, _ = fresh.wait([ref], timeout=30)  # wait() reads nothing itself: the I/O thread does
    assert ready == [ref]
    assert fresh.get(ref) == "done"


def test_requests_an_actor_makes_are_answered_by_the_caller_reading_its_channel(fresh):
    @fresh.remote
    def nested(x):
        return x + 1

    @fresh.remote
    class Asker:
        def ask(self):
            events = fresh.timeline()  # answered from a snapshot of the driver's tables
            return len(events) >= 0, fresh.get(nested.remote(1)), fresh.available_resources()["CPU"]

        def ping(self):
            return "pong"

    actor = Asker.remote()
    assert fresh.get(actor.ping.remote()) == "pong"  # alive: the next get() reads its channel
    started = time.monotonic()
    ok, value, cpus = fresh.get(actor.ask.remote(), timeout=20)
    assert ok and value == 2 and cpus >= 0
    assert time.monotonic() - started < 5  # no wait for a snapshot the I/O thread cannot take


def test_calls_that_overflow_the_socket_wait_in_the_outbox_and_all_arrive(fresh, tmp_path):
    @fresh.remote
    class Holder:
        def hold(self, path):
            while not os.path.exists(path):  # the actor's own wait for the test's signal
                time.sleep(0.01)
            return "released"

        def size(self, blob):
            return len(blob)

    actor = Holder.remote()
    assert fresh.get(actor.size.remote(b"")) == 0  # alive: calls go to its socket from now on
    release = tmp_path / "release"
    held = actor.hold.remote(str(release))
    blob = b"x" * 32 * 1024
    refs = [actor.size.remote(blob) for _ in range(600)]  # ~19 MiB: more than the socket holds
    from _support import poll
    poll(lambda: _channel(actor).outbox, "calls to overflow the socket (~19 MiB sent, ~8 fit)")
    release.touch()
    assert fresh.get(held, timeout=30) == "released"
    assert fresh.get(refs, timeout=60) == [len(blob)] * 600
    assert not _channel(actor).outbox


def test_a_future_asked_for_while_the_lock_is_held_is_registered_by_its_holder(fresh):
    log = Log.remote()
    assert fresh.get(log.add.remote("x", 0)) == 0
    node = _api._backend()
    held, release = threading.Event(), threading.Event()

    def hold_the_lock():
        with node.lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    assert held.wait(10)
    ref = log.add.remote("x", 1)  # queued too: the lock is taken
    started = time.monotonic()
    future = ref.future()  # must not wait for the lock
    assert time.monotonic() - started < 1.0 and not future.done()
    release.set()
    holder.join(10)
    assert future.result(timeout=30) == 1


def test_a_caller_reading_a_workers_channel_wakes_when_its_object_is_sealed_elsewhere(
        fresh, tmp_path, monkeypatch):
    from raylite.core._task import pack_value
    from raylite.core.local import _node_wait
    from _support import poll

    monkeypatch.setattr(_node_wait, "READ_SLICE_S", 60.0)  # only the wake-up can end the read early

    @fresh.remote
    def busy(path):
        while not os.path.exists(path):  # the task's own wait for the test's signal
            time.sleep(0.01)
        return "from the worker"

    fresh.get([busy.remote(str(tmp_path)) for _ in range(2)])  # workers up
    release = tmp_path / "release"
    ref = busy.remote(str(release))
    node = _api._backend()
    producer = poll(lambda: node.store.entries[ref._id].producer, "the task's dispatch")

    def seal_from_another_thread():  # as when a task moved to another worker finishes there
        poll(lambda: producer.channel.borrowed, "the caller reading the worker's channel")
        with node.lock:
            node._seal(ref._id, pack_value("sealed elsewhere", node.shm_dir, ref._id), False)

    sealer = threading.Thread(target=seal_from_another_thread)
    sealer.start()
    started = time.monotonic()
    assert fresh.get(ref, timeout=30) == "sealed elsewhere"
    assert time.monotonic() - started < 5  # woken by the seal, not by a read slice or the task
    sealer.join(10)
    release.touch()


def test_an_async_actor_starts_a_burst_of_calls_in_order_and_answers_them_all(fresh):
    import asyncio

    @fresh.remote
    class Async:
        def __init__(self):
            self.started = []

        async def work(self, seq):
            self.started.append(seq)  # before the first await: the order calls began in
            await asyncio.sleep(0)
            return seq

        async def started_so_far(self):
            return list(self.started)

    actor = Async.remote()
    assert fresh.get(actor.work.remote(-1)) == -1
    refs = [actor.work.remote(i) for i in range(300)]
    assert fresh.get(refs, timeout=60) == list(range(300))
    assert fresh.get(actor.started_so_far.remote()) == [-1] + list(range(300))
