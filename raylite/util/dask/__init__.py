"""Dask collections on the raylite runtime: a Dask scheduler whose tasks are raylite tasks.

    import dask.array as da
    from raylite.util.dask import enable_dask_on_ray

    with enable_dask_on_ray():          # or dask.compute(x, scheduler=ray_dask_get)
        da.ones((4000, 4000), chunks=1000).sum().compute()

How a graph runs (``ray_dask_get``)::

    dask collection --__dask_graph__--> {key: Task | Alias | DataNode}
        in dask.order's order (dependencies first), for each node:
            Task     -> _run_node.remote(node, dep_keys, *dep_refs)   one raylite task, its
                        result an ObjectRef; raylite resolves the dependency refs before it runs
            Alias    -> the target's ObjectRef
            DataNode -> put(value) once (an ObjectRef already stays as it is)
        get(the refs of the requested keys), packed in the shape of ``keys``

The whole graph is submitted at once; raylite's scheduler starts each task when its arguments
exist. Intermediate results live in the object store, so a large partition is written once to
shared memory and mapped read-only, without a copy, by every task that reads it; an
intermediate is freed when the last task reading it has run (its ObjectRef's last holder).

``persist`` (``x.persist()`` or ``dask.persist(x)`` with this scheduler) keeps the results in
the object store: the persisted collection's graph holds ObjectRefs, and later computations on
it (with this scheduler) start from them.

``RayDaskCallback`` (``callbacks.py``) hooks into each step: before and after each submission,
in the worker around each task, after all submissions, and at the end.
"""

from __future__ import annotations

from typing import Any, Iterable

import raylite
from raylite.core._options import did_you_mean

__all__ = ["ray_dask_get", "ray_dask_get_sync", "enable_dask_on_ray", "disable_dask_on_ray",
           "RayDaskCallback"]

_SCHEDULER_ARGS = {"ray_remote_args", "ray_persist", "ray_callbacks", "num_workers"}


def __getattr__(name: str) -> Any:
    if name == "RayDaskCallback":  # imports Dask: only when asked for
        from raylite.util.dask.callbacks import RayDaskCallback
        return RayDaskCallback
    raise AttributeError(f"module 'raylite.util.dask' has no attribute {name!r}")


# ==========================================================================================
# running one graph node inside a worker
# ==========================================================================================
def _execute(node: Any, dependency_keys: tuple, task_hooks: tuple | None, *values: Any) -> Any:
    """Run one Dask graph node on the values of its dependencies (resolved by raylite),
    between the RayDaskCallbacks' pretask and posttask hooks if there are any."""
    if task_hooks is None:
        return node(dict(zip(dependency_keys, values)))
    from raylite.util.dask.callbacks import run_in_task
    return run_in_task(task_hooks, node.key, values,
                       lambda: node(dict(zip(dependency_keys, values))))


_run_node = None


def _remote_runner():
    global _run_node
    if _run_node is None:
        _run_node = raylite.remote(_execute)
    return _run_node


# ==========================================================================================
# the scheduler
# ==========================================================================================
def _as_graph(dsk: Any) -> dict:
    """A graph of dask._task_spec nodes from whatever Dask hands a scheduler: a mapping in the
    legacy tuple form or the new form, a HighLevelGraph, or an expression."""
    from collections.abc import Mapping

    from dask._task_spec import convert_legacy_graph
    if not isinstance(dsk, Mapping):
        dsk = dsk.__dask_graph__()
    return convert_legacy_graph(dict(dsk))


def _check_kwargs(kwargs: dict) -> None:
    for name in kwargs:
        if name not in _SCHEDULER_ARGS:
            raise TypeError(f"ray_dask_get() got an unexpected keyword argument {name!r}"
                            f"{did_you_mean(name, _SCHEDULER_ARGS)} (it takes "
                            "ray_remote_args={...} for the raylite tasks, ray_persist=True, "
                            "ray_callbacks=[...])")


def _flat_keys(keys: Any) -> list:
    if isinstance(keys, list):
        return [k for part in keys for k in _flat_keys(part)]
    return [keys]


def _pack(keys: Any, values: dict) -> Any:
    """The values in the nested-list shape of ``keys`` (what Dask's schedulers return)."""
    if isinstance(keys, list):
        return [_pack(part, values) for part in keys]
    return values[keys]


def _stored_ref(node: Any) -> Any:
    """The ObjectRef a persisted key's node reads, or None for any other node."""
    if getattr(node, "func", None) is _object_value and not node.dependencies:
        ref = node.args[0] if len(node.args) == 1 else None
        return ref if isinstance(ref, raylite.ObjectRef) else None
    return None


