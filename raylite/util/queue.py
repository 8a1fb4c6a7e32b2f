"""Queue: a first-in, first-out queue shared by the driver, tasks and actors.

    Queue (any process) ── put/get ──► _QueueActor (one async actor) ── asyncio.Queue

The items live in one async actor; a ``Queue`` object is only a handle to it, so it can be
passed into tasks and actors and every copy sees the same queue. A blocking ``get``/``put``
waits inside the actor (an ``await``), not by polling. Same API as Ray's ``ray.util.queue``;
``Empty`` and ``Full`` are also the standard library's ``queue.Empty`` and ``queue.Full``.
"""

from __future__ import annotations

import queue as stdlib_queue
from typing import Any, Iterable

import raylite

__all__ = ["Queue", "Empty", "Full"]


class Empty(stdlib_queue.Empty):
    """``get`` found the queue empty (also a ``queue.Empty``)."""


class Full(stdlib_queue.Full):
    """``put`` found the queue full (also a ``queue.Full``)."""


class _QueueActor:
    """Holds the items. Every method is async, so all of them run on the actor's event loop."""

    def __init__(self, maxsize: int):
        import asyncio  # here, not at the top: importing raylite.util stays fast
        self.queue: asyncio.Queue = asyncio.Queue(maxsize)

    async def qsize(self) -> int:
        return self.queue.qsize()

    async def empty(self) -> bool:
        return self.queue.empty()

    async def full(self) -> bool:
        return self.queue.full()

    async def put(self, item: Any, timeout: float | None = None) -> bool:
        """Add ``item``, waiting up to ``timeout`` s for room; False if there was none."""
        if not self.queue.full():
            self.queue.put_nowait(item)
            return True
        if timeout is not None and timeout <= 0:
            return False
        import asyncio
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def get(self, timeout: float | None = None) -> tuple[bool, Any]:
        """(True, item), waiting up to ``timeout`` s for one; (False, None) if none came."""
        if not self.queue.empty():
            return True, self.queue.get_nowait()
        if timeout is not None and timeout <= 0:
            return False, None
        import asyncio
        try:
            return True, await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return False, None

    async def put_batch(self, items: list) -> tuple[bool, int]:
        """Add all ``items`` or none: (added?, size before)."""
        size = self.queue.qsize()
        if self.queue.maxsize > 0 and size + len(items) > self.queue.maxsize:
            return False, size
        for item in items:
            self.queue.put_nowait(item)
        return True, size

    async def get_batch(self, num_items: int) -> tuple[bool, Any]:
        """(True, the first ``num_items`` items) or (False, the size) if there are fewer."""
        size = self.queue.qsize()
        if num_items > size:
            return False, size
        return True, [self.queue.get_nowait() for _ in range(num_items)]


_queue_actor_class: Any = None


def _actor_class() -> Any:
    """``raylite.remote(_QueueActor)``, made once per process."""
    global _queue_actor_class
    if _queue_actor_class is None:
        _queue_actor_class = raylite.remote(_QueueActor)
    return _queue_actor_class


