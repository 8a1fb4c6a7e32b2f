"""Messages between the driver and its worker processes, over Unix socket pairs.

Each message is a pickled tuple ``(kind, ...)`` behind a 4-byte length. The socket pair is made
by the driver and inherited by the worker, so no address exists that another process could
connect to.

The driver side (:class:`Channel`) never blocks: sends go straight to the socket and whatever
does not fit waits in an outbox that the I/O thread flushes. The worker side
(:class:`Connection`) blocks, and lets several threads share one socket: whichever thread needs
a message next reads, and hands replies and work to the threads waiting for them
(leader/follower), so a single-threaded worker pays for no thread hand-off at all.
"""

from __future__ import annotations

import collections
import math
import os
import pickle
import select
import socket
import struct
import threading
import time
from typing import Any

# ===============================================================================================
# the messages, declared once: (kind, fields...) tuples; each side's handler table covers its list
# ===============================================================================================
# driver -> worker
TASK = "task"              # (TASK, spec, locations of its ready arguments | None, gpu ids)
FUNCTION = "fn"            # (FUNCTION, function id, pickled function): sent before its first task
ACTOR_INIT = "actor_init"  # (ACTOR_INIT, creation spec, locations | None, gpu ids, counter path)
CALL = "call"              # (CALL, method-call spec, locations | None)
EXIT = "exit"              # (EXIT,): finish what was started, then leave
REVOKE = "revoke"          # (REVOKE, task id): skip this pipelined task, it was taken back
CANCEL = "cancel"          # (CANCEL, task id): fail this task if it has not started
REPLY = "r"                # (REPLY, request id, answer): to GET, WAIT and API requests
SEALED = "sealed"          # (SEALED, object id, location): a WATCHed object is ready

TO_WORKER = {TASK: "run a task", FUNCTION: "a function, before its first task",
             ACTOR_INIT: "become this actor", CALL: "run an actor method",
             EXIT: "finish and leave", REVOKE: "skip a pipelined task",
             CANCEL: "fail a task not yet started", REPLY: "the answer to a request",
             SEALED: "a watched object is ready"}

# worker -> driver
STARTED = "started"        # (STARTED, pid): ready for tasks
DONE = "done"              # (DONE, task id, [location per return], seconds it ran)
SUBMIT = "submit"          # (SUBMIT, spec): a nested task, actor or call
PUT = "put"                # (PUT, object id, location)
REFS = "refs"              # (REFS, borrowed ids, released ids): ref counts of this process
GET = "get"                # (GET, request id, ids, timeout): REPLY with locations, or "timeout"
WAIT = "wait"              # (WAIT, request id, ids, num_returns, timeout): REPLY with ready ids
LOST = "lost"              # (LOST, object id, path): a file vanished: rebuild or mark lost
ACTOR_READY = "actor_ready"  # (ACTOR_READY, actor id, error location | None)
API = "api"                # (API, request id, Node method name, args): REPLY (ok, value)
WATCH = "watch"            # (WATCH, object id): send SEALED when it is ready
YIELD = "yield"            # (YIELD, end id, object id, location): an item a generator task
                           # yielded; location may be an error (see core/_generators.py)

TO_DRIVER = {STARTED: "a worker is up", DONE: "a task or call finished",
             SUBMIT: "submit from a worker", PUT: "put from a worker", REFS: "ref counts",
             GET: "values wanted", WAIT: "wait()", LOST: "an object's file vanished",
             ACTOR_READY: "an actor's constructor returned", API: "any other API call",
             WATCH: "a Future wanted", YIELD: "an item of a generator task"}

# where an object is: (kind, data), in DONE, PUT, REPLY to GET, and SEALED
INLINE = "i"               # data: the pickled value (bytes)
SHARED = "s"               # data: a path in the session's /dev/shm folder
INLINE_ERROR = "e"         # data: a pickled exception (bytes)
SHARED_ERROR = "E"         # data: a path holding a pickled exception
GONE = "lost"              # data: why the object is lost (str), only in replies
ERROR_KINDS = (INLINE_ERROR, SHARED_ERROR)
LOCATION_KINDS = {INLINE: "value inline", SHARED: "value in shared memory",
                  INLINE_ERROR: "error inline", SHARED_ERROR: "error in shared memory",
                  GONE: "lost, with the reason"}

# a file the driver's normal shutdown leaves in its /dev/shm folder: workers that hear of the
# driver's I/O thread ending (their parent-death signal) and find it know it is no death
SHUTDOWN_MARK = ".shutting-down"


def memory_folder_in(shm_dir: str) -> str:
    """The session's ``memory://`` folder, inside its /dev/shm folder, so that it goes with it:
    at shutdown, and after a killed driver (its workers, or the next init's sweep, remove it)."""
    folder = os.path.join(shm_dir, "memory")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


