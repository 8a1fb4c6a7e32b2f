"""A drop-in for ``multiprocessing.Pool`` whose worker processes are raylite actors.

    pool.map(f, items) ──► chunks of items ──► round-robin over N _PoolWorker actors
                                                (one call per chunk, run in order per actor)
    AsyncResult / IMapIterator ◄── raylite.wait / raylite.get on the chunks' refs

``map``/``starmap`` split their input into chunks up front (``chunksize`` as multiprocessing
picks it); ``imap``/``imap_unordered`` read their input lazily and keep about two chunks per
worker in flight. With ``maxtasksperchild`` an actor is replaced after that many chunks and
stopped once its last chunk is done. Exceptions raised by ``func`` come back as the original
exception, with the remote traceback as its ``__cause__``; timeouts raise
``multiprocessing.TimeoutError``, as the standard library does. Same API as Ray's
``ray.util.multiprocessing.Pool``.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing as stdlib_multiprocessing
import threading
import weakref
from typing import Any, Callable, Iterable, Iterator

import raylite
from raylite.exceptions import TaskError

__all__ = ["Pool", "AsyncResult", "IMapIterator", "TimeoutError"]

TimeoutError = stdlib_multiprocessing.TimeoutError  # noqa: A001 (multiprocessing's name)

_RUN, _CLOSE, _TERMINATE = "running", "closed", "terminated"


class _PoolWorker:
    """One worker process of the pool: runs the initializer once, then chunks of calls."""

    def __init__(self, initializer: Callable | None, initargs: tuple):
        if initializer is not None:
            initializer(*initargs)

    def run_chunk(self, function: Callable, chunk: list, star: bool) -> list:
        if star:
            return [function(*args) for args in chunk]
        return [function(item) for item in chunk]

    def apply(self, function: Callable, args: tuple, kwargs: dict) -> list:
        return [function(*args, **kwargs)]


_worker_class: Any = None


def _remote_worker_class() -> Any:
    global _worker_class
    if _worker_class is None:
        _worker_class = raylite.remote(_PoolWorker)
    return _worker_class


def _fetch(refs: list[raylite.ObjectRef]) -> list:
    """The chunks' results, flattened; a failure re-raises ``func``'s own exception."""
    try:
        chunks = raylite.get(refs)
    except TaskError as error:
        if isinstance(error.cause, Exception):
            raise error.cause from error
        raise
    return [item for chunk in chunks for item in chunk]


def _chunks(iterable: Iterable, chunksize: int) -> Iterator[list]:
    iterator = iter(iterable)
    while chunk := list(itertools.islice(iterator, chunksize)):
        yield chunk


# ==========================================================================================
# results
# ==========================================================================================
class AsyncResult:
    """The result of ``apply_async``/``map_async``: ``get``, ``wait``, ``ready``, ``successful``.

    Example:
        >>> result = pool.apply_async(pow, (2, 10))
        >>> result.get(timeout=10)
        1024
    """

    def __init__(self, refs: list[raylite.ObjectRef], single: bool,
                 callback: Callable | None = None, error_callback: Callable | None = None):
        self._refs = refs
        self._single = single
        self._lock = threading.Lock()
        self._outcome: tuple[bool, Any] | None = None  # (succeeded, value or exception)
        self._notifier: threading.Thread | None = None
        if callback is not None or error_callback is not None:
            self._notifier = threading.Thread(target=self._notify, args=(callback, error_callback),
                                              daemon=True, name="raylite-pool-callback")
            self._notifier.start()

    def ready(self) -> bool:
        """Whether the call has finished (successfully or not)."""
        return self._wait(0)

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the call has finished, or ``timeout`` seconds have passed."""
        self._wait(timeout)

    def _wait(self, timeout: float | None) -> bool:
        if not self._refs:
            return True
        ready, _ = raylite.wait(self._refs, num_returns=len(self._refs), timeout=timeout)
        return len(ready) == len(self._refs)

    def get(self, timeout: float | None = None) -> Any:
        """The call's value; re-raises its exception.

        Raises:
            multiprocessing.TimeoutError: not finished within ``timeout`` seconds.
        """
        if not self._wait(timeout):
            raise TimeoutError(f"the result was not ready within {timeout} s")
        succeeded, value = self._settle()
        if not succeeded:
            raise value
        return value

    def successful(self) -> bool:
        """Whether the call finished without raising.

        Raises:
            ValueError: the call has not finished yet (as in multiprocessing).
        """
        if not self.ready():
            raise ValueError(f"{self!r} is not ready; call wait() or get() first")
        return self._settle()[0]

    def _settle(self) -> tuple[bool, Any]:
        with self._lock:
            if self._outcome is None:
                try:
                    values = _fetch(self._refs)
                    self._outcome = (True, values[0] if self._single else values)
                except Exception as error:  # noqa: BLE001 - handed to the caller
                    self._outcome = (False, error)
            return self._outcome

    def _notify(self, callback: Callable | None, error_callback: Callable | None) -> None:
        self._wait(None)
        succeeded, value = self._settle()
        handler = callback if succeeded else error_callback
        if handler is not None:
            handler(value)

    def _join_callbacks(self) -> None:
        if self._notifier is not None:
            self._notifier.join()

    def __repr__(self) -> str:
        return f"<AsyncResult of {len(self._refs)} chunk(s), ready={self.ready()}>"


