"""One run of a training function on a started worker group: results, checkpoints, failures.

    driver (TrainingIterator)                          workers (TrainWorker)
    start_training(func, config, shard, checkpoint) --> a thread runs func
    poll(acked) x N, long polls, always one per worker <-- (events, finished, error, output)
      "report" events   -> per-rank queues; the i-th report of every rank is yielded together
      "checkpoint" (rank 0) -> written under the run's checkpoint dir, then acked by the next poll
      error on rank r   -> ask which workers are dead; stop them all; raise, naming rank r
      a worker died     -> stop them all; restart the group and run again from the latest
                           checkpoint while retries are left, else TrainingWorkerError

A run the caller abandons (``close()``, or an exception in the loop over it) stops the group:
workers may be blocked in a collective that can never complete.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import raylite
from raylite.train._checkpoint import CheckpointManager
from raylite.train._errors import TrainingWorkerError, function_failed, load_cause
from raylite.train._session import pack_function
from raylite.train._worker_group import DEATH_ERRORS, WorkerGroup

logger = logging.getLogger("raylite.train")

POLL_TIMEOUT_S = 30.0  # a poll returns at least this often, events or not
DEATH_CHECK_TIMEOUT_S = 2.0  # on an error, how long to ask the others whether they are alive


class _WorkerDied(Exception):
    def __init__(self, rank: int, pid: int, cause: BaseException):
        super().__init__(f"worker rank {rank} (pid {pid}) died: {cause}")
        self.rank, self.pid, self.cause = rank, pid, cause


class GroupOwner:
    """What a run needs from its Trainer: the group (started on demand), whether it is
    running, ways to replace or drop it, and its size."""

    def __init__(self, size: int, get: Callable[[], WorkerGroup], running: Callable[[], bool],
                 restart: Callable[[], None], discard: Callable[[], None],
                 explain: Callable[[str], str | None] = lambda remote_traceback: None):
        self.size = size
        self.get, self.running, self.restart, self.discard = get, running, restart, discard
        self.explain = explain  # the backend's hint for a known trap, or None


class DatasetShards:
    """Datasets already split, one entry per worker (what ``shard_datasets`` returned)."""

    def __init__(self, shards: list):
        self.shards = shards


class TrainingIterator:
    """The results of a run as it goes: each item is a list with one report dict per worker.

    Example:
        >>> for results in trainer.run_iterator(train_func):      # doctest: +SKIP
        ...     print(results[0]["loss"])                         # rank 0's report
        >>> trainer.run_iterator(train_func).get_final_results(force=True)   # doctest: +SKIP
    """

    def __init__(self, owner: GroupOwner, train_func: Callable, config: dict | None,
                 dataset: Any, checkpoint: tuple | None, checkpoints: CheckpointManager,
                 max_retries: int, retry_errors: bool = False):
        self._owner = owner
        self._train_func = train_func
        self._config = config
        self._dataset = dataset
        self._initial_checkpoint = checkpoint
        self.checkpoints = checkpoints
        self._retries_left = max_retries
        self._retry_errors = retry_errors  # Ray 2.x FailureConfig: an error restarts the run too
        # per report of rank 0, in order: the checkpoint reported with it (a path) or None
        self.report_checkpoints: deque = deque()
        self._finished = False
        self._outputs: list | None = None
        self._running = False
        self._shards: list | None = None
        shard_datasets(dataset, 0)  # check the type now, split when the run starts
        self._generator = self._run()

    def __iter__(self) -> Iterator[list[dict]]:
        return self

    def __next__(self) -> list[dict]:
        return next(self._generator)

    def is_finished(self) -> bool:
        return self._finished

    def get_final_results(self, force: bool = False) -> list:
        """What each worker's training function returned, in rank order."""
        if not self._finished:
            if not force:
                raise RuntimeError("the run has not finished yet: iterate over it to the end, or "
                                   "call get_final_results(force=True) to wait for the end")
            for _ in self:
                pass
        return list(self._outputs or [])

    def close(self) -> None:
        """Abandon the run: its workers are stopped if it had not finished."""
        self._generator.close()

    # ---- the run ---------------------------------------------------------------------------
    def _run(self) -> Iterator[list[dict]]:
        checkpoint = self._initial_checkpoint
        try:
            while True:
                try:
                    yield from self._attempt(checkpoint)
                    self._finished = True
                    return
                except _WorkerDied as death:
                    self._retry_or_raise(death)
                    checkpoint = self.checkpoints.latest_payload or self._initial_checkpoint
        finally:
            if self._running:  # abandoned or failed half-way: nothing may keep running
                self._running = False
                self._owner.discard()

    def _retry_or_raise(self, death: _WorkerDied) -> None:
        if self._retries_left == 0:
            raise TrainingWorkerError(
                f"training worker rank {death.rank} (pid {death.pid}) died: {death.cause}. The "
                f"other workers were stopped. Allow restarts from the latest checkpoint with "
                f"Trainer(max_retries=N) or RunConfig(failure_config=FailureConfig(max_failures=N)).",
                death.rank, "", death.cause) from death.cause
        if self._retries_left > 0:
            self._retries_left -= 1
        where = (f"checkpoint {self.checkpoints.latest_path}" if self.checkpoints.latest_payload
                 else "the start")
        logger.warning("raylite.train: worker rank %d (pid %d) failed or died; restarting all "
                       "workers from %s (retries left: %s)", death.rank, death.pid, where,
                       "unlimited" if self._retries_left < 0 else self._retries_left)
        self._owner.restart()

    def _split_datasets(self) -> list:
        """One shard per worker, split on the driver before the run starts. Splitting runs
        data tasks, which need a CPU: if the started workers hold every CPU, they are
        stopped for the split and started again after it."""
        if self._dataset is None or isinstance(self._dataset, DatasetShards):
            return shard_datasets(self._dataset, self._owner.size)
        if self._owner.running() and raylite.available_resources().get("CPU", 0) < 1:
            logger.warning("raylite.train: the workers hold every CPU and splitting the dataset "
                           "needs one; restarting them after the split (TorchTrainer(datasets=...) "
                           "and Trainer.to_tune_trainable split before starting them)")
            self._owner.discard()
        return shard_datasets(self._dataset, self._owner.size)

    def _attempt(self, checkpoint: tuple | None) -> Iterator[list[dict]]:
        if self._shards is None:
            self._shards = self._split_datasets()
        shards = self._shards
        group = self._owner.get()
        size = len(group)
        self._running = True
        function = pack_function(self._train_func)
        self._wait_started(group, [w.actor.start_training.remote(
            function, self._config, shards[rank], checkpoint)
            for rank, w in enumerate(group.workers)])
        queues: list[deque] = [deque() for _ in range(size)]
        acked = [0] * size
        outputs: list[Any] = [None] * size
        done: set[int] = set()
        polls = {w.actor.poll.remote(0, POLL_TIMEOUT_S): rank for rank, w in enumerate(group.workers)}
        while polls:
            ready, _ = raylite.wait(list(polls), num_returns=1)
            for ref in ready:
                rank = polls.pop(ref)
                events, finished, _, output = self._reply(group, rank, ref)
                for seq, kind, content in events:
                    acked[rank] = seq
                    if kind == "report":
                        queues[rank].append(content)
                        if rank == 0:
                            self.report_checkpoints.append(self.checkpoints.on_report(content))
                    else:
                        self.checkpoints.register(content)
                if finished:
                    outputs[rank] = output
                    done.add(rank)
                else:
                    polls[group.workers[rank].actor.poll.remote(acked[rank], POLL_TIMEOUT_S)] = rank
            while any(queues) and all(queues[r] or r in done for r in range(size)):
                yield [queue.popleft() for queue in queues if queue]
        self._running = False
        self._outputs = outputs

    def _wait_started(self, group: WorkerGroup, refs: list) -> None:
        for rank, ref in enumerate(refs):
            try:
                raylite.get(ref)
            except DEATH_ERRORS as exc:
                raise self._died(group, rank, exc) from None

    def _reply(self, group: WorkerGroup, rank: int, ref: Any) -> tuple:
        try:
            reply = raylite.get(ref)
        except DEATH_ERRORS as exc:
            raise self._died(group, rank, exc) from None
        if reply[2] is not None:
            self._failed(group, rank, reply[2])
        return reply

    def _died(self, group: WorkerGroup, rank: int, cause: BaseException) -> _WorkerDied:
        pid = group.workers[rank].pid
        self._running = False
        self._owner.discard()
        return _WorkerDied(rank, pid, cause)

    def _failed(self, group: WorkerGroup, rank: int, error: tuple) -> None:
        """The function raised on ``rank``: stop everyone and raise, unless the real cause is
        a dead worker (its peers then fail in their collectives), which may be retried."""
        remote_traceback, pickled = error
        size = len(group.workers)
        dead = group.find_dead(DEATH_CHECK_TIMEOUT_S)
        if dead:
            first = min(dead)
            raise self._died(group, first, dead[first])
        pid = group.workers[rank].pid
        self._running = False
        self._owner.discard()
        if self._retry_errors and self._retries_left != 0:
            cause = load_cause(pickled) or RuntimeError(remote_traceback)
            logger.warning("raylite.train: the training function failed on worker rank %d:\n%s",
                           rank, remote_traceback.rstrip())
            raise _WorkerDied(rank, pid, cause)
        hint = self._owner.explain(remote_traceback)
        raise function_failed(
            f"the training function failed on worker rank {rank} (of {size}); the other workers "
            f"were stopped.\n\nTraceback from worker rank {rank}:\n{remote_traceback.rstrip()}"
            + (f"\n\n{hint}" if hint else ""),
            rank, remote_traceback, load_cause(pickled))


def shard_datasets(dataset: Any, count: int) -> list:
    """One shard per worker: ``dataset.split(count, equal=True)``, or such a split of each
    dataset of a dict (each worker then gets a dict of its shards)."""
    if dataset is None:
        return [None] * count
    if isinstance(dataset, DatasetShards):
        if count and len(dataset.shards) != count:
            raise ValueError(f"the dataset was split {len(dataset.shards)} ways for {count} workers")
        return dataset.shards
    if isinstance(dataset, dict):
        split = {name: _split(ds, count, name) for name, ds in dataset.items()}
        if count == 0:
            return []
        return [{name: parts[i] for name, parts in split.items()} for i in range(count)]
    return _split(dataset, count, None)


def _split(dataset: Any, count: int, name: str | None) -> list:
    if not callable(getattr(dataset, "split", None)):
        what = f"datasets[{name!r}]" if name else "dataset"
        raise TypeError(f"{what} must be a raylite.data Dataset (or a dict of them), got "
                        f"{type(dataset).__name__}; build one with raylite.data.from_items(...)")
    return dataset.split(count, equal=True) if count else []