_LEN = struct.Struct("<I")
_dumps = pickle.dumps
_loads = pickle.loads
RECV_SIZE = 1 << 20
_POLLIN, _POLLOUT = select.POLLIN, select.POLLOUT  # the same bits as EPOLLIN/EPOLLOUT
SOCKET_BUFFER = 4 << 20
HOLD_MAX = 16  # a worker answers at most this many tasks in one write
HOLD_S = 0.002  # ... and holds none of them back longer than this


def frame(message: tuple) -> bytes:
    body = _dumps(message, 5)
    return _LEN.pack(len(body)) + body


def make_pair() -> tuple[socket.socket, socket.socket]:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for s in (parent, child):
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
            except OSError:
                pass
    return parent, child


class _Splitter:
    """Cuts a byte stream into messages."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, data) -> list:
        buf = self.buffer
        buf += data
        out, pos, n = [], 0, len(buf)
        while n - pos >= 4:
            (size,) = _LEN.unpack_from(buf, pos)
            end = pos + 4 + size
            if end > n:
                break
            out.append(_loads(memoryview(buf)[pos + 4:end]))
            pos = end
        if pos:
            del buf[:pos]
        return out


class Channel:
    """The driver's end of a worker socket: non-blocking sends with an outbox.

    Reading is done by whoever holds ``reader``: the node's I/O thread, or a thread blocked in
    ``get`` for a reply this channel will bring, which *borrows* the channel (``borrow``) and
    reads the reply itself, so the answer to a synchronous actor call wakes the caller directly
    instead of the I/O thread that then wakes the caller. While it is borrowed the I/O thread's
    poller does not watch the channel's reads (``_arm``), so the two never race for the bytes.
    """

    def __init__(self, sock: socket.socket, on_backlog):
        sock.setblocking(False)
        self.sock = sock
        self.fileno = sock.fileno()
        self.outbox = bytearray()
        self.lock = threading.Lock()  # the outbox, and the poller's mask for this channel
        self.reader = threading.Lock()  # held while reading and handling what was read
        self.splitter = _Splitter()
        self.closed = False
        self.borrowed = False  # a waiting caller reads it (the I/O thread does not)
        self.poller = None  # the I/O thread's epoll/poll object, once ``watch``ed
        self._poll = None  # a poll object of its own, for a borrowing reader
        self._on_backlog = on_backlog  # called once when the outbox becomes non-empty (unwatched)

    corked: list | None = None  # frames held back while the node sends a batch (see uncork)

    def watch(self, poller) -> None:
        """The I/O thread's poller (``select.epoll``/``select.poll``), where this channel's
        descriptor is registered: from now on the channel sets its own read/write mask there."""
        self.poller = poller
        with self.lock:
            self._arm()

    def _arm(self) -> None:
        """Point the poller at what the I/O thread must do: read unless borrowed, write while
        the outbox holds bytes (under ``lock``)."""
        if self.poller is None or self.closed:
            return
        mask = (0 if self.borrowed else _POLLIN) | (_POLLOUT if self.outbox else 0)
        try:
            self.poller.modify(self.fileno, mask)
        except (OSError, ValueError):
            pass  # unregistered: the worker is gone

    def send(self, message: tuple) -> None:
        if self.corked is not None:
            self.corked.append(frame(message))
            return
        self.send_bytes(frame(message))

    def uncork(self) -> None:
        """Send the frames held back, in one write."""
        corked, self.corked = self.corked, None
        if corked:
            self.send_bytes(b"".join(corked) if len(corked) > 1 else corked[0])

    def send_bytes(self, data: bytes) -> None:
        with self.lock:
            if self.closed:
                return
            if self.outbox:
                self.outbox += data
                return
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                return  # the worker is gone; the I/O thread will see EOF
            if sent == len(data):
                return
            self.outbox += data[sent:]
            if self.poller is not None:
                self._arm()
                return
        self._on_backlog(self)

    def flush(self) -> bool:
        """Write what the outbox holds; True when it is empty."""
        with self.lock:
            if self.outbox and not self.closed:
                try:
                    sent = self.sock.send(self.outbox)
                    del self.outbox[:sent]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    self.outbox.clear()
                if not self.outbox:
                    self._arm()
            return not self.outbox

    def receive(self) -> list | None:
        """Messages available now; None at end of stream (call with ``reader`` held)."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            return None
        if not data:
            return None
        return self.splitter.feed(data)

    # ----- borrowing: a waiting caller reads its reply itself --------------------------------
    def borrow(self) -> bool:
        """Take over reading from the I/O thread, if nobody reads now; True if taken (then
        ``give_back``)."""
        if self.poller is None or not self.reader.acquire(blocking=False):
            return False
        with self.lock:
            if self.closed:
                self.reader.release()
                return False
            self.borrowed = True
            self._arm()
        return True

    def give_back(self) -> None:
        with self.lock:
            self.borrowed = False
            self._arm()
        self.reader.release()

    def wait_readable(self, timeout_s: float, wake_fd: int | None = None) -> bool:
        """Block until bytes (or the end of stream) can be read, at most ``timeout_s``, or
        until ``wake_fd`` (a pipe, drained here) is written to: False then."""
        poll = self._poll
        if poll is None:
            poll = self._poll = select.poll()
            poll.register(self.fileno, select.POLLIN)
        if wake_fd is not None:
            poll.register(wake_fd, select.POLLIN)
        try:
            ready = poll.poll(max(0, math.ceil(timeout_s * 1000)))
        except InterruptedError:
            return False
        finally:
            if wake_fd is not None:
                poll.unregister(wake_fd)
        readable = False
        for fd, _ in ready:
            if fd == wake_fd:
                try:
                    os.read(wake_fd, 4096)
                except OSError:
                    pass
            else:
                readable = True
        return readable

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.outbox.clear()
        try:
            self.sock.close()
        except OSError:
            pass


