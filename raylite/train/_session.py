"""The session API the training function talks to: ``train.report``, ``train.world_rank`` ...

Each worker process has a :class:`WorkerContext` (its ranks, set once when the group starts)
and, while a training function runs, a :class:`TrainSession`. The function runs in a thread of
the worker actor; what it reports is queued as numbered events that the driver collects with
long polls (``TrainWorker.poll`` in ``_worker_group.py``)::

    training thread                       worker actor                      driver
    report(**metrics) --append--> events ----take(acked)---> poll() ----> per-rank queues
    save_checkpoint(**state) ------^      waits until the driver has acked its number, so a
                                          checkpoint is safe on the driver once it returns

``report`` does not wait for the driver (it waits only when more than MAX_PENDING_EVENTS are
queued); ``save_checkpoint`` does, so that a worker that crashes right after it loses nothing.
"""

from __future__ import annotations

import pickle
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_PENDING_EVENTS = 256  # a training function runs at most this many reports ahead of the driver

_local = threading.local()
_process_session: TrainSession | None = None
_worker_context: WorkerContext | None = None


@dataclass
class WorkerContext:
    """Where one worker stands in its group (``train.get_context()`` in Ray 2.x terms)."""

    world_rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    node_rank: int = 0
    gpu_ids: list[int] = field(default_factory=list)
    device_index: int | None = None  # this worker's CUDA device, when it has a GPU
    trial_name: str = ""
    trial_id: str = ""
    experiment_name: str = ""
    logdir: str = ""

    # the Ray 2.x TrainContext methods
    def get_world_rank(self) -> int:
        return self.world_rank

    def get_local_rank(self) -> int:
        return self.local_rank

    def get_world_size(self) -> int:
        return self.world_size

    def get_local_world_size(self) -> int:
        return self.local_world_size

    def get_node_rank(self) -> int:
        return self.node_rank

    def get_trial_name(self) -> str:
        return self.trial_name

    def get_trial_id(self) -> str:
        return self.trial_id

    def get_experiment_name(self) -> str:
        return self.experiment_name

    def get_trial_dir(self) -> str:
        return self.logdir


def set_worker_context(context: WorkerContext) -> None:
    """Called on each worker when its group starts (the driver computes the ranks)."""
    global _worker_context
    _worker_context = context


def worker_context() -> WorkerContext:
    """This process's context; a group of one (rank 0 of 1) outside a Trainer."""
    return _worker_context or WorkerContext()


class TrainSession:
    """The state of one run of the training function on one worker."""

    def __init__(self, context: WorkerContext, dataset_shard: Any = None,
                 checkpoint: tuple | None = None):
        self.context = context
        self.dataset_shard = dataset_shard
        self.initial_checkpoint = checkpoint  # a payload (see _checkpoint.py), or None
        self.iteration = 0
        self._last_time = time.time()
        self._cond = threading.Condition()
        self._events: list[tuple] = []
        self._next_seq = 1
        self._acked = 0
        self.finished = False
        self.error: tuple[str, bytes | None] | None = None
        self.output: Any = None

    # ---- the training function's side --------------------------------------------------------
    def report(self, metrics: dict, checkpoint: Any = None) -> None:
        now = time.time()
        self.iteration += 1
        result = dict(metrics)
        result.setdefault("_timestamp", int(now))
        result.setdefault("_time_this_iter_s", now - self._last_time)
        result.setdefault("_training_iteration", self.iteration)
        self._last_time = now
        if checkpoint is not None:
            self.save_checkpoint(checkpoint)
        self._append(("report", result), wait_for_driver=False)

    def save_checkpoint(self, checkpoint: Any) -> None:
        """Ship rank 0's checkpoint to the driver; return once the driver holds it."""
        if self.context.world_rank != 0:
            return
        from raylite.train._checkpoint import to_payload
        self._append(("checkpoint", to_payload(checkpoint)), wait_for_driver=True)

    def _append(self, event: tuple, wait_for_driver: bool) -> None:
        with self._cond:
            while len(self._events) >= MAX_PENDING_EVENTS:
                self._cond.wait()
            seq = self._next_seq
            self._next_seq += 1
            self._events.append((seq,) + event)
            self._cond.notify_all()
            while wait_for_driver and self._acked < seq:
                self._cond.wait()

    # ---- the actor's side ----------------------------------------------------------------------
    def finish(self, output: Any = None, error: tuple | None = None) -> None:
        with self._cond:
            self.finished = True
            self.output = output
            self.error = error
            self._cond.notify_all()

    def take(self, acked: int, timeout: float | None) -> tuple[list, bool, Any, Any]:
        """Note that the driver holds events up to ``acked``; wait for new events or the end
        and return ``(events, finished, error, output)``. Events come before the end."""
        with self._cond:
            self._acked = max(self._acked, acked)
            self._cond.notify_all()
            if not self._events and not self.finished:
                self._cond.wait(timeout)
            events, self._events = self._events, []
            self._cond.notify_all()
            if events or not self.finished:
                return events, False, None, None
            return [], True, self.error, self.output


