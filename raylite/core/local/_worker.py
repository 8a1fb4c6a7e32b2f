"""A worker process: runs tasks one after another, or hosts a single actor.

    driver ──task/call/fn──▶ Worker.run() ──▶ execute ──done(results)──▶ driver
                                 │ user code calls raylite.get/remote/put
                                 └──▶ WorkerClient ──submit/get/put──▶ driver (replies come back)

Started by the driver with ``python -m raylite.core.local._worker``; the socket to the driver is an
inherited file descriptor. The process exits when the driver goes away (end of stream, or the
parent-death signal), cleaning the session's shared memory if it is the last one to notice.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import io
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any

from raylite.core import _generators, _ids, _refs
from raylite.core._backend import Backend, settle
from raylite.core._control import SESSIONS_DIR
from raylite.core.local import _protocol as wire
from raylite.core.local._protocol import Connection, ConnectionLost
from raylite.core._refs import ObjectRef
from raylite.core._serialization import loads_function
from raylite.core._task import SpecSubmitter, pack_value, unpack_args, unpack_value
from raylite.exceptions import GetTimeoutError, TaskCancelledError, make_task_error


class _Tracker:
    """Counts this process's refs; the first and last one become borrow/release messages."""

    def __init__(self):
        self.counts: dict[bytes, int] = {}
        self.lock = threading.Lock()
        self.borrowed: list[bytes] = []

    def add(self, object_id: bytes) -> None:
        with self.lock:
            n = self.counts.get(object_id, 0)
            self.counts[object_id] = n + 1
            if n == 0:
                self.borrowed.append(object_id)

    def flush(self) -> tuple | None:
        if not _refs._released and not self.borrowed:  # nothing to report (most messages)
            return None
        released_ids = _refs.drain_released()
        with self.lock:
            released = []
            for object_id in released_ids:
                n = self.counts.get(object_id, 0) - 1
                if n <= 0:
                    self.counts.pop(object_id, None)
                    released.append(object_id)
                else:
                    self.counts[object_id] = n
            if not released and not self.borrowed:
                return None
            borrowed, self.borrowed = self.borrowed, []
        return (wire.REFS, borrowed, released)


class _PrefixedStream(io.TextIOBase):
    """Writes each line to the real stream behind ``(task_name pid=N)``, like Ray's log prefix."""

    def __init__(self, raw: Any, worker: "Worker"):
        self.raw = raw
        self.worker = worker
        self.partial = ""
        self.lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self.lock:
            text = self.partial + text
            lines = text.split("\n")
            self.partial = lines.pop()
            if lines:
                prefix = f"({self.worker.label} pid={os.getpid()}) "
                self.raw.write("".join(prefix + line + "\n" for line in lines))
                self.raw.flush()
        return len(text)

    def flush(self) -> None:
        with self.lock:
            if self.partial:
                self.raw.write(f"({self.worker.label} pid={os.getpid()}) {self.partial}")
                self.partial = ""
            self.raw.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.raw.fileno()


