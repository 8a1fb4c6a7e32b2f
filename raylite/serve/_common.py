"""What the parts of Serve share: names, the replica lifecycle, a deployment's configuration.

Nothing here imports fastapi, starlette or uvicorn, so every process can import it cheaply.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import sys
from typing import TYPE_CHECKING, Any, NamedTuple
from raylite._suggest import did_you_mean as suggest

if TYPE_CHECKING:
    from raylite.serve._autoscaling import AutoscalingConfig

CONTROLLER_NAME = "SERVE_CONTROLLER"
SERVE_NAMESPACE = "serve"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
PORT_ENVIRONMENT_VARIABLES = ("RAYLITE_SERVE_HTTP_PORT", "RAY_SERVE_DEFAULT_HTTP_PORT")
DEFAULT_MAX_ONGOING_REQUESTS = 100   # the book's (Ray 1.x) max_concurrent_queries default
DEFAULT_MAX_QUEUED_REQUESTS = 64     # per deployment, at the proxy; beyond it a request gets 503
DEFAULT_APP_NAME = "default"
DEFAULT_MAX_REQUEST_BODY_BYTES = 10 * 2**20  # the proxy answers 413 past it (http_options)
DEFAULT_KEEP_ALIVE_TIMEOUT_S = 90  # idle keep-alive connections close after it (Ray's default)

# The options ``ray_actor_options`` may carry, as in Ray Serve.
ACTOR_OPTION_KEYS = frozenset({"num_cpus", "num_gpus", "memory", "resources", "accelerator_type",
                               "object_store_memory", "runtime_env"})


def default_http_port() -> int:
    """The proxy's port when ``serve.start`` is not given one: 8000, or the value of
    ``RAYLITE_SERVE_HTTP_PORT`` (``RAY_SERVE_DEFAULT_HTTP_PORT`` for code written for Ray)."""
    for variable in PORT_ENVIRONMENT_VARIABLES:
        value = os.environ.get(variable)
        if value:
            if not value.isdigit() or not 0 <= int(value) < 65536:
                raise ValueError(f"{variable}={value!r} is not a port number (0..65535)")
            return int(value)
    return DEFAULT_PORT


class ReplicaState(str, enum.Enum):
    """The lifecycle of one replica actor, kept by the controller.

        STARTING ──ready──▶ RUNNING ──scale down / redeploy / delete──▶ STOPPING ──▶ (gone)
            │                  │                                            ▲
            └──constructor─────┴──▶ UNHEALTHY ──────────────────────────────┘
               raised / died / failed its health check     (the controller starts a replacement)
    """

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    UNHEALTHY = "UNHEALTHY"
    STOPPING = "STOPPING"


REPLICA_TRANSITIONS: dict[ReplicaState, frozenset[ReplicaState]] = {
    ReplicaState.STARTING: frozenset({ReplicaState.RUNNING, ReplicaState.UNHEALTHY,
                                      ReplicaState.STOPPING}),
    ReplicaState.RUNNING: frozenset({ReplicaState.UNHEALTHY, ReplicaState.STOPPING}),
    ReplicaState.UNHEALTHY: frozenset({ReplicaState.STOPPING}),
    ReplicaState.STOPPING: frozenset(),
}


class DeploymentStatus(str, enum.Enum):
    UPDATING = "UPDATING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"


@dataclasses.dataclass
class DeploymentConfig:
    """How a deployment runs; the controller keeps one per deployment.

    ``route_prefix`` None means the deployment is not reachable over HTTP (only by handle).
    """

    num_replicas: int = 1
    route_prefix: str | None = None
    ray_actor_options: dict = dataclasses.field(default_factory=dict)
    max_ongoing_requests: int = DEFAULT_MAX_ONGOING_REQUESTS
    max_queued_requests: int = DEFAULT_MAX_QUEUED_REQUESTS
    user_config: Any = None
    version: str | None = None
    graceful_shutdown_timeout_s: float = 20.0
    autoscaling_config: AutoscalingConfig | None = None  # None: a fixed num_replicas
    health_check_period_s: float = 10.0
    health_check_timeout_s: float = 30.0

    def replace(self, **changes: Any) -> DeploymentConfig:
        return dataclasses.replace(self, **changes)


class RouteTarget(NamedTuple):
    """What the controller tells routers (proxy, handles) about one deployment."""

    name: str
    replicas: list              # [(replica_id, actor handle)] of the RUNNING replicas
    max_ongoing_requests: int
    max_queued_requests: int
    expects_replicas: bool      # none running now, but some are starting: requests may wait


def did_you_mean(word: str, choices) -> str:
    """raylite's hint (raylite._suggest), ending the sentence with '.' when nothing is close."""
    return suggest(word, choices) or "."


def check_route_prefix(route_prefix: Any, where: str) -> None:
    if route_prefix is None:
        return
    if not isinstance(route_prefix, str) or not route_prefix.startswith("/"):
        raise ValueError(f"{where}: route_prefix must be a string starting with '/', such as "
                         f"'/model', got {route_prefix!r}")
    if len(route_prefix) > 1 and route_prefix.endswith("/"):
        raise ValueError(f"{where}: route_prefix must not end with '/' (got {route_prefix!r}); "
                         f"use {route_prefix.rstrip('/')!r}")
    if "{" in route_prefix or "}" in route_prefix:
        raise ValueError(f"{where}: route_prefix cannot contain path parameters "
                         f"({route_prefix!r}); "
                         "put them in a FastAPI route with @serve.ingress")


def check_actor_options(options: Any, where: str) -> dict:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"{where}: ray_actor_options must be a dict such as {{'num_cpus': 1}}, "
                        f"got {type(options).__name__}")
    for key in options:
        if key not in ACTOR_OPTION_KEYS:
            raise ValueError(f"{where}: ray_actor_options got {key!r}, which a replica cannot "
                             f"take{did_you_mean(key, ACTOR_OPTION_KEYS)} Valid keys: "
                             f"{', '.join(sorted(ACTOR_OPTION_KEYS))}.")
    options = dict(options)
    if options.get("runtime_env") is not None:  # checked here, its paths made absolute here
        from raylite.core._runtime_env import normalize
        options["runtime_env"] = normalize(options["runtime_env"], where)
    return options


def check_positive_int(value: Any, name: str, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: {name} must be an int >= {minimum}, got {value!r}")
    return value


def route_matches(prefix: str, path: str) -> bool:
    """Whether a request path falls under a route prefix ('/a' serves '/a' and '/a/b',
    not '/ab')."""
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix) and path[len(prefix)] == "/"


def dumps_callable(target: Any) -> bytes:
    """Pickle a deployment's function or class (by value where needed, like cloudpickle).

    Starlette's ``State`` (``app.state`` of an ingress FastAPI app) cannot round-trip through
    pickle as it is (its ``__getattr__`` recurses while unpickling), so it is rebuilt from its dict.
    """
    import io

    import cloudpickle

    state_class = getattr(sys.modules.get("starlette.datastructures"), "State", None)

    class _Pickler(cloudpickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if state_class is not None and type(obj) is state_class:
                return state_class, (dict(obj._state),)
            return super().reducer_override(obj)

    buffer = io.BytesIO()
    _Pickler(buffer, protocol=5).dump(target)
    return buffer.getvalue()


def loads_callable(blob: bytes) -> Any:
    import cloudpickle
    return cloudpickle.loads(blob)
