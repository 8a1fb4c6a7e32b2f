"""Ray generators: tasks and actor methods that ``yield``.

    caller                                   worker (or local mode)
    f.remote() ── spec + stream kwarg ──▶    fn(...) is a generator ──▶ drain():
       │                                       item i ──put_item(end, item_id(key, i))──▶ store
       ▼                                       end: the task's own return value
    ObjectRefGenerator: next() waits for item i or the end, whichever comes first

Three ways of calling a generator function, chosen by ``num_returns`` (Ray 2.x's names):

- ``"streaming"`` (the default for a generator function, as in Ray 2.x; the book's Ray 1.9
  chapters have no remote generators): the call returns an :class:`ObjectRefGenerator` at once,
  and iterating it gives one ref per yielded value as soon as it is produced.
- ``"dynamic"``: the call returns one ref; its value is a :class:`DynamicObjectRefGenerator`
  holding the refs of every yielded value (the task runs to its end first).
- an int ``k``: the generator must yield exactly ``k`` values; the call returns their ``k`` refs.

The caller picks a random stream key and passes it to the task as a hidden keyword argument;
item ``i`` is stored under an id derived from the key and ``i``. So the caller knows every
item's id in advance, and a retried task that yields item ``i`` again re-stores the same id,
which the store ignores: items are never duplicated. The task's own return object (the end)
is sealed after every item and holds the count of items (or the task's error); the store counts
each item as contained in the end, so items nobody took yet live as long as the generator.
"""

from __future__ import annotations

import inspect
import os
import traceback
from typing import Any, Callable

from raylite.core._refs import ObjectRef

STREAMING, DYNAMIC = "streaming", "dynamic"
MODES = (STREAMING, DYNAMIC)
#: the hidden keyword argument that carries (mode, key, end id | None, name) to the task
STREAM_KWARG = "__raylite_stream__"


def is_generator_function(function: Callable) -> bool:
    function = getattr(function, "__func__", function)
    return inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function)


def default_num_returns(function: Callable) -> Any:
    """Ray 2.x: a generator function streams unless told otherwise."""
    return STREAMING if is_generator_function(function) else 1


def mark_methods(cls: type, meta: dict[str, dict]) -> dict[str, dict]:
    """An actor class's method table, with its generator methods marked (and streaming unless
    ``@method(num_returns=...)`` says otherwise)."""
    for name, entry in meta.items():
        function = getattr(getattr(cls, name, None), "__func__", getattr(cls, name, None))
        if function is not None and is_generator_function(function):
            entry["generator"] = True
            if not hasattr(function, "__raylite_num_returns__"):
                entry["num_returns"] = STREAMING
    return meta


def check_num_returns(value: Any, what: str) -> None:
    if isinstance(value, str) and value not in MODES:
        raise ValueError(f"{what}: num_returns must be an int >= 0, 'streaming' or 'dynamic', got "
                         f"{value!r}.")


def item_id(key: bytes, index: int) -> bytes:
    """The object id of the ``index``-th value a stream yields."""
    from hashlib import blake2b  # not at import: `import raylite` stays light
    return blake2b(index.to_bytes(8, "little"), key=key, digest_size=len(key)).digest()


# ==========================================================================================
# the caller's side
# ==========================================================================================
def submit(backend: Any, submit_call: Callable[[dict, dict], list], kwargs: dict, mode: Any,
           name: str, retry: bool = False) -> Any:
    """Submit a generator call: ``submit_call(kwargs, options_override)`` does the backend call.

    ``retry``: the task retries on exceptions (``retry_exceptions``), so an exception in the
    generator fails the task (to be run again; items it already yielded are not repeated)
    instead of being stored at its item."""
    if not getattr(backend, "runs_generators", False):  # True, or "at_end" (see below)
        raise NotImplementedError(
            f"{name}: remote generator functions (num_returns={mode!r}) are not supported on "
            f"this runtime ({type(backend).__name__}); run it with raylite.init() or "
            "init(local_mode=True), or make the function return a list instead of yielding.")
    from raylite.core._ids import new_id
    key = new_id()
    kwargs = dict(kwargs)
    if isinstance(mode, int):
        kwargs[STREAM_KWARG] = ("count", mode, name)
        refs = submit_call(kwargs, {"num_returns": mode})
        return refs[0] if mode == 1 else (refs if mode > 1 else None)
    kwargs[STREAM_KWARG] = (mode, key, name, retry)
    refs = submit_call(kwargs, {"num_returns": 1})
    if mode == DYNAMIC:
        return refs[0]
    return ObjectRefGenerator(refs[0], key, backend)


