"""The exceptions raylite raises, one small tree under :class:`RayliteError`.

Ray's names are kept as aliases (``RayError``, ``RayTaskError``, ``RayActorError``, ...) so code
written for Ray catches the same things.

    RayliteError
    ├── TaskError                 a task or actor method raised; also an instance of the original class
    ├── TaskCancelledError
    ├── WorkerCrashedError        the worker process died while running the task
    ├── ActorError
    │   └── ActorDiedError        the actor process is gone (killed, crashed, out of restarts)
    ├── ObjectLostError           an object is neither in memory, on disk, nor reconstructible
    ├── GetTimeoutError           also a TimeoutError
    ├── InfeasibleResourceError   (never raised for waiting work; used for hard errors such as placement groups)
    ├── RuntimeNotInitializedError
    └── RuntimeEnvSetupError      a runtime_env could not be prepared (a failed pip install)
"""

from __future__ import annotations

__all__ = [
    "RayliteError", "TaskError", "TaskCancelledError", "WorkerCrashedError", "ActorError",
    "ActorDiedError", "ObjectLostError", "GetTimeoutError", "InfeasibleResourceError",
    "RuntimeNotInitializedError", "RayError", "RayTaskError", "RayActorError",
    "ObjectStoreFullError", "RuntimeEnvSetupError",
]


class RayliteError(Exception):
    """Base class of every error raylite raises on its own account."""


class TaskError(RayliteError):
    """A remote function or actor method raised.

    The instance ``get`` raises is also an instance of the original exception's class, so
    ``except ValueError`` catches a remote ``ValueError``. ``cause`` holds the original exception
    (also chained as ``__cause__``); ``remote_traceback`` the traceback printed where it ran.
    """

    def __init__(self, message: str = "", cause: BaseException | None = None,
                 task_name: str = "", pid: int = 0, remote_traceback: str = ""):
        super().__init__(message)
        self.cause = cause
        self.task_name = task_name
        self.pid = pid
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        where = f"{self.task_name} (pid={self.pid})"
        if self.remote_traceback:
            return f"{where} failed:\n{self.remote_traceback.rstrip()}"
        return f"{where} failed: {self.cause!r}"

    def __reduce__(self):
        return (_rebuild_task_error, (self.cause, self.task_name, self.pid, self.remote_traceback))


def _rebuild_task_error(cause, task_name, pid, remote_traceback):
    return make_task_error(cause, task_name, pid, remote_traceback)


_dual_classes: dict[type, type] = {}


def make_task_error(cause: BaseException | None, task_name: str, pid: int,
                    remote_traceback: str) -> TaskError:
    """Build the error ``get`` raises: a TaskError that is also an instance of ``type(cause)``."""
    if isinstance(cause, TaskError) and cause.cause is not None:
        # re-raised from a nested task: keep the original class, tell the whole story
        error = make_task_error(cause.cause, task_name, pid, remote_traceback)
        error.__cause__ = cause
        return error
    cause_type = type(cause) if cause is not None else None
    error: TaskError
    if cause_type is None or isinstance(cause, TaskError) or not issubclass(cause_type, Exception):
        error = TaskError(str(cause or ""), cause, task_name, pid, remote_traceback)
    else:
        dual = _dual_classes.get(cause_type)
        if dual is None:
            try:
                dual = type(f"TaskError({cause_type.__name__})", (TaskError, cause_type),
                            {"__init__": TaskError.__init__, "__str__": TaskError.__str__,
                             "__reduce__": TaskError.__reduce__, "__module__": __name__})
            except TypeError:  # a class that cannot be subclassed (layout conflicts, final classes)
                dual = TaskError
            _dual_classes[cause_type] = dual
        error = dual.__new__(dual)
        TaskError.__init__(error, "", cause, task_name, pid, remote_traceback)
        error.args = cause.args
        if dual is not TaskError:
            try:
                error.__dict__.update({k: v for k, v in vars(cause).items() if k not in error.__dict__})
            except TypeError:
                pass
    error.__cause__ = cause
    return error


class TaskCancelledError(RayliteError):
    """The task was cancelled with ``raylite.cancel`` before it could finish."""


class WorkerCrashedError(RayliteError):
    """The worker process running the task died (killed, out of memory, segfault), retries spent."""


class ActorError(RayliteError):
    """Base for errors about an actor as a whole."""


class ActorDiedError(ActorError):
    """The actor's process is gone: killed, crashed, or out of restarts."""


class ObjectLostError(RayliteError):
    """An object is neither in memory, nor spilled on disk, nor reconstructible from lineage."""


class ObjectStoreFullError(RayliteError):
    """The object store cannot make room, even by spilling to disk."""


class GetTimeoutError(RayliteError, TimeoutError):
    """``get`` or ``wait``-style call ran past its timeout."""


class InfeasibleResourceError(RayliteError, ValueError):
    """A request for resources that the cluster can never provide."""


class RuntimeNotInitializedError(RayliteError):
    """An API that needs a running runtime was called without one."""


class RuntimeEnvSetupError(RayliteError):
    """A ``runtime_env`` could not be prepared (a pip install failed, or took too long)."""


# Ray's names, so ``except ray.exceptions.RayTaskError`` code keeps working.
RayError = RayliteError
RayTaskError = TaskError
RayActorError = ActorDiedError
