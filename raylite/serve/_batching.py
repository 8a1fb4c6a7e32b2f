"""``@serve.batch``: callers pass one item each, the function sees a list of them.

    call(item) ─▶ queue ─▶ batcher task: first item, then up to max_batch_size - 1 more that
                                         arrive within batch_wait_timeout_s
                                         ─▶ fn(self, [items]) ─▶ [results] ─▶ each caller's future

One queue per instance (for methods) or per function, living on the event loop that first
calls it, so all requests of a replica share it.

A batched (async) generator streams: each step yields a list with one chunk per caller (or
``StopIteration`` where that caller's stream has ended), and each caller iterates its own
chunks as they come::

    fn(self, [items]) yields [c0, c1, ...] ─▶ c0 to caller 0's channel, c1 to caller 1's, ...
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

_QUEUES_ATTRIBUTE = "__serve_batch_queues__"


class _BatchQueue:
    def __init__(self, function: Callable, max_batch_size: int, timeout_s: float,
                 streaming: bool = False):
        self.function = function
        self.max_batch_size = max_batch_size
        self.timeout_s = timeout_s
        self.streaming = streaming
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
            await (self._stream(batch) if self.streaming else self._process(batch))

    async def _stream(self, batch: list) -> None:
        """Run a batched generator; each caller's ``channel`` gets ("item", chunk)s, then
        ("end", None) or ("error", exc)."""
        channels = [channel for _, channel in batch]
        open_ = set(range(len(batch)))
        try:
            steps = self.function([item for item, _ in batch])
            async for step in _as_async(steps):
                step = list(step)
                if len(step) != len(batch):
                    raise TypeError(f"@serve.batch generator {self.function!r} yielded "
                                    f"{len(step)} chunks for a batch of {len(batch)}; yield one "
                                    "chunk per caller (StopIteration where a caller is done)")
                for index, chunk in enumerate(step):
                    if index not in open_:
                        continue
                    if chunk is StopIteration or isinstance(chunk, StopIteration):
                        open_.discard(index)
                        channels[index].put_nowait(("end", None))
                    else:
                        channels[index].put_nowait(("item", chunk))
        except Exception as exc:  # noqa: BLE001 - every open caller of the batch gets the error
            for index in open_:
                channels[index].put_nowait(("error", exc))
            return
        for index in open_:
            channels[index].put_nowait(("end", None))

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


async def _as_async(steps: Any):
    if hasattr(steps, "__aiter__"):
        async for step in steps:
            yield step
    else:
        for step in steps:
            yield step


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
        streaming = inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function)
        shared: dict = {}

        def queue_for(owner: Any) -> _BatchQueue:
            queues = shared if owner is None else owner.__dict__.setdefault(_QUEUES_ATTRIBUTE, {})
            queue = queues.get(function)
            if queue is None or queue.task.done():
                target = function if owner is None else functools.partial(function, owner)
                queue = queues[function] = _BatchQueue(target, max_batch_size,
                                                       float(batch_wait_timeout_s), streaming)
            return queue

        def one_item(args: tuple) -> tuple:
            owner, items = (args[0], args[1:]) if is_method else (None, args)
            if len(items) != 1:
                raise TypeError(f"{function.__name__} is batched with @serve.batch: call it with "
                                f"exactly one item, got {len(items)} arguments")
            return owner, items[0]

        @functools.wraps(function)
        async def wrapper(*args: Any) -> Any:
            owner, item = one_item(args)
            future = asyncio.get_running_loop().create_future()
            queue_for(owner).queue.put_nowait((item, future))
            return await future

        @functools.wraps(function)
        async def stream_wrapper(*args: Any) -> Any:
            owner, item = one_item(args)
            channel: asyncio.Queue = asyncio.Queue()
            queue_for(owner).queue.put_nowait((item, channel))
            while True:
                kind, value = await channel.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value

        if streaming:
            wrapper = stream_wrapper  # type: ignore[assignment]
        wrapper._serve_batch = (max_batch_size, batch_wait_timeout_s)
        return wrapper

    return decorate(_function) if _function is not None else decorate
