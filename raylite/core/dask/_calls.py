"""Actor calls on Dask, the caller's side: one :class:`ActorChannel` per actor per process.

A call is a *direct call*: one message to the actor's worker through Dask's actor RPC
(``actor_execute``), not a Dask task, so it costs one round trip and no scheduler work. Calls
are queued in the order the program makes them; the channel's pump (on the client's event loop)
numbers them and sends each at once, without waiting for the previous reply; the actor's host
starts one caller's calls in number order (:mod:`~raylite.core.dask._host`)::

    a.m.remote(x) ──submit──▶ queue ──pump: (caller, seq)──▶ actor_execute("direct_call", ...)
    ObjectRef ◀── local result (a thread Future) ◀────────────────── reply: value or Failed

A call's result stays in the calling process (get and wait read it there). When its ref must
exist in Dask (passed to a task, put in an object, returned from a task) the table *materializes*
it: waits for the result and scatters it under the ref's key (:mod:`~raylite.core.dask._refs`).

When the actor's worker dies, the calls in flight fail with ActorDiedError (or are sent again
after a restart, up to ``max_task_retries``); the actor's owner restarts it (Dask's ``retry`` of
the actor's key, on a live worker) up to ``max_restarts`` times, and the channel starts a new
numbering ("epoch") for the new instance.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
from concurrent.futures import Future as ThreadFuture
from typing import Any

from raylite.core.dask._refs import _KEY_PREFIX
from raylite.core.dask._remote import Failed
from raylite.exceptions import ActorDiedError, TaskError

RESTART_TIMEOUT_S = 60.0  # how long a caller waits for a lost actor to be restarted
_POLL_S = 0.05
_order = itertools.count()


class _Call:
    """One queued or sent call; ``results`` are what its ObjectRefs read."""

    __slots__ = ("epoch", "linger", "method", "name", "num_returns", "order", "payload", "pins",
                 "results", "retries", "seq")

    def __init__(self, method: str, name: str, payload: Any, num_returns: int, pins: list | None,
                 retries: int | None, linger: Any):
        self.method, self.name, self.payload = method, name, payload
        self.linger = linger
        self.num_returns = num_returns
        self.pins = pins  # Futures of the refs in the arguments, held until the call is done
        self.results = [ThreadFuture() for _ in range(max(1, num_returns))]
        self.order = next(_order)
        self.retries = retries
        self.seq = self.epoch = -1

    def finish(self, value: Any) -> None:
        if self.num_returns <= 1 or type(value) is Failed:
            for result in self.results:
                result.set_result(value)
        else:
            for result, item in zip(self.results, value):
                result.set_result(item)
        self.linger(self.pins)
        self.pins = self.payload = None

    def fail(self, error: BaseException) -> None:
        for result in self.results:
            if not result.done():
                result.set_result(Failed(error))
        self.linger(self.pins)
        self.pins = self.payload = None


class ActorChannel:
    """This process's calls to one actor, in the order they are made."""

    def __init__(self, backend: Any, key: str, class_name: str, future: Any):
        self.backend = backend
        self.client = backend.client
        self.key = key
        self.class_name = class_name
        self.future = future  # the actor's Dask Future (its state tells alive, lost, cancelled)
        self.lock = threading.Lock()
        self.queue: collections.deque[_Call] = collections.deque()
        self.pumping = False
        self.address: str | None = None
        self.lost_address: str | None = None
        self.dead: BaseException | None = None
        self.epoch = 0
        self.caller = ""
        self.seq = 0
        self.in_flight: dict[asyncio.Future, tuple[_Call, str]] = {}  # reply -> (call, address)
        self.tasks: set = set()  # coroutines started here (asyncio keeps only weak refs)
        self.watcher: asyncio.Future | None = None  # _watch_death, while calls are in flight
        self._new_epoch()

    def _new_epoch(self) -> None:
        self.epoch += 1
        self.caller = f"{_KEY_PREFIX}-{id(self):x}-{self.epoch}"
        self.seq = 0

    # ----- the caller's thread ----------------------------------------------------------------
    def submit(self, method: str, name: str, payload: Any, num_returns: int,
               pins: list | None, retries: int | None = None) -> list[ThreadFuture]:
        """Queue a call; returns the thread Futures its refs read (one at least)."""
        call = _Call(method, name, payload, num_returns, pins, retries, self.backend.table.linger)
        with self.lock:
            self.queue.append(call)
            start, self.pumping = not self.pumping, True
        if start:
            self.client.loop.add_callback(self._pump)
        return call.results

    def kill(self, error: BaseException) -> None:
        """The actor was killed: queued and later calls fail with ``error``."""
        self.dead = error
        with self.lock:
            queued, self.queue = list(self.queue), collections.deque()
        for call in queued:
            call.fail(error)

    # ----- the event loop ---------------------------------------------------------------------
    async def _pump(self) -> None:
        """Send the queued calls in order, numbered; never waits for replies."""
        while True:
            with self.lock:
                if not self.queue:
                    self.pumping = False
                    return
                call = self.queue.popleft()
            if self.dead is None and self.address is None:
                try:
                    await self._resolve()
                except BaseException as exc:  # noqa: BLE001 - the actor is gone for good
                    self.dead = exc if isinstance(exc, (TaskError, ActorDiedError)) else \
                        ActorDiedError(f"{self.class_name}: the actor is gone ({exc})")
            if self.dead is not None:
                call.fail(self.dead)
                continue
            call.seq, call.epoch = self.seq, self.epoch
            self.seq += 1
            try:
                if call.pins and not all(f.done() for f in call.pins):
                    self._spawn(self._send_when_known(call, self.caller, self.address))
                else:
                    self._send(call, self.caller, self.address)
            except Exception as exc:  # noqa: BLE001 - never leave the queue stuck
                self._new_epoch()  # this number was not sent: the actor must not wait for it
                call.fail(ActorDiedError(f"{call.name}: the call could not be sent ({exc!r})"))

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)  # asyncio keeps only weak refs to tasks
        task.add_done_callback(self.tasks.discard)

    async def _send_when_known(self, call: _Call, caller: str, address: str) -> None:
        """Tasks just submitted are among the arguments: the actor's worker looks them up."""
        try:
            await self._until_known([f.key for f in call.pins if not f.done()])
        except Exception as exc:  # noqa: BLE001 - the scheduler went away
            call.fail(ConnectionError(f"{call.name}: the Dask scheduler is unreachable ({exc})"))
            return
        self._send(call, caller, address)

    def _send(self, call: _Call, caller: str, address: str) -> None:
        from distributed.protocol import to_serialize
        reply = asyncio.ensure_future(self._rpc(address).actor_execute(
            actor=self.key, function="direct_call",
            args=[caller, call.seq, call.method, call.name, to_serialize(call.payload),
                  call.num_returns], kwargs={}))
        self.in_flight[reply] = (call, address)
        reply.add_done_callback(self._replied)
        if self.watcher is None:
            self.watcher = asyncio.ensure_future(self._watch_death())

    def _replied(self, reply: asyncio.Future) -> None:
        call, address = self.in_flight.pop(reply)
        if reply.cancelled():  # by _watch_death: do not wait for a connection timeout
            error: BaseException = ConnectionError("the Dask scheduler lost the actor's worker")
        elif reply.exception() is not None:  # the worker went away (OSError, CommClosed)
            error = reply.exception()
        elif reply.result().get("status") == "OK":
            call.finish(reply.result()["result"])
            return
        elif isinstance(reply.result().get("exception"), KeyError):  # no such actor there
            error = reply.result()["exception"]
        else:
            call.fail(ActorDiedError(f"{call.name}: the call could not run on the actor's worker "
                                     f"({reply.result().get('exception')!r})"))
            return
        self._spawn(self._lost(call, address, error))

    async def _watch_death(self) -> None:
        """While calls are in flight: when the scheduler says the actor is lost, stop waiting
        for their replies (a dead worker's connection can take long to time out)."""
        try:
            while self.in_flight:
                if self.future.status in ("error", "lost", "cancelled"):
                    for reply in list(self.in_flight):
                        reply.cancel()
                    return
                await asyncio.sleep(_POLL_S)
        finally:
            self.watcher = None

    async def _until_known(self, keys: list) -> None:
        """Wait until the scheduler has these keys: our task submissions travel on the client's
        own connection, the call on another, and the actor's worker looks the keys up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30.0
        while keys and loop.time() < deadline:
            status = await self.client.scheduler.get_task_status(keys=keys)
            keys = [key for key in keys if status.get(key) is None]
            if keys:
                await asyncio.sleep(0.002)

    def _rpc(self, address: str) -> Any:
        if self.client.direct_to_workers:
            return self.client.rpc(address)
        from distributed.actor import ProxyRPC  # through the scheduler, as Dask's actors do
        return ProxyRPC(self.client.scheduler, address)

    async def _resolve(self) -> None:
        """Wait for the actor to exist (or to be restarted); learn its worker's address."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESTART_TIMEOUT_S
        while True:
            await self.future._state.wait()
            status = self.future.status
            if status == "cancelled" or self.backend.is_killed(self.key):
                raise ActorDiedError(f"{self.class_name}: the actor was killed")
            if status in ("error", "lost"):
                error = self.future._state.exception
                if isinstance(error, TaskError):  # its constructor raised: dead for good
                    raise error
                await self._await_restart(deadline)
                continue
            who_has = await self.client.scheduler.who_has(keys=[self.key])
            holders = (who_has or {}).get(self.key) or ()
            if holders and holders[0] != self.lost_address:
                self.address = holders[0]
                return
            if loop.time() > deadline:
                raise ActorDiedError(f"{self.class_name}: the actor's worker is gone and the "
                                     f"actor was not restarted within {RESTART_TIMEOUT_S:g} s")
            await asyncio.sleep(_POLL_S)  # the scheduler has not noticed the lost worker yet

    async def _await_restart(self, deadline: float) -> None:
        """The actor's worker died: wait while its owner restarts it, or raise if it will not."""
        loop = asyncio.get_running_loop()
        checked = 0.0
        while self.future.status in ("error", "lost"):
            if loop.time() - checked > 0.5:
                checked = loop.time()
                info = await self.restart_info()
                if not info or info.get("dead"):
                    raise ActorDiedError(_died_message(self.class_name, self.key, info))
            if loop.time() > deadline:
                raise ActorDiedError(f"{self.class_name}: the actor's worker died and the actor "
                                     f"was not restarted within {RESTART_TIMEOUT_S:g} s")
            await asyncio.sleep(_POLL_S)

    async def restart_info(self) -> dict | None:
        """What the owner recorded: max_restarts, restarts so far, dead (and why)."""
        local = self.backend.restartable.get(self.key)
        if local is not None:
            return local
        try:
            return await self.client.scheduler.get_metadata(keys=["raylite", "actor", self.key],
                                                            default=None)
        except Exception:  # noqa: BLE001 - the scheduler went away: nobody restarts anything
            return None

    async def _lost(self, call: _Call, address: str, error: BaseException) -> None:
        """A call could not reach the actor (its worker died, or it was killed)."""
        if self.backend.is_killed(self.key) or self.future.status == "cancelled":
            call.fail(ActorDiedError(f"{call.name}: the actor was killed"))
            return
        if call.epoch == self.epoch:  # the first loss seen of this instance: number anew
            self.lost_address = address
            self.address = None
            self._new_epoch()
        info = await self.restart_info()
        if call.retries is None:  # the handle did not say: the actor's own max_task_retries
            call.retries = (info or {}).get("max_task_retries", 0)
        restarting = bool(info) and not info.get("dead") and (  # restarts left, or restarted
            info["max_restarts"] == -1 or info["restarts"] < info["max_restarts"]
            or self.future.status not in ("error", "lost"))
        if call.retries == 0 or not restarting:
            call.fail(ActorDiedError(
                f"{call.name}: the actor {self.class_name} ({self.key}) died while running this "
                f"call: its Dask worker {address} was lost ({type(error).__name__}: {error}). "
                + ("It is being restarted; raise max_task_retries to resend such calls."
                   if restarting else _died_message(self.class_name, self.key, info))))
            return
        if call.retries > 0:  # -1: retry without limit
            call.retries -= 1
        with self.lock:  # resend it before the calls made after it
            self.queue = collections.deque(sorted([*self.queue, call], key=lambda c: c.order))
            start, self.pumping = not self.pumping, True
        if start:
            await self._pump()


def _died_message(class_name: str, key: str, info: dict | None) -> str:
    if not info:
        return (f"The actor {class_name} ({key}) is dead: its Dask worker was lost, and it has "
                "max_restarts=0 (pass .options(max_restarts=N) to restart it).")
    return (f"The actor {class_name} ({key}) is dead: its Dask worker was lost after "
            f"{info.get('restarts', 0)} restart(s) (max_restarts={info.get('max_restarts')}); "
            "raise max_restarts to restart it more often.")
