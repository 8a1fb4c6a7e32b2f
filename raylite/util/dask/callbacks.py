"""``RayDaskCallback``: Dask's ``Callback`` with hooks into raylite's Dask scheduler.

Where each hook runs, for one ``ray_dask_get`` call::

    driver  for each task of the graph, in Dask's order:
                _ray_presubmit(task, key, deps)        a value (not None): that is the key's
                                                       result, and no raylite task is made
                submit the raylite task
                _ray_postsubmit(task, key, deps, object_ref)
            _ray_postsubmit_all(object_refs, dsk)      object_refs in the shape of the keys
            get the values
            _ray_finish(result)
    worker  around each task:
                pre_state = _ray_pretask(key, argument_values)
                result = the Dask task
                _ray_posttask(key, result, pre_state)

``deps`` maps each dependency key to its ObjectRef. The worker-side hooks travel to the
workers with each task (pickled with their callback object), so what they change on ``self``
stays in the worker: send state back through an actor, as Ray's caching example does.

Callbacks are active inside ``with MyCallback():``, after ``register()`` (until
``unregister()``), or for one call as ``ray_dask_get(dsk, keys, ray_callbacks=[...])``, which
then uses only those. Example:

    >>> import dask, raylite
    >>> from raylite.util.dask import RayDaskCallback, ray_dask_get
    >>> class CountSubmits(RayDaskCallback):
    ...     submitted = 0
    ...     def _ray_postsubmit(self, task, key, deps, object_ref):
    ...         type(self).submitted += 1
    >>> _ = raylite.init(num_cpus=2)
    >>> with CountSubmits():
    ...     dask.delayed(sum)([1, 2]).compute(scheduler=ray_dask_get)
    3
    >>> CountSubmits.submitted
    1
    >>> raylite.shutdown()
"""

from __future__ import annotations

import contextlib
from collections import namedtuple
from typing import Any, ClassVar, Iterator

from dask.callbacks import Callback

from raylite.core._options import did_you_mean

__all__ = ["RayDaskCallback", "RayCallback", "add_ray_callbacks", "local_ray_callbacks"]

HOOKS = ("ray_presubmit", "ray_postsubmit", "ray_pretask", "ray_posttask",
         "ray_postsubmit_all", "ray_finish")
_DASK_HOOKS = ("start", "start_state", "pretask", "posttask", "finish")

#: the hooks of one callback (None where it has none), as ``ray_active`` holds them
RayCallback = namedtuple("RayCallback", HOOKS)


class RayDaskCallback(Callback):
    """Dask's ``Callback`` with the ``_ray_*`` hooks that raylite's Dask scheduler calls.

    Subclass it and define any of the hooks, or pass them as keyword arguments
    (``RayDaskCallback(ray_presubmit=fn)``); Dask's own hooks (``start=``, ...) are accepted as
    Dask's ``Callback`` takes them, but ``ray_dask_get`` does not call them (it warns).
    """

    #: the callbacks active now (entered or registered), as RayCallback tuples
    ray_active: ClassVar[set] = set()

    def __init__(self, **hooks: Any):
        for name in HOOKS:
            function = hooks.pop(name, None)
            if function is not None:
                setattr(self, "_" + name, function)
        for name in hooks:
            if name not in _DASK_HOOKS:
                raise TypeError(f"RayDaskCallback() got an unexpected keyword argument {name!r}"
                                f"{did_you_mean(name, HOOKS + _DASK_HOOKS)}")
        super().__init__(**hooks)

    @property
    def _ray_callback(self) -> RayCallback:
        """This callback's hooks; None for those left as RayDaskCallback's no-ops."""
        return RayCallback(*(self._own_hook(name) for name in HOOKS))

    def _own_hook(self, name: str) -> Any:
        attribute = "_" + name
        if attribute not in vars(self) and getattr(type(self), attribute) is getattr(
                RayDaskCallback, attribute):
            return None
        return getattr(self, attribute)

    def __enter__(self) -> "RayDaskCallback":
        self._ray_added = add_ray_callbacks(self)
        super().__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        super().__exit__(*exc_info)
        self._ray_added.__exit__(*exc_info)

    def register(self) -> None:
        RayDaskCallback.ray_active.add(self._ray_callback)
        super().register()

    def unregister(self) -> None:
        RayDaskCallback.ray_active.discard(self._ray_callback)
        super().unregister()

    # the hooks: no-ops here; see the module docstring for where and when each one runs
    def _ray_presubmit(self, task: Any, key: Any, deps: dict) -> Any:
        """In the driver, before the task is submitted; a value other than None becomes the
        key's result and no task is submitted."""

    def _ray_postsubmit(self, task: Any, key: Any, deps: dict, object_ref: Any) -> None:
        """In the driver, after the task is submitted; ``object_ref`` is its result's ref."""

    def _ray_pretask(self, key: Any, object_refs: list) -> Any:
        """In the worker, before the task runs, with its argument values (Ray's name for them
        is ``object_refs``); what it returns goes to ``_ray_posttask`` as ``pre_state``."""

    def _ray_posttask(self, key: Any, result: Any, pre_state: Any) -> None:
        """In the worker, after the task ran."""

    def _ray_postsubmit_all(self, object_refs: Any, dsk: Any) -> None:
        """In the driver, once every task is submitted: the refs of the requested keys."""

    def _ray_finish(self, result: Any) -> None:
        """In the driver, with the computed result (ObjectRefs when persisting)."""


