"""``@serve.batch``: callers pass one item each, the function sees a list of them.

    call(item) ─▶ queue ─▶ batcher task: first item, then up to max_batch_size - 1 more that
                                         arrive within batch_wait_timeout_s
                                         ─▶ fn(self, [items]) ─▶ [results] ─▶ each caller's future

One queue per instance (for methods) or per function, living on the event loop that first
calls it, so all requests of a replica share it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

_QUEUES_ATTRIBUTE = "__serve_batch_queues__"


class _BatchQueue:
    def __init__(self, function: Callable, max_batch_size: int, timeout_s: float):
        self.function = function
        self.max_batch_size = max_batch_size
        self.timeout_s = timeout_s
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.timeout_s
            while len(batch) < self.max_batch_size:
                if not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            await self._process(batch)

    async def _process(self, batch: list) -> None:
        futures = [future for _, future in batch]
        try:
            results = self.function([item for item, _ in batch])
            if inspect.isawaitable(results):
                results = await results
            results = list(results)
            if len(results) != len(batch):
                raise TypeError(f"@serve.batch function {self.function!r} returned "
                                f"{len(results)} results for a batch of {len(batch)}; return "
                                "one result per item, in order")
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the error
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, result in zip(futures, results):
            if not future.done():
                future.set_result(result)


def batch(_function: Callable | None = None, *, max_batch_size: int = 10,
          batch_wait_timeout_s: float = 0.0):
    """Batch calls: the decorated function takes a list and returns a list of the same length;
    each caller passes (and gets back) a single item.

    Example:
        >>> from raylite import serve
        >>> @serve.deployment
        ... class Doubler:
        ...     @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
        ...     async def double(self, numbers: list[int]) -> list[int]:
        ...         return [2 * n for n in numbers]
        ...     async def __call__(self, request):
        ...         return await self.double(int(request.query_params["n"]))
    """
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) \
            or max_batch_size < 1:
        raise ValueError(f"@serve.batch: max_batch_size must be an int >= 1, got "
                         f"{max_batch_size!r}")
    if not isinstance(batch_wait_timeout_s, (int, float)) or batch_wait_timeout_s < 0:
        raise ValueError(f"@serve.batch: batch_wait_timeout_s must be a number >= 0, got "
                         f"{batch_wait_timeout_s!r}")

    def decorate(function: Callable) -> Callable:
        parameters = list(inspect.signature(function).parameters)
        is_method = bool(parameters) and parameters[0] == "self"
        shared: dict = {}

        def queue_for(owner: Any) -> _BatchQueue:
            queues = shared if owner is None else owner.__dict__.setdefault(_QUEUES_ATTRIBUTE, {})
            queue = queues.get(function)
            if queue is None or queue.task.done():
                target = function if owner is None else functools.partial(function, owner)
                queue = queues[function] = _BatchQueue(target, max_batch_size,
                                                       float(batch_wait_timeout_s))
            return queue

        @functools.wraps(function)
        async def wrapper(*args: Any) -> Any:
            owner, items = (args[0], args[1:]) if is_method else (None, args)
            if len(items) != 1:
                raise TypeError(f"{function.__name__} is batched with @serve.batch: call it with "
                                f"exactly one item, got {len(items)} arguments")
            future = asyncio.get_running_loop().create_future()
            queue_for(owner).queue.put_nowait((items[0], future))
            return await future

        wrapper._serve_batch = (max_batch_size, batch_wait_timeout_s)
        return wrapper

    return decorate(_function) if _function is not None else decorate
