"""Checks of what users pass to Dataset and DatasetPipeline methods: each error names the
argument, what was given and what would be right. Shared by both, so a pipeline rejects bad
options when it is built, as a dataset does, not at its first window."""

from __future__ import annotations

from typing import Any

from raylite.data._stages import function_name, is_callable_class

REMOTE_ARGS = frozenset({"num_cpus", "num_gpus", "memory", "resources", "max_retries",
                         "retry_exceptions", "scheduling_strategy", "accelerator_type"})


def user_fn_strategy(fn: Any, operation: str, constructor_args: Any = None,
                     constructor_kwargs: Any = None, compute: Any = None,
                     concurrency: Any = None) -> Any:
    """Check a user's ``fn`` and its options; the compute strategy to run it with: None
    (tasks) unless an actor pool is asked for or ``fn`` is a callable class."""
    check_function(fn, operation)
    _check_constructor_args(fn, constructor_args, constructor_kwargs, operation)
    if compute is None and concurrency is None and not is_callable_class(fn):
        return None
    from raylite.data._actors import compute_strategy
    return compute_strategy(compute, concurrency, fn, operation)


def check_function(fn: Any, operation: str) -> None:
    if not callable(fn):
        raise TypeError(f"{operation}() needs a function (or a callable class), got "
                        f"{type(fn).__name__} {fn!r:.60}")


def _check_constructor_args(fn: Any, args: Any, kwargs: Any, operation: str) -> None:
    if (args or kwargs) and not is_callable_class(fn):
        raise ValueError(f"{operation}(fn_constructor_args=/fn_constructor_kwargs=) only apply "
                         f"to a callable class, and {function_name(fn)} is not a class")
    if args is not None and not isinstance(args, (tuple, list)):
        raise TypeError(f"{operation}(fn_constructor_args=...) must be a tuple, got "
                        f"{type(args).__name__}")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError(f"{operation}(fn_constructor_kwargs=...) must be a dict, got "
                        f"{type(kwargs).__name__}")


def check_remote_args(args: dict, operation: str) -> dict:
    unknown = sorted(set(args) - REMOTE_ARGS)
    if unknown:
        raise TypeError(f"{operation}() got unexpected keyword argument(s) {unknown}; task "
                        f"options it accepts: {sorted(REMOTE_ARGS)}")
    return args


def column_list(columns: Any, operation: str) -> list[str]:
    columns = [columns] if isinstance(columns, str) else columns
    if not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns):
        raise TypeError(f"{operation}() needs a column name or a list of names, got {columns!r}")
    return list(columns)


def check_positive_int(value: Any, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