class ObjectRefGenerator:
    """What a streaming generator call returns: iterate it (``for``, ``next``, ``async for``)
    to get one ObjectRef per yielded value, as soon as the task yields it.

    An exception raised inside the generator is stored at the item where it happened (``get``
    of that ref raises it) and the iteration ends after it. If the task fails as a whole
    (cancelled, its worker died past ``max_retries``), the next ref holds that error.
    Not thread-safe, and not serializable (as in Ray).
    """

    def __init__(self, end: ObjectRef, key: bytes, backend: Any):
        self._end = end
        self._key = key
        self._backend = backend
        self._index = 0
        self._count: int | None = None   # items in all, once the task has finished
        self._refs: list | None = None   # the items' refs, where the end holds them (Dask)
        self._done = False
        # True: items can be waited for one by one; "at_end": they arrive with the end
        self._streams = getattr(backend, "runs_generators", False) is True

    # ----- sync -----------------------------------------------------------------------------
    def __iter__(self) -> "ObjectRefGenerator":
        return self

    def __next__(self) -> ObjectRef:
        ref = self._next(None)
        if ref is None:
            raise StopIteration
        return ref

    def _next(self, timeout: float | None) -> ObjectRef | None:
        """The next ref, None at the end; TimeoutError when nothing came within ``timeout``."""
        if self._done:
            return None
        item = ObjectRef(item_id(self._key, self._index)) if self._streams else None
        if self._count is None:
            probes = [item, self._end] if item is not None else [self._end]
            ready, _ = self._backend.wait(probes, 1, timeout, True)
            if not ready:
                raise TimeoutError("no item was ready within the timeout")
            if ready[0] != item:   # the end came first: the task finished (or failed)
                try:
                    self._set_end(self._backend.get([self._end], None)[0])
                except BaseException:  # noqa: BLE001 - a failed task: its error is the last ref
                    self._done = True
                    return self._end
        if self._count is not None and self._index >= self._count:
            self._done = True
            return None
        if self._refs is not None:
            item = self._refs[self._index]
        self._index += 1
        return item

    def _set_end(self, value: Any) -> None:
        if isinstance(value, list):
            self._refs, self._count = value, len(value)
        else:
            self._count = value

    # ----- async ----------------------------------------------------------------------------
    def __aiter__(self) -> "ObjectRefGenerator":
        return self

    async def __anext__(self) -> ObjectRef:
        import asyncio
        if self._done:
            raise StopAsyncIteration
        loop = asyncio.get_running_loop()
        ref = await loop.run_in_executor(None, self._next, None)
        if ref is None:
            raise StopAsyncIteration
        return ref

    # ----- state ----------------------------------------------------------------------------
    def completed(self) -> ObjectRef:
        """A ref that is ready when the task has finished or failed (``get`` raises its error)."""
        return self._end

    def is_finished(self) -> bool:
        """True once every item has been taken (the next ``next()`` raises StopIteration)."""
        if self._done:
            return True
        if self._count is None:
            ready, _ = self._backend.wait([self._end], 1, 0, True)
            if not ready:
                return False
            try:
                self._set_end(self._backend.get([self._end], None)[0])
            except BaseException:  # noqa: BLE001 - the error ref is still to be taken
                return False
        return self._index >= self._count

    def _probes(self) -> list[ObjectRef]:
        """Refs of which any being ready makes ``next()`` return at once (for ``wait``)."""
        if self._done:
            return []
        if self._count is not None and self._index < self._count:
            return [self._refs[self._index] if self._refs is not None
                    else ObjectRef(item_id(self._key, self._index))]
        if not self._streams:
            return [self._end]
        return [ObjectRef(item_id(self._key, self._index)), self._end]

    def _task_ref(self) -> ObjectRef:
        return self._end

    def __reduce__(self):
        raise TypeError("an ObjectRefGenerator cannot be passed to another task or actor (as in "
                        "Ray); iterate it here and pass the ObjectRefs it gives instead.")

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._end.hex()})"


def wait(backend: Any, items: list, num_returns: int, timeout: float | None,
         fetch_local: bool) -> tuple[list, list]:
    """``raylite.wait`` over refs and generators: a generator is ready when ``next()`` would
    return at once (an item is there, or the task has ended)."""
    import time
    deadline = None if timeout is None else time.monotonic() + timeout
    probes = [item._probes() if isinstance(item, ObjectRefGenerator) else [item]
              for item in items]
    flat = list({ref: None for group in probes for ref in group})
    while True:
        ready_refs = set(backend.wait(flat, len(flat), 0, fetch_local)[0]) if flat else set()
        ready = [item for item, group in zip(items, probes)
                 if not group or any(ref in ready_refs for ref in group)][:num_returns]
        left = None if deadline is None else deadline - time.monotonic()
        if len(ready) >= num_returns or len(ready_refs) == len(flat) or (left is not None and left <= 0):
            return ready, [item for item in items if not any(item is r for r in ready)]
        backend.wait(flat, len(ready_refs) + 1, left, fetch_local)  # until one more is ready


#: Ray 2.x's older name
StreamingObjectRefGenerator = ObjectRefGenerator


