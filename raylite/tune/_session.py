"""The session API a function trainable talks to: ``tune.report`` and friends.

A function trainable runs in a thread of a trial actor (see ``_trainable.py``). That thread has
a :class:`TrialSession`; ``report`` stamps each result (``training_iteration``, timings, host)
and queues it, without waiting. The actor hands the queued results to the driver, in batches,
whenever the driver asks (a trainable more than MAX_PENDING_RESULTS ahead waits for it):

    trainable thread --report(metrics)--> TrialSession.pending --take()--> actor method --> driver

When the driver decides to stop the trial, the next ``report`` raises :class:`StopTrial` (a
BaseException, so ``except Exception`` in user code does not swallow it) and the thread ends.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from raylite.air.checkpoint import Checkpoint  # the one Checkpoint of Train, Tune and AIR

_local = threading.local()
_process_session: TrialSession | None = None
_HOSTNAME = socket.gethostname()
MAX_PENDING_RESULTS = 32  # a trainable runs at most this many results ahead of the driver


class StopTrial(BaseException):
    """Raised inside a trainable's ``report`` once the driver has stopped the trial."""


class TrialSession:
    """The per-trial state of a running function trainable."""

    def __init__(self, info: dict):
        self.trial_id: str = info["trial_id"]
        self.trial_name: str = info["trial_name"]
        self.trial_dir: str = info["logdir"]
        self.resources: dict = info.get("resources", {})
        self.experiment_name: str = info.get("experiment_name", "")
        self.checkpoint_path: str | None = info.get("checkpoint")
        self.iteration: int = info.get("iteration", 0)
        self._time_offset: float = info.get("time_total_s", 0.0)
        self._restore_iteration = self.iteration
        self._start = self._last = time.time()
        self._cond = threading.Condition()
        self._pending: list[tuple[dict, str | None]] = []
        self._pending_checkpoint: str | None = None
        self.stop_requested = False
        self.finished = False
        self.error: str | None = None

    # ---- the trainable side ---------------------------------------------------------------
    def report(self, metrics: dict, checkpoint: Any = None) -> None:
        if self.stop_requested:
            raise StopTrial()
        now = time.time()
        self.iteration += 1
        result = dict(metrics)
        result.setdefault("training_iteration", self.iteration)
        result.setdefault("time_this_iter_s", now - self._last)
        result.setdefault("time_total_s", self._time_offset + now - self._start)
        result.setdefault("time_since_restore", now - self._start)
        result.setdefault("iterations_since_restore", self.iteration - self._restore_iteration)
        result.setdefault("timestamp", int(now))
        result.setdefault("pid", os.getpid())
        result.setdefault("hostname", _HOSTNAME)
        result.setdefault("node_ip", "127.0.0.1")
        self._last = now
        path = self._save_checkpoint(checkpoint) if checkpoint is not None else self._pending_checkpoint
        self._pending_checkpoint = None
        if path:
            self.checkpoint_path = path
        with self._cond:
            while len(self._pending) >= MAX_PENDING_RESULTS and not self.stop_requested:
                self._cond.wait()
            if self.stop_requested:
                raise StopTrial()
            self._pending.append((result, path))
            self._cond.notify_all()

    def _save_checkpoint(self, checkpoint: Any) -> str:
        if not isinstance(checkpoint, Checkpoint):
            raise TypeError(f"report(checkpoint=...) takes a tune.Checkpoint, got "
                            f"{type(checkpoint).__name__}; build one with Checkpoint.from_dict "
                            "or Checkpoint.from_directory")
        target = os.path.join(self.trial_dir, f"checkpoint_{self.iteration:06d}")
        return checkpoint.to_directory(target)

    def make_checkpoint_dir(self, step: int | None) -> str:
        step = self.iteration if step is None else step
        path = os.path.join(self.trial_dir, f"checkpoint_{step:06d}")
        os.makedirs(path, exist_ok=True)
        self._pending_checkpoint = path
        return path

    def get_checkpoint(self) -> Checkpoint | None:
        return Checkpoint.from_directory(self.checkpoint_path) if self.checkpoint_path else None

    # ---- the actor side -------------------------------------------------------------------
    def finish(self, error: str | None = None) -> None:
        with self._cond:
            self.finished = True
            self.error = error
            self._cond.notify_all()

    def request_stop(self) -> None:
        """Make the trainable's next (or blocked) ``report`` raise StopTrial."""
        with self._cond:
            self.stop_requested = True
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> tuple[list, bool, str | None]:
        """Wait for results or the end; return (results, finished, error traceback)."""
        with self._cond:
            if not self._pending and not self.finished:
                self._cond.wait(timeout)
            pending, self._pending = self._pending, []
            self._cond.notify_all()  # wake a trainable waiting for room
            # report results before the end: finished only once nothing is left
            return pending, self.finished, self.error


def _current() -> TrialSession | None:
    return getattr(_local, "session", None) or _process_session


def activate(session: TrialSession | None) -> None:
    """Make ``session`` the current one for this thread (and the process's fallback)."""
    global _process_session
    _local.session = session
    _process_session = session


def _require(what: str) -> TrialSession:
    session = _current()
    if session is None:
        raise RuntimeError(f"tune.{what}() was called outside a Tune trial: call it from inside a "
                           "trainable function run by tune.run(...) or Tuner(...).fit()")
    return session


# ------------------------------------------------------------------------------------------
# the public functions
# ------------------------------------------------------------------------------------------
def report(metrics: dict | None = None, *, checkpoint: Checkpoint | None = None,
           **kwargs: Any) -> None:
    """Report metrics of the current trial: ``tune.report(score=1.0)`` or ``report({"score": 1.0})``.

    Args:
        metrics: a dict of metrics (Ray 2.x style); or pass them as keyword arguments (1.x).
        checkpoint: a :class:`Checkpoint` to save with this result.

    Example:
        >>> from raylite import tune
        >>> def trainable(config):
        ...     for step in range(3):
        ...         tune.report(score=config["x"] * step)
    """
    session = _require("report")
    if metrics is None:
        metrics = kwargs
    elif isinstance(metrics, dict):
        if kwargs:
            metrics = {**metrics, **kwargs}
    elif isinstance(metrics, (int, float)):
        metrics = {"_metric": metrics, **kwargs}
    else:
        raise TypeError(f"report() takes a dict of metrics or keyword arguments, got "
                        f"{type(metrics).__name__} {metrics!r:.60}")
    session.report(metrics, checkpoint)


@contextlib.contextmanager
def checkpoint_dir(step: int | None = None) -> Iterator[str]:
    """Ray 1.x: a directory to write a checkpoint into; it belongs to the next ``report``.

    Example:
        >>> from raylite import tune
        >>> def trainable(config, checkpoint_dir=None):
        ...     with tune.checkpoint_dir(step=1) as d:
        ...         open(d + "/state.txt", "w").write("1")
        ...     tune.report(score=1)
    """
    yield _require("checkpoint_dir").make_checkpoint_dir(step)


def get_checkpoint() -> Checkpoint | None:
    """The checkpoint this trial was restored from (or last saved), else None."""
    return _require("get_checkpoint").get_checkpoint()


def get_trial_id() -> str:
    return _require("get_trial_id").trial_id


def get_trial_name() -> str:
    return _require("get_trial_name").trial_name


def get_trial_dir() -> str:
    return _require("get_trial_dir").trial_dir


def get_trial_resources() -> dict:
    return dict(_require("get_trial_resources").resources)


def get_experiment_name() -> str:
    return _require("get_experiment_name").experiment_name


def is_session_enabled() -> bool:
    return _current() is not None


def timestamp_string() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
