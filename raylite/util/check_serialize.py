"""inspect_serializability: find out *which part* of an object cannot be pickled.

    obj ── cloudpickle ok? ── yes ──► (True, set())
             │ no
             ▼
    its parts: a function's closure and globals, a method's self and function,
               a class's attributes and bases, an object's attributes, a container's items
             │ each part that fails is inspected the same way, ``depth`` levels down
             ▼
    the deepest failing parts are the culprits: printed as a tree, returned as FailureTuples

Model: Ray's ``ray.util.inspect_serializability``; the report is plain text (no colours).
"""

from __future__ import annotations

import inspect
import sys
from typing import Any, Iterator, TextIO

__all__ = ["inspect_serializability", "FailureTuple"]

_RULE_WIDTH = 80
_INDENT = "    "


class FailureTuple:
    """A part that could not be serialized: the object, its name, and the object holding it."""

    __slots__ = ("obj", "name", "parent")

    def __init__(self, obj: Any, name: str, parent: Any):
        self.obj = obj
        self.name = name
        self.parent = parent

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, FailureTuple) and other.name == self.name
                and other.obj is self.obj and other.parent is self.parent)

    def __hash__(self) -> int:
        return hash((self.name, id(self.obj), id(self.parent)))

    def __repr__(self) -> str:
        return f"FailTuple({self.name} [obj={_short(self.obj)}, parent={_short(self.parent)}])"


class _Printer:
    def __init__(self, print_file: TextIO | None):
        self.print_file = print_file

    def __call__(self, text: str, level: int = 0) -> None:
        print(_INDENT * level + text, file=self.print_file or sys.stdout)