class DynamicObjectRefGenerator:
    """The value of a ``num_returns="dynamic"`` task: iterate it for the refs of its values."""

    def __init__(self, refs: list[ObjectRef]):
        self._refs = list(refs)

    def __iter__(self):
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"


# ==========================================================================================
# the executing side: the worker (or local mode) calls these around the user's function
# ==========================================================================================
def pop_stream(kwargs: dict) -> tuple | None:
    """Take the hidden stream argument out of a call's kwargs (None: not a generator call)."""
    return kwargs.pop(STREAM_KWARG, None) if kwargs else None


def drain(value: Any, stream: tuple, end_id: bytes, put_item: Callable) -> Any:
    """Run a generator to its end, storing each item; returns the task's own return value.

    ``put_item(end_id, object_id, value, is_error)`` stores one item: under ``object_id``
    (returning None), or, on a backend that cannot store under a given id, under an id of its
    own, returning the item's ref (the end value is then the list of those refs).
    """
    if inspect.isasyncgen(value):
        import asyncio
        return asyncio.run(adrain(value, stream, end_id, put_item))
    mode, key, name, *retry = stream
    if mode == "count":
        return _exactly(value, key, name)
    if not inspect.isgenerator(value):
        return _not_a_generator(value, mode, name)
    count, refs = 0, []
    try:
        for item in value:
            refs.append(put_item(end_id, item_id(key, count), item, False))
            count += 1
    except Exception as exc:  # noqa: BLE001 - stored at the item where it happened
        if retry and retry[0]:
            raise  # the task is retried: its next attempt goes on from the items stored
        refs.append(put_item(end_id, item_id(key, count), _task_error(exc, name), True))
        count += 1
    return _end_value(mode, key, count, refs)


def draining(function: Callable, stream: tuple, put_item: Callable) -> Callable:
    """``function``, with what it returns drained (for a runner that calls it later)."""
    def run(*args, **kwargs):
        return drain(function(*args, **kwargs), stream, None, put_item)
    return run


async def adrain(value: Any, stream: tuple, end_id: bytes, put_item: Callable) -> Any:
    """``drain`` for an async generator (async actors)."""
    mode, key, name, *retry = stream
    if not inspect.isasyncgen(value):
        if inspect.iscoroutine(value):
            value = await value
        return drain(value, stream, end_id, put_item)
    if mode == "count":
        return _exactly([item async for item in value], key, name)
    count, refs = 0, []
    try:
        async for item in value:
            refs.append(put_item(end_id, item_id(key, count), item, False))
            count += 1
    except Exception as exc:  # noqa: BLE001
        if retry and retry[0]:
            raise
        refs.append(put_item(end_id, item_id(key, count), _task_error(exc, name), True))
        count += 1
    return _end_value(mode, key, count, refs)


async def collect_async(value: Any) -> Any:
    """An async generator run to its end, replayed as a plain generator (its exception, if
    any, raised after its items); anything else unchanged (a coroutine awaited)."""
    if inspect.iscoroutine(value):
        return await value
    if not inspect.isasyncgen(value):
        return value
    items, error = [], None
    try:
        async for item in value:
            items.append(item)
    except Exception as exc:  # noqa: BLE001 - raised again at its place by the replay
        error = exc

    def replay():
        yield from items
        if error is not None:
            raise error
    return replay()


def _exactly(value: Any, k: int, name: str) -> Any:
    if not (inspect.isgenerator(value) or isinstance(value, list)):
        return value  # a plain return: checked like any other num_returns=k result
    values = list(value)
    if len(values) != k:
        raise ValueError(f"{name} was declared with num_returns={k} but its generator yielded "
                         f"{len(values)} value(s); yield exactly {k}, or use "
                         "num_returns='streaming' for a count that varies.")
    return values[0] if k == 1 else values


def _end_value(mode: str, key: bytes, count: int, refs: list) -> Any:
    if refs and refs[0] is not None:  # a backend whose puts pick their own ids (Dask)
        return DynamicObjectRefGenerator(refs) if mode == DYNAMIC else refs
    if mode == DYNAMIC:
        return DynamicObjectRefGenerator([ObjectRef(item_id(key, i)) for i in range(count)])
    return count


def _not_a_generator(value: Any, mode: str, name: str) -> Any:
    raise TypeError(f"{name} was called with num_returns={mode!r} but returned "
                    f"{type(value).__name__}, not a generator; yield its values, or drop "
                    "num_returns to return one value.")


def _task_error(exc: BaseException, name: str) -> BaseException:
    from raylite.exceptions import make_task_error
    core = os.path.dirname(os.path.abspath(__file__))  # raylite's own frames are left out
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(core)]
    text = "".join((["Traceback (most recent call last):\n"] if frames else [])
                   + traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc))
    return make_task_error(exc, name, os.getpid(), text)
