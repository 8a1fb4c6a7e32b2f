"""What travels by value to Dask workers, and how put() values are stored.

Workers have the installed packages (and raylite) but not the user's own files: a script's
``__main__``, a helper module beside it, a test module. Functions and classes from those go
by value (cloudpickle sends their module's code along); modules of installed packages go by
reference.
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import Any

from raylite.core.dask import _remote as remote
from raylite.core._refs import collect_refs

_checked_modules: set[str] = set()
_SCALARS = (type(None), bool, int, float, str, bytes)


def pickle_arguments_by_value(args: tuple, kwargs: dict | None) -> None:
    """Send the user's own modules by value when their functions, classes or objects are
    arguments (and items of list, tuple or dict arguments): workers cannot import them."""
    for value in (*args, *(kwargs or {}).values()):
        if isinstance(value, _SCALARS):
            continue
        items = value.values() if isinstance(value, dict) else \
            value if isinstance(value, (list, tuple)) else ()
        for item in (value, *itertools.islice(items, 100)):
            if not isinstance(item, _SCALARS):
                _pickle_by_value(item if isinstance(item, type) or callable(item) and
                                 hasattr(item, "__module__") else type(item))


def _pickle_by_value(obj: Any) -> None:
    """Pickle the module of ``obj`` by value when the workers probably cannot import it.

    Functions and classes defined in the user's own files (a test module, a helper next to a
    script) are not installed on the cluster; cloudpickle sends those modules' code along.
    Modules of installed packages (site-packages, the standard library) and raylite itself go
    by reference.
    """
    name = getattr(obj, "__module__", None)
    if not name or name == "__main__" or name in _checked_modules:
        return
    _checked_modules.add(name)
    if name.partition(".")[0] in ("raylite", "dask", "distributed", "cloudpickle"):
        return
    module = sys.modules.get(name)
    filename = getattr(module, "__file__", None)
    if module is None or not filename:
        return
    filename = os.path.realpath(filename)
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    if any(filename.startswith(p + os.sep) for p in prefixes) or "site-packages" in filename:
        return
    import cloudpickle
    try:
        cloudpickle.register_pickle_by_value(module)
    except (ValueError, TypeError):
        pass


def _for_store(value: Any) -> tuple[Any, list[bytes]]:
    """What put() scatters, and the ids of the refs inside the value (to keep them alive)."""
    from raylite.core._serialization import _PLAIN
    kind = type(value)
    if kind in _PLAIN:
        return value, []
    module = kind.__module__.partition(".")[0]
    if module in ("numpy", "pandas", "pyarrow") and getattr(value, "dtype", None) != object:
        return value, []  # Dask's own zero-copy serializers; cannot contain refs
    import cloudpickle
    pickle_arguments_by_value((value,), None)  # its class, or its items' (one level)
    buffers: list = []
    with collect_refs() as contained:
        data = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return remote.Pickled(data, [b.raw() for b in buffers]), list(contained)
