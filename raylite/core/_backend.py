"""The protocol every runtime behind the public API implements.

    raylite.init() ──▶ one Backend ◀── get / put / wait / remote / actors (raylite.core._api)

    Node             the local multi-process runtime (the driver's side)   raylite.core.local
    WorkerClient     the same API from inside a local worker process       raylite.core.local
    InlineBackend    init(local_mode=True): everything runs in the caller  raylite.core.inline
    DaskBackend      init(address=...): a Dask cluster                     raylite.core.dask._backend
    WorkerBackend    the same API from inside a Dask task or actor         raylite.core.dask._backend

``_api`` talks to the backend only through these methods, and never asks which kind it has.
Abstract methods are what each backend must provide; the others have a default that fits a
backend without the feature (no dashboard, no timeline).
"""

from __future__ import annotations

import abc
import concurrent.futures
from typing import Any

from raylite.core._refs import ObjectRef


class Backend(abc.ABC):
    """One runtime: tasks, actors, objects, resources and what status pages read."""

    #: whether raylite.shutdown() stops it (a worker's client belongs to its driver)
    owns_runtime: bool = True

    # ----- work -----------------------------------------------------------------------------
    @abc.abstractmethod
    def submit_task(self, function: Any, args: tuple, kwargs: dict, options: dict,
                    resources: dict, placement: Any) -> list[ObjectRef]:
        """Run a RemoteFunction; its return refs."""

    @abc.abstractmethod
    def create_actor(self, actor_class: Any, args: tuple, kwargs: dict, options: dict,
                     resources: dict, placement: Any, actor_options: dict) -> bytes:
        """Start an actor; its id (a name clash raises ValueError here)."""

    @abc.abstractmethod
    def submit_actor_call(self, actor_id: bytes, class_name: str, method: str, args: tuple,
                          kwargs: dict, num_returns: int, options: dict) -> list[ObjectRef]:
        """Call an actor's method; its return refs (calls run in submission order)."""

    @abc.abstractmethod
    def cancel(self, object_id: bytes, force: bool) -> None:
        """Cancel the task that makes ``object_id``."""

    # ----- objects --------------------------------------------------------------------------
    @abc.abstractmethod
    def get(self, refs: list[ObjectRef], timeout: float | None) -> list:
        """Values of refs (raises the task's error, GetTimeoutError)."""

    @abc.abstractmethod
    def put(self, value: Any) -> ObjectRef:
        """Store a value."""

    @abc.abstractmethod
    def wait(self, refs: list[ObjectRef], num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list, list]:
        """(ready, not ready)."""

    @abc.abstractmethod
    def future(self, ref: ObjectRef) -> concurrent.futures.Future:
        """A Future completed with the ref's value (or error), without a thread waiting on it."""

    # ----- actors ---------------------------------------------------------------------------
    @abc.abstractmethod
    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        """Stop an actor now."""

    @abc.abstractmethod
    def get_actor(self, name: str, namespace: str | None) -> tuple:
        """(actor id, class name, class metadata) of a live named actor, else ValueError."""

    # ----- resources ------------------------------------------------------------------------
    @abc.abstractmethod
    def cluster_resources(self) -> dict[str, float]:
        """All resources."""

    @abc.abstractmethod
    def available_resources(self) -> dict[str, float]:
        """Resources not held right now."""

    @abc.abstractmethod
    def nodes(self) -> list[dict]:
        """One dict per node, as Ray's ``nodes()``."""

    @abc.abstractmethod
    def create_placement_group(self, bundles: list[dict], strategy: str, name: str) -> tuple:
        """(group id, ref that is ready once the bundles are reserved)."""

    @abc.abstractmethod
    def remove_placement_group(self, group_id: bytes) -> None:
        """Give a group's bundles back."""

    @abc.abstractmethod
    def placement_group_table(self) -> dict:
        """Every group by id (hex): name, strategy, bundles, state."""

    # ----- introspection --------------------------------------------------------------------
    @abc.abstractmethod
    def context_info(self) -> dict:
        """What ``init`` returns (node id, addresses, session folder, ...)."""

    def status(self) -> dict | None:
        """A snapshot for ``raylite status`` and the dashboard; None where there is none."""
        return None

    def timeline_events(self) -> list[dict]:
        """Task executions as Chrome-trace events, where recorded."""
        return []

    def memory_summary(self) -> dict | None:
        """Object store statistics, where there is a store of raylite's own."""
        return None

    def assigned_gpu_ids(self) -> list[int] | None:
        """The GPUs the scheduler gave the current task or actor (None: not in a worker)."""
        return None

    def current_task_id(self) -> bytes | None:
        return None

    def current_actor_id(self) -> str | None:
        return None

    def memory_folder(self) -> str:
        """The folder that ``memory://`` URIs name: on this machine, seen by every process of
        the session, removed with the session. ValueError (saying why) where there is none."""
        raise ValueError("memory:// URIs need a raylite session whose processes share one "
                         "machine; this runtime has none")

    def placement_context(self) -> tuple[bytes, bool] | None:
        """``(group id, captures child tasks)`` of the placement group the current task or
        actor runs in; None outside one (the driver, or a backend without groups)."""
        return None

    def dashboard_source(self) -> Any:
        """What the dashboard reads (the local Node), or None where it cannot show anything."""
        return None

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop everything this backend started."""


def settle(future: concurrent.futures.Future, value: Any, error: bool) -> None:
    """Complete ``future`` with a value or an exception, unless it was cancelled (even just now)."""
    try:
        future.set_exception(value) if error else future.set_result(value)
    except concurrent.futures.InvalidStateError:
        pass  # cancelled by its caller while the value was on its way
