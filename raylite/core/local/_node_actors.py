"""The node's actors, the I/O side: turns actor messages into actor-table events and the
table's actions into sends, spawns and kills. Every decision (queue, resend, restart, fail and
with which message) is the actor table's (``raylite.core.local._actors``); this file only carries
them out. Runs under the node's lock.

Each actor process counts the calls it has started in an 8-byte shared-memory file
(``calls-<worker id>`` in the session's /dev/shm folder); when the process dies, the count tells
the table which of the calls sent to it never began.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from raylite.core.local import _protocol as wire
from raylite.core.local._actors import (ActorEntry, ActorReady, ActorState, ActorTable, CreationFailed,
                                  ExitProcess, FailCall, KillProcess, Notify, ReleaseResources,
                                  SendCall, SpawnProcess)
from raylite.core.local._scheduler import Actor as SchedActor
from raylite.core.local._store import READY
from raylite.core._task import TaskSpec
from raylite.exceptions import ActorDiedError

if TYPE_CHECKING:
    from raylite.core.local._node_io import _Process


def _entry_for(spec: TaskSpec) -> ActorEntry:
    options = spec.actor_options
    return ActorEntry(spec.actor_id, options.get("class_name", "Actor"), name=options.get("name"),
                      namespace=options.get("namespace"),
                      detached=options.get("lifetime") == "detached",
                      max_restarts=options.get("max_restarts", 0),
                      max_task_retries=options.get("max_task_retries", 0), payload=spec)


def describe_exit(returncode: int | None) -> str:
    """'killed by SIGKILL', 'exited with code 1', ... for an error message."""
    if returncode is None:
        return "its connection closed"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


class ActorsMixin:
    """Actor I/O of the Node (mixed into it; runs under the node's lock)."""

    actor_table: ActorTable
    actor_processes: dict[bytes, _Process]
    actor_gpus: dict[bytes, list[int]]

    # ----- events in ------------------------------------------------------------------------
    def _create_actor(self, spec: TaskSpec) -> None:
        try:
            self.actor_table.create(_entry_for(spec))
        except ValueError:
            self.specs.pop(spec.task_id, None)
            raise
        self._act(self.scheduler.request_actor(
            SchedActor(spec.actor_id, spec.name, spec.resources, spec.placement)))

    def _route_call(self, spec: TaskSpec) -> None:
        self._act(self.actor_table.call(spec.actor_id, spec))  # the spec has task_id and name

    def _actor_ready(self, process: _Process, error: tuple | None) -> None:
        table = self.actor_table
        if error is not None:
            self._act(table.constructor_failed(process.actor_id, process.incarnation, error))
        else:
            self._act(table.ready(process.actor_id, process.incarnation))

    def _actor_died(self, process: _Process, patience: int = 20) -> None:
        """The process's connection closed. Its exit status (for the error message) may lag a
        moment behind: look again on a timer, never blocking the I/O thread."""
        returncode = process.popen.poll()
        if returncode is None and patience > 0:
            self._add_timer(0.005, lambda: self._actor_died(process, patience - 1))
            return
        if self.actor_processes.get(process.actor_id) is process:
            del self.actor_processes[process.actor_id]
        if returncode is None:
            self._kill_process(process)
        started = _read_counter(process.counter_path)
        self._act(self.actor_table.process_died(process.actor_id, process.incarnation, started,
                                                describe_exit(returncode)))

    def _on_handles_gone(self, actor_id: bytes) -> None:
        self._act(self.actor_table.handles_gone(actor_id))

    def kill_actor(self, actor_id: bytes, no_restart: bool = True) -> None:
        with self.lock:
            self._act(self.actor_table.kill(actor_id, no_restart))

    def get_actor(self, name: str, namespace: str | None) -> tuple:
        namespace = namespace or self.namespace
        with self.lock:
            entry = self.actor_table.lookup(name, namespace)
            if entry is None:
                known = self.actor_table.live_names(namespace)
                raise ValueError(f"Failed to look up actor with name {name!r} in namespace "
                                 f"{namespace!r}: no live actor has that name. "
                                 f"Named actors there: {known or 'none'}. Create it with "
                                 f"Cls.options(name={name!r}).remote() first.")
            return entry.actor_id, entry.class_name, entry.payload.actor_options.get("meta")

    # ----- actions out ----------------------------------------------------------------------
    def _a_spawn_process(self, action: SpawnProcess) -> None:
        self._spawn_later(lambda: self._spawn_actor(action.actor_id, action.incarnation))

    def _spawn_actor(self, actor_id: bytes, incarnation: int) -> None:
        with self.lock:
            entry = self.actors.get(actor_id)
            if entry is None or entry.incarnation != incarnation or entry.state not in (
                    ActorState.STARTING, ActorState.RESTARTING):
                return  # killed (or replaced) before its process could start
            gpu_ids = self.actor_gpus.get(actor_id, [])
            process = self._spawn(actor_id, gpu_ids, entry.payload.runtime_env)
            process.incarnation = incarnation
            process.counter_path = os.path.join(self.shm_dir, "calls-" + process.worker_id.hex())
            with open(process.counter_path, "wb") as f:
                f.write(bytes(8))
            self.actor_processes[actor_id] = process
            spec = entry.payload
            resolved = self._locations(spec.arg_ids) if spec.arg_ids else None
            process.channel.send((wire.ACTOR_INIT, spec, resolved, gpu_ids, process.counter_path))

    def _a_send_call(self, action: SendCall) -> None:
        spec = action.call
        process = self.actor_processes[action.actor_id]
        entries = self.store.entries
        for oid in spec.return_ids:  # its reply comes on this process's channel: a caller
            entry = entries.get(oid)  # waiting for it may read the channel itself (Node.get)
            if entry is not None:
                entry.producer = process
        self._batched(process.channel).send(
            (wire.CALL, spec, self._locations(spec.arg_ids) if spec.arg_ids else None))

    def _a_fail_call(self, action: FailCall) -> None:
        spec = action.call
        self.specs.pop(spec.task_id, None)
        if action.error is not None:
            for oid in spec.return_ids:
                self._seal(oid, action.error, is_error=True)
        else:
            self._seal_returns_with_error(spec, error=ActorDiedError(action.reason))
        self._release_pins(spec)

    def _a_actor_ready(self, action: ActorReady) -> None:
        creation = self.actors[action.actor_id].payload
        entry = self.store.entries.get(creation.return_ids[0]) if creation.return_ids else None
        if entry is not None and entry.state != READY:
            self._seal_value(creation.return_ids[0], None)

    def _a_creation_failed(self, action: CreationFailed) -> None:
        creation = self.actors[action.actor_id].payload
        self.specs.pop(creation.task_id, None)
        if action.error is not None:
            for oid in creation.return_ids:
                self._seal(oid, action.error, is_error=True)
        else:
            self._seal_returns_with_error(creation, error=ActorDiedError(action.reason))

    def _a_kill_process(self, action: KillProcess) -> None:
        process = self.actor_processes.get(action.actor_id)
        entry = self.actors[action.actor_id]
        if process is not None:
            self._kill_process(process)
        elif entry.state is not ActorState.DEAD:  # its process was not started yet
            self._act(self.actor_table.process_died(action.actor_id, entry.incarnation, 0,
                                                    "killed before it started"))

    def _a_exit_process(self, action: ExitProcess) -> None:
        def send_exit() -> None:
            process = self.actor_processes.get(action.actor_id)
            if process is not None:
                process.channel.send((wire.EXIT,))
        if action.actor_id in self.actor_processes:
            send_exit()
        else:  # its start is queued on the I/O thread: ask after it
            self._spawn_later(send_exit)

    def _a_release_resources(self, action: ReleaseResources) -> None:
        self.actor_gpus.pop(action.actor_id, None)
        self._act(self.scheduler.actor_exited(action.actor_id))

    def _a_notify(self, action: Notify) -> None:
        print(f"raylite: {action.message}", file=sys.stderr, flush=True)

    _actor_action_handlers: dict[type, Any] = {
        SpawnProcess: _a_spawn_process, SendCall: _a_send_call, FailCall: _a_fail_call,
        ActorReady: _a_actor_ready, CreationFailed: _a_creation_failed,
        KillProcess: _a_kill_process, ExitProcess: _a_exit_process,
        ReleaseResources: _a_release_resources, Notify: _a_notify}

    # ----- snapshots ------------------------------------------------------------------------
    def actor_rows(self) -> list[dict[str, Any]]:
        """Every actor the node knows, alive or dead: a copy, for status and the dashboard."""
        return self.snapshot(ActorsMixin._actor_rows)

    def _actor_rows(self) -> list[dict[str, Any]]:
        processes = self.actor_processes
        return [{"actor_id": e.actor_id.hex(), "class": e.class_name, "name": e.name or "",
                 "state": e.state.value,
                 "pid": processes[e.actor_id].pid if e.actor_id in processes else None,
                 "pending_calls": len(e.queue) + len(e.in_flight),
                 "restarts_left": e.restarts_left, "death_cause": e.death_cause}
                for e in self.actors.values()]


def _read_counter(path: str | None) -> int | None:
    """How many calls an actor process started (None: unknown)."""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(8)
        os.unlink(path)
    except OSError:
        return None
    return int.from_bytes(data, sys.byteorder) if len(data) == 8 else None
