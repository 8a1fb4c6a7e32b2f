"""raylite: the system of *Learning Ray*, compact and fast.

    import raylite as ray
    ray.init()

    @ray.remote
    def square(x):
        return x * x

    print(ray.get([square.remote(i) for i in range(4)]))   # [0, 1, 4, 9]

The core API lives here; the libraries are subpackages loaded on first use:
``raylite.data``, ``raylite.tune``, ``raylite.train``, ``raylite.serve``, ``raylite.rllib``,
``raylite.util``. Importing has no side effects: no threads, no processes, no logging setup.
"""

from __future__ import annotations

import importlib

from raylite import exceptions
from raylite.core import _api as _core_api
from raylite.core._api import (ActorClass, ActorHandle, RemoteFunction, RuntimeContext,
                               available_resources, cancel, cluster_resources, get,
                               get_actor, get_gpu_ids, get_runtime_context, init, is_initialized,
                               kill, method, nodes, put, remote, shutdown, timeline, wait)
from raylite.core._generators import (DynamicObjectRefGenerator, ObjectRefGenerator,
                                      StreamingObjectRefGenerator)
from raylite.core._refs import ObjectRef

__version__ = "0.1.0"

__all__ = [
    "init", "shutdown", "is_initialized", "remote", "get", "put", "wait", "cancel", "kill",
    "get_actor", "method", "cluster_resources", "available_resources", "nodes",
    "get_runtime_context", "get_gpu_ids", "timeline", "ObjectRef", "ObjectRefGenerator",
    "DynamicObjectRefGenerator", "StreamingObjectRefGenerator", "ActorHandle", "ActorClass",
    "RemoteFunction", "RuntimeContext", "exceptions", "__version__",
    "data", "tune", "train", "serve", "rllib", "util", "air", "runtime_env",
]

_SUBPACKAGES = {"data", "tune", "train", "serve", "rllib", "util", "air", "runtime_env"}


def _dashboard_started(node, options: dict):
    """Start the dashboard (raylite.dashboard) with a local runtime, unless turned off."""
    import os
    include = options.get("include_dashboard")
    if include is None:
        include = os.environ.get("RAYLITE_DASHBOARD", "1") != "0"
    if not include:
        return None
    from raylite import dashboard
    return dashboard.start_with_runtime(node, options)


def _dashboard_stopped() -> None:
    import sys
    if "raylite.dashboard" in sys.modules:
        sys.modules["raylite.dashboard"].stop()


_core_api.add_runtime_hook(_dashboard_started, _dashboard_stopped)


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"raylite.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'raylite' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBPACKAGES)
