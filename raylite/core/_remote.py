"""Remote functions and actor classes: what ``@remote`` makes, and the handles it gives back.

    @remote def f ──▶ RemoteFunction ──.remote()──▶ backend.submit_task ──▶ ObjectRef(s)
    @remote class C ──▶ ActorClass ──.remote()──▶ backend.create_actor ──▶ ActorHandle
    handle.method ──▶ ActorMethod ──.remote()──▶ backend.submit_actor_call ──▶ ObjectRef(s)

Options are checked where they are written (``@remote(...)``, ``.options(...)``), placement is
resolved against the caller's placement group, and the current backend comes from
``raylite.core._api`` at call time, so these objects survive ``shutdown``/``init`` and pickling.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from raylite._suggest import did_you_mean
from raylite.core import _api, _generators, _ids, _refs
from raylite.core._options import (ACTOR_OPTIONS, METHOD_OPTIONS, TASK_OPTIONS, check_options,
                                   placement_of, resolve_placement, to_resources)


# ==========================================================================================
# remote functions
# ==========================================================================================
class RemoteFunction:
    """A function made remote by ``@raylite.remote``: call it with ``.remote(...)``."""

    def __init__(self, function: Callable, options: dict[str, Any]):
        self._function = function
        self._name = getattr(function, "__name__", "task")
        self._options = check_options(dict(options), TASK_OPTIONS, f"@remote on {self._name}")
        self._function_id = _ids.new_id()
        self._pickled: bytes | None = None
        self._prepared: tuple | None = None
        self._source = _source_file(function)
        self._default_returns = _generators.default_num_returns(function)
        functools.update_wrapper(self, function)

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Remote functions cannot be called directly. Instead of running "
                        f"'{self._name}()', try '{self._name}.remote()'.")

    def _blob(self) -> bytes:
        if self._pickled is None:
            from raylite.core._serialization import dumps_function
            try:
                self._pickled = dumps_function(self._function, self._source)
            except Exception as exc:
                raise TypeError(f"Could not serialize the remote function {self._name}: {exc}. "
                                "It captures something unpicklable in its closure or globals "
                                "(a lock, a socket, a client); create that inside the function.") from None
        return self._pickled

    def remote(self, *args, **kwargs):
        """Run the function as a task; returns an ObjectRef (a list of them if num_returns > 1)."""
        return self._remote(args, kwargs, self._options, self._prepared)

    def options(self, **options) -> "_BoundRemoteFunction":
        """Override ``@remote`` options for one call: ``f.options(num_cpus=2).remote(x)``."""
        merged = dict(self._options)
        merged.update(check_options(options, TASK_OPTIONS, f"{self._name}.options()"))
        return _BoundRemoteFunction(self, merged)

    def _remote(self, args, kwargs, options, prepared):
        backend = _api._backend()
        if prepared is None or prepared[0] is not backend:
            prepared = (backend, to_resources(options, 1), placement_of(options))
            if options is self._options:
                self._prepared = prepared
        n = options.get("num_returns", self._default_returns)
        placement = resolve_placement(prepared[2], backend.placement_context())
        if type(n) is str or self._default_returns != 1:  # a generator: core/_generators.py
            return _generators.submit(backend, lambda kw, extra: backend.submit_task(
                self, args, kw, {**options, **extra}, prepared[1], placement), kwargs, n,
                options.get("name") or self._name, bool(options.get("retry_exceptions")))
        refs = backend.submit_task(self, args, kwargs, options, prepared[1], placement)
        return refs[0] if n == 1 else (refs if n > 1 else None)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_pickled"] = None
        state["_prepared"] = None
        return state

    def bind(self, *args, **kwargs):
        raise NotImplementedError("DAG building with .bind() is not part of raylite's core; "
                                  "call .remote() instead")


class _BoundRemoteFunction:
    def __init__(self, function: RemoteFunction, options: dict):
        self._function = function
        self._options = options

    def remote(self, *args, **kwargs):
        return self._function._remote(args, kwargs, self._options, None)


# ==========================================================================================
# actors
# ==========================================================================================
class ActorClass:
    """A class made remote by ``@raylite.remote``: create actors with ``.remote(...)``."""

    def __init__(self, cls: type, options: dict[str, Any]):
        self._cls = cls
        self._name = cls.__name__
        self._options = check_options(dict(options), ACTOR_OPTIONS, f"@remote on class {self._name}")
        self._function_id = _ids.new_id()
        self._pickled: bytes | None = None
        self._source = _source_file(cls)
        self._meta = _generators.mark_methods(cls, _method_meta(cls))
        self.__doc__ = cls.__doc__
        self.__name__ = cls.__name__
        self.__module__ = cls.__module__
        self.__qualname__ = cls.__qualname__

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actors cannot be instantiated directly. Instead of '{self._name}()', "
                        f"use '{self._name}.remote()'.")

    def _blob(self) -> bytes:
        if self._pickled is None:
            from raylite.core._serialization import dumps_function
            self._pickled = dumps_function(self._cls, self._source)
        return self._pickled

    def remote(self, *args, **kwargs) -> "ActorHandle":
        return self._remote(args, kwargs, self._options)

    def options(self, **options) -> "_BoundActorClass":
        merged = dict(self._options)
        merged.update(check_options(options, ACTOR_OPTIONS, f"{self._name}.options()"))
        return _BoundActorClass(self, merged)

    def _remote(self, args, kwargs, options) -> "ActorHandle":
        backend = _api._backend()
        name = options.get("name")
        if name is not None and options.get("get_if_exists"):
            try:
                return _api.get_actor(name, options.get("namespace"))
            except ValueError:
                pass
        is_async = any(m["is_async"] for m in self._meta.values())
        groups = options.get("concurrency_groups") or {}
        for method_name, meta in self._meta.items():
            group = meta["concurrency_group"]
            if group is not None and group not in groups:
                raise ValueError(f"{self._name}.{method_name} runs in concurrency group {group!r}, "
                                 f"which {self._name} does not declare{did_you_mean(group, groups)}"
                                 f": add it to @remote(concurrency_groups={{...}})")
        actor_options = {
            "concurrency_groups": dict(groups),
            "class_name": self._name, "meta": self._meta, "name": name,
            "namespace": options.get("namespace") or (_api._context or {}).get("namespace"),
            "max_restarts": options.get("max_restarts", 0),
            "max_task_retries": options.get("max_task_retries", 0),
            "max_concurrency": options.get("max_concurrency") or (1000 if is_async else 1),
            "is_async": is_async, "lifetime": options.get("lifetime"),
        }
        placement = resolve_placement(placement_of(options), backend.placement_context())
        actor_id = backend.create_actor(self, args, kwargs, options, to_resources(options, 0),
                                        placement, actor_options)
        return ActorHandle(actor_id, self._name, self._meta)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_pickled"] = None
        return state


class _BoundActorClass:
    def __init__(self, actor_class: ActorClass, options: dict):
        self._actor_class = actor_class
        self._options = options

    def remote(self, *args, **kwargs) -> "ActorHandle":
        return self._actor_class._remote(args, kwargs, self._options)


def _method_meta(cls: type) -> dict[str, dict]:
    meta = {}
    for name, member in inspect.getmembers(cls, predicate=callable):
        if name.startswith("__") and name not in ("__call__",):
            continue
        function = getattr(member, "__func__", member)
        meta[name] = {
            "num_returns": getattr(function, "__raylite_num_returns__", 1),
            "concurrency_group": getattr(function, "__raylite_concurrency_group__", None),
            "is_async": inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function),
        }
    return meta


class ActorHandle:
    """A handle to a running actor; pass it to tasks and other actors freely."""

    def __init__(self, actor_id: bytes, class_name: str, meta: dict[str, dict]):
        self._actor_id = actor_id
        self._class_name = class_name
        self._meta = meta
        _refs._tracker.add(actor_id)  # counted like an ObjectRef: unnamed actors end with their handles

    def __del__(self):
        try:
            _refs._released.append(self._actor_id)
        except Exception:  # interpreter shutdown
            pass

    def __getattr__(self, name: str) -> "ActorMethod":
        meta = self.__dict__.get("_meta")
        if meta is None or name.startswith("__"):
            raise AttributeError(name)
        if name not in meta:
            raise AttributeError(f"actor {self._class_name} has no method {name!r}"
                                 f"{did_you_mean(name, meta)}")
        return ActorMethod(self, name, meta[name]["num_returns"], {})

    def __reduce__(self):
        collected = getattr(_refs._local, "collected", None)
        if collected is not None:  # a task or object holding this handle keeps the actor alive
            collected.append(self._actor_id)
        return (ActorHandle, (self._actor_id, self._class_name, self._meta))

    def __repr__(self) -> str:
        return f"Actor({self._class_name}, {self._actor_id.hex()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)


class ActorMethod:
    """``handle.method``: call with ``.remote(...)``; ``.options(num_returns=...)``."""

    __slots__ = ("_handle", "_name", "_num_returns", "_options")

    def __init__(self, handle: ActorHandle, name: str, num_returns: int, options: dict):
        self._handle = handle
        self._name = name
        self._num_returns = num_returns
        self._options = options

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actor methods cannot be called directly. Instead of "
                        f"'{self._name}()', try '{self._name}.remote()'.")

    def remote(self, *args, **kwargs):
        handle = self._handle
        n = self._num_returns
        if type(n) is str or handle._meta[self._name].get("generator"):  # core/_generators.py
            return _generators.submit(_api._backend(), lambda kw, extra: _api._backend().submit_actor_call(
                handle._actor_id, handle._class_name, self._name, args, kw, extra["num_returns"],
                self._options), kwargs, n, f"{handle._class_name}.{self._name}")
        refs = _api._backend().submit_actor_call(handle._actor_id, handle._class_name, self._name, args,
                                            kwargs, n, self._options)
        return refs[0] if n == 1 else (refs if n > 1 else None)

    def options(self, **options) -> "ActorMethod":
        """Per call: ``num_returns``, ``name``, ``concurrency_group`` (one the actor declares)."""
        check_options(options, METHOD_OPTIONS, f"{self._name}.options()")
        return ActorMethod(self._handle, self._name, options.get("num_returns", self._num_returns),
                           options)


def method(*, num_returns: int | str | None = None, concurrency_group: str | None = None):
    """Decorate an actor method: ``@raylite.method(num_returns=2)`` (unset: 1, or "streaming"
    for a generator method); ``concurrency_group`` runs its calls in one of the groups the
    actor declares (``concurrency_groups=``)."""
    if num_returns is not None:
        check_options({"num_returns": num_returns}, METHOD_OPTIONS, "@method")
    if concurrency_group is not None and (not isinstance(concurrency_group, str)
                                          or not concurrency_group):
        raise ValueError(f"@method(concurrency_group=...) must name a group, got "
                         f"{concurrency_group!r}")

    def decorate(function):
        if num_returns is not None:
            function.__raylite_num_returns__ = num_returns
        if concurrency_group is not None:
            function.__raylite_concurrency_group__ = concurrency_group
        return function
    return decorate


def remote(*args, **options):
    """Make a function a task or a class an actor: ``@remote`` or ``@remote(num_cpus=2)``.

    Example:
        >>> import raylite as ray
        >>> @ray.remote
        ... def square(x):
        ...     return x * x
        >>> ray.get(square.remote(4))
        16
    """
    if len(args) == 1 and not options and callable(args[0]):
        return _make_remote(args[0], {})
    if args:
        raise TypeError("@remote takes either no arguments or only keyword options, as in "
                        "@remote(num_cpus=2)")
    return lambda target: _make_remote(target, options)


def _source_file(target) -> str | None:
    from raylite.core._serialization import source_file
    return source_file(target)


def _make_remote(target, options):
    if inspect.isclass(target):
        return ActorClass(target, options)
    if callable(target):
        return RemoteFunction(target, options)
    raise TypeError(f"@remote decorates functions and classes, not {type(target).__name__}")
