"""The node's actors: one dedicated process each, calls in order, restarts, names, kill.

Actor lifecycle (``_ActorRecord.state``)::

    PENDING (waiting for resources) -> STARTING (process spawned) -> ALIVE
        ALIVE --process died, restarts left--> RESTARTING -> ALIVE
        any --killed / out of restarts / handles gone / constructor raised--> DEAD

Calls that arrive before the actor is ALIVE queue in order and are sent once it is.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from raylite.core._scheduler import Actor as SchedActor
from raylite.core._store import READY
from raylite.core._task import TaskSpec
from raylite.exceptions import ActorDiedError

if TYPE_CHECKING:
    from raylite.core._node_io import _Process


class _ActorRecord:
    PENDING, STARTING, ALIVE, RESTARTING, DEAD = "PENDING", "STARTING", "ALIVE", "RESTARTING", "DEAD"

    def __init__(self, spec: TaskSpec):
        options = spec.actor_options
        self.actor_id = spec.actor_id
        self.spec = spec
        self.name = options.get("name")
        self.namespace = options.get("namespace")
        self.class_name = options.get("class_name", "Actor")
        self.meta = options.get("meta")
        self.state = self.PENDING
        self.process: _Process | None = None
        self.queue: list[TaskSpec] = []
        self.in_flight: dict[bytes, TaskSpec] = {}
        self.restarts_left = options.get("max_restarts", 0)
        self.max_task_retries = options.get("max_task_retries", 0)
        self.death_cause = ""
        self.killed = False  # by kill() or out of scope: never restarted
        self.gpu_ids: list[int] = []



class ActorsMixin:
    """Actor bookkeeping of the Node (mixed into it; runs under the node's lock)."""

    def _create_actor(self, spec: TaskSpec) -> None:
        record = _ActorRecord(spec)
        if record.name:
            key = (record.namespace, record.name)
            if key in self.named_actors and self.actors[self.named_actors[key]].state != record.DEAD:
                self.specs.pop(spec.task_id, None)
                raise ValueError(f"an actor named {record.name!r} already exists in namespace "
                                 f"{record.namespace!r}; pick another name or use "
                                 "get_actor(name) / .options(get_if_exists=True)")
            self.named_actors[key] = spec.actor_id
        self.actors[spec.actor_id] = record
        self._act(self.scheduler.request_actor(
            SchedActor(spec.actor_id, spec.name, spec.resources, spec.placement)))

    def _route_call(self, spec: TaskSpec) -> None:
        record = self.actors.get(spec.actor_id)
        if record is None or record.state == record.DEAD:
            cause = record.death_cause if record else "it does not exist in this runtime"
            self.specs.pop(spec.task_id, None)
            self._seal_returns_with_error(spec, error=ActorDiedError(
                f"cannot call {spec.name}: the actor is dead ({cause})"))
            self._release_pins(spec)
        elif record.state == record.ALIVE:
            record.in_flight[spec.task_id] = spec
            record.process.channel.send(("call", spec, self._locations(spec.arg_ids)
                                         if spec.arg_ids else None))
        else:
            record.queue.append(spec)

    def _actor_ready(self, process: _Process, error: tuple | None) -> None:
        record = self.actors.get(process.actor_id)
        if record is None:
            return
        creation = record.spec
        if error is not None:
            record.state = record.DEAD
            record.death_cause = "its constructor raised"
            self._seal(creation.return_ids[0], error, is_error=True)
            for spec in record.queue:
                self._seal(spec.return_ids[0], error, is_error=True) if len(spec.return_ids) == 1 \
                    else [self._seal(oid, error, is_error=True) for oid in spec.return_ids]
                self.specs.pop(spec.task_id, None)
            record.queue.clear()
            self._kill_process(process)
            self._act(self.scheduler.actor_exited(record.actor_id))
            return
        record.state = record.ALIVE
        if creation.return_ids and self.store.entries.get(creation.return_ids[0]) is not None \
                and self.store.entries[creation.return_ids[0]].state != READY:
            self._seal_value(creation.return_ids[0], None)
        queued, record.queue = record.queue, []
        for spec in queued:
            self._route_call(spec)

    def _actor_died(self, process: _Process) -> None:
        record = self.actors.get(process.actor_id)
        if record is None or record.state == record.DEAD:
            return
        lost = list(record.in_flight.values())
        record.in_flight.clear()
        if record.restarts_left != 0 and not record.killed:
            record.restarts_left -= 1
            record.state = record.RESTARTING
            retry = [s for s in lost if record.max_task_retries != 0]
            for spec in lost:
                if spec not in retry:
                    self._fail_call(spec, record, "the actor's process died while running it; "
                                    "it was restarted (set max_task_retries to retry calls)")
            record.queue[:0] = retry
            print(f"raylite: actor {record.class_name} died; restarting it "
                  f"({'unlimited' if record.restarts_left < 0 else record.restarts_left} restarts "
                  "left)", file=sys.stderr, flush=True)
            self._spawn_later(lambda: self._spawn_actor(record))
            return
        record.state = record.DEAD
        record.death_cause = record.death_cause or "its process died"
        for spec in lost + record.queue:
            self._fail_call(spec, record, record.death_cause)
        record.queue.clear()
        self._act(self.scheduler.actor_exited(record.actor_id))

    def _fail_call(self, spec: TaskSpec, record: _ActorRecord, why: str) -> None:
        self.specs.pop(spec.task_id, None)
        self._seal_returns_with_error(spec, error=ActorDiedError(
            f"{spec.name} failed: actor {record.class_name} is dead or restarting ({why})"))
        self._release_pins(spec)

    def _on_handles_gone(self, actor_id: bytes) -> None:
        """The last handle to an actor is gone: unnamed, non-detached actors finish their queued
        calls and exit, as in Ray."""
        record = self.actors.get(actor_id)
        if record is None or record.name or record.spec.actor_options.get("lifetime") == "detached":
            return
        if record.state == record.DEAD:
            return
        record.killed = True
        record.restarts_left = 0
        record.death_cause = "all handles to it went out of scope"
        if record.process is not None:
            record.process.channel.send(("exit",))  # after the calls already sent
        elif record.state == record.PENDING:
            record.state = record.DEAD
            self._act(self.scheduler.actor_exited(actor_id))

    def kill_actor(self, actor_id: bytes, no_restart: bool = True) -> None:
        with self.lock:
            record = self.actors.get(actor_id)
            if record is None or record.state == record.DEAD:
                return
            if no_restart:
                record.killed = True
                record.restarts_left = 0
                record.death_cause = "it was killed with raylite.kill()"
            if record.process is not None:
                self._kill_process(record.process)
            elif record.state == record.PENDING:
                record.state = record.DEAD
                for spec in record.queue:
                    self._fail_call(spec, record, record.death_cause)
                record.queue.clear()
                self._act(self.scheduler.actor_exited(actor_id))

    def get_actor(self, name: str, namespace: str | None) -> tuple:
        with self.lock:
            actor_id = self.named_actors.get((namespace or self.namespace, name))
            record = self.actors.get(actor_id) if actor_id else None
            if record is None or record.state == record.DEAD:
                known = sorted(n for (ns, n), a in self.named_actors.items()
                               if ns == (namespace or self.namespace) and self.actors[a].state != "DEAD")
                raise ValueError(f"Failed to look up actor with name {name!r} in namespace "
                                 f"{namespace or self.namespace!r}: no live actor has that name. "
                                 f"Named actors there: {known or 'none'}. Create it with "
                                 f"Cls.options(name={name!r}).remote() first.")
            return record.actor_id, record.class_name, record.meta

    def list_named_actors(self, all_namespaces: bool) -> list:
        with self.lock:
            out = []
            for (ns, name), aid in self.named_actors.items():
                if self.actors[aid].state == "DEAD":
                    continue
                if all_namespaces:
                    out.append({"name": name, "namespace": ns})
                elif ns == self.namespace:
                    out.append(name)
            return out

