"""ActorPool: spread work over a fixed set of actors, one call per actor at a time.

    submit(fn, value) ──► idle actor? ── yes ──► fn(actor, value) -> ref, remembered in flight
                                     └─ no ───► queued until an actor comes back
    get_next()           ──► the oldest submission's value (its actor goes back to idle)
    get_next_unordered() ──► whichever submission finishes first

A returned actor immediately takes the oldest queued submission, so at most one call runs on
each actor and the queue drains in submission order. Same API and semantics as Ray's
``ray.util.ActorPool``, built only on ``raylite.wait`` and ``raylite.get``.
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Iterable, Iterator

import raylite
from raylite.exceptions import GetTimeoutError

__all__ = ["ActorPool"]


class _InFlight:
    """One dispatched submission: its ref(s), the actor running it and its submission index."""

    __slots__ = ("index", "actor", "result")

    def __init__(self, index: int, actor: Any, result: Any):
        self.index = index
        self.actor = actor
        self.result = result

    @property
    def wait_ref(self) -> raylite.ObjectRef:
        """The ref to wait on (the first one when ``fn`` returned several)."""
        return self.result[0] if isinstance(self.result, list) else self.result


class ActorPool:
    """A pool of actors that share submitted work, one call per actor at a time.

    Args:
        actors: the actor handles to use; more can be added later with :meth:`push`.

    Example:
        >>> import raylite as ray
        >>> from raylite.util import ActorPool
        >>> @ray.remote
        ... class Doubler:
        ...     def double(self, v):
        ...         return 2 * v
        >>> pool = ActorPool([Doubler.remote(), Doubler.remote()])
        >>> list(pool.map(lambda actor, v: actor.double.remote(v), [1, 2, 3]))
        [2, 4, 6]
    """

    def __init__(self, actors: Iterable[Any]):
        if isinstance(actors, (str, bytes)) or not isinstance(actors, Iterable):
            raise TypeError(f"ActorPool(actors) expects a list of actor handles, got "
                            f"{type(actors).__name__}; create them with MyActor.remote()")
        self._idle: list[Any] = list(actors)
        for actor in self._idle:
            _check_actor(actor)
        if len(set(map(id, self._idle))) != len(self._idle):
            raise ValueError("ActorPool(actors) got the same actor handle more than once; "
                             "pass each actor once")
        self._in_flight: dict[int, _InFlight] = {}
        self._queued: collections.deque[tuple[Callable, Any]] = collections.deque()
        self._next_index = 0

    # ------------------------------------------------------------------ submitting work
    def submit(self, fn: Callable[[Any, Any], Any], value: Any) -> None:
        """Run ``fn(actor, value)`` on the next idle actor (queued while all are busy).

        Args:
            fn: called as ``fn(actor, value)``; must return ``actor.method.remote(...)``.
            value: the value to hand to ``fn``.

        Example:
            >>> pool.submit(lambda actor, v: actor.double.remote(v), 5)
            >>> pool.get_next()
            10
        """
        if not callable(fn):
            raise TypeError(f"submit(fn, value) needs a callable fn(actor, value) that returns "
                            f"actor.method.remote(value), got {type(fn).__name__}")
        if self._idle:
            self._dispatch(fn, value, self._idle.pop())
        else:
            self._queued.append((fn, value))

    def _dispatch(self, fn: Callable, value: Any, actor: Any) -> None:
        try:
            result = fn(actor, value)
            _check_result(result)
        except BaseException:
            self._idle.append(actor)
            raise
        self._in_flight[self._next_index] = _InFlight(self._next_index, actor, result)
        self._next_index += 1

    def map(self, fn: Callable[[Any, Any], Any], values: Iterable[Any]) -> Iterator[Any]:
        """Apply ``fn(actor, value)`` to every value; yield the results in order of ``values``.

        Results of earlier submissions that were never fetched are dropped first.

        Example:
            >>> list(pool.map(lambda actor, v: actor.double.remote(v), [3, 4]))
            [6, 8]
        """
        self._discard_pending()
        for value in values:
            self.submit(fn, value)
        return self._drain(self.get_next)

    def map_unordered(self, fn: Callable[[Any, Any], Any],
                      values: Iterable[Any]) -> Iterator[Any]:
        """Like :meth:`map`, but yield each result as soon as it is ready.

        Example:
            >>> sorted(pool.map_unordered(lambda actor, v: actor.double.remote(v), [3, 4]))
            [6, 8]
        """
        self._discard_pending()
        for value in values:
            self.submit(fn, value)
        return self._drain(self.get_next_unordered)

    def _drain(self, get_one: Callable[[], Any]) -> Iterator[Any]:
        while self.has_next():
            yield get_one()

    def _discard_pending(self) -> None:
        self._queued.clear()
        for entry in list(self._in_flight.values()):
            self._release(entry)

    # ------------------------------------------------------------------ collecting results
    def has_next(self) -> bool:
        """Whether any submitted work has a result still to fetch.

        Example:
            >>> pool.has_next()
            False
        """
        return bool(self._in_flight or self._queued)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """Return the result of the oldest submission not fetched yet.

        Args:
            timeout: seconds to wait; ``None`` waits for ever.
            ignore_if_timedout: on a timeout, give up that submission (its actor goes back to
                the pool) before raising, so the next call moves on to the next submission.

        Raises:
            StopIteration: nothing was submitted that has not been fetched already.
            TimeoutError: (a GetTimeoutError) the result was not ready within ``timeout``.

        Example:
            >>> pool.submit(lambda actor, v: actor.double.remote(v), 1)
            >>> pool.get_next(timeout=10)
            2
        """
        _check_timeout(timeout)
        entry = self._in_flight[min(self._require_in_flight("get_next"))]
        if timeout is not None:
            ready, _ = raylite.wait([entry.wait_ref], timeout=timeout)
            if not ready:
                return self._timed_out(entry, timeout, ignore_if_timedout)
        self._release(entry)
        return raylite.get(entry.result)

    def get_next_unordered(self, timeout: float | None = None,
                           ignore_if_timedout: bool = False) -> Any:
        """Return the result of whichever pending submission finishes first.

        Args:
            timeout: seconds to wait; ``None`` waits for ever.
            ignore_if_timedout: on a timeout, give up the oldest pending submission before
                raising (as :meth:`get_next` does).

        Raises:
            StopIteration: nothing was submitted that has not been fetched already.
            TimeoutError: (a GetTimeoutError) no result was ready within ``timeout``.

        Example:
            >>> pool.submit(lambda actor, v: actor.double.remote(v), 1)
            >>> pool.get_next_unordered()
            2
        """
        _check_timeout(timeout)
        self._require_in_flight("get_next_unordered")
        by_ref = {entry.wait_ref: entry for entry in self._in_flight.values()}
        ready, _ = raylite.wait(list(by_ref), num_returns=1, timeout=timeout)
        if not ready:
            oldest = self._in_flight[min(self._in_flight)]
            return self._timed_out(oldest, timeout, ignore_if_timedout)
        entry = by_ref[ready[0]]
        self._release(entry)
        return raylite.get(entry.result)

    def _require_in_flight(self, caller: str) -> dict[int, _InFlight]:
        if self._in_flight:
            return self._in_flight
        if self._queued:
            raise ValueError(f"{caller}(): {len(self._queued)} submission(s) are waiting but the "
                             "pool has no actors to run them; add one with pool.push(actor)")
        raise StopIteration(f"{caller}(): no more results to get; submit work with "
                            "pool.submit(fn, value) or pool.map(fn, values) first")

    def _timed_out(self, entry: _InFlight, timeout: float | None, ignore: bool) -> Any:
        message = f"timed out after {timeout} s waiting for an ActorPool result"
        if ignore:
            self._release(entry)
            message += f"; submission {entry.index} was given up (ignore_if_timedout=True)"
        raise GetTimeoutError(message)

    def _release(self, entry: _InFlight) -> None:
        """Forget ``entry`` and hand its actor the oldest queued submission (or make it idle)."""
        del self._in_flight[entry.index]
        self._return_actor(entry.actor)

    def _return_actor(self, actor: Any) -> None:
        if self._queued:
            fn, value = self._queued.popleft()
            self._dispatch(fn, value, actor)
        else:
            self._idle.append(actor)

    # ------------------------------------------------------------------ managing actors
    def has_free(self) -> bool:
        """Whether an actor is idle and no submission is waiting for one.

        Example:
            >>> pool.has_free()
            True
        """
        return bool(self._idle) and not self._queued

    def pop_idle(self) -> Any | None:
        """Remove an idle actor from the pool and return it (``None`` if none is free).

        Example:
            >>> actor = pool.pop_idle()
            >>> pool.push(actor)
        """
        return self._idle.pop() if self.has_free() else None

    def push(self, actor: Any) -> None:
        """Add an actor to the pool; it takes a waiting submission at once if there is one.

        Raises:
            ValueError: the actor is already in this pool.

        Example:
            >>> pool.push(Doubler.remote())
        """
        _check_actor(actor)
        busy = [entry.actor for entry in self._in_flight.values()]
        if any(actor is other or actor == other for other in self._idle + busy):
            raise ValueError(f"{actor!r} already belongs to this ActorPool; push each actor once")
        self._return_actor(actor)

    def __repr__(self) -> str:
        return (f"ActorPool(idle={len(self._idle)}, running={len(self._in_flight)}, "
                f"queued={len(self._queued)})")


def _check_actor(actor: Any) -> None:
    if not isinstance(actor, raylite.ActorHandle):
        raise TypeError(f"ActorPool holds actor handles (MyActor.remote()), got "
                        f"{type(actor).__name__} {actor!r:.60}")


def _check_result(result: Any) -> None:
    refs = result if isinstance(result, list) and result else [result]
    if not all(type(ref) is raylite.ObjectRef for ref in refs):
        raise TypeError(f"the function given to ActorPool must return the ObjectRef of an actor "
                        f"call, as in lambda actor, v: actor.method.remote(v); it returned "
                        f"{type(result).__name__} {result!r:.60}")


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout < 0):
        raise ValueError(f"timeout must be a non-negative number of seconds or None, "
                         f"got {timeout!r}")
