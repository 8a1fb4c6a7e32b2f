"""The node's processes and its I/O thread: spawning, the selector loop, message handlers.

Processes are only ever started here, on the I/O thread, which lives as long as the node, so
each worker's parent-death signal is tied to the node's life.
"""

from __future__ import annotations

import collections
import heapq
import json
import os
import selectors
import shutil
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Callable

from raylite.core import _ids, _refs
from raylite.core.local import _protocol as wire
from raylite.core.local._protocol import Channel, make_pair
from raylite.core.local._scheduler import Retry
from raylite.core.local._store import READY
from raylite.core._runtime_env_setup import worker_process
from raylite.core._task import ACTOR_CALL, TASK, TaskSpec, unpack_value

if TYPE_CHECKING:
    from raylite.core.local._node_wait import _Waiter


def _retries_on(spec: TaskSpec, packed: tuple) -> bool:
    """Whether the error a task raised is one its ``retry_exceptions`` names (the scheduler
    decides whether retries are left)."""
    retry = spec.retry_exceptions
    if retry is True:
        return True
    error = unpack_value(packed[0], packed[1])
    return isinstance(error.cause, tuple(retry))


class _Process:
    """A worker or actor process as the node sees it."""

    def __init__(self, worker_id: bytes, popen: subprocess.Popen, channel: Channel, actor_id=None):
        self.worker_id = worker_id
        self.popen = popen
        self.pid = popen.pid
        self.channel = channel
        self.actor_id = actor_id
        self.functions: set[bytes] = set()
        self.ready = False
        self.retired = False  # asked to exit by the scheduler: not a death to react to
        self.incarnation = 0  # an actor's: which of its processes this is
        self.env_key = ""  # its runtime env's key ("": the job's)
        self.counter_path: str | None = None  # an actor's: calls started, in shared memory



RETIRE_IDLE_S = 2.0  # extra workers idle this long exit, down to one per CPU


