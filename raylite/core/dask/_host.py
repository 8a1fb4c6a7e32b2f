"""An actor on Dask, the worker's side: the :class:`ActorHost` Dask holds as the actor.

Callers reach the host by Dask's actor RPC (``actor_execute``) with *direct calls*: no Dask task
per call. Each call carries its caller's id and a sequence number; the host starts one caller's
calls in sequence order (they may arrive out of order: each call travels on its own connection)
and runs them on its own threads (one thread unless ``max_concurrency`` says more, so calls run
one at a time in that order) or, for ``async def`` methods, on its own event loop::

    caller: ActorChannel ──actor_execute("direct_call", caller, seq, method, payload)──▶
    worker: ActorHost.direct_call ──(waits for the caller's seq-1 to start)──▶
            executor thread: ActorHost.call ──▶ instance.method(*args)
            ◀── reply: the value, or Failed(error) (an error is a value: later calls still run)
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from raylite.core import _generators
from raylite.core.dask import _remote as remote
from raylite.core.dask._remote import Failed
from raylite.core._refs import ObjectRef
from raylite.core._task import unpack_args
from raylite.exceptions import ActorDiedError, TaskError


class ActorHost:
    """What Dask holds as the actor: the user's instance, call order, concurrency, kill switch."""

    def __init__(self, class_id: bytes, blob: bytes, class_name: str, payload: Any, spec: dict,
                 *deps: Any):
        remote.worker_backend()
        self.class_name = class_name
        self.namespace = spec.get("namespace")
        self.max_concurrency = spec.get("max_concurrency", 1)
        self.is_async = spec.get("is_async", False)
        self.killed = False
        self.running: set[int] = set()
        self.guard = threading.Lock()
        self.next_seq: dict[str, int] = {}  # caller -> the sequence number it sends next
        self.turns: dict[tuple[str, int], asyncio.Future] = {}  # calls that arrived early
        self.executor: ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        remote.enter_call(self.namespace)
        try:
            cls = remote.load_function(class_id, blob)
            args, kwargs = remote.resolve_deps(payload, deps)
            self.instance = cls(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001
            raise remote.task_error(exc, f"{class_name}.__init__")
        finally:
            remote.leave_call()
        if self.is_async:
            self.loop = asyncio.new_event_loop()
            self.async_slots: asyncio.Semaphore | None = None
            threading.Thread(target=self._run_loop, daemon=True,
                             name=f"raylite-actor-{class_name}").start()
        else:
            self.executor = ThreadPoolExecutor(self.max_concurrency,
                                               thread_name_prefix=f"raylite-{class_name}")

    def _run_loop(self) -> None:
        remote.set_namespace(self.namespace)  # for get_actor() and named actors in the methods
        self.loop.run_forever()

    # ----- direct calls (on the worker's event loop) ----------------------------------------
    async def direct_call(self, caller: str, seq: int, method: str, name: str, payload: Any,
                          num_returns: int) -> Any:
        """One call from ``caller``: started after the caller's previous one, in its order."""
        expected = self.next_seq.get(caller, 0)
        if seq > expected:  # an earlier call of this caller is still on its way
            waiter = asyncio.get_running_loop().create_future()
            self.turns[(caller, seq)] = waiter
            await waiter
        self.next_seq[caller] = max(seq + 1, self.next_seq.get(caller, 0))
        started = self._start(method, name, payload, num_returns)
        following = self.turns.pop((caller, seq + 1), None)
        if following is not None:
            following.set_result(None)
        return await asyncio.wrap_future(started)

    def _start(self, method: str, name: str, payload: Any, num_returns: int) -> ThreadFuture:
        if self.killed:
            done: ThreadFuture = ThreadFuture()
            done.set_result(Failed(ActorDiedError(f"{name}: the actor was killed")))
            return done
        if self.is_async:
            return asyncio.run_coroutine_threadsafe(
                self._call_async(method, name, payload, num_returns), self.loop)
        return self.executor.submit(self.call, method, name, payload, num_returns)

    # ----- running a call -------------------------------------------------------------------
    def call(self, method: str, name: str, payload: Any, num_returns: int) -> Any:
        """Run one method call on this thread; errors come back as Failed values."""
        if self.killed:
            return Failed(ActorDiedError(f"{name}: the actor was killed"))
        remote.enter_call(self.namespace)
        try:
            args, kwargs = _resolve_args(payload)
            bound = getattr(self.instance, method)
            stream = _generators.pop_stream(kwargs)  # a generator call: core/_generators.py
            if stream is not None:
                bound = _generators.draining(bound, stream, remote.put_item)
            value = self._run_tracked(bound, args, kwargs)
            return remote.check_returns(value, num_returns, name)
        except _Killed:
            return Failed(ActorDiedError(f"{name}: the actor was killed while running it"))
        except BaseException as exc:  # noqa: BLE001
            return Failed(remote.task_error(exc, name))
        finally:
            remote.leave_call()

    async def _call_async(self, method: str, name: str, payload: Any, num_returns: int) -> Any:
        """Run one call on the actor's event loop (``max_concurrency`` at a time)."""
        if self.async_slots is None:
            self.async_slots = asyncio.Semaphore(self.max_concurrency)
        try:
            if _has_refs(payload):  # resolving blocks: not on the actor's loop
                args, kwargs = await asyncio.get_running_loop().run_in_executor(
                    None, _resolve_args, payload)
            else:
                args, kwargs = unpack_args(payload)
            stream = _generators.pop_stream(kwargs)  # a generator call: core/_generators.py
            async with self.async_slots:
                value = getattr(self.instance, method)(*args, **kwargs)
                if stream is not None:  # put() blocks: the items are stored off the loop
                    value = await asyncio.get_running_loop().run_in_executor(
                        None, _generators.drain, await _generators.collect_async(value),
                        stream, None, remote.put_item)
                elif asyncio.iscoroutine(value):
                    value = await value
            return remote.check_returns(value, num_returns, name)
        except asyncio.CancelledError:
            return Failed(ActorDiedError(f"{name}: the actor was killed while running it"))
        except BaseException as exc:  # noqa: BLE001
            return Failed(remote.task_error(exc, name))

    def _run_tracked(self, bound, args, kwargs) -> Any:
        ident = threading.get_ident()
        with self.guard:
            if self.killed:
                raise _Killed()
            self.running.add(ident)
        try:
            value = bound(*args, **kwargs)
        finally:
            with self.guard:
                self.running.discard(ident)
                if self.killed:  # drop an interruption that arrived too late to matter
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
        if asyncio.iscoroutine(value):
            value = asyncio.run(value)
        return value

    # ----- kill -------------------------------------------------------------------------------
    def kill(self) -> None:
        """Stop taking calls and interrupt the ones running (raises in their threads)."""
        with self.guard:
            self.killed = True
            for ident in self.running:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident),
                                                           ctypes.py_object(_Killed))
        if self.loop is not None:
            loop = self.loop

            def stop():
                for task in asyncio.all_tasks(loop):
                    task.cancel()
                loop.call_later(1.0, loop.stop)
            loop.call_soon_threadsafe(stop)
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=False)