class Queue:
    """A FIFO queue that tasks and actors can share; pass the ``Queue`` object to them.

    Args:
        maxsize: the most items it holds; ``0`` (or less) means no limit.
        actor_options: options for the actor that holds the items, as in
            ``.options(...)``, e.g. ``{"num_cpus": 0, "name": "jobs"}``.

    Example:
        >>> import raylite as ray
        >>> from raylite.util import Queue
        >>> q = Queue(maxsize=10)
        >>> @ray.remote
        ... def produce(q, n):
        ...     for i in range(n):
        ...         q.put(i)
        >>> ray.get(produce.remote(q, 3))
        >>> [q.get(timeout=5) for _ in range(3)]
        [0, 1, 2]
        >>> q.shutdown()
    """

    def __init__(self, maxsize: int = 0, actor_options: dict[str, Any] | None = None):
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"Queue(maxsize=...) must be an int (0 for no limit), got {maxsize!r}")
        if actor_options is not None and not isinstance(actor_options, dict):
            raise TypeError(f"Queue(actor_options=...) must be a dict of actor options such as "
                            f"{{'num_cpus': 0}}, got {type(actor_options).__name__}")
        self.maxsize = maxsize
        self.actor = _actor_class().options(**(actor_options or {})).remote(maxsize)

    # ------------------------------------------------------------------ size
    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """The number of items in the queue (``qsize()`` by another name)."""
        return self.qsize()

    def qsize(self) -> int:
        """The number of items in the queue.

        Example:
            >>> Queue().qsize()
            0
        """
        return raylite.get(self._handle.qsize.remote())

    def empty(self) -> bool:
        """Whether the queue holds no items."""
        return raylite.get(self._handle.empty.remote())

    def full(self) -> bool:
        """Whether the queue holds ``maxsize`` items (never true without a limit)."""
        return raylite.get(self._handle.full.remote())

    # ------------------------------------------------------------------ put
    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item`` to the end of the queue.

        Args:
            item: any picklable value. (An ObjectRef is resolved to its value on the way in,
                as for every actor call; wrap it in a list to keep it a ref.)
            block: wait for room if the queue is full; ``False`` raises Full at once.
            timeout: with ``block``, the seconds to wait for room (``None``: for ever).

        Raises:
            Full: no room (at once with ``block=False``, or after ``timeout``).

        Example:
            >>> q = Queue(maxsize=1)
            >>> q.put("a")
            >>> q.put("b", timeout=0.1)
            Traceback (most recent call last):
            raylite.util.queue.Full: ...
        """
        _check_timeout(timeout)
        wait = timeout if block else 0
        if not raylite.get(self._handle.put.remote(item, wait)):
            raise Full(self._full_message(block, timeout))

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """``put`` for asyncio code: ``await q.put_async(item)``."""
        _check_timeout(timeout)
        wait = timeout if block else 0
        if not await self._handle.put.remote(item, wait):
            raise Full(self._full_message(block, timeout))

    def put_nowait(self, item: Any) -> None:
        """Add ``item`` if there is room right now, else raise Full."""
        self.put(item, block=False)

    def put_nowait_batch(self, items: Iterable[Any]) -> None:
        """Add all ``items`` at once if they fit now, else add none and raise Full.

        Example:
            >>> q = Queue()
            >>> q.put_nowait_batch([1, 2, 3])
            >>> q.get_nowait_batch(2)
            [1, 2]
        """
        if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
            raise TypeError(f"put_nowait_batch(items) needs a list of items, got "
                            f"{type(items).__name__}")
        items = list(items)
        added, size = raylite.get(self._handle.put_batch.remote(items))
        if not added:
            raise Full(f"cannot add {len(items)} items to a queue that holds {size} of at most "
                       f"{self.maxsize}; get some items first or make the queue larger")

    def _full_message(self, block: bool, timeout: float | None) -> str:
        waited = f" after waiting {timeout} s" if block and timeout is not None else ""
        return (f"the queue is full ({self.maxsize} items){waited}; get items first, or "
                "put with block=True and a longer timeout")

    # ------------------------------------------------------------------ get
    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the item at the front of the queue.

        Args:
            block: wait for an item if the queue is empty; ``False`` raises Empty at once.
            timeout: with ``block``, the seconds to wait for an item (``None``: for ever).

        Raises:
            Empty: no item (at once with ``block=False``, or after ``timeout``).

        Example:
            >>> q = Queue()
            >>> q.get(timeout=0.1)
            Traceback (most recent call last):
            raylite.util.queue.Empty: ...
        """
        _check_timeout(timeout)
        found, item = raylite.get(self._handle.get.remote(timeout if block else 0))
        if not found:
            raise Empty(self._empty_message(block, timeout))
        return item

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """``get`` for asyncio code: ``item = await q.get_async()``."""
        _check_timeout(timeout)
        found, item = await self._handle.get.remote(timeout if block else 0)
        if not found:
            raise Empty(self._empty_message(block, timeout))
        return item

    def get_nowait(self) -> Any:
        """Remove and return the front item if there is one right now, else raise Empty."""
        return self.get(block=False)

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        """Remove and return ``num_items`` items if there are that many now, else raise Empty."""
        if isinstance(num_items, bool) or not isinstance(num_items, int):
            raise TypeError(f"get_nowait_batch(num_items) needs an int, got {num_items!r}")
        if num_items < 0:
            raise ValueError(f"get_nowait_batch(num_items) needs num_items >= 0, got {num_items}")
        found, items = raylite.get(self._handle.get_batch.remote(num_items))
        if not found:
            raise Empty(f"cannot get {num_items} items from a queue that holds {items}; "
                        "ask for fewer or wait for more to be put")
        return items

    def _empty_message(self, block: bool, timeout: float | None) -> str:
        waited = f" after waiting {timeout} s" if block and timeout is not None else ""
        return (f"the queue is empty{waited}; put items first, or get with block=True and a "
                "longer timeout")

    # ------------------------------------------------------------------ lifetime
    def shutdown(self, force: bool = False, grace_period_s: float = 5) -> None:
        """Stop the actor holding the items; the items are lost. Idempotent.

        Every copy of this queue (in tasks and actors too) stops working. ``force`` and
        ``grace_period_s`` are accepted for Ray compatibility; the actor is stopped at once.
        """
        actor, self.actor = self.actor, None
        if actor is not None:
            raylite.kill(actor, no_restart=True)

    @property
    def _handle(self) -> Any:
        if self.actor is None:
            raise RuntimeError("this Queue was shut down with shutdown(); create a new Queue")
        return self.actor

    def __repr__(self) -> str:
        state = "shut down" if self.actor is None else repr(self.actor)
        return f"Queue(maxsize={self.maxsize}, {state})"


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout < 0):
        raise ValueError(f"timeout must be a non-negative number of seconds or None, "
                         f"got {timeout!r}")
