"""``ray.air.session``: one API for the code inside a training loop or a Tune trial.

    from raylite.air import session

    def train_loop(config):
        shard = session.get_dataset_shard("train")
        for epoch in range(config["epochs"]):
            ...
            session.report({"loss": loss}, checkpoint=Checkpoint.from_dict({...}))

Inside a Trainer's worker it talks to raylite.train's session (ranks, shards, the checkpoint
to resume from); inside a Tune function trainable to raylite.tune's (a group of one: rank 0
of 1). A Trainer run inside a Tuner trial reports to the trial through its rank 0.
"""

from __future__ import annotations

from typing import Any

__all__ = ["report", "get_checkpoint", "get_dataset_shard", "get_world_rank", "get_world_size",
           "get_local_rank", "get_local_world_size", "get_node_rank", "get_trial_name",
           "get_trial_id", "get_trial_dir", "get_trial_resources", "get_experiment_name"]


def _train_session() -> Any:
    from raylite.train._session import current_session
    return current_session()


def _tune_session() -> Any:
    import sys
    module = sys.modules.get("raylite.tune._session")
    return module._current() if module is not None else None


def _outside(what: str) -> RuntimeError:
    return RuntimeError(f"session.{what}() was called outside a training loop or Tune trial: "
                        "call it from the function given to TorchTrainer(...), "
                        "DataParallelTrainer(...) or Tuner(...)")


def report(metrics: dict, *, checkpoint: Any = None) -> None:
    """Report ``metrics`` (a dict) and optionally a :class:`Checkpoint` saved with them.

    Example:
        >>> from raylite.air import session, Checkpoint
        >>> def train_loop(config):
        ...     session.report({"loss": 0.5}, checkpoint=Checkpoint.from_dict({"step": 1}))
    """
    if not isinstance(metrics, dict):
        raise TypeError(f"session.report() takes a dict of metrics, got "
                        f"{type(metrics).__name__}: session.report({{'loss': loss}})")
    if _train_session() is not None:
        from raylite.train._session import report as train_report
        return train_report(metrics, checkpoint=checkpoint)
    if _tune_session() is not None:
        from raylite.tune._session import report as tune_report
        return tune_report(metrics, checkpoint=checkpoint)
    raise _outside("report")


def get_checkpoint() -> Any:
    """The checkpoint to resume from (after a restart, or ``resume_from_checkpoint``), or None."""
    if _train_session() is not None:
        from raylite.train._session import get_checkpoint as train_get
        return train_get()
    if _tune_session() is not None:
        from raylite.tune._session import get_checkpoint as tune_get
        return tune_get()
    raise _outside("get_checkpoint")


def get_dataset_shard(dataset_name: str | None = None) -> Any:
    """This worker's part of the trainer's ``datasets[dataset_name]`` (a Dataset, with
    ``iter_batches`` and ``iter_torch_batches``); None when the trainer got no datasets."""
    if _train_session() is None:
        raise _outside("get_dataset_shard")
    from raylite.train._session import get_dataset_shard as train_shard
    return train_shard(dataset_name)


def _context() -> Any:
    session = _train_session()
    if session is not None:
        return session.context
    if _tune_session() is not None:
        from raylite.train._session import WorkerContext
        return WorkerContext()  # a function trainable is a group of one
    return None


def get_world_rank() -> int:
    context = _context()
    if context is None:
        raise _outside("get_world_rank")
    return context.world_rank


def get_world_size() -> int:
    context = _context()
    if context is None:
        raise _outside("get_world_size")
    return context.world_size


def get_local_rank() -> int:
    context = _context()
    if context is None:
        raise _outside("get_local_rank")
    return context.local_rank


def get_local_world_size() -> int:
    context = _context()
    if context is None:
        raise _outside("get_local_world_size")
    return context.local_world_size


def get_node_rank() -> int:
    context = _context()
    if context is None:
        raise _outside("get_node_rank")
    return context.node_rank


def _trial_field(what: str, train_field: str, tune_field: str) -> Any:
    tune = _tune_session()
    if tune is not None:
        return getattr(tune, tune_field)
    session = _train_session()
    if session is not None:
        return getattr(session.context, train_field, "") or ""
    raise _outside(what)


def get_trial_name() -> str:
    """The Tune trial's name (inside a Trainer run by a Tuner: that trial's)."""
    return _trial_field("get_trial_name", "trial_name", "trial_name")


def get_trial_id() -> str:
    return _trial_field("get_trial_id", "trial_id", "trial_id")


def get_trial_dir() -> str:
    return _trial_field("get_trial_dir", "logdir", "trial_dir")


def get_experiment_name() -> str:
    return _trial_field("get_experiment_name", "experiment_name", "experiment_name")


def get_trial_resources() -> dict:
    tune = _tune_session()
    if tune is not None:
        return dict(tune.resources)
    if _train_session() is not None:
        return {}
    raise _outside("get_trial_resources")