def inspect_serializability(obj: Any, name: str | None = None, depth: int = 3,
                            print_file: TextIO | None = None) -> tuple[bool, set[FailureTuple]]:
    """Check whether ``obj`` pickles (with cloudpickle) and, if not, find the parts that do not.

    Walks a function's closure variables and globals, a bound method's object, a class's
    attributes and bases, an object's attributes and a container's items, ``depth`` levels
    deep, printing a tree of what failed.

    Args:
        obj: the function, object or container to check.
        name: what to call ``obj`` in the report (default: its ``str``).
        depth: how many levels of parts to look into.
        print_file: where to print the report (default: standard output).

    Returns:
        ``(serializable, failures)``: the FailureTuples of the innermost parts that failed.

    Example:
        >>> import io, threading
        >>> from raylite.util import inspect_serializability
        >>> lock = threading.Lock()
        >>> def uses_lock():
        ...     with lock:
        ...         pass
        >>> report = io.StringIO()  # leave print_file out to print to standard output
        >>> ok, failures = inspect_serializability(uses_lock, print_file=report)
        >>> ok, sorted(f.name for f in failures)
        (False, ['lock'])
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an int >= 0 (how many levels of parts to inspect), "
                         f"got {depth!r}")
    if print_file is not None and not callable(getattr(print_file, "write", None)):
        raise TypeError(f"print_file must be a writable file object such as sys.stderr, "
                        f"got {type(print_file).__name__}")
    printer = _Printer(print_file)
    heading = f"Checking Serializability of {_short(obj)}"
    rule = "=" * min(len(heading), _RULE_WIDTH)
    printer(rule)
    printer(heading)
    printer(rule)
    failures: set[FailureTuple] = set()
    ok = _inspect(obj, str(obj) if name is None else name, depth, None, failures, printer, 0)
    if not ok:
        _print_summary(failures, printer, rule)
    printer(rule)
    return ok, failures


def _inspect(obj: Any, name: str, depth: int, parent: Any, failures: set[FailureTuple],
             printer: _Printer, level: int) -> bool:
    """True if ``obj`` pickles; else record the deepest failing parts in ``failures``."""
    error = _pickle_error(obj)
    if error is None:
        return True
    printer(f"!!! FAIL serialization: {error}", level)
    failing_children = 0
    if depth > 0:
        for child_name, child in _failing_parts(obj, printer, level):
            failing_children += 1
            printer(f"Serializing {child_name!r} {_short(child)}...", level + 1)
            _inspect(child, child_name, depth - 1, obj, failures, printer, level + 1)
    if failing_children == 0:
        failures.add(FailureTuple(obj, name, parent))
    return False


def _pickle_error(obj: Any) -> str | None:
    import cloudpickle
    try:
        cloudpickle.dumps(obj)
    except Exception as error:  # noqa: BLE001 - any failure (RecursionError too) is the report
        return f"{type(error).__name__}: {error}"
    return None


def _failing_parts(obj: Any, printer: _Printer, level: int) -> Iterator[tuple[str, Any]]:
    """The named parts of ``obj`` that do not pickle, announcing each group as it is checked."""
    for group, parts in _parts(obj):
        if not parts:
            continue
        printer(f"Detected {len(parts)} {group}. Checking serializability...", level)
        for part_name, part in parts.items():
            if _pickle_error(part) is not None:
                yield part_name, part


def _parts(obj: Any) -> list[tuple[str, dict[str, Any]]]:
    """Group name -> {part name: part}: what pickling ``obj`` would also pickle."""
    if inspect.ismethod(obj):
        return [("bound object and function", {"__self__": obj.__self__,
                                               "__func__": obj.__func__})]
    if inspect.isfunction(obj):
        return _function_parts(obj)
    if inspect.isclass(obj):
        return _class_parts(obj)
    if isinstance(obj, dict):
        return [("dict items", {_key_name(key): value for key, value in obj.items()})]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [(f"{type(obj).__name__} items", {f"[{i}]": item for i, item in enumerate(obj)})]
    return [("attributes", _attributes(obj))]


def _function_parts(function: Any) -> list[tuple[str, dict[str, Any]]]:
    try:
        captured = inspect.getclosurevars(function)
    except (TypeError, ValueError):  # builtins, or a closure cell that is still empty
        return []
    globals_ = {name: value for name, value in captured.globals.items()
                if not inspect.ismodule(value)}
    defaults = {f"default of {name}": value for name, value in
                zip(function.__code__.co_varnames, function.__defaults__ or ())}
    return [("closure variables", dict(captured.nonlocals)),
            ("global variables", globals_),
            ("default arguments", defaults)]


def _class_parts(cls: type) -> list[tuple[str, dict[str, Any]]]:
    # __dict__/__weakref__ are descriptors that pickle as "their class": not parts of it.
    attributes = {name: value for name, value in vars(cls).items()
                  if not (inspect.isgetsetdescriptor(value) or inspect.ismemberdescriptor(value))}
    bases = {base.__qualname__: base for base in cls.__bases__ if base is not object}
    return [("class attributes", attributes), ("base classes", bases)]


def _attributes(obj: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    try:
        attributes.update(vars(obj))
    except TypeError:
        pass
    for slot in _slot_names(type(obj)):
        if slot not in attributes and hasattr(obj, slot):
            attributes[slot] = getattr(obj, slot)
    return attributes


def _slot_names(cls: type) -> list[str]:
    names = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return [name for name in names if name not in ("__dict__", "__weakref__")]


def _key_name(key: Any) -> str:
    return key if isinstance(key, str) else repr(key)


def _short(obj: Any, width: int = 100) -> str:
    try:
        text = str(obj)
    except Exception:  # noqa: BLE001 - a broken __str__ must not stop the report
        text = object.__repr__(obj)
    return text if len(text) <= width else text[:width - 3] + "..."


def _print_summary(failures: set[FailureTuple], printer: _Printer, rule: str) -> None:
    printer(rule)
    if not failures:
        printer("Nothing failed the inspect_serializability test, though serialization "
                "did not succeed.")
        return
    printer("Variable(s):\n")
    for failure in sorted(failures, key=lambda f: f.name):
        printer(f"{failure!r}", 1)
    printer("\nwas/were found to be non-serializable. There may be other non-serializable "
            "variables that were not detected.")
    printer("Fix: create these objects inside the function or class that uses them (so they "
            "are not captured), or give their class __reduce__/__getstate__ so they pickle.")
