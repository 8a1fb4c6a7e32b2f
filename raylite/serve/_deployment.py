"""``@serve.deployment``, the Deployment it makes, ``.bind()`` applications and ``@serve.ingress``.

    @serve.deployment ─▶ Deployment ─.deploy()──────────────────────▶ controller (route "/<name>")
                             │
                             └─.bind(args)─▶ Application ─serve.run()─▶ controller (route "/")
                                               (bound Applications among the args become handles)
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

from raylite.serve._common import (
    DeploymentConfig,
    check_actor_options,
    check_positive_int,
    check_route_prefix,
    did_you_mean,
)

_UNSET: Any = type("Unset", (), {"__repr__": lambda self: "<unset>"})()

_OPTIONS = ("name", "version", "num_replicas", "route_prefix", "ray_actor_options", "user_config",
            "max_concurrent_queries", "max_ongoing_requests", "max_queued_requests",
            "graceful_shutdown_timeout_s", "autoscaling_config", "health_check_period_s",
            "health_check_timeout_s", "init_args", "init_kwargs")
# Ray Serve options raylite does not apply. Hints (their absence changes nothing a program can
# rely on on one machine) are warned about once when set; the others are refused when set to
# anything but their default, so a program never runs believing they took effect.
_HINTS = frozenset({"graceful_shutdown_wait_loop_s", "prev_version", "is_driver_deployment",
                    "max_replicas_per_node"})
_REFUSED = frozenset({"logging_config", "placement_group_bundles", "placement_group_strategy",
                      "request_router_config"})
_IGNORED = _HINTS | _REFUSED
_warned_hints: set[str] = set()


def check_unapplied_options(options: dict, where: str) -> None:
    """Warn once about a Ray Serve hint raylite does not apply; refuse the options it lacks."""
    for key in _IGNORED.intersection(options):
        value = options[key]
        if value is None or value is False or (key == "logging_config" and _default_logging(value)):
            continue
        if key in _REFUSED:
            raise ValueError(f"{where}: {key}={value!r} is not implemented in raylite (replicas "
                             "are single-process actors on one runtime, and their output goes to "
                             f"the driver's terminal); leave {key} out")
        if key not in _warned_hints:
            _warned_hints.add(key)
            print(f"serve: {where}: {key} is a hint raylite does not apply; ignored",
                  file=sys.stderr)


def _default_logging(value: Any) -> bool:
    """Whether a LoggingConfig (or its dict) asks for nothing beyond Ray's defaults."""
    fields = value if isinstance(value, dict) else getattr(value, "__dict__", {})
    defaults = {"encoding": None, "log_level": "INFO", "logs_dir": None,
                "enable_access_log": True, "additional_log_standard_attrs": []}
    return all(fields.get(k, d) in (d, "TEXT") if k == "encoding" else fields.get(k, d) == d
               for k, d in defaults.items()) and set(fields) <= set(defaults)