def _as_ray_callback(callback: Any) -> RayCallback:
    if isinstance(callback, RayDaskCallback):
        return callback._ray_callback
    if isinstance(callback, RayCallback):
        return callback
    raise TypeError(f"ray_callbacks takes RayDaskCallback objects (or RayCallback tuples), "
                    f"got {type(callback).__name__}")


class add_ray_callbacks:  # Ray's name (a class used like a function)
    """Make callbacks active until the ``with`` block ends (what ``with callback:`` does)."""

    def __init__(self, *callbacks: Any):
        self.callbacks = [_as_ray_callback(c) for c in callbacks]
        RayDaskCallback.ray_active.update(self.callbacks)

    def __enter__(self) -> "add_ray_callbacks":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for callback in self.callbacks:
            RayDaskCallback.ray_active.discard(callback)


@contextlib.contextmanager
def local_ray_callbacks(callbacks: Any = None) -> Iterator[tuple]:
    """The callbacks one scheduler call uses: ``callbacks`` if given, else the active ones,
    which are set aside meanwhile (a scheduler started inside does not use them again)."""
    if callbacks is not None:
        if isinstance(callbacks, (RayDaskCallback, RayCallback)):
            callbacks = [callbacks]
        yield tuple(_as_ray_callback(c) for c in callbacks)
        return
    active, RayDaskCallback.ray_active = RayDaskCallback.ray_active, set()
    try:
        yield tuple(active)
    finally:
        RayDaskCallback.ray_active = active


class Hooks:
    """The hooks of the callbacks one scheduler call uses, by kind (the non-None ones)."""

    def __init__(self, callbacks: tuple):
        by_kind = {name: [getattr(c, name) for c in callbacks if getattr(c, name) is not None]
                   for name in HOOKS}
        self.presubmit = by_kind["ray_presubmit"]
        self.postsubmit = by_kind["ray_postsubmit"]
        self.postsubmit_all = by_kind["ray_postsubmit_all"]
        self.finish = by_kind["ray_finish"]
        #: (pretask, posttask) of each callback that has either: what each task carries
        self.in_task = tuple((c.ray_pretask, c.ray_posttask) for c in callbacks
                             if c.ray_pretask is not None or c.ray_posttask is not None) or None


def run_in_task(task_hooks: tuple, key: Any, values: tuple, run: Any) -> Any:
    """``run()`` between the pretask and posttask hooks (in the worker)."""
    states = [pre(key, list(values)) if pre is not None else None for pre, _ in task_hooks]
    result = run()
    for (_, post), state in zip(task_hooks, states):
        if post is not None:
            post(key, result, state)
    return result


def warn_about_dask_hooks() -> None:
    """Dask's own scheduler hooks need its local scheduler's state; say once that they are
    not called here."""
    global _warned
    if _warned or not any(any(hook is not None for hook in callback)
                          for callback in Callback.active):
        return
    _warned = True
    import warnings
    warnings.warn("ray_dask_get does not call Dask's own scheduler callbacks (start, "
                  "start_state, pretask, posttask, finish; e.g. dask.diagnostics.ProgressBar): "
                  "use RayDaskCallback's _ray_* hooks", stacklevel=4)


_warned = False