class _Killed(BaseException):
    """Raised inside a running actor call when the actor is killed."""


def _has_refs(payload: Any) -> bool:
    args, kwargs = unpack_args(payload)
    return any(type(a) is ObjectRef for a in args) or \
        any(type(v) is ObjectRef for v in (kwargs or {}).values())


def _resolve_args(payload: Any) -> tuple[tuple, dict]:
    """The call's arguments, top-level ObjectRefs replaced by their values (as in Ray)."""
    args, kwargs = unpack_args(payload)
    refs = [a for a in args if type(a) is ObjectRef]
    refs += [v for v in kwargs.values() if type(v) is ObjectRef]
    if not refs:
        return args, kwargs
    try:
        values = dict(zip(refs, remote.worker_backend().get(refs, None)))
    except TaskError as exc:
        remote.mark_upstream(exc)
        raise
    args = tuple(values[a] if type(a) is ObjectRef else a for a in args)
    kwargs = {k: values[v] if type(v) is ObjectRef else v for k, v in kwargs.items()}
    return args, kwargs


def kill_actor_here(key: str, dask_worker: Any = None) -> bool:
    """Run on the actor's worker by ``client.run``: interrupt and stop the actor."""
    host = dask_worker.state.actors.get(key) if dask_worker is not None else None
    if isinstance(host, ActorHost):
        host.kill()
        return True
    return False
