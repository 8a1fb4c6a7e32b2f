"""Actor pools: stateful stages (a model to load once, then apply to many rows or batches).

``map_batches(Model, compute=ActorPoolStrategy(2, 4))`` (or ``compute="actors"``, or Ray 2.x's
``concurrency=4``; likewise ``map``, ``flat_map`` and ``filter`` with a callable class) runs
each block's fused chain on one actor of a pool instead of in a task. Each actor builds
``Model(*fn_constructor_args, **fn_constructor_kwargs)`` once, the first time it meets the
stage, and keeps it for every later block:

    driver: stream() ──► pool.submit(block) ──► least-loaded actor (a new one while all are
                                                busy and the pool is below max_size)
    actor:  BlockWorker.run(source, stages) ──► the same chain a task would run

The pool lives as long as the execution that made it, and its actors are then ended.
"""

from __future__ import annotations

import warnings
from typing import Any

import raylite


class ActorPoolStrategy:
    """Run a stage on a pool of between ``min_size`` and ``max_size`` actors.

    Args:
        min_size: actors started at once.
        max_size: the most actors; more are started while all are busy (None: as many as the
            cluster's CPUs, or GPUs when the stage asks for GPUs, allow).
        size: a fixed pool size (sets both).

    Example:
        >>> import raylite as ray
        >>> class AddOne:
        ...     def __call__(self, batch):
        ...         return [x + 1 for x in batch]
        >>> ray.data.range(3).map_batches(AddOne, compute=ray.data.ActorPoolStrategy(size=1)).take()
        [1, 2, 3]
    """

    def __init__(self, min_size: int = 1, max_size: int | None = None, *,
                 size: int | None = None, max_tasks_in_flight_per_actor: int | None = None):
        if size is not None:
            min_size = max_size = size
        for name, value in (("min_size", min_size), ("max_size", max_size), ("size", size)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 1):
                raise ValueError(f"ActorPoolStrategy({name}=...) must be a positive int, "
                                 f"got {value!r}")
        if max_size is not None and max_size < min_size:
            raise ValueError(f"ActorPoolStrategy: max_size ({max_size}) is smaller than "
                             f"min_size ({min_size})")
        self.min_size = min_size
        self.max_size = max_size

    def __repr__(self) -> str:
        return f"ActorPoolStrategy(min_size={self.min_size}, max_size={self.max_size})"


def compute_strategy(compute: Any, concurrency: Any, fn: Any,
                     operation: str) -> ActorPoolStrategy | None:
    """The strategy for ``compute=`` / ``concurrency=`` (None: plain tasks).

    A callable class always runs on an actor pool, so that it is constructed once per actor;
    ``compute="tasks"`` for one is an error. A plain function with ``concurrency=`` (and no
    ``compute``) still runs in tasks, as in Ray 2.x.
    """
    from raylite.data._stages import is_callable_class
    is_class = is_callable_class(fn)
    if isinstance(compute, ActorPoolStrategy):
        return compute
    if compute not in (None, "tasks", "actors"):
        raise ValueError(f"{operation}(compute={compute!r}): expected 'tasks', 'actors' or "
                         "ActorPoolStrategy(min_size, max_size)")
    if compute == "tasks" and is_class:
        raise ValueError(
            f"{operation}({fn.__name__}, compute='tasks'): {fn.__name__} is a callable class, "
            f"which runs on an actor pool (constructed once per actor), not in tasks; pass "
            f"concurrency=n or compute=ActorPoolStrategy(size=n) instead (or a function, or "
            f"an instance of {fn.__name__}, to run in tasks)")
    pool = _from_concurrency(concurrency, operation, fn if is_class else None)
    if compute == "actors" or is_class:
        return pool or ActorPoolStrategy()
    return None