class ProcessIOMixin:
    """Worker processes and the I/O thread of the Node (mixed into it)."""

    def _init_runtime_envs(self, job_env: dict | None) -> None:
        """The job's runtime env (init's, normalized), prepared for the default workers; the
        prepared envs of tasks and actors are kept by key in ``envs`` (core/_runtime_env.py)."""
        self.job_env = job_env
        self.envs: dict[str, dict] = {}
        self.job_prepared: dict | None = None
        self.env_start_failures: collections.Counter = collections.Counter()  # by env key
        if job_env is not None:
            from raylite.core._runtime_env_setup import prepare
            try:
                self.job_prepared = prepare(job_env, self.session_dir)
            except BaseException:
                shutil.rmtree(self.shm_dir, ignore_errors=True)
                shutil.rmtree(self.session_dir, ignore_errors=True)
                raise

    def _spawn_later(self, fn: Callable) -> None:
        self.spawn_queue.append(fn)
        self._wake()

    def _spawn(self, actor_id: bytes | None = None, gpu_ids=None,
               env: dict | None = None) -> _Process:
        """Start a worker (or an actor's process, ``actor_id``) in runtime env ``env``, a
        prepared one (core/_runtime_env_setup.py); None: the job's."""
        parent, child = make_pair()
        worker_id = _ids.new_id()
        prepared = env if env is not None else self.job_prepared
        python, environ, cwd, sys_path = worker_process(prepared, os.environ,
                                                        [p for p in sys.path if p])
        context = {"sys_path": sys_path, "namespace": self.namespace,
                   "node_id": self.node_id, "job_id": self.job_id, "worker_id": worker_id.hex(),
                   "session_dir": self.session_dir, "runtime_env": env,
                   "job_runtime_env": self.job_env}
        environ = dict(environ, RAYLITE_FD=str(child.fileno()), RAYLITE_SHM_DIR=self.shm_dir,
                       RAYLITE_CONTEXT=json.dumps(context), PYTHONUNBUFFERED="1")
        if gpu_ids is not None:
            environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpu_ids)
        # A session of its own: a terminal's Ctrl-C reaches the driver, which shuts the workers
        # down; it must not land in the middle of a worker (a threaded actor's socket loop).
        popen = subprocess.Popen([python, "-m", "raylite.core.local._worker"],
                                 pass_fds=(child.fileno(),), env=environ, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True, cwd=cwd)
        child.close()
        channel = Channel(parent, self._on_backlog)
        process = _Process(worker_id, popen, channel, actor_id)
        if env is not None:
            process.env_key = env["key"]
        self.processes[worker_id] = process
        self._watch_channel(process)
        for stream, target in ((popen.stdout, "out"), (popen.stderr, "err")):
            os.set_blocking(stream.fileno(), False)
            self.selector.register(stream.fileno(), selectors.EVENT_READ, (target, stream))
        return process

    def _spawn_task_worker(self) -> None:
        self._spawn()

    def _kill_process(self, process: _Process) -> None:
        try:
            process.popen.kill()
        except ProcessLookupError:
            pass

    # ======================================================================================
    # the I/O thread
    # ======================================================================================
    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def _watch_channel(self, process: _Process) -> None:
        """Register a worker's channel with the I/O thread's poller. Where the poller is
        epoll/poll (Linux), the channel sets its own mask there (reads unless a waiting caller
        borrowed it, writes while its outbox is full); elsewhere writes are watched on request."""
        channel = process.channel
        poller = getattr(self.selector, "_selector", None)
        if isinstance(self.selector, (getattr(selectors, "EpollSelector", ()),
                                      getattr(selectors, "PollSelector", ()))):
            self.selector.register(channel.fileno, selectors.EVENT_READ | selectors.EVENT_WRITE,
                                   ("worker", process))
            channel.watch(poller)
        else:
            self.selector.register(channel.fileno, selectors.EVENT_READ, ("worker", process))

    def _on_backlog(self, channel: Channel) -> None:
        self._spawn_later(lambda: self._watch_writes(channel))

    def _watch_writes(self, channel: Channel) -> None:
        try:
            key = self.selector.get_key(channel.fileno)
            self.selector.modify(channel.fileno, selectors.EVENT_READ | selectors.EVENT_WRITE, key.data)
        except (KeyError, ValueError):
            pass

    def _io_loop(self) -> None:
        select = self.selector.select
        while not self.stopping:
            timeout = 0.05
            if self.timers:
                timeout = max(0.0, min(timeout, self.timers[0][0] - time.monotonic()))
            for key, events in select(timeout):
                tag, obj = key.data
                if tag == "worker":
                    if (events & selectors.EVENT_WRITE and obj.channel.flush()
                            and obj.channel.poller is None):
                        self.selector.modify(key.fd, selectors.EVENT_READ, key.data)
                    if events & selectors.EVENT_READ:
                        self._on_readable(obj)
                elif tag == "wake":
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                else:
                    self._forward_output(key.fd, obj, tag)
            if self.submissions:
                with self.lock:  # entering registers them
                    pass
            while self.spawn_queue and not self.stopping:
                try:
                    self.spawn_queue.pop(0)()
                except Exception as exc:  # a failed spawn must not stop the I/O thread
                    print(f"raylite: could not start a worker process: {exc}", file=sys.stderr)
            self._run_timers()
            if len(self.scheduler.workers) > self.scheduler.min_workers:
                with self.lock:
                    self._act(self.scheduler.retire_idle(RETIRE_IDLE_S))
            if _refs._released:
                with self.lock:
                    self._drain_refs()

    def _forward_output(self, fd: int, stream, tag: str) -> None:
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(fd)
            stream.close()
            return
        if self.log_to_driver:
            target = sys.stdout if tag == "out" else sys.stderr
            try:
                target.write(data.decode("utf-8", "replace"))
                target.flush()
            except Exception:
                pass

    def _on_readable(self, process: _Process) -> None:
        channel = process.channel
        if not channel.reader.acquire(blocking=False):
            return  # a caller waiting for a reply borrowed it: it reads (see Channel.borrow)
        try:
            messages = channel.receive()
            if messages is None:
                with self.lock:
                    self._on_process_exit(process)
            elif messages:
                self._handle_messages(process, messages)
        finally:
            channel.reader.release()

    def _handle_messages(self, process: _Process, messages: list) -> None:
        """Carry out what a worker sent, in order (whoever read it holds the channel's reader)."""
        handlers = self._handlers
        with self.lock:
            if len(messages) == 1:  # e.g. one reply: nothing to batch
                message = messages[0]
                handlers[message[0]](self, process, message)
                return
            self._cork_begin()
            try:
                for message in messages:
                    handlers[message[0]](self, process, message)
            finally:
                self._cork_end()

    def _on_process_exit(self, process: _Process) -> None:
        if self.processes.pop(process.worker_id, None) is None:
            return
        try:
            self.selector.unregister(process.channel.fileno)
        except (KeyError, ValueError):
            pass
        process.channel.close()
        if process.popen.poll() is None:
            self._kill_process(process)
        self._spawn_later(lambda: process.popen.wait())
        if self.stopping:
            return
        if process.actor_id is not None:
            self._actor_died(process)
        elif not process.retired:
            self._act(self._worker_gone(process))

    # ----- message handlers (under the lock, on the I/O thread) --------------------------------
    STARTS_BEFORE_GIVING_UP = 3

    def _worker_gone(self, process: _Process) -> list:
        """A task worker died; one of a runtime env that died before starting, several times
        in a row, breaks that env: its tasks fail instead of workers starting forever."""
        key = process.env_key
        if process.ready or (not key and self.job_prepared is None):
            return self.scheduler.worker_died(process.worker_id, key)
        self.env_start_failures[key] += 1
        if self.env_start_failures[key] < self.STARTS_BEFORE_GIVING_UP:
            return self.scheduler.worker_died(process.worker_id, key)
        env = self.envs.get(key, {}).get("env") if key else self.job_env
        return self.scheduler.env_failed(key, (
            f"its worker process for runtime_env {env!r:.200} exited before it started, "
            f"{self.STARTS_BEFORE_GIVING_UP} times; the "
            "worker's output above says why: a module in working_dir or py_modules named like "
            "one Python needs (queue.py, json.py, ...), or a broken virtual environment"))

    def _h_started(self, process: _Process, message: tuple) -> None:
        process.ready = True
        self.env_start_failures.pop(process.env_key, None)
        if process.actor_id is None:
            self._act(self.scheduler.worker_started(process.worker_id, process.env_key))

    def _h_done(self, process: _Process, message: tuple) -> None:
        _, task_id, results, duration = message
        spec = self.specs.pop(task_id, None)
        if spec is None:
            return
        self.task_events.append((spec.name, process.pid, time.time() - duration, duration,
                                 results[0][0] not in wire.ERROR_KINDS if results else True))
        if spec.kind == ACTOR_CALL:
            self.actor_table.call_done(spec.actor_id, task_id)
        if spec.kind != TASK:
            for oid, packed in zip(spec.return_ids, results):
                self._seal(oid, packed, is_error=packed[0] in wire.ERROR_KINDS)
            if spec.contained or type(spec.args) is tuple:  # refs or a file it holds
                self._release_pins(spec)
            return
        if results and results[0][0] in wire.ERROR_KINDS and spec.retry_exceptions:
            actions = self.scheduler.task_errored(process.worker_id, task_id, duration,
                                                  _retries_on(spec, results[0]))
            if actions and type(actions[0]) is Retry:
                self.specs[task_id] = spec  # queued again: the spec lives on
                self._act(actions[1:])
                return
        else:
            actions = None
        for oid, packed in zip(spec.return_ids, results):
            self._seal(oid, packed, is_error=packed[0] in wire.ERROR_KINDS)
        if not any(oid in self.store.entries for oid in spec.return_ids):
            self._release_pins(spec)  # nobody kept a result: no lineage to keep either
        self._act(actions if actions is not None else
                  self.scheduler.task_finished(process.worker_id, task_id, duration))

    def _h_submit(self, process: _Process, message: tuple) -> None:
        spec = message[1]
        try:
            self._submit(spec, holder=False)
        except ValueError as exc:
            self._seal_returns_with_error(spec, error=exc)

    def _h_put(self, process: _Process, message: tuple) -> None:
        _, object_id, packed = message
        self.store.create(object_id)
        self._seal(object_id, packed, is_error=False)

    def _h_refs(self, process: _Process, message: tuple) -> None:
        _, borrowed, released = message
        store = self.store
        for oid in borrowed:
            store.incref(oid)
        for oid in released:
            store.decref(oid)

    def _h_get(self, process: _Process, message: tuple) -> None:
        _, request_id, ids, timeout = message
        blocked = [False]

        def reply(waiter: _Waiter | None) -> None:
            if waiter is not None and waiter.target_left > 0:
                return
            process.channel.send((wire.REPLY, request_id, [self._location_or_lost(oid) for oid in ids]))
            if blocked[0]:
                blocked[0] = False
                self._act(self._unblock(process))

        try:
            waiter = self._add_waiter(ids, len(ids), reply)
        except ValueError as exc:
            process.channel.send((wire.REPLY, request_id, [(wire.GONE, str(exc))] * len(ids)))
            return
        if waiter is None:
            reply(None)
            return
        blocked[0] = True
        self._act(self.scheduler.worker_blocked(process.worker_id) if process.actor_id is None
                  else self.scheduler.actor_blocked(process.actor_id))
        if timeout is not None:
            def expire() -> None:
                if waiter.target_left > 0:
                    waiter.target_left = -1  # never fire
                    self._remove_waiter(waiter)
                    process.channel.send((wire.REPLY, request_id, "timeout"))
                    if blocked[0]:
                        blocked[0] = False
                        self._act(self._unblock(process))
            self._add_timer(timeout, expire)

    def _unblock(self, process: _Process) -> list:
        if process.actor_id is None:
            return self.scheduler.worker_unblocked(process.worker_id)
        return self.scheduler.actor_unblocked(process.actor_id)

    def _h_wait(self, process: _Process, message: tuple) -> None:
        """A worker's ``wait``: blocked in it, the worker lends its CPU back, as in ``get``."""
        _, request_id, ids, num_returns, timeout = message
        done, blocked = [False], [False]

        def reply(waiter=None) -> None:
            if done[0]:
                return
            done[0] = True
            entries = self.store.entries
            ready = [oid for oid in ids if oid in entries and entries[oid].state == READY]
            process.channel.send((wire.REPLY, request_id, ready[:num_returns]))
            if waiter is not None:
                self._remove_waiter(waiter)
            if blocked[0]:
                blocked[0] = False
                self._act(self._unblock(process))

        waiter = self._add_waiter(ids, num_returns, reply)
        if waiter is None:
            reply()
            return
        if timeout is None or timeout > 0:
            blocked[0] = True
            self._act(self.scheduler.worker_blocked(process.worker_id) if process.actor_id is None
                      else self.scheduler.actor_blocked(process.actor_id))
        if timeout is not None:
            self._add_timer(timeout, lambda: reply(waiter))

    def _h_watch(self, process: _Process, message: tuple) -> None:
        """A worker wants a Future for an object: answer SEALED when it is ready."""
        object_id = message[1]

        def reply(waiter: _Waiter | None = None) -> None:
            process.channel.send((wire.SEALED, object_id, self._location_or_lost(object_id)))

        try:
            waiter = self._add_waiter([object_id], 1, reply)
        except ValueError as exc:
            process.channel.send((wire.SEALED, object_id, (wire.GONE, str(exc))))
            return
        if waiter is None:
            reply()

    def _h_lost(self, process: _Process, message: tuple) -> None:
        self._object_lost(message[1], message[2])

    def _h_actor_ready(self, process: _Process, message: tuple) -> None:
        self._actor_ready(process, message[2])

    def _h_api(self, process: _Process, message: tuple) -> None:
        _, request_id, name, args = message
        try:
            result = (True, getattr(self, name)(*args))
        except Exception as exc:
            result = (False, exc)
        process.channel.send((wire.REPLY, request_id, result))

    def _h_yield(self, process: _Process, message: tuple) -> None:
        """An item of a generator task: kept as contained in the task's end object, so it lives
        as long as the caller's generator (dropped with it: discarded). A retry's repeat of an
        item already stored is ignored: items are never duplicated."""
        _, end_id, object_id, packed = message
        store = self.store
        end = store.entries.get(end_id)
        item = store.entries.get(object_id)
        if end is None or (item is not None and item.state == READY):
            if packed[0] in (wire.SHARED, wire.SHARED_ERROR):
                try:
                    os.unlink(packed[1])
                except FileNotFoundError:
                    pass
            return
        store.incref(object_id)
        if type(end.contained) is list:
            end.contained.append(object_id)
        else:  # the shared empty tuple of a new entry
            end.contained = [*end.contained, object_id]
        self._seal(object_id, packed, is_error=packed[0] in wire.ERROR_KINDS)

    _handlers = {wire.STARTED: _h_started, wire.DONE: _h_done, wire.SUBMIT: _h_submit,
                 wire.PUT: _h_put, wire.REFS: _h_refs, wire.GET: _h_get, wire.WAIT: _h_wait,
                 wire.LOST: _h_lost, wire.ACTOR_READY: _h_actor_ready, wire.API: _h_api,
                 wire.WATCH: _h_watch, wire.YIELD: _h_yield}

    # ----- timers ----------------------------------------------------------------------------
    def _add_timer(self, delay: float, callback: Callable) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self._timer_seq), callback))
        self._wake()

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            with self.lock:  # timers are added under the lock, by any thread
                if not self.timers or self.timers[0][0] > now:
                    break
                _, _, callback = heapq.heappop(self.timers)
                callback()