MapResult = ApplyResult = AsyncResult


class IMapIterator:
    """The iterator ``imap``/``imap_unordered`` return; ``next(timeout)`` as in multiprocessing.

    Reads the input lazily and keeps about two chunks per worker in flight.

    Example:
        >>> iterator = pool.imap(abs, [-1, -2])
        >>> iterator.next(timeout=10), next(iterator)
        (1, 2)
    """

    def __init__(self, pool: "Pool", function: Callable, iterable: Iterable, chunksize: int,
                 ordered: bool):
        self._pool = pool
        self._function = function
        self._chunks = _chunks(iterable, chunksize)
        self._ordered = ordered
        self._in_flight: collections.deque[raylite.ObjectRef] = collections.deque()
        self._ready_items: collections.deque = collections.deque()
        self._exhausted = False
        self._lock = threading.Lock()
        self._fill()

    def __iter__(self) -> "IMapIterator":
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        """The next result; raises ``multiprocessing.TimeoutError`` after ``timeout`` s."""
        with self._lock:
            while not self._ready_items:
                self._fill()
                if not self._in_flight:
                    raise StopIteration
                self._ready_items.extend(_fetch([self._take_ready(timeout)]))
            return self._ready_items.popleft()

    def _take_ready(self, timeout: float | None) -> raylite.ObjectRef:
        candidates = [self._in_flight[0]] if self._ordered else list(self._in_flight)
        ready, _ = raylite.wait(candidates, num_returns=1, timeout=timeout)
        if not ready:
            raise TimeoutError(f"no result was ready within {timeout} s")
        self._in_flight.remove(ready[0])
        return ready[0]

    def _fill(self) -> None:
        window = 2 * self._pool._processes
        while not self._exhausted and len(self._in_flight) < window:
            self._submit_next()

    def _submit_next(self) -> None:
        chunk = next(self._chunks, None)
        if chunk is None:
            self._exhausted = True
        else:
            self._in_flight.append(self._pool._submit("run_chunk", self._function, chunk, False))

    def _submit_rest(self) -> None:
        """Submit every remaining chunk (``Pool.join`` must wait for all of the input)."""
        with self._lock:
            while not self._exhausted:
                self._submit_next()


# ==========================================================================================
# the pool
# ==========================================================================================
class _Slot:
    """One worker place in the pool: the actor and how many chunks it was given."""

    __slots__ = ("actor", "tasks")

    def __init__(self, actor: Any):
        self.actor = actor
        self.tasks = 0