class Deployment:
    """A function or class made servable by ``@serve.deployment``.

    Example:
        >>> from raylite import serve
        >>> @serve.deployment(route_prefix="/hello")
        ... def hello(request):
        ...     return "hello " + request.query_params.get("name", "world")
        >>> hello.name, hello.route_prefix
        ('hello', '/hello')
    """

    def __init__(self, func_or_class: Callable, name: str, config: DeploymentConfig,
                 route_prefix: Any = _UNSET, init_args: tuple = (),
                 init_kwargs: dict | None = None):
        self._func_or_class = func_or_class
        self._name = name
        self._config = config
        self._route_prefix = route_prefix  # _UNSET: "/<name>" for .deploy(), "/" for serve.run
        self._init_args = tuple(init_args)
        self._init_kwargs = dict(init_kwargs or {})

    # ----- what it is -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def func_or_class(self) -> Callable:
        return self._func_or_class

    @property
    def num_replicas(self) -> int | str:
        """The fixed replica count, or "auto" when the deployment autoscales."""
        return "auto" if self._config.autoscaling_config is not None else self._config.num_replicas

    @property
    def autoscaling_config(self) -> Any:
        """The AutoscalingConfig (None for a fixed number of replicas)."""
        return self._config.autoscaling_config

    @property
    def route_prefix(self) -> str | None:
        return f"/{self._name}" if self._route_prefix is _UNSET else self._route_prefix

    @property
    def user_config(self) -> Any:
        return self._config.user_config

    @property
    def version(self) -> str | None:
        return self._config.version

    @property
    def max_ongoing_requests(self) -> int:
        return self._config.max_ongoing_requests

    max_concurrent_queries = max_ongoing_requests

    @property
    def ray_actor_options(self) -> dict:
        return dict(self._config.ray_actor_options)

    @property
    def init_args(self) -> tuple:
        return self._init_args

    @property
    def init_kwargs(self) -> dict:
        return dict(self._init_kwargs)

    @property
    def url(self) -> str | None:
        """The HTTP address of this deployment (None if it has no route)."""
        from raylite.serve import _api
        prefix = self.route_prefix
        return None if prefix is None else _api.http_address() + ("" if prefix == "/" else prefix)

    def __repr__(self) -> str:
        return f"Deployment(name={self._name!r}, num_replicas={self.num_replicas}, " \
               f"route_prefix={self.route_prefix!r})"

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"deployment {self._name!r} cannot be called directly: deploy it with "
                           f"{self._name}.deploy() or serve.run({self._name}.bind()), then send "
                           "it HTTP requests or call it through a handle")

    # ----- 1.x: deploy / delete / get_handle --------------------------------------------------
    def deploy(self, *init_args: Any, _blocking: bool = True, **init_kwargs: Any) -> None:
        """Start (or update) this deployment's replicas and route, as in Ray Serve 1.x."""
        from raylite.serve import _api
        if init_args or init_kwargs:
            target = self.options(init_args=init_args, init_kwargs=init_kwargs)
        else:
            target = self
        _api.deploy_application(None, Application(target, target._init_args,
                                                  target._init_kwargs), self.route_prefix)

    def delete(self) -> None:
        """Stop this deployment's replicas and remove its route."""
        from raylite.serve import _api
        _api.delete_deployments([self._name])

    def get_handle(self, sync: bool = True):
        """A handle to call this deployment from Python: ``ray.get(handle.remote(x))``."""
        from raylite.serve._handle import RayServeHandle, RayServeSyncHandle
        return (RayServeSyncHandle if sync else RayServeHandle)(self._name)

    # ----- 2.x: bind / options ----------------------------------------------------------------
    def bind(self, *args: Any, **kwargs: Any) -> Application:
        """This deployment with its constructor arguments, ready for ``serve.run``."""
        return Application(self, args, kwargs)

    def options(self, *, func_or_class: Callable | None = None, _internal: bool = False,
                **options: Any) -> Deployment:
        """A copy of this deployment with some options changed (same options as the decorator)."""
        return _make(func_or_class or self._func_or_class, self, options, "options()")


class Application:
    """A deployment bound to its constructor arguments (``Deployment.bind``), for ``serve.run``.

    Applications among the arguments are deployed too and reach the constructor as handles.
    """

    def __init__(self, deployment: Deployment, args: tuple, kwargs: dict):
        self.deployment = deployment
        self.args = tuple(args)
        self.kwargs = dict(kwargs)

    def __repr__(self) -> str:
        return f"Application({self.deployment.name})"


def deployment(_func_or_class: Callable | None = None, **options: Any):
    """Make a function or class a deployment: ``@serve.deployment`` or ``@serve.deployment(...)``.

    Options: ``name``, ``num_replicas`` (an int, or ``"auto"``), ``route_prefix`` (default
    ``"/<name>"`` for ``.deploy()``; None: reachable only through handles),
    ``ray_actor_options`` (default ``{"num_cpus": 1}`` per replica), ``max_ongoing_requests``
    (alias ``max_concurrent_queries``, default 100), ``max_queued_requests`` (requests waiting at
    the proxy before it answers 503, default 64), ``user_config`` (passed to ``reconfigure``),
    ``version``, ``graceful_shutdown_timeout_s`` (how long a stopping replica may finish its
    requests, default 20), ``autoscaling_config`` (a dict: ``min_replicas``, ``max_replicas``,
    ``target_ongoing_requests`` (1.x: ``target_num_ongoing_requests_per_replica``),
    ``upscale_delay_s``, ``downscale_delay_s``, ...; see ``AutoscalingConfig``),
    ``health_check_period_s`` (default 10) and ``health_check_timeout_s`` (default 30): how often
    the replica's ``check_health()`` method, if it has one, is called and how long it may take;
    a replica that fails it, or dies, is replaced.

    Example:
        >>> from raylite import serve
        >>> @serve.deployment(num_replicas=2, user_config={"greeting": "hi"}, version="1")
        ... class Greeter:
        ...     def reconfigure(self, config):
        ...         self.greeting = config["greeting"]
        ...     def __call__(self, request):
        ...         return self.greeting
        >>> Greeter.num_replicas
        2
    """
    if _func_or_class is not None:
        if not callable(_func_or_class):
            raise TypeError(f"@serve.deployment decorates a function or a class, got "
                            f"{type(_func_or_class).__name__}; pass options by keyword")
        return _make(_func_or_class, None, options, "@serve.deployment")
    return lambda target: _make(target, None, options, "@serve.deployment")