def _from_concurrency(concurrency: Any, operation: str,
                      cls: type | None = None) -> ActorPoolStrategy | None:
    if concurrency is None:
        return None
    if isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency > 0:
        return ActorPoolStrategy(size=concurrency)
    if (isinstance(concurrency, tuple) and len(concurrency) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                    for v in concurrency)
            and concurrency[0] <= concurrency[1]):
        return ActorPoolStrategy(concurrency[0], concurrency[1])
    if cls is None:
        raise ValueError(f"{operation}(concurrency={concurrency!r}): expected a positive int (a "
                         "pool of that many actors) or a (min, max) tuple with min <= max")
    raise ValueError(f"{operation}({cls.__name__}, concurrency={concurrency!r}): the callable "
                     f"class {cls.__name__} runs on a pool of actors; pass concurrency=n (a "
                     "positive int: n actors) or concurrency=(min, max) with 0 < min <= max")


class BlockWorker:
    """The actor of a pool: runs block chains, keeping the instances of callable classes."""

    def __init__(self, num_cpus: float = 1):
        # As many math threads as the actor holds CPUs (Ray sets OMP_NUM_THREADS so too), not
        # one per core in every actor: a pool of N actors would oversubscribe the machine N
        # times (torch's default). Set before the stage's class is unpickled and built.
        import os
        threads = str(max(1, int(num_cpus or 1)))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
            os.environ.setdefault(name, threads)
        self.instances: dict[str, Any] = {}

    def run(self, source: Any, stages: tuple, tail: Any):
        from raylite.data._plan import _execute_block
        from raylite.data._stages import _actor_state
        _actor_state.instances = self.instances
        try:
            return _execute_block(source, stages, tail)
        finally:
            _actor_state.instances = None

    def ping(self) -> bool:
        return True


_BlockWorkerActor = raylite.remote(BlockWorker)

_ACTOR_OPTIONS = ("num_cpus", "num_gpus", "memory", "resources", "accelerator_type")


def _describe(options: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items() if v)


class ActorPool:
    """The actors running one execution's stateful stages, fed least-loaded first."""

    def __init__(self, strategy: ActorPoolStrategy, remote_args: dict):
        self.options = {k: v for k, v in remote_args.items() if k in _ACTOR_OPTIONS}
        self.options.setdefault("num_cpus", 1)
        fits = self._default_max()
        self.min_size = strategy.min_size
        self.max_size = max(strategy.max_size or fits, self.min_size)
        if self.max_size > fits:  # actors that could never start would hold their blocks
            warnings.warn(f"raylite.data: an actor pool of {self.max_size} actors, each with "
                          f"{_describe(self.options)}, does not fit in the cluster; using "
                          f"{fits}", stacklevel=2)
            self.max_size, self.min_size = fits, min(self.min_size, fits)
        self.actors: list = []
        self.loads: list[int] = []
        for _ in range(self.min_size):
            self._add()

    def _default_max(self) -> int:
        total = raylite.cluster_resources()
        limits = []
        for resource, key in (("CPU", "num_cpus"), ("GPU", "num_gpus")):
            need = self.options.get(key) or 0
            if need:
                limits.append(int(total.get(resource, 0) // need))
        return max(1, min(limits) if limits else int(total.get("CPU", 1)))

    def _add(self) -> None:
        self.actors.append(_BlockWorkerActor.options(**self.options).remote(
            self.options.get("num_cpus", 1)))
        self.loads.append(0)

    def submit(self, source: Any, stages: Any, tail: Any) -> tuple[Any, Any, int]:
        index = min(range(len(self.actors)), key=self.loads.__getitem__)
        if self.loads[index] and len(self.actors) < self.max_size:
            self._add()
            index = len(self.actors) - 1
        self.loads[index] += 1
        block_ref, meta_ref = self.actors[index].run.options(num_returns=2).remote(
            source, stages, tail)
        return block_ref, meta_ref, index

    def release(self, index: int) -> None:
        self.loads[index] -= 1

    @property
    def size(self) -> int:
        return len(self.actors)

    def shutdown(self) -> None:
        actors, self.actors = self.actors, []
        for actor in actors:
            try:
                raylite.kill(actor)
            except Exception:  # already gone, or the runtime is shutting down
                pass
