"""The actor table: every actor's lifecycle as a pure state machine, no processes or sockets.

Events come in as method calls (created, resources granted, ready, constructor failed, a call
submitted or finished, the process died, handles gone, killed). Each returns a list of typed
actions (frozen dataclasses below) for the I/O shell (``raylite.core.local._node``) to carry out.
Every policy decision about actors is made here: which calls queue, which are resent after a
restart, which fail and with what message, whether a death restarts the actor.

Actor lifecycle (``ACTOR_TRANSITIONS``)::

    PENDING --resources granted--> STARTING --constructor returned--> ALIVE
       |                              |                                 |
       |                              +----process died, restarts left--+--> RESTARTING --ready--> ALIVE
       +------------------------------+---------------------------------+-----------+--> DEAD
                       (killed, out of restarts, constructor raised, handles gone)

Calls (``ActorCall``: a task id, a name and an opaque payload) queue in submission order while
the actor is not ALIVE and are sent once it is. A sent call gets a sequence number counted per
process incarnation; when the process dies the shell reports how many calls the process had
*started* (a counter the worker keeps in shared memory), so a call that was sent but never begun
-- typically one made right after the process was killed, before its death was noticed -- is
resent to the restarted actor, as in Ray, while one that was running fails (or is retried up to
``max_task_retries``) with an error that says what happened.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class ActorState(Enum):
    PENDING = "PENDING"        # waiting for resources
    STARTING = "STARTING"      # first process started, constructor not yet returned
    ALIVE = "ALIVE"
    RESTARTING = "RESTARTING"  # a process died; a replacement is starting
    DEAD = "DEAD"


ACTOR_TRANSITIONS = {
    ActorState.PENDING: {ActorState.STARTING, ActorState.DEAD},
    ActorState.STARTING: {ActorState.ALIVE, ActorState.RESTARTING, ActorState.DEAD},
    ActorState.ALIVE: {ActorState.RESTARTING, ActorState.DEAD},
    ActorState.RESTARTING: {ActorState.ALIVE, ActorState.RESTARTING, ActorState.DEAD},
    ActorState.DEAD: set(),
}

_HAS_PROCESS = (ActorState.STARTING, ActorState.ALIVE, ActorState.RESTARTING)


# ----- actions ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SpawnProcess:
    """Start a process for the actor (incarnation numbers tell stale starts apart)."""
    actor_id: bytes
    incarnation: int


@dataclass(frozen=True, slots=True)
class SendCall:
    """Send the call to the actor's current process."""
    actor_id: bytes
    call: ActorCall


@dataclass(frozen=True, slots=True)
class FailCall:
    """The call ends without a result: ``error`` (an opaque packed error) if given, else an
    ActorDiedError saying ``reason``."""
    call: ActorCall
    reason: str
    error: Any = None


@dataclass(frozen=True, slots=True)
class ActorReady:
    """The constructor returned (the first time): complete the creation object."""
    actor_id: bytes


@dataclass(frozen=True, slots=True)
class CreationFailed:
    """The actor died before its constructor returned: the creation object gets ``error``
    (an opaque packed error), or an ActorDiedError saying ``reason``."""
    actor_id: bytes
    reason: str
    error: Any = None


@dataclass(frozen=True, slots=True)
class KillProcess:
    """SIGKILL the actor's process (its death comes back as ``process_died``)."""
    actor_id: bytes


@dataclass(frozen=True, slots=True)
class ExitProcess:
    """Ask the process to finish the calls it has and exit."""
    actor_id: bytes