def _make(target: Callable, base: Deployment | None, options: dict, where: str) -> Deployment:
    for key in options:
        if key not in _OPTIONS and key not in _IGNORED:
            raise TypeError(f"{where} got an unexpected option {key!r}"
                            f"{did_you_mean(key, _OPTIONS)} Valid options: {', '.join(_OPTIONS)}.")
    check_unapplied_options(options, where)
    if not callable(target) or isinstance(target, Deployment):
        raise TypeError(f"{where}: expected a function or a class, got {type(target).__name__}")
    config = base._config if base is not None else DeploymentConfig()
    name = options.get("name", base._name if base else getattr(target, "__name__", None))
    if not isinstance(name, str) or not name or "#" in name or "/" in name:
        raise ValueError(f"{where}: name must be a non-empty string without '#' or '/', "
                         f"got {name!r}")
    changes = _config_changes(options, config, where)
    route_prefix = options.get("route_prefix", base._route_prefix if base else _UNSET)
    if route_prefix is not _UNSET:
        check_route_prefix(route_prefix, where)
    init_args = options.get("init_args", base._init_args if base else ())
    init_kwargs = options.get("init_kwargs", base._init_kwargs if base else {})
    if not inspect.isclass(target) and options.get("user_config") is not None:
        raise ValueError(f"{where}: user_config needs a class deployment with a reconfigure() "
                         f"method; {name!r} is a function")
    return Deployment(target, name, config.replace(**changes), route_prefix,
                      init_args or (), init_kwargs or {})


def _config_changes(options: dict, config: DeploymentConfig, where: str) -> dict:
    changes: dict[str, Any] = _replica_count_changes(options, where)
    ongoing = [k for k in ("max_ongoing_requests", "max_concurrent_queries")
               if options.get(k) is not None]
    if len(ongoing) == 2 and options[ongoing[0]] != options[ongoing[1]]:
        raise ValueError(f"{where}: max_ongoing_requests and max_concurrent_queries are the same "
                         "setting (its 2.x and 1.x names); give only one")
    if ongoing:
        changes["max_ongoing_requests"] = check_positive_int(options[ongoing[0]], ongoing[0], where)
    if options.get("max_queued_requests") is not None:
        queued = options["max_queued_requests"]
        changes["max_queued_requests"] = 1 << 30 if queued == -1 else check_positive_int(
            queued, "max_queued_requests", where, minimum=0)
    if "ray_actor_options" in options:
        changes["ray_actor_options"] = check_actor_options(options["ray_actor_options"], where)
    if "user_config" in options:
        changes["user_config"] = options["user_config"]
    if "version" in options:
        version = options["version"]
        if version is not None and not isinstance(version, str):
            raise TypeError(f"{where}: version must be a string, got {type(version).__name__}")
        changes["version"] = version
    if options.get("graceful_shutdown_timeout_s") is not None:
        timeout = options["graceful_shutdown_timeout_s"]
        if not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError(f"{where}: graceful_shutdown_timeout_s must be a number >= 0, "
                             f"got {timeout!r}")
        changes["graceful_shutdown_timeout_s"] = float(timeout)
    for key in ("health_check_period_s", "health_check_timeout_s"):
        if options.get(key) is not None:
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{where}: {key} must be a number > 0, got {value!r}")
            changes[key] = float(value)
    return changes


def _replica_count_changes(options: dict, where: str) -> dict:
    """``num_replicas`` (an int or "auto") and ``autoscaling_config``, checked together."""
    from raylite.serve._autoscaling import AutoscalingConfig
    count = options.get("num_replicas")
    autoscaling = options.get("autoscaling_config")
    if autoscaling is not None:
        if count is not None and count != "auto":
            raise ValueError(f"{where}: give either num_replicas={count!r} or an "
                             "autoscaling_config, not both (autoscaling picks the count between "
                             "min_replicas and max_replicas)")
        return {"autoscaling_config": AutoscalingConfig.parse(autoscaling, where,
                                                              auto=count == "auto")}
    if count == "auto":
        return {"autoscaling_config": AutoscalingConfig.auto()}
    if count is not None:
        return {"num_replicas": check_positive_int(count, "num_replicas", where),
                "autoscaling_config": None}
    if "autoscaling_config" in options:  # autoscaling_config=None: back to a fixed count
        return {"autoscaling_config": None}
    return {}


def ingress(app: Any):
    """Serve a FastAPI (or any ASGI) app from a class deployment, keeping its routing,
    validation and ``/docs``. Routes defined on methods are called on the replica's instance.

    Example:
        >>> from fastapi import FastAPI
        >>> from raylite import serve
        >>> app = FastAPI()
        >>> @serve.deployment(route_prefix="/api")
        ... @serve.ingress(app)
        ... class Api:
        ...     @app.get("/items/{item_id}")
        ...     def item(self, item_id: int):
        ...         return {"item_id": item_id}
        >>> Api.name
        'Api'
    """
    if not callable(app):
        raise TypeError(f"serve.ingress() takes an ASGI app such as FastAPI(), got "
                        f"{type(app).__name__}")

    def decorate(cls: type) -> type:
        if not inspect.isclass(cls):
            raise TypeError("@serve.ingress(app) decorates a class (put @serve.deployment "
                            "above it)")
        cls._serve_asgi_app = app
        return cls

    return decorate
