"""Task specs and the packing of arguments and results, shared by the driver and the workers.

A :class:`TaskSpec` says everything needed to run (and re-run) one task, actor creation or
actor method call. Arguments are pickled once by the caller; ObjectRefs among the top-level
arguments are dependencies that the runtime resolves to values before the task runs, while refs
nested deeper travel as refs (as in Ray).
"""

from __future__ import annotations

import operator
import os
import pickle
from typing import Any

from raylite.core._ids import new_id
from raylite.core._refs import ObjectRef
from raylite.core._serialization import (INLINE_LIMIT, _PLAIN, describe_unpicklable, loads,
                                         read_file, serialize)

TASK, ACTOR_CREATE, ACTOR_CALL = "task", "actor_create", "actor_call"

_EMPTY_ARGS = pickle.dumps(((), None), protocol=5)


class TaskSpec:
    """One unit of work. Pickled into messages; the driver keeps it for retries and lineage."""

    __slots__ = ("task_id", "kind", "name", "function_id", "function_blob", "args", "arg_ids",
                 "contained", "return_ids", "resources", "max_retries", "retry_exceptions",
                 "placement", "actor_id", "method", "actor_options", "runtime_env", "owner")

    def __init__(self, task_id: bytes, kind: str, name: str, function_id: bytes, args: Any,
                 arg_ids: list[bytes], contained: list[bytes], return_ids: list[bytes],
                 resources: dict[str, float], max_retries: int = 0, retry_exceptions: Any = False,
                 placement: tuple | None = None, actor_id: bytes | None = None,
                 method: str | None = None, actor_options: dict | None = None,
                 function_blob: bytes | None = None):
        self.task_id = task_id
        self.kind = kind
        self.name = name
        self.function_id = function_id
        self.function_blob = function_blob
        self.args = args  # bytes, or ("s", path) for large arguments in shared memory
        self.arg_ids = arg_ids
        self.contained = contained
        self.return_ids = return_ids
        self.resources = resources
        self.max_retries = max_retries
        self.retry_exceptions = retry_exceptions
        self.placement = placement
        self.actor_id = actor_id
        self.method = method
        self.actor_options = actor_options
        self.runtime_env = None  # a prepared env (core/_runtime_env_setup.py); None: the job's
        self.owner = None  # driver-side: the worker that submitted it (None: the driver)

    def __reduce__(self):
        # A plain function and a tuple pickle several times faster than the default protocol
        # for slotted objects; an actor call (the most frequent message) sends only its fields.
        if self.kind == ACTOR_CALL:
            return (_call_spec, (self.task_id, self.name, self.args, self.arg_ids, self.contained,
                                 self.return_ids, self.actor_id, self.method, self.actor_options))
        return (_spec_from_fields, _spec_fields(self))


_spec_fields = operator.attrgetter(*TaskSpec.__slots__[:-1])  # all but owner, as a tuple


def _spec_from_fields(*fields) -> TaskSpec:
    spec = TaskSpec.__new__(TaskSpec)
    (spec.task_id, spec.kind, spec.name, spec.function_id, spec.function_blob, spec.args,
     spec.arg_ids, spec.contained, spec.return_ids, spec.resources, spec.max_retries,
     spec.retry_exceptions, spec.placement, spec.actor_id, spec.method,
     spec.actor_options, spec.runtime_env) = fields
    spec.owner = None
    return spec


def _call_spec(task_id, name, args, arg_ids, contained, return_ids, actor_id, method,
               actor_options) -> TaskSpec:
    return TaskSpec(task_id, ACTOR_CALL, name, b"", args, arg_ids, contained, return_ids, {},
                    actor_id=actor_id, method=method, actor_options=actor_options)


def pack_args(args: tuple, kwargs: dict, name: str, shm_dir: str | None,
              new_id) -> tuple[Any, list[bytes], list[bytes]]:
    """Pickle call arguments. Returns (args payload, top-level ref ids, all contained ref ids)."""
    if not kwargs:  # no refs: empty tuples, shared (a tracked list per call costs GC time)
        if not args:
            return _EMPTY_ARGS, (), ()
        if all(type(a) in _PLAIN for a in args):
            return pickle.dumps((args, None), protocol=5), (), ()
    try:
        packed = serialize((args, kwargs or None))
    except Exception as exc:
        raise _unpicklable_error(args, kwargs, name, exc) from None
    top = [a._id for a in args if type(a) is ObjectRef]
    if kwargs:
        top += [v._id for v in kwargs.values() if type(v) is ObjectRef]
    if packed.size > INLINE_LIMIT and shm_dir is not None:
        path = os.path.join(shm_dir, "args-" + new_id().hex())
        packed.write_file(path)
        return ("s", path), top, packed.contained
    return packed.to_bytes(), top, packed.contained


def _unpicklable_error(args: tuple, kwargs: dict, name: str, exc: Exception) -> TypeError:
    labelled = [(f"argument {i}", a) for i, a in enumerate(args)]
    labelled += [(f"argument {k!r}", v) for k, v in (kwargs or {}).items()]
    culprit = "one of the arguments"
    for label, value in labelled:
        try:
            serialize(value)
        except Exception:
            culprit = describe_unpicklable(value, label)
            break
    return TypeError(
        f"Could not serialize the arguments of {name}(): {culprit} cannot be pickled "
        f"({type(exc).__name__}: {exc}). Pass something picklable instead (for example a path or "
        "a config), or create the object inside the task or actor.")