@dataclass(frozen=True, slots=True)
class ReleaseResources:
    """The actor is dead: give its resources back to the scheduler."""
    actor_id: bytes


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell the user (stderr)."""
    message: str


# ----- the table -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ActorCall:
    task_id: bytes
    name: str
    payload: Any = None


@dataclass(eq=False)
class ActorEntry:
    actor_id: bytes
    class_name: str
    name: str | None = None
    namespace: str | None = None
    detached: bool = False
    max_restarts: int = 0
    max_task_retries: int = 0
    payload: Any = None  # the creation spec, opaque here
    state: ActorState = ActorState.PENDING
    restarts_left: int = 0
    incarnation: int = 0
    sent: int = 0  # calls sent to the current incarnation
    queue: collections.deque = field(default_factory=collections.deque)
    in_flight: dict = field(default_factory=dict)  # task id -> (sequence number, call)
    attempts: dict = field(default_factory=dict)  # task id -> times a started call was lost
    death_cause: str = ""
    killed: bool = False  # by kill(), or out of scope: never restarted
    creation_settled: bool = False  # the creation object was completed (ready or failed)

    def to(self, state: ActorState) -> None:
        assert state in ACTOR_TRANSITIONS[self.state], (self.state, state)
        self.state = state


class ActorTable:
    """All actors of one node and the named-actor registry."""

    def __init__(self):
        self.actors: dict[bytes, ActorEntry] = {}
        self.names: dict[tuple, bytes] = {}

    # ----- events --------------------------------------------------------------------------
    def create(self, entry: ActorEntry) -> list:
        """Register a new actor (PENDING until its resources are granted)."""
        if entry.name:
            key = (entry.namespace, entry.name)
            other = self.actors.get(self.names.get(key, b""))
            if other is not None and other.state is not ActorState.DEAD:
                raise ValueError(f"an actor named {entry.name!r} already exists in namespace "
                                 f"{entry.namespace!r}; pick another name or use "
                                 "get_actor(name) / .options(get_if_exists=True)")
            self.names[key] = entry.actor_id
        entry.restarts_left = entry.max_restarts
        self.actors[entry.actor_id] = entry
        return []

    def resources_granted(self, actor_id: bytes) -> list:
        entry = self.actors.get(actor_id)
        if entry is None or entry.state is not ActorState.PENDING:
            return []
        entry.to(ActorState.STARTING)
        return [self._new_incarnation(entry)]

    def ready(self, actor_id: bytes, incarnation: int) -> list:
        """The constructor returned in process ``incarnation``: send the queued calls."""
        entry = self.actors.get(actor_id)
        if entry is None or entry.incarnation != incarnation or entry.state not in (
                ActorState.STARTING, ActorState.RESTARTING):
            return []
        entry.to(ActorState.ALIVE)
        actions: list = []
        if not entry.creation_settled:
            entry.creation_settled = True
            actions.append(ActorReady(actor_id))
        queued, entry.queue = entry.queue, collections.deque()
        for call in queued:
            actions.append(self._send(entry, call))
        return actions

    def constructor_failed(self, actor_id: bytes, incarnation: int, error: Any) -> list:
        """The constructor raised: the actor is dead, and its creation and queued calls get
        the constructor's error."""
        entry = self.actors.get(actor_id)
        if entry is None or entry.incarnation != incarnation or entry.state is ActorState.DEAD:
            return []
        entry.death_cause = "its constructor raised"
        actions: list = [FailCall(call, entry.death_cause, error) for call in self._drain(entry)]
        return actions + [KillProcess(actor_id)] + self._die(entry, error)

    def call(self, actor_id: bytes, call: ActorCall) -> list:
        """A method call was submitted."""
        entry = self.actors.get(actor_id)
        if entry is None:
            return [FailCall(call, f"cannot call {call.name}: the actor is dead (it does not "
                                   "exist in this runtime)")]
        if entry.state is ActorState.ALIVE:
            return [self._send(entry, call)]
        if entry.state is ActorState.DEAD:
            return [FailCall(call, f"cannot call {call.name}: the actor {entry.class_name} is "
                                   f"dead ({entry.death_cause})")]
        entry.queue.append(call)
        return []

    def call_done(self, actor_id: bytes, task_id: bytes) -> list:
        entry = self.actors.get(actor_id)
        if entry is not None:
            entry.in_flight.pop(task_id, None)
            if entry.attempts:
                entry.attempts.pop(task_id, None)
        return []

    def process_died(self, actor_id: bytes, incarnation: int, started: int | None,
                     how: str) -> list:
        """The process of ``incarnation`` is gone. ``started``: how many of the calls sent to
        it had begun (None: unknown, so all of them may have); ``how``: what happened to it
        ("killed by SIGKILL", "exited with code 1", ...)."""
        entry = self.actors.get(actor_id)
        if entry is None or entry.incarnation != incarnation or entry.state is ActorState.DEAD:
            return []
        lost = sorted(entry.in_flight.values(), key=lambda item: item[0])
        entry.in_flight.clear()
        began = [call for seq, call in lost if started is None or seq < started]
        not_begun = [call for seq, call in lost if started is not None and seq >= started]
        if entry.restarts_left != 0 and not entry.killed:
            return self._restart(entry, began, not_begun, how)
        if not entry.death_cause:
            entry.death_cause = (f"its process died ({how}) and max_restarts={entry.max_restarts} "
                                 f"{'restart was' if entry.max_restarts == 1 else 'restarts were'}"
                                 " spent" if entry.max_restarts else
                                 f"its process died ({how}); it had max_restarts=0")
        actions = [FailCall(call, f"{call.name} failed: actor {entry.class_name} is dead "
                                  f"({entry.death_cause})") for call in began + not_begun]
        actions += [FailCall(call, f"{call.name} failed: actor {entry.class_name} is dead "
                                   f"({entry.death_cause})") for call in self._drain(entry)]
        return actions + self._die(entry)

    def handles_gone(self, actor_id: bytes) -> list:
        """The last handle is gone: unnamed, non-detached actors finish their calls and exit."""
        entry = self.actors.get(actor_id)
        if entry is None or entry.name or entry.detached or entry.state is ActorState.DEAD:
            return []
        entry.killed = True
        entry.restarts_left = 0
        entry.death_cause = "all handles to it went out of scope"
        if entry.state is ActorState.PENDING:
            return self._die(entry)
        return [ExitProcess(actor_id)]  # after the calls already sent

    def kill(self, actor_id: bytes, no_restart: bool = True) -> list:
        entry = self.actors.get(actor_id)
        if entry is None or entry.state is ActorState.DEAD:
            return []
        if no_restart:
            entry.killed = True
            entry.restarts_left = 0
            entry.death_cause = "it was killed with raylite.kill()"
        if entry.state in _HAS_PROCESS:
            return [KillProcess(actor_id)]
        reason = f"actor {entry.class_name} is dead ({entry.death_cause})"
        return [FailCall(call, f"{call.name} failed: {reason}")
                for call in self._drain(entry)] + self._die(entry)

    # ----- queries ---------------------------------------------------------------------------
    def lookup(self, name: str, namespace: str) -> ActorEntry | None:
        entry = self.actors.get(self.names.get((namespace, name), b""))
        return entry if entry is not None and entry.state is not ActorState.DEAD else None

    def live_names(self, namespace: str) -> list[str]:
        return sorted(name for (ns, name), aid in self.names.items()
                      if ns == namespace and self.actors[aid].state is not ActorState.DEAD)

    # ----- helpers ---------------------------------------------------------------------------
    def _send(self, entry: ActorEntry, call: ActorCall) -> SendCall:
        entry.in_flight[call.task_id] = (entry.sent, call)
        entry.sent += 1
        return SendCall(entry.actor_id, call)

    def _new_incarnation(self, entry: ActorEntry) -> SpawnProcess:
        entry.incarnation += 1
        entry.sent = 0
        return SpawnProcess(entry.actor_id, entry.incarnation)

    def _restart(self, entry: ActorEntry, began: list, not_begun: list, how: str) -> list:
        entry.restarts_left -= 1
        entry.to(ActorState.RESTARTING)
        left = "unlimited" if entry.restarts_left < 0 else str(entry.restarts_left)
        actions: list = []
        resend = []
        for call in began:
            attempts = entry.attempts.get(call.task_id, 0)
            if entry.max_task_retries < 0 or attempts < entry.max_task_retries:
                entry.attempts[call.task_id] = attempts + 1
                resend.append(call)
            else:
                spent = (f"its max_task_retries={entry.max_task_retries} retries are spent"
                         if entry.max_task_retries else "set max_task_retries to retry calls "
                         "that were running")
                actions.append(FailCall(call, f"{call.name} failed: actor {entry.class_name}'s "
                                              f"process died ({how}) while running it; the actor "
                                              f"is restarting ({left} restarts left) but {spent}"))
        entry.queue.extendleft(reversed(resend + not_begun))  # ahead of later calls, in order
        actions.append(Notify(f"actor {entry.class_name}'s process died ({how}); restarting it "
                              f"({left} restarts left)"))
        actions.append(self._new_incarnation(entry))
        return actions

    def _drain(self, entry: ActorEntry) -> list:
        calls = [call for _, call in sorted(entry.in_flight.values(), key=lambda i: i[0])]
        calls += list(entry.queue)
        entry.in_flight.clear()
        entry.queue.clear()
        return calls

    def _die(self, entry: ActorEntry, error: Any = None) -> list:
        entry.to(ActorState.DEAD)
        entry.attempts.clear()
        actions: list = []
        if not entry.creation_settled:
            entry.creation_settled = True
            actions.append(CreationFailed(entry.actor_id, f"actor {entry.class_name} died before "
                                          f"its constructor returned ({entry.death_cause})", error))
        return actions + [ReleaseResources(entry.actor_id)]