def _submit(graph: dict, remote_args: dict, wanted: set, hooks: Any, *,
            one_at_a_time: bool) -> dict:
    """Submit every node in dependency order; the ObjectRefs of the ``wanted`` keys."""
    from dask._task_spec import Alias, DataNode
    from dask.order import order
    from dask.utils import key_split

    runner = _remote_runner()
    refs: dict = {}
    dependents_left = {key: 0 for key in graph}
    for node in graph.values():
        for dep in node.dependencies:
            dependents_left[dep] = dependents_left.get(dep, 0) + 1
    priority = order(graph)
    for key in sorted(graph, key=priority.__getitem__):
        node = graph[key]
        if isinstance(node, Alias):
            refs[key] = refs[node.target]
        elif isinstance(node, DataNode):
            value = node.value
            refs[key] = value if isinstance(value, raylite.ObjectRef) else raylite.put(value)
        elif _stored_ref(node) is not None:
            refs[key] = _stored_ref(node)
        else:
            deps = tuple(node.dependencies)
            replacement = _presubmit(hooks, node, key, refs, deps)
            if replacement is not None:
                refs[key] = raylite.put(replacement)  # the key's result; no task runs
            else:
                options = dict(remote_args, name=str(key_split(key)))
                refs[key] = runner.options(**options).remote(
                    node, deps, hooks.in_task, *[refs[d] for d in deps])
                for hook in hooks.postsubmit:
                    hook(node, key, {d: refs[d] for d in deps}, refs[key])
                if one_at_a_time:
                    raylite.wait([refs[key]], num_returns=1)
        for dep in node.dependencies:  # the last reader submitted: the task holds it now
            dependents_left[dep] -= 1
            if dependents_left[dep] == 0 and dep not in wanted:
                del refs[dep]
    return {key: refs[key] for key in wanted}


def _presubmit(hooks: Any, node: Any, key: Any, refs: dict, deps: tuple) -> Any:
    """The first value other than None that a presubmit hook returns (all of them run)."""
    if not hooks.presubmit:
        return None
    dependencies = {d: refs[d] for d in deps}
    answers = [hook(node, key, dependencies) for hook in hooks.presubmit]
    return next((answer for answer in answers if answer is not None), None)


def _run(dsk: Any, keys: Any, kwargs: dict, *, one_at_a_time: bool) -> Any:
    from raylite.util.dask.callbacks import (
        Hooks,
        local_ray_callbacks,
        warn_about_dask_hooks,
    )
    _check_kwargs(kwargs)
    remote_args = dict(kwargs.get("ray_remote_args") or {})
    remote_args.pop("name", None)
    graph = _as_graph(dsk)
    wanted = set(_flat_keys(keys))
    missing = [key for key in wanted if key not in graph]
    if missing:
        raise KeyError(f"ray_dask_get(): the graph has no task for the keys {missing[:5]}")
    warn_about_dask_hooks()
    with local_ray_callbacks(kwargs.get("ray_callbacks")) as callbacks:
        hooks = Hooks(callbacks)
        refs = _submit(graph, remote_args, wanted, hooks, one_at_a_time=one_at_a_time)
        for hook in hooks.postsubmit_all:
            hook(_pack(keys, refs), dsk)
        if kwargs.get("ray_persist"):
            result = _pack(keys, refs)
        else:
            order = list(refs)
            result = _pack(keys, dict(zip(order, raylite.get([refs[key] for key in order]))))
        for hook in hooks.finish:
            hook(result)
    return result


def ray_dask_get(dsk: Any, keys: Any, **kwargs: Any) -> Any:
    """A Dask scheduler that runs each task of the graph as a raylite task.

    Args:
        dsk: the Dask graph (or collection expression) Dask hands its scheduler.
        keys: the keys to compute, possibly nested lists of them.
        ray_remote_args: options for every raylite task (``num_cpus``, ``resources``, ...).
        ray_persist: return ObjectRefs instead of values (what ``persist`` uses).
        ray_callbacks: ``RayDaskCallback`` objects to use for this call instead of the active
            ones (``with callback:`` or ``callback.register()``).

    Example:
        >>> import dask, dask.array as da
        >>> import raylite
        >>> from raylite.util.dask import ray_dask_get
        >>> _ = raylite.init(num_cpus=2)
        >>> int(da.ones(10, chunks=5).sum().compute(scheduler=ray_dask_get))
        10
        >>> raylite.shutdown()
    """
    return _run(dsk, keys, kwargs, one_at_a_time=False)