def unpack_args(payload: Any) -> tuple[tuple, dict]:
    """Inverse of ``pack_args`` (refs come back as ObjectRefs; resolve them separately)."""
    if type(payload) is tuple:
        args, kwargs = read_file(payload[1])
    elif payload[:4] == b"RLO1":
        args, kwargs = loads(payload)
    else:
        args, kwargs = pickle.loads(payload)
    return args, (kwargs or {})


def pack_value(value: Any, shm_dir: str, object_id: bytes) -> tuple:
    """Serialize a result or put value: ("i", bytes, contained) or ("s", path, size, contained)."""
    if type(value) in _PLAIN:
        return ("i", pickle.dumps(value, protocol=5), ())
    packed = serialize(value)
    if packed.size <= INLINE_LIMIT:
        return ("i", packed.to_bytes(), packed.contained)
    path = os.path.join(shm_dir, object_id.hex() + "-" + os.urandom(4).hex())  # unique per attempt
    size = packed.write_file(path)
    return ("s", path, size, packed.contained)


def unpack_value(kind: str, data: Any) -> Any:
    """Read a value from its location: inline bytes ("i"/"e") or a shared-memory path ("s"/"E")."""
    if kind in ("i", "e"):
        if data[:4] == b"RLO1":
            return loads(data)
        return pickle.loads(data)
    return read_file(data)


def _new_ids(n: int) -> tuple[bytes, ...]:
    """Ids for a spec's return objects, as a tuple (the collector stops tracking it)."""
    return (new_id(),) if n == 1 else tuple(new_id() for _ in range(n))


class SpecSubmitter:
    """Turns API calls into TaskSpecs; mixed into the backends that run work in processes.

    Subclasses provide ``submit(spec, function_blob)`` and ``shm_dir``.
    """

    shm_dir: str | None = None
    session_dir: str | None = None
    job_env: dict | None = None      # the job's normalized runtime_env (init's)
    parent_env: dict | None = None   # the running worker's prepared env; None: the job's

    def submit(self, spec: TaskSpec, function_blob: bytes | None) -> list:
        raise NotImplementedError

    def env_for(self, options: dict) -> dict | None:
        """The prepared runtime env a new task or actor runs in (None: the job's): its
        parent's, or the one it names merged over its parent's (core/_runtime_env.py)."""
        requested = options.get("runtime_env")
        if requested is None:
            return self.parent_env
        cache = self.__dict__.setdefault("_env_cache", {})  # by the (kept) options' env object
        known = cache.get(id(requested))
        if known is not None and known[0] is requested:
            return known[1]
        from raylite.core._runtime_env import env_key, merge
        from raylite.core._runtime_env_setup import prepare
        parent = self.parent_env["env"] if self.parent_env is not None else self.job_env
        env = merge(parent, requested)
        prepared = None if env_key(env) == env_key(self.job_env) else prepare(env, self.session_dir)
        if len(cache) >= 256:
            cache.clear()
        cache[id(requested)] = (requested, prepared)
        return prepared

    def submit_task(self, function, args: tuple, kwargs: dict, options: dict,
                    resources: dict, placement) -> list:
        name = options.get("name") or function._name
        payload, top, contained = pack_args(args, kwargs, name, self.shm_dir, new_id)
        num_returns = options.get("num_returns", 1)
        spec = TaskSpec(new_id(), TASK, name, function._function_id, payload, top, contained,
                        _new_ids(num_returns), resources,
                        options.get("max_retries", 3), options.get("retry_exceptions", False),
                        placement)
        if self.parent_env is not None or "runtime_env" in options:
            spec.runtime_env = self.env_for(options)
        return self.submit(spec, function._blob())

    def create_actor(self, actor_class, args: tuple, kwargs: dict, options: dict,
                     resources: dict, placement, actor_options: dict) -> bytes:
        name = f"{actor_class._name}.__init__"
        payload, top, contained = pack_args(args, kwargs, name, self.shm_dir, new_id)
        actor_id = new_id()
        spec = TaskSpec(new_id(), ACTOR_CREATE, name, actor_class._function_id, payload, top,
                        contained, [new_id()], resources, placement=placement, actor_id=actor_id,
                        actor_options=actor_options, function_blob=actor_class._blob())
        spec.runtime_env = self.env_for(options)
        self.submit(spec, None)
        return actor_id

    def submit_actor_call(self, actor_id: bytes, class_name: str, method: str, args: tuple,
                          kwargs: dict, num_returns: int, options: dict) -> list:
        name = options.get("name") or f"{class_name}.{method}"
        payload, top, contained = pack_args(args, kwargs, name, self.shm_dir, new_id)
        group = options.get("concurrency_group")
        spec = TaskSpec(new_id(), ACTOR_CALL, name, b"", payload, top, contained,
                        (new_id(),) if num_returns == 1 else _new_ids(num_returns), {},
                        actor_id=actor_id,
                        method=method,
                        actor_options={"concurrency_group": group} if group else None)
        return self.submit(spec, None)