class Worker:
    """The execution loop of one worker process."""

    # the work messages; the connection itself takes REPLY, REVOKE, CANCEL and SEALED
    HANDLERS = {wire.TASK: "on_task", wire.FUNCTION: "on_function",
                wire.ACTOR_INIT: "on_actor_init", wire.CALL: "on_call", wire.EXIT: "on_exit"}

    def __init__(self, conn: Connection, shm_dir: str):
        self.conn = conn
        self.shm_dir = shm_dir
        self.functions: dict[bytes, Any] = {}
        self.actor: Any = None
        self.actor_name = ""
        self.label = "worker"
        self.running: bytes | None = None
        self.gpu_ids: list[int] | None = None
        self.placement: tuple | None = None  # the current task's or the actor's group, if any
        self._visible: str | None = None   # CUDA_VISIBLE_DEVICES as last set for gpu_ids
        self.pool = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.semaphore = None
        self._last_value: Any = None
        self.started: memoryview | None = None  # an actor's count of calls started
        self.actor_id: bytes | None = None
        self.groups: dict[str, int] = {}  # concurrency groups: name -> concurrent calls
        self.group_pools: dict = {}
        self.group_semaphores: dict = {}
        # an async actor's calls, handed to its event loop in batches (one wake-up for all the
        # calls read meanwhile), and its replies, sent once per turn of the loop
        self.loop_calls: collections.deque = collections.deque()
        self.loop_woken = False
        self.loop_tasks: set = set()  # calls running on the loop (asyncio keeps weak refs)
        self.replies_due = False

    # ----- main loop ------------------------------------------------------------------------
    def run(self) -> None:
        handlers = {kind: getattr(self, name) for kind, name in self.HANDLERS.items()}
        warm = False
        while True:
            if not warm and not self.conn.inbox:  # the first idle moment: import numpy
                warm = _warm_up_when_idle(self.conn.sock)
            message = self.conn.next_message()
            handlers[message[0]](message)

    def on_function(self, message: tuple) -> None:
        self.functions[message[1]] = loads_function(message[2])

    def on_exit(self, message: tuple) -> None:
        """Finish the calls already started (threaded and async actors), then leave."""
        self.conn.flush()
        for pool in [self.pool, *self.group_pools.values()]:
            if pool is not None:
                pool.shutdown(wait=True)
        if self.loop is not None:
            async def drain() -> None:
                current = asyncio.current_task()
                await asyncio.gather(*(t for t in asyncio.all_tasks() if t is not current))
            asyncio.run_coroutine_threadsafe(drain(), self.loop).result()
            self.conn.flush()  # the last replies of the loop
        _flush_streams()
        os._exit(0)

    def on_task(self, message: tuple) -> None:
        _, spec, resolved, gpu_ids = message
        if self.conn.revoked and spec.task_id in self.conn.revoked:
            self.conn.revoked.discard(spec.task_id)
            return
        if self.conn.cancelled and spec.task_id in self.conn.cancelled:
            self.conn.cancelled.discard(spec.task_id)
            error = TaskCancelledError(f"{spec.name} was cancelled before it started")
            self.conn.send((wire.DONE, spec.task_id, self.pack_error(spec, error), 0.0))
            return
        self._set_gpus(gpu_ids)
        self.label = spec.name
        self.placement = spec.placement
        self.conn.send_soon((wire.DONE, spec.task_id) + self.execute(self.functions[spec.function_id], spec, resolved))

    # ----- actors ---------------------------------------------------------------------------
    def on_actor_init(self, message: tuple) -> None:
        _, spec, resolved, gpu_ids, counter_path = message
        self.started = _map_counter(counter_path)
        self.actor_id = spec.actor_id
        self.placement = spec.placement
        self._set_gpus(gpu_ids)
        options = spec.actor_options
        cls = loads_function(spec.function_blob)
        self.actor_name = self.label = options.get("class_name", cls.__name__)
        results, _ = self.execute(cls, spec, resolved)
        if results[0][0] == wire.INLINE_ERROR:
            self.conn.send((wire.ACTOR_READY, spec.actor_id, results[0]))
            return
        self.actor = self._last_value
        self._last_value = None
        concurrency = options.get("max_concurrency") or 1
        self.groups = options.get("concurrency_groups") or {}
        if options.get("is_async"):
            self.loop = asyncio.new_event_loop()
            self.semaphore = asyncio.Semaphore(concurrency)
            self.group_semaphores = {g: asyncio.Semaphore(n) for g, n in self.groups.items()}
            threading.Thread(target=self.loop.run_forever, name="actor-loop", daemon=True).start()
        elif concurrency > 1 or self.groups:  # groups: each its own threads, the default too
            from concurrent.futures import ThreadPoolExecutor
            self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="actor")
            self.group_pools = {g: ThreadPoolExecutor(n, thread_name_prefix=f"actor-{g}")
                                for g, n in self.groups.items()}
        self.conn.send((wire.ACTOR_READY, spec.actor_id, None))

    def on_call(self, message: tuple) -> None:
        _, spec, resolved = message
        self.started[0] += 1  # the node reads this if the process dies: calls begun
        method = getattr(self.actor, spec.method)
        group = None
        if self.groups:
            group = (spec.actor_options.get("concurrency_group") if spec.actor_options else
                     None) or getattr(method, "__raylite_concurrency_group__", None)
            if group is not None and group not in self.groups:
                error = ValueError(f"{spec.name}: this actor has no concurrency group {group!r} "
                                   f"(it declares {sorted(self.groups)})")
                self.conn.send((wire.DONE, spec.task_id, self.pack_error(spec, error), 0.0))
                return
        if self.loop is not None:
            semaphore = self.group_semaphores[group] if group else self.semaphore
            self.loop_calls.append((method, spec, resolved, semaphore))
            if not self.loop_woken:
                self.loop_woken = True
                self.loop.call_soon_threadsafe(self._start_loop_calls)
        elif self.pool is not None:
            pool = self.group_pools[group] if group else self.pool
            pool.submit(self._call_sync, method, spec, resolved)
        else:
            self._call_sync(method, spec, resolved)

    def _call_sync(self, method, spec, resolved) -> None:
        self.conn.send((wire.DONE, spec.task_id) + self.execute(method, spec, resolved))

    def _start_loop_calls(self) -> None:
        """On the actor's loop: start the calls handed over since the last wake-up, in order."""
        self.loop_woken = False  # before taking calls: one handed over after this wakes us again
        calls, tasks, loop = self.loop_calls, self.loop_tasks, self.loop
        while calls:
            task = loop.create_task(self._call_async(*calls.popleft()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    def _reply_from_loop(self, message: tuple) -> None:
        """On the actor's loop: queue a reply; those of one turn of the loop go in one write."""
        self.conn.send_soon(message)
        if not self.replies_due:
            self.replies_due = True
            self.loop.call_soon(self._send_replies)

    def _send_replies(self) -> None:
        self.replies_due = False
        self.conn.flush()

    async def _call_async(self, method, spec, resolved, semaphore) -> None:
        async with semaphore:
            start = time.perf_counter()
            try:
                args, kwargs = self.resolve(spec, resolved)
                stream = _generators.pop_stream(kwargs)  # generator calls: core/_generators.py
                value = method(*args, **kwargs)
                if stream is not None:
                    value = await _generators.adrain(value, stream, spec.return_ids[0] if
                                                     spec.return_ids else None, client.put_item)
                elif asyncio.iscoroutine(value):
                    value = await value
                results = self.pack_results(spec, value)
            except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
                results = self.pack_error(spec, exc)
            self._reply_from_loop((wire.DONE, spec.task_id, results, time.perf_counter() - start))

    # ----- execution ------------------------------------------------------------------------
    def execute(self, fn, spec, resolved) -> tuple[list, float]:
        start = time.perf_counter()
        self.running = spec.task_id
        try:
            args, kwargs = self.resolve(spec, resolved)
            stream = _generators.pop_stream(kwargs)  # generator calls: see core/_generators.py
            value = fn(*args, **kwargs)
            if stream is not None:
                value = _generators.drain(value, stream, spec.return_ids[0] if spec.return_ids
                                          else None, client.put_item)
            if spec.kind == "actor_create":
                self._last_value = value
                results = [(wire.INLINE, b"\x80\x05N.", [])]
            else:
                results = self.pack_results(spec, value)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            if isinstance(exc, KeyboardInterrupt):
                exc = TaskCancelledError(f"{spec.name} was cancelled while running")
            results = self.pack_error(spec, exc)
        finally:
            self.running = None
        return results, time.perf_counter() - start

    def resolve(self, spec, resolved) -> tuple[tuple, dict]:
        args, kwargs = unpack_args(spec.args)
        if not spec.arg_ids:
            return args, kwargs
        values = client.fetch(spec.arg_ids, resolved)
        args = tuple(values[a._id] if type(a) is ObjectRef else a for a in args)
        kwargs = {k: values[v._id] if type(v) is ObjectRef else v for k, v in kwargs.items()}
        return args, kwargs

    def pack_results(self, spec, value) -> list:
        ids = spec.return_ids
        if len(ids) == 1:
            return [pack_value(value, self.shm_dir, ids[0])]
        if not ids:
            return []
        values = list(value) if isinstance(value, (list, tuple)) else None
        if values is None or len(values) != len(ids):
            raise ValueError(f"{spec.name} was declared with num_returns={len(ids)} but returned "
                             f"{type(value).__name__} {value!r:.60}; return a tuple or list of "
                             f"{len(ids)} values.")
        return [pack_value(v, self.shm_dir, oid) for v, oid in zip(values, ids)]

    def pack_error(self, spec, exc: BaseException) -> list:
        tb = _user_traceback(exc)
        error = make_task_error(exc, spec.name, os.getpid(), tb)
        try:
            packed = pack_value(error, self.shm_dir, _ids.new_id())
        except Exception:  # the exception itself cannot be pickled: keep its text
            substitute = RuntimeError(f"{type(exc).__name__}: {exc}")
            packed = pack_value(make_task_error(substitute, spec.name, os.getpid(), tb),
                                self.shm_dir, _ids.new_id())
        kind = wire.INLINE_ERROR if packed[0] == wire.INLINE else wire.SHARED_ERROR
        return [(kind,) + packed[1:]] * max(1, len(spec.return_ids))

    def _set_gpus(self, gpu_ids) -> None:
        if gpu_ids is None or (gpu_ids == self.gpu_ids and
                               os.environ.get("CUDA_VISIBLE_DEVICES") == self._visible):
            return   # unchanged (a task may have widened the variable: then it is reset)
        self.gpu_ids = list(gpu_ids)
        self._visible = ",".join(str(g) for g in gpu_ids)
        os.environ["CUDA_VISIBLE_DEVICES"] = self._visible


def _map_counter(path: str) -> memoryview:
    """The 8-byte shared-memory counter of calls started, as a one-element array."""
    import mmap
    fd = os.open(path, os.O_RDWR)
    try:
        return memoryview(mmap.mmap(fd, 8)).cast("Q")
    finally:
        os.close(fd)


_CORE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # raylite/core


def _user_traceback(exc: BaseException) -> str:
    """The traceback as the user's code sees it: raylite's own frames are left out."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(_CORE_DIR)]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def _forwarded(name: str):
    """A Backend method that the driver's node answers (the "api" message)."""
    def method(self, *args):
        return self.api(name, *args)
    method.__name__ = name
    return method


class WorkerClient(SpecSubmitter, Backend):
    """The raylite API inside a worker: everything goes to the driver over the connection."""

    owns_runtime = False  # raylite.shutdown() in a task does not stop the driver's runtime

    def __init__(self, conn: Connection, shm_dir: str, worker: Worker, context: dict):
        self.conn = conn
        self.shm_dir = shm_dir
        self.worker = worker
        self.context = context
        self.session_dir = context.get("session_dir")
        self.job_env = context.get("job_runtime_env")  # core/_runtime_env.py: what children inherit
        self.parent_env = context.get("runtime_env")
        self.sent_functions: set[bytes] = set()
        self.watched: dict[bytes, list] = {}  # object id -> Futures waiting for it
        self.watch_lock = threading.Lock()
        self.ready_queue: Any = None  # "ready" replies, settled on a thread of their own
        conn.on_ready = self._on_ready

    get_actor = _forwarded("get_actor")
    cluster_resources = _forwarded("cluster_resources")
    available_resources = _forwarded("available_resources")
    nodes = _forwarded("nodes")
    create_placement_group = _forwarded("create_placement_group")
    remove_placement_group = _forwarded("remove_placement_group")
    placement_group_table = _forwarded("placement_group_table")
    timeline_events = _forwarded("timeline_events")
    status = _forwarded("status")
    memory_summary = _forwarded("memory_summary")

    def context_info(self) -> dict:
        return dict(self.context)

    def assigned_gpu_ids(self) -> list[int] | None:
        return self.worker.gpu_ids

    def current_task_id(self) -> bytes | None:
        return self.worker.running

    def current_actor_id(self) -> str | None:
        return self.worker.actor_id.hex() if self.worker.actor_id else None

    def memory_folder(self) -> str:
        return wire.memory_folder_in(self.shm_dir)

    def placement_context(self) -> tuple[bytes, bool] | None:
        placement = self.worker.placement
        if placement is None:
            return None
        return placement[0], len(placement) > 2 and bool(placement[2])

    def shutdown(self) -> None:
        pass  # the connection belongs to the driver's runtime

    # futures --------------------------------------------------------------------------------
    def future(self, ref: ObjectRef) -> concurrent.futures.Future:
        """A Future the driver completes: it answers WATCH with SEALED once the object is ready,
        and a thread of this process (not the socket's reader) settles the Future."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        object_id = ref._id
        with self.watch_lock:
            if self.ready_queue is None:
                import queue
                self.ready_queue = queue.SimpleQueue()
                threading.Thread(target=self._settle_ready, name="raylite-futures",
                                 daemon=True).start()
            waiting = self.watched.get(object_id)
            if waiting is not None:
                waiting.append((future, ref))
                return future
            self.watched[object_id] = [(future, ref)]  # the ref keeps the object alive
        self.conn.send((wire.WATCH, object_id))
        return future

    def _on_ready(self, message: tuple) -> None:  # a SEALED message
        self.ready_queue.put(message)  # on the reading thread: hand over, never block it

    def _settle_ready(self) -> None:
        while True:
            _, object_id, (kind, data) = self.ready_queue.get()
            with self.watch_lock:
                waiting = self.watched.pop(object_id, [])
            if not waiting:
                continue
            try:
                if kind == wire.GONE:
                    from raylite.exceptions import ObjectLostError
                    value, error = ObjectLostError(data), True
                else:
                    value, error = unpack_value(kind, data), kind in wire.ERROR_KINDS
            except BaseException as exc:  # noqa: BLE001 - e.g. a vanished file: get() rebuilds
                if isinstance(exc, FileNotFoundError):
                    for future, ref in waiting:
                        self._complete_by_get(future, ref)
                    continue
                value, error = exc, True
            for future, _ in waiting:
                settle(future, value, error)

    def _complete_by_get(self, future: concurrent.futures.Future, ref: ObjectRef) -> None:
        try:
            settle(future, self.get([ref], None)[0], False)
        except BaseException as exc:  # noqa: BLE001
            settle(future, exc, True)

    # values ---------------------------------------------------------------------------------
    def fetch(self, object_ids: list[bytes], resolved: dict | None = None,
              timeout: float | None = None) -> dict[bytes, Any]:
        """Values of objects by id, asking the driver for those not given in ``resolved``."""
        locations = dict(resolved or {})
        missing = [oid for oid in object_ids if oid not in locations]
        for _ in range(5):
            if missing:
                reply = self.conn.request(wire.GET, missing, timeout)
                if reply == "timeout":
                    raise GetTimeoutError(f"get timed out after {timeout} s waiting for "
                                          f"{len(missing)} object(s)")
                locations.update(zip(missing, reply))
            values, missing = {}, []
            for oid in object_ids:
                kind, data = locations[oid][0], locations[oid][1]
                if kind == wire.GONE:
                    from raylite.exceptions import ObjectLostError
                    raise ObjectLostError(data)
                try:
                    value = unpack_value(kind, data)
                except FileNotFoundError:
                    self.conn.send((wire.LOST, oid, data))
                    missing.append(oid)
                    continue
                if kind in wire.ERROR_KINDS:
                    raise value
                values[oid] = value
            if not missing:
                return values
            for oid in missing:
                locations.pop(oid, None)
        raise RuntimeError("object kept vanishing from shared memory while being read")

    def get(self, refs: list[ObjectRef], timeout: float | None) -> list:
        values = self.fetch([r._id for r in refs], None, timeout)
        return [values[r._id] for r in refs]

    def put(self, value: Any) -> ObjectRef:
        object_id = _ids.new_id()
        self.conn.send((wire.PUT, object_id, pack_value(value, self.shm_dir, object_id)))
        return ObjectRef(object_id)

    runs_generators = True

    def put_item(self, end_id: bytes, object_id: bytes, value: Any, is_error: bool) -> None:
        """Store one item a generator task yielded (see core/_generators.py)."""
        packed = pack_value(value, self.shm_dir, object_id)
        if is_error:
            packed = (wire.INLINE_ERROR if packed[0] == wire.INLINE else wire.SHARED_ERROR,) + packed[1:]
        self.conn.send((wire.YIELD, end_id, object_id, packed))

    def wait(self, refs: list[ObjectRef], num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list, list]:
        ready = set(self.conn.request(wire.WAIT, [r._id for r in refs], num_returns, timeout))
        return [r for r in refs if r._id in ready], [r for r in refs if r._id not in ready]

    # work -----------------------------------------------------------------------------------
    def submit(self, spec, function_blob: bytes | None) -> list[ObjectRef]:
        if function_blob is not None and spec.function_id not in self.sent_functions:
            spec.function_blob = function_blob
            self.sent_functions.add(spec.function_id)
        self.conn.send((wire.SUBMIT, spec))
        spec.function_blob = None if spec.kind != "actor_create" else spec.function_blob
        return [ObjectRef(oid) for oid in spec.return_ids]

    def api(self, name: str, *args) -> Any:
        ok, value = self.conn.request(wire.API, name, args)
        if not ok:
            raise value
        return value

    def cancel(self, object_id: bytes, force: bool) -> None:
        self.api("cancel", object_id, force)

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        self.api("kill_actor", actor_id, no_restart)


client: WorkerClient = None  # type: ignore[assignment]


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _watch_parent(shm_root: str, session_dir: str | None) -> int:
    """Exit when the driver dies (killed, even with kill -9). Every worker that notices removes
    what the driver left: the session's shared memory, its session folder (spill files, control
    socket and key) and its ~/.raylite/sessions record; the last one to go finds them gone."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    parent = os.getppid()

    def on_term(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the parent-death signal can come twice
        if not os.path.exists(os.path.join(shm_root, wire.SHUTDOWN_MARK)):  # not a normal shutdown
            _after_connection_lost(parent, shm_root, session_dir)
        os._exit(1)

    signal.signal(signal.SIGTERM, on_term)
    if os.getppid() != parent:
        on_term(0, None)
    return parent


def _after_connection_lost(parent: int, shm_root: str, session_dir: str | None) -> None:
    """The driver went away without a normal shutdown: if it died, clean up after it (it may
    still be finishing its exit for a moment: wait for this process's re-parenting)."""
    deadline = time.monotonic() + 1.0
    while os.getppid() == parent and not _dying(parent) and time.monotonic() < deadline:
        time.sleep(0.01)
    if os.getppid() != parent or _dying(parent):
        _remove_session(shm_root, session_dir, parent)


def _dying(pid: int) -> bool:
    """Whether ``pid`` is on its way out without a say: SIGKILL pending (kill -9, the OOM
    killer) or already a zombie. Its threads die one by one, so a child can hear of it (the
    parent-death signal, a closed socket) before it is re-parented."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return True
    if fields.get("State", "").strip()[:1] in ("Z", "X"):
        return True
    pending = 0
    for field in ("ShdPnd", "SigPnd"):  # a fatal signal is queued on each thread as it dies
        pending |= int(fields.get(field, "0").strip() or "0", 16)
    return bool(pending & (1 << (signal.SIGKILL - 1)))


def _remove_session(shm_root: str, session_dir: str | None, driver_pid: int) -> None:
    import shutil
    for _ in range(3):  # another worker may still be writing a file there while it exits
        for folder in (shm_root, session_dir):
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
        if not any(folder and os.path.exists(folder) for folder in (shm_root, session_dir)):
            break
        time.sleep(0.01)
    try:
        os.unlink(os.path.join(SESSIONS_DIR, f"{driver_pid}.json"))
    except OSError:
        pass


def _on_interrupt(signum, frame) -> None:
    """The driver cancels a running task with SIGINT; ignore it between tasks."""
    if _worker is not None and _worker.running is not None:
        raise KeyboardInterrupt()


_worker: Worker | None = None


def _warm_up_when_idle(sock: socket.socket) -> bool:
    """Import numpy before a task needs it, unless work is waiting; True once done."""
    import select
    if select.select([sock], [], [], 0)[0]:
        return False
    try:
        import numpy  # noqa: F401
    except ImportError:
        pass
    return True


def main() -> None:
    global client, _worker
    env = os.environ
    fd = int(env.pop("RAYLITE_FD"))
    shm_dir = env["RAYLITE_SHM_DIR"]
    context = json.loads(env.pop("RAYLITE_CONTEXT"))
    sys.path[:0] = [p for p in context.pop("sys_path") if p not in sys.path]
    shm_root = os.path.dirname(shm_dir) if context.get("shm_root_is_parent") else shm_dir
    parent = _watch_parent(shm_root, context.get("session_dir"))
    signal.signal(signal.SIGINT, _on_interrupt)
    sock = socket.socket(fileno=fd)
    conn = Connection(sock)
    tracker = _Tracker()
    _refs.set_tracker(tracker)
    conn.before_send = tracker.flush
    _worker = worker = Worker(conn, shm_dir)
    client = WorkerClient(conn, shm_dir, worker, context)
    sys.stdout = _PrefixedStream(sys.stdout, worker)
    sys.stderr = _PrefixedStream(sys.stderr, worker)
    from raylite.core import _api
    _api.attach_worker(client)
    conn.send((wire.STARTED, os.getpid()))
    try:
        worker.run()
    except ConnectionLost:
        _after_connection_lost(parent, shm_root, context.get("session_dir"))
    _flush_streams()
    os._exit(0)


if __name__ == "__main__":
    main()