class Pool:
    """A process pool with ``multiprocessing.Pool``'s API, running on raylite actors.

    Args:
        processes: the number of worker actors (default: the cluster's CPU count).
        initializer: if given, each worker runs ``initializer(*initargs)`` when it starts.
        initargs: the arguments for ``initializer``.
        maxtasksperchild: replace a worker after it has run this many chunks (default: never).
        context: accepted for multiprocessing compatibility and ignored.
        ray_address: the cluster to connect to when raylite is not initialized yet.
        ray_remote_args: actor options for the workers, e.g. ``{"num_cpus": 1}``.

    Example:
        >>> from raylite.util.multiprocessing import Pool
        >>> with Pool(2) as pool:
        ...     pool.map(abs, [-1, -2, -3])
        [1, 2, 3]
    """

    def __init__(self, processes: int | None = None, initializer: Callable | None = None,
                 initargs: Iterable = (), maxtasksperchild: int | None = None,
                 context: Any = None, ray_address: str | None = None,
                 ray_remote_args: dict[str, Any] | None = None):
        _check_pool_args(processes, initializer, maxtasksperchild, ray_remote_args)
        if not raylite.is_initialized():
            raylite.init(address=ray_address)
        if processes is None:
            processes = max(1, int(raylite.cluster_resources().get("CPU", 1)))
        self._processes = processes
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._maxtasksperchild = maxtasksperchild
        self._remote_args = dict(ray_remote_args or {})
        self._state = _RUN
        self._slots = [_Slot(self._start_worker()) for _ in range(processes)]
        self._next_slot = 0
        self._retiring: list[tuple[Any, raylite.ObjectRef]] = []
        self._outstanding: list[raylite.ObjectRef] = []
        self._prune_at = 64
        self._results: weakref.WeakSet = weakref.WeakSet()
        self._iterators: weakref.WeakSet = weakref.WeakSet()

    def _start_worker(self) -> Any:
        worker_class = _remote_worker_class().options(**self._remote_args)
        return worker_class.remote(self._initializer, self._initargs)

    # ------------------------------------------------------------------ submitting
    def _check_running(self) -> None:
        if self._state != _RUN:
            raise ValueError(f"Pool not running: it was {self._state}; create a new Pool "
                             "to submit more work")

    def _submit(self, method: str, *args: Any) -> raylite.ObjectRef:
        """Send one call to the next worker (round robin); retire it after maxtasksperchild."""
        if self._state == _TERMINATE:
            raise ValueError("Pool not running: it was terminated; create a new Pool")
        slot = self._slots[self._next_slot]
        self._next_slot = (self._next_slot + 1) % len(self._slots)
        ref = getattr(slot.actor, method).remote(*args)
        slot.tasks += 1
        if self._maxtasksperchild is not None and slot.tasks >= self._maxtasksperchild:
            self._retiring.append((slot.actor, ref))
            slot.actor, slot.tasks = self._start_worker(), 0
        self._track(ref)
        return ref

    def _track(self, ref: raylite.ObjectRef) -> None:
        self._outstanding.append(ref)
        if len(self._outstanding) >= self._prune_at:
            _, self._outstanding = raylite.wait(self._outstanding,
                                                num_returns=len(self._outstanding), timeout=0)
            self._prune_at = max(64, 2 * len(self._outstanding))
        self._stop_retired(timeout=0)

    def _stop_retired(self, timeout: float | None) -> None:
        """Kill retired workers whose last chunk is done (waiting up to ``timeout``)."""
        if not self._retiring:
            return
        last_refs = [ref for _, ref in self._retiring]
        done, _ = raylite.wait(last_refs, num_returns=len(last_refs), timeout=timeout)
        done_set = set(done)
        for actor, ref in [entry for entry in self._retiring if entry[1] in done_set]:
            raylite.kill(actor)
        self._retiring = [entry for entry in self._retiring if entry[1] not in done_set]

    def _new_result(self, refs: list, single: bool, callback: Callable | None,
                    error_callback: Callable | None) -> AsyncResult:
        result = AsyncResult(refs, single, callback, error_callback)
        self._results.add(result)
        return result

    # ------------------------------------------------------------------ apply
    def apply(self, func: Callable, args: Iterable = (), kwds: dict | None = None) -> Any:
        """Run ``func(*args, **kwds)`` in a worker and return its value.

        Example:
            >>> pool.apply(divmod, (7, 2))
            (3, 1)
        """
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func: Callable, args: Iterable = (), kwds: dict | None = None,
                    callback: Callable | None = None,
                    error_callback: Callable | None = None) -> AsyncResult:
        """Start ``func(*args, **kwds)`` in a worker; returns an :class:`AsyncResult`.

        ``callback(value)`` or ``error_callback(exception)`` runs in a helper thread when done.

        Example:
            >>> pool.apply_async(divmod, (7, 2)).get(timeout=10)
            (3, 1)
        """
        self._check_running()
        _check_callable(func, "func")
        if isinstance(args, (str, bytes)) or not isinstance(args, Iterable):
            raise TypeError(f"apply_async(args=...) must be a tuple of arguments such as (x,), "
                            f"got {type(args).__name__} {args!r:.60}")
        if kwds is not None and not isinstance(kwds, dict):
            raise TypeError(f"apply_async(kwds=...) must be a dict, got {type(kwds).__name__}")
        ref = self._submit("apply", func, tuple(args), dict(kwds or {}))
        return self._new_result([ref], True, callback, error_callback)

    # ------------------------------------------------------------------ map and friends
    def map(self, func: Callable, iterable: Iterable, chunksize: int | None = None) -> list:
        """``[func(x) for x in iterable]``, computed by the workers, in order.

        Example:
            >>> pool.map(abs, [-1, -2])
            [1, 2]
        """
        return self._map_async(func, iterable, chunksize, False, None, None).get()

    def map_async(self, func: Callable, iterable: Iterable, chunksize: int | None = None,
                  callback: Callable | None = None,
                  error_callback: Callable | None = None) -> AsyncResult:
        """Start ``map``; returns an :class:`AsyncResult` whose ``get()`` is the list."""
        return self._map_async(func, iterable, chunksize, False, callback, error_callback)

    def starmap(self, func: Callable, iterable: Iterable[Iterable],
                chunksize: int | None = None) -> list:
        """``[func(*args) for args in iterable]``, computed by the workers, in order.

        Example:
            >>> pool.starmap(pow, [(2, 3), (3, 2)])
            [8, 9]
        """
        return self._map_async(func, iterable, chunksize, True, None, None).get()

    def starmap_async(self, func: Callable, iterable: Iterable[Iterable],
                      chunksize: int | None = None, callback: Callable | None = None,
                      error_callback: Callable | None = None) -> AsyncResult:
        """Start ``starmap``; returns an :class:`AsyncResult` whose ``get()`` is the list."""
        return self._map_async(func, iterable, chunksize, True, callback, error_callback)

    def _map_async(self, func: Callable, iterable: Iterable, chunksize: int | None, star: bool,
                   callback: Callable | None, error_callback: Callable | None) -> AsyncResult:
        self._check_running()
        _check_callable(func, "func")
        items = _as_list(iterable)
        if star:
            items = [tuple(_as_list(args, "each item of starmap's iterable")) for args in items]
        if chunksize is None:
            chunksize = self._default_chunksize(len(items))
        _check_chunksize(chunksize)
        refs = [self._submit("run_chunk", func, chunk, star)
                for chunk in _chunks(items, chunksize)]
        return self._new_result(refs, False, callback, error_callback)

    def _default_chunksize(self, length: int) -> int:
        chunksize, extra = divmod(length, len(self._slots) * 4)
        return max(1, chunksize + (1 if extra else 0))

    def imap(self, func: Callable, iterable: Iterable, chunksize: int = 1) -> IMapIterator:
        """Like ``map``, but an iterator that yields results in order as they arrive.

        Example:
            >>> list(pool.imap(abs, [-1, -2]))
            [1, 2]
        """
        return self._imap(func, iterable, chunksize, ordered=True)

    def imap_unordered(self, func: Callable, iterable: Iterable,
                       chunksize: int = 1) -> IMapIterator:
        """Like ``imap``, but yields each result as soon as it is ready, in any order.

        Example:
            >>> sorted(pool.imap_unordered(abs, [-1, -2]))
            [1, 2]
        """
        return self._imap(func, iterable, chunksize, ordered=False)

    def _imap(self, func: Callable, iterable: Iterable, chunksize: int,
              ordered: bool) -> IMapIterator:
        self._check_running()
        _check_callable(func, "func")
        _check_chunksize(chunksize)
        if not isinstance(iterable, Iterable):
            raise TypeError(f"imap needs an iterable of inputs, got {type(iterable).__name__}")
        iterator = IMapIterator(self, func, iterable, chunksize, ordered)
        self._iterators.add(iterator)
        return iterator

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Accept no more work; the work already given still runs. Then call ``join()``."""
        if self._state == _RUN:
            self._state = _CLOSE

    def terminate(self) -> None:
        """Stop the workers at once; unfinished work fails with ActorDiedError."""
        self._state = _TERMINATE
        for actor in self._all_actors():
            raylite.kill(actor)
        self._slots, self._retiring = [], []

    def join(self) -> None:
        """Wait for all work to finish and stop the workers; call ``close()`` first.

        Raises:
            ValueError: the pool is still running (neither closed nor terminated).
        """
        if self._state == _RUN:
            raise ValueError("Pool is still running: call pool.close() (or terminate()) "
                             "before pool.join()")
        if self._state == _CLOSE:
            for iterator in list(self._iterators):
                iterator._submit_rest()
            if self._outstanding:
                raylite.wait(self._outstanding, num_returns=len(self._outstanding))
            self._stop_retired(timeout=None)
            self.terminate()
        for result in list(self._results):
            result._join_callbacks()

    def _all_actors(self) -> list:
        return [slot.actor for slot in self._slots] + [actor for actor, _ in self._retiring]

    def __enter__(self) -> "Pool":
        self._check_running()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.terminate()

    def __reduce__(self):
        raise NotImplementedError("Pool objects cannot be passed to tasks or actors or pickled; "
                                  "create the Pool where it is used")

    def __repr__(self) -> str:
        return (f"<raylite.util.multiprocessing.Pool state={self._state} "
                f"pool_size={self._processes}>")


# ==========================================================================================
# input checks
# ==========================================================================================
def _check_pool_args(processes: Any, initializer: Any, maxtasksperchild: Any,
                     ray_remote_args: Any) -> None:
    if processes is not None:
        if isinstance(processes, bool) or not isinstance(processes, int):
            raise TypeError(f"Pool(processes=...) must be an int or None, got {processes!r}")
        if processes < 1:
            raise ValueError(f"Pool(processes=...) must be at least 1, got {processes}")
    if initializer is not None and not callable(initializer):
        raise TypeError(f"Pool(initializer=...) must be callable, got {type(initializer).__name__}")
    if maxtasksperchild is not None and (isinstance(maxtasksperchild, bool)
                                         or not isinstance(maxtasksperchild, int)
                                         or maxtasksperchild < 1):
        raise ValueError(f"Pool(maxtasksperchild=...) must be a positive int or None, "
                         f"got {maxtasksperchild!r}")
    if ray_remote_args is not None and not isinstance(ray_remote_args, dict):
        raise TypeError(f"Pool(ray_remote_args=...) must be a dict of actor options, "
                        f"got {type(ray_remote_args).__name__}")


def _check_callable(func: Any, what: str) -> None:
    if not callable(func):
        raise TypeError(f"{what} must be callable, got {type(func).__name__} {func!r:.60}")


def _check_chunksize(chunksize: Any) -> None:
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize must be an int >= 1, got {chunksize!r}")


def _as_list(iterable: Any, what: str = "the iterable") -> list:
    if isinstance(iterable, list):
        return iterable
    if not isinstance(iterable, Iterable):
        raise TypeError(f"{what} must be iterable, got {type(iterable).__name__} {iterable!r:.60}")
    return list(iterable)
