"""The actor table state machine, without processes: events in, typed actions out."""

from __future__ import annotations

import pytest

from raylite.core.local._actors import (ACTOR_TRANSITIONS, ActorCall, ActorEntry, ActorReady,
                                  ActorState, ActorTable, CreationFailed, ExitProcess, FailCall,
                                  KillProcess, Notify, ReleaseResources, SendCall, SpawnProcess)


def kinds(actions) -> list[str]:
    return [type(a).__name__ for a in actions]


def alive(table: ActorTable, actor_id: bytes = b"a", **options) -> ActorEntry:
    entry = ActorEntry(actor_id, "Counter", **options)
    table.create(entry)
    assert table.resources_granted(actor_id) == [SpawnProcess(actor_id, 1)]
    assert entry.state is ActorState.STARTING
    assert table.ready(actor_id, 1) == [ActorReady(actor_id)]
    return entry


def call(name: str) -> ActorCall:
    return ActorCall(name.encode(), name)


def test_calls_queue_until_alive_then_go_in_order():
    table = ActorTable()
    table.create(ActorEntry(b"a", "C"))
    assert table.call(b"a", call("one")) == [] and table.call(b"a", call("two")) == []
    table.resources_granted(b"a")
    assert table.call(b"a", call("three")) == []  # still starting
    actions = table.ready(b"a", 1)
    assert actions == [ActorReady(b"a")] + [SendCall(b"a", call(n)) for n in ("one", "two", "three")]
    assert table.call(b"a", call("four")) == [SendCall(b"a", call("four"))]


def test_call_made_right_after_a_kill_waits_for_the_restart():
    table = ActorTable()
    entry = alive(table, max_restarts=1)
    table.call(b"a", call("done"))
    table.call_done(b"a", b"done")
    table.call(b"a", call("after-kill"))  # sent, but the process was already gone
    actions = table.process_died(b"a", 1, started=1, how="killed by SIGKILL")
    assert kinds(actions) == ["Notify", "SpawnProcess"] and entry.state is ActorState.RESTARTING
    assert "SIGKILL" in actions[0].message and "0 restarts left" in actions[0].message
    assert table.call(b"a", call("later")) == []  # queued behind the resent one
    assert table.ready(b"a", 2) == [SendCall(b"a", call("after-kill")), SendCall(b"a", call("later"))]


def test_running_call_fails_with_what_happened_unless_retries_are_left():
    table = ActorTable()
    alive(table, max_restarts=2, max_task_retries=1)
    table.call(b"a", call("slow"))
    first = table.process_died(b"a", 1, started=1, how="killed by SIGKILL")
    assert kinds(first) == ["Notify", "SpawnProcess"]  # retried: max_task_retries=1
    assert table.ready(b"a", 2) == [SendCall(b"a", call("slow"))]
    second = table.process_died(b"a", 2, started=1, how="exited with code 1")
    assert kinds(second) == ["FailCall", "Notify", "SpawnProcess"]
    reason = second[0].reason
    assert "died (exited with code 1) while running it" in reason and "max_task_retries=1" in reason


def test_running_call_without_retries_says_to_set_max_task_retries():
    table = ActorTable()
    alive(table, max_restarts=1)
    table.call(b"a", call("work"))
    actions = table.process_died(b"a", 1, started=None, how="killed by SIGKILL")
    assert kinds(actions) == ["FailCall", "Notify", "SpawnProcess"]
    assert "max_task_retries" in actions[0].reason and "restarting" in actions[0].reason


def test_out_of_restarts_the_actor_dies_and_every_call_fails_with_the_cause():
    table = ActorTable()
    entry = alive(table, max_restarts=0)
    table.call(b"a", call("running"))
    actions = table.process_died(b"a", 1, started=1, how="killed by SIGKILL")
    assert kinds(actions) == ["FailCall", "ReleaseResources"] and entry.state is ActorState.DEAD
    assert "SIGKILL" in actions[0].reason and "max_restarts=0" in actions[0].reason
    late = table.call(b"a", call("late"))
    assert kinds(late) == ["FailCall"] and "is dead" in late[0].reason and "SIGKILL" in late[0].reason


def test_unlimited_restarts():
    table = ActorTable()
    alive(table, max_restarts=-1)
    for incarnation in range(1, 5):
        actions = table.process_died(b"a", incarnation, started=0, how="killed by SIGKILL")
        assert SpawnProcess(b"a", incarnation + 1) in actions
        table.ready(b"a", incarnation + 1)


def test_stale_events_from_an_old_process_are_ignored():
    table = ActorTable()
    alive(table, max_restarts=1)
    table.process_died(b"a", 1, started=0, how="killed by SIGKILL")
    assert table.process_died(b"a", 1, started=0, how="again") == []
    assert table.ready(b"a", 1) == []
    assert kinds(table.ready(b"a", 2)) == []  # alive again; the creation was completed before


def test_constructor_error_fails_creation_and_queued_calls():
    table = ActorTable()
    entry = ActorEntry(b"a", "C", max_restarts=3)
    table.create(entry)
    table.resources_granted(b"a")
    table.call(b"a", call("queued"))
    actions = table.constructor_failed(b"a", 1, "packed-error")
    assert actions == [FailCall(call("queued"), "its constructor raised", "packed-error"),
                       KillProcess(b"a"),
                       CreationFailed(b"a", actions[2].reason, "packed-error"),
                       ReleaseResources(b"a")]
    assert entry.state is ActorState.DEAD  # no restart after a constructor error


def test_kill_is_final_and_handles_gone_lets_calls_finish():
    table = ActorTable()
    entry = alive(table, max_restarts=5)
    assert table.kill(b"a") == [KillProcess(b"a")]
    actions = table.process_died(b"a", 1, started=0, how="killed by SIGKILL")
    assert kinds(actions) == ["ReleaseResources"] and "raylite.kill" in entry.death_cause
    other = alive(table, b"b", max_restarts=5)
    assert table.handles_gone(b"b") == [ExitProcess(b"b")]
    table.process_died(b"b", 1, started=0, how="exited with code 0")
    assert other.state is ActorState.DEAD and "out of scope" in other.death_cause


def test_kill_while_pending_fails_queued_calls_and_never_starts():
    table = ActorTable()
    table.create(ActorEntry(b"a", "C"))
    table.call(b"a", call("queued"))
    actions = table.kill(b"a")
    assert kinds(actions) == ["FailCall", "CreationFailed", "ReleaseResources"]
    assert table.resources_granted(b"a") == []


def test_named_actors_are_unique_per_namespace_while_alive():
    table = ActorTable()
    table.create(ActorEntry(b"a", "C", name="svc", namespace="ns"))
    with pytest.raises(ValueError, match="already exists"):
        table.create(ActorEntry(b"b", "C", name="svc", namespace="ns"))
    table.create(ActorEntry(b"c", "C", name="svc", namespace="other"))
    assert table.lookup("svc", "ns").actor_id == b"a" and table.live_names("ns") == ["svc"]
    table.kill(b"a")
    assert table.lookup("svc", "ns") is None
    table.create(ActorEntry(b"d", "C", name="svc", namespace="ns"))  # the name is free again


def test_transition_table_rejects_illegal_moves():
    entry = ActorEntry(b"a", "C", state=ActorState.DEAD)
    assert ACTOR_TRANSITIONS[ActorState.DEAD] == set()
    with pytest.raises(AssertionError):
        entry.to(ActorState.ALIVE)


def test_notify_is_a_value():
    assert Notify("x") == Notify("x") and hash(Notify("x")) == hash(Notify("x"))