def ray_dask_get_sync(dsk: Any, keys: Any, **kwargs: Any) -> Any:
    """Like ``ray_dask_get``, but each raylite task finishes before the next is submitted:
    one task at a time, in Dask's order, for debugging a graph."""
    return _run(dsk, keys, kwargs, one_at_a_time=True)


# persist through raylite: dask.persist() asks the scheduler for a ``persist`` of its own
# (the protocol dask.base.persist offers Client-like schedulers) before computing values.
# The persisted graph holds, for each key, a task that reads the key's object: as a graph's
# own node it becomes the ObjectRef itself (see _submit); fused by Dask's optimizer into a
# later task, it reads the object inside that task, under any scheduler.
def _object_value(ref: Any) -> Any:
    return raylite.get(ref)


def _stored(keys: Any, refs: Any) -> Any:
    from dask._task_spec import Task
    if isinstance(keys, list):
        return [_stored(k, r) for k, r in zip(keys, refs)]
    return Task(keys, _object_value, refs)


def _get_refs(dsk: Any, keys: Any, **kwargs: Any) -> Any:
    kwargs["ray_persist"] = True
    return _stored(keys, _run(dsk, keys, kwargs, one_at_a_time=False))


def _get_refs_sync(dsk: Any, keys: Any, **kwargs: Any) -> Any:
    kwargs["ray_persist"] = True
    return _stored(keys, _run(dsk, keys, kwargs, one_at_a_time=True))


def _persist_with(get_refs):
    def persist(collections: Iterable, optimize_graph: bool = True, **kwargs: Any) -> list:
        """Persisted copies of ``collections`` whose partitions are ObjectRefs in raylite's
        object store (computed once, shared by every later computation on them)."""
        import dask
        kwargs.pop("ray_persist", None)
        return list(dask.persist(*collections, scheduler=get_refs,
                                 optimize_graph=optimize_graph, **kwargs))
    return persist


ray_dask_get.persist = _persist_with(_get_refs)
ray_dask_get_sync.persist = _persist_with(_get_refs_sync)


# ==========================================================================================
# enable / disable
# ==========================================================================================
_SHUFFLE_METHODS = ("tasks", "disk")
_enabled: list = []  # the dask.config.set objects of enable_dask_on_ray(), oldest first


class _DaskOnRaylite:
    """What ``enable_dask_on_ray()`` returns: the setting is on already; used as a context
    manager, it is undone on exit."""

    def __init__(self, setting: Any):
        self._setting = setting

    def __enter__(self) -> "_DaskOnRaylite":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._setting in _enabled:
            while _enabled:  # later enables inside this one are undone with it
                setting = _enabled.pop()
                setting.__exit__(None, None, None)
                if setting is self._setting:
                    break


def enable_dask_on_ray(shuffle: str = "tasks", use_shuffle_optimization: bool = True,
                       sync: bool = False) -> _DaskOnRaylite:
    """Make raylite Dask's scheduler (``dask.config`` ``scheduler``), until
    ``disable_dask_on_ray()`` or the end of a ``with`` block.

    Args:
        shuffle: the dataframe shuffle method: ``"tasks"`` (each shuffle step is a raylite
            task) or ``"disk"``.
        use_shuffle_optimization: accepted for Ray's signature; Dask's own shuffle is used.
        sync: use ``ray_dask_get_sync`` (one task at a time) instead of ``ray_dask_get``.

    Example:
        >>> import dask.array as da
        >>> import raylite
        >>> from raylite.util.dask import enable_dask_on_ray
        >>> _ = raylite.init(num_cpus=2)
        >>> with enable_dask_on_ray():
        ...     int(da.arange(5, chunks=2).sum().compute())
        10
        >>> raylite.shutdown()
    """
    import dask
    if shuffle not in _SHUFFLE_METHODS:
        raise ValueError(f"enable_dask_on_ray(shuffle={shuffle!r}): use one of {_SHUFFLE_METHODS}"
                         f"{did_you_mean(str(shuffle), _SHUFFLE_METHODS)}")
    scheduler = ray_dask_get_sync if sync else ray_dask_get
    setting = dask.config.set({"scheduler": scheduler, "dataframe.shuffle.method": shuffle})
    _enabled.append(setting)
    return _DaskOnRaylite(setting)


def disable_dask_on_ray() -> None:
    """Give Dask back the scheduler settings it had before ``enable_dask_on_ray()``."""
    while _enabled:
        _enabled.pop().__exit__(None, None, None)