class ConnectionLost(Exception):
    """The driver is gone."""


class Connection:
    """The worker's end: blocking, shared by threads with leader/follower reading."""

    def __init__(self, sock: socket.socket):
        sock.setblocking(True)
        self.sock = sock
        self.send_lock = threading.Lock()
        self._cond_lock = threading.Lock()
        self.cond = threading.Condition(self._cond_lock)
        self.reading = False
        self.sleepers = 0  # threads in cond.wait()
        self.replies: dict[int, Any] = {}
        self.inbox: collections.deque = collections.deque()
        self.revoked: set = set()  # pipelined tasks the driver took back: skip them
        self.cancelled: set = set()  # tasks cancelled before they started: fail them
        self.splitter = _Splitter()
        self.closed = False
        self.before_send = None  # hook returning extra messages to send first (ref counts)
        self.on_ready = None  # called with SEALED messages (watched objects)
        self.held: list[bytes] = []  # frames of send_soon, not yet written
        self.held_since = 0.0
        self._next_request = 0

    def send(self, message: tuple) -> None:
        data = frame(message)
        with self.send_lock:
            if self.before_send is not None:
                extra = self.before_send()
                if extra is not None:
                    data = frame(extra) + data
            if self.held:
                data = b"".join(self.held) + data
                self.held.clear()
            self.sock.sendall(data)

    def send_soon(self, message: tuple) -> None:
        """Send with the next message, or when the worker runs out of work (``next_message``):
        a worker given a run of pipelined tasks answers them in a few writes, not one each."""
        with self.send_lock:
            if not self.held:
                self.held_since = time.monotonic()
            self.held.append(frame(message))

    def flush(self) -> None:
        with self.send_lock:
            if self.held:
                if self.before_send is not None:
                    extra = self.before_send()
                    if extra is not None:
                        self.held.append(frame(extra))
                data = b"".join(self.held)
                self.held.clear()
                self.sock.sendall(data)

    def request(self, kind: str, *args) -> Any:
        """Send ``(kind, request_id, *args)`` and wait for the driver's reply."""
        with self.cond:
            self._next_request += 1
            request_id = self._next_request
        self.send((kind, request_id) + args)
        return self._wait(lambda: self.replies.pop(request_id, _MISSING))

    def next_message(self) -> tuple:
        """The next message that is not a reply (work for this worker). Held messages go out
        first unless more work is already here (and they are fresh and few)."""
        if self.held and (not self.inbox or len(self.held) >= HOLD_MAX
                          or time.monotonic() - self.held_since > HOLD_S):
            self.flush()
        return self._wait(lambda: self.inbox.popleft() if self.inbox else _MISSING)

    def _wait(self, take) -> Any:
        cond = self.cond
        with self._cond_lock:  # the condition's lock, without Condition's Python-level __enter__
            while True:
                item = take()
                if item is not _MISSING:
                    return item
                if self.closed:
                    raise ConnectionLost()
                if self.reading:
                    self.sleepers += 1
                    try:
                        cond.wait()
                    finally:
                        self.sleepers -= 1
                    continue
                self.reading = True
                cond.release()
                try:
                    messages = self._read()
                finally:
                    cond.acquire()
                    self.reading = False
                if messages is None:
                    self.closed = True
                else:
                    for message in messages:
                        kind = message[0]
                        if kind == REPLY:
                            self.replies[message[1]] = message[2]
                        elif kind == REVOKE:
                            self.revoked.add(message[1])
                        elif kind == CANCEL:
                            self.cancelled.add(message[1])
                        elif kind == SEALED:
                            self.on_ready(message)
                        else:
                            self.inbox.append(message)
                if self.sleepers:  # threads waiting for a reply or for work: one reads next
                    cond.notify_all()

    def _read(self) -> list | None:
        while True:
            try:
                data = self.sock.recv(RECV_SIZE)
            except InterruptedError:
                continue
            except OSError:
                return None
            if not data:
                return None
            messages = self.splitter.feed(data)
            if messages:
                return messages


_MISSING = object()
