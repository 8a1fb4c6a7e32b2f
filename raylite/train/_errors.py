"""The errors a training run ends with.

    RayliteError
    └── TrainingFailedError      the training function raised on a worker (also an instance of
        │                        the original exception's class, so ``except ValueError`` works)
        └── TrainingWorkerError  a worker process died and no retries were left
"""

from __future__ import annotations

import pickle

from raylite.exceptions import RayliteError


class TrainingFailedError(RayliteError):
    """A training run failed; ``rank`` says on which worker, ``remote_traceback`` how."""

    def __init__(self, message: str = "", rank: int | None = None, remote_traceback: str = "",
                 cause: BaseException | None = None):
        super().__init__(message)
        self.message = message
        self.rank = rank
        self.remote_traceback = remote_traceback
        self.cause = cause

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        return (_rebuild, (type(self) is TrainingWorkerError, self.message, self.rank,
                           self.remote_traceback, self.cause))


class TrainingWorkerError(TrainingFailedError):
    """A training worker process died (killed, out of memory, crashed) with no retries left."""


def _rebuild(worker_error, message, rank, remote_traceback, cause):
    if worker_error:
        return TrainingWorkerError(message, rank, remote_traceback, cause)
    return function_failed(message, rank, remote_traceback, cause)


_dual_classes: dict[type, type] = {}


def function_failed(message: str, rank: int, remote_traceback: str,
                    cause: BaseException | None) -> TrainingFailedError:
    """A TrainingFailedError that is also an instance of ``type(cause)`` where possible."""
    cause_type = type(cause) if isinstance(cause, Exception) else None
    cls: type = TrainingFailedError
    if cause_type is not None and not isinstance(cause, RayliteError):
        cls = _dual_classes.get(cause_type)
        if cls is None:
            try:
                cls = type(f"TrainingFailedError({cause_type.__name__})",
                           (TrainingFailedError, cause_type),
                           {"__init__": TrainingFailedError.__init__,
                            "__str__": TrainingFailedError.__str__,
                            "__reduce__": TrainingFailedError.__reduce__,
                            "__module__": __name__})
            except TypeError:  # classes that cannot be subclassed together
                cls = TrainingFailedError
            _dual_classes[cause_type] = cls
    error = cls.__new__(cls)
    TrainingFailedError.__init__(error, message, rank, remote_traceback, cause)
    if cls is not TrainingFailedError:
        error.args = cause.args
    error.__cause__ = cause
    return error


def load_cause(data: bytes | None) -> BaseException | None:
    if data is None:
        return None
    try:
        return pickle.loads(data)
    except Exception:  # noqa: BLE001 - e.g. a class the driver cannot import; the text remains
        return None