def pack_function(function: Callable) -> tuple[Callable, str | None]:
    """(function, its source file): a function pickled by value (one from ``__main__`` or a
    test module) loses its file name, and :func:`unpack_function` puts it back, so that a
    worker's traceback shows the user's lines."""
    import inspect
    try:
        return function, inspect.getsourcefile(function)
    except (TypeError, OSError):
        return function, None


def unpack_function(packed: tuple[Callable, str | None]) -> Callable:
    function, filename = packed
    code = getattr(function, "__code__", None)
    if filename and code is not None and code.co_filename.startswith("<"):
        try:
            function.__code__ = _with_filename(code, filename)
        except (TypeError, ValueError):
            pass
    return function


def _with_filename(code: Any, filename: str) -> Any:
    consts = tuple(_with_filename(c, filename) if hasattr(c, "co_filename") else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def run_training(function: Callable, config: dict | None, session: TrainSession) -> None:
    """The body of the training thread: call ``function`` and record how it ended."""
    global _process_session
    _local.session = session
    _process_session = session
    try:
        _use_own_gpu(session.context)
        output = call_with_config(function, config)
    except BaseException as exc:  # noqa: BLE001 - the driver reports it with the worker's rank
        session.finish(error=(_user_traceback(exc), _pickled_or_none(exc)))
    else:
        session.finish(output=output)
    finally:
        _local.session = None
        if _process_session is session:
            _process_session = None


def _use_own_gpu(context: WorkerContext) -> None:
    """Make this worker's GPU the training thread's current CUDA device (it is per thread)."""
    torch = sys.modules.get("torch")
    if context.device_index is not None and torch is not None and torch.cuda.is_available():
        torch.cuda.set_device(context.device_index)


def call_with_config(function: Callable, config: dict | None) -> Any:
    """``function(config)`` or ``function()``, as its signature asks (as Ray Train does)."""
    import inspect
    try:
        takes_config = len(inspect.signature(function).parameters) > 0
    except (TypeError, ValueError):
        takes_config = True
    return function(config or {}) if takes_config else function()


def _user_traceback(exc: BaseException) -> str:
    """The traceback without this module's frames at its top: it starts in the user's code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__ and tb.tb_next is not None:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _pickled_or_none(exc: BaseException) -> bytes | None:
    try:
        import cloudpickle
        data = cloudpickle.dumps(exc)
        pickle.loads(data)
        return data
    except Exception:  # noqa: BLE001 - the traceback text still tells the story
        return None


def current_session() -> TrainSession | None:
    return getattr(_local, "session", None) or _process_session


def _require(what: str) -> TrainSession:
    session = current_session()
    if session is None:
        raise RuntimeError(f"train.{what}() was called outside a training function: call it from "
                           "the function passed to Trainer.run(...) or TorchTrainer(...).fit()")
    return session


# ------------------------------------------------------------------------------------------
# the public functions
# ------------------------------------------------------------------------------------------
def report(metrics: dict | None = None, *, checkpoint: Any = None, **kwargs: Any) -> None:
    """Report metrics of this worker: ``train.report(loss=0.1)`` (Ray 1.x) or
    ``train.report({"loss": 0.1}, checkpoint=Checkpoint.from_dict(...))`` (Ray 2.x).

    Each worker reports; the driver hands the i-th report of every worker together to the
    callbacks (a list, one dict per rank) and rank 0's to Tune. A ``checkpoint`` is kept from
    rank 0, as with :func:`save_checkpoint`.

    Example:
        >>> from raylite import train
        >>> def train_func():
        ...     for epoch in range(3):
        ...         train.report(epoch=epoch, loss=1.0 / (epoch + 1))
    """
    session = _require("report")
    if metrics is None:
        metrics = kwargs
    elif isinstance(metrics, dict):
        metrics = {**metrics, **kwargs}
    else:
        raise TypeError(f"report() takes a dict of metrics or keyword arguments, got "
                        f"{type(metrics).__name__} {metrics!r:.60}")
    session.report(metrics, checkpoint)


def save_checkpoint(**state: Any) -> None:
    """Save a checkpoint (keyword arguments become a dict); rank 0's is kept by the driver.

    Returns once the driver holds it, so ``trainer.latest_checkpoint`` and a restart after a
    crash see it. Call it on every worker; the other ranks' calls return at once.

    Example:
        >>> from raylite import train
        >>> def train_func():
        ...     for epoch in range(2):
        ...         train.save_checkpoint(epoch=epoch, weights=[0.0, 1.0])
    """
    _require("save_checkpoint").save_checkpoint(state)


def load_checkpoint() -> dict | None:
    """The checkpoint this run started from (``Trainer.run(checkpoint=...)``, or the latest one
    after a restart), as a dict; None when there is none."""
    payload = _require("load_checkpoint").initial_checkpoint
    if payload is None:
        return None
    from raylite.train._checkpoint import payload_to_dict
    return payload_to_dict(payload)


def get_checkpoint() -> Any:
    """Ray 2.x: the checkpoint to resume from as a :class:`Checkpoint`, or None."""
    payload = _require("get_checkpoint").initial_checkpoint
    if payload is None:
        return None
    from raylite.train._checkpoint import payload_to_checkpoint
    return payload_to_checkpoint(payload)


def world_rank() -> int:
    """This worker's rank among all workers (0 .. world_size - 1)."""
    return _require("world_rank").context.world_rank


def local_rank() -> int:
    """This worker's rank among the workers on its machine."""
    return _require("local_rank").context.local_rank


def world_size() -> int:
    """The number of workers."""
    return _require("world_size").context.world_size


def get_context() -> WorkerContext:
    """Ray 2.x: ``train.get_context().get_world_rank()`` and friends."""
    return _require("get_context").context


def get_dataset_shard(dataset_name: str | None = None) -> Any:
    """This worker's part of the dataset passed to ``run(dataset=...)`` (or ``datasets=``).

    With a dict of datasets, name the one you want; with a single dataset, leave the name out.

    Example:
        >>> from raylite import train
        >>> def train_func():
        ...     shard = train.get_dataset_shard("train")
        ...     for batch in shard.iter_batches(batch_size=32):
        ...         pass
    """
    shard = _require("get_dataset_shard").dataset_shard
    if isinstance(shard, dict):
        if dataset_name is None:
            if len(shard) == 1:
                return next(iter(shard.values()))
            raise ValueError(f"several datasets were passed ({', '.join(map(repr, shard))}); "
                             "name one: get_dataset_shard('train')")
        if dataset_name not in shard:
            raise KeyError(f"no dataset named {dataset_name!r}; the run has "
                           f"{', '.join(map(repr, shard)) or 'none'}")
        return shard[dataset_name]
    if dataset_name is not None and shard is not None:
        raise KeyError(f"no dataset named {dataset_name!r}: a single dataset was passed to run(); "
                       "call get_dataset_shard() without a name")
    return shard
