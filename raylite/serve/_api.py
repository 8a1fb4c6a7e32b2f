"""The driver's side of Serve: start/run/shutdown and the calls that change deployments.

    serve.start() ─▶ ServeController actor (named, namespace "serve") + HTTPProxy (driver thread)
    serve.run(app) / Deployment.deploy() ─▶ raylite.put(definition) ─▶ controller.deploy_application
                                          ─▶ wait until RUNNING ─▶ push the new routes to the proxy
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import raylite
from raylite.serve import _handle
from raylite.serve._common import (
    CONTROLLER_NAME,
    DEFAULT_APP_NAME,
    DEFAULT_HOST,
    DEFAULT_KEEP_ALIVE_TIMEOUT_S,
    DEFAULT_MAX_REQUEST_BODY_BYTES,
    SERVE_NAMESPACE,
    check_route_prefix,
    default_http_port,
    did_you_mean,
    dumps_callable,
    loads_callable,
)
from raylite.serve._deployment import _UNSET, Application, Deployment

_HTTP_OPTION_KEYS = frozenset({"host", "port", "location", "root_path", "request_timeout_s",
                               "keep_alive_timeout_s", "middlewares", "num_cpus",
                               "max_request_body_bytes"})
_lock = threading.RLock()
_state: _ServeState | None = None


class _ServeState:
    def __init__(self, controller: Any, proxy: Any, host: str, port: int, node_id: str):
        self.controller = controller
        self.proxy = proxy
        self.host = host
        self.port = port
        self.node_id = node_id


def _node_id() -> str:
    return raylite.get_runtime_context().get_node_id()


def _current() -> _ServeState | None:
    """The running Serve instance of this runtime, or None (dropping one of a dead runtime)."""
    global _state
    state = _state
    if state is not None and (not raylite.is_initialized() or state.node_id != _node_id()):
        if state.proxy is not None:
            state.proxy.stop()
        _state = None
        _handle.invalidate()
        return None
    return state


def _http_options(http_options: Any) -> dict:
    if http_options is None:
        return {}
    if not isinstance(http_options, dict):
        http_options = {k: getattr(http_options, k) for k in _HTTP_OPTION_KEYS
                        if getattr(http_options, k, None) is not None}
    for key in http_options:
        if key not in _HTTP_OPTION_KEYS:
            raise ValueError(f"serve.start(): unknown http_options key {key!r}"
                             f"{did_you_mean(key, _HTTP_OPTION_KEYS)}")
    return dict(http_options)


_LOCATIONS = ("HeadOnly", "EveryNode", "NoServer", "Disabled")
_warned_num_cpus = False


def _proxy_options(options: dict) -> dict:
    """The HTTPProxy keywords for ``root_path``, ``request_timeout_s``, ``keep_alive_timeout_s``
    and ``middlewares``, checked; ``location`` checked; ``num_cpus`` warned about once (the
    proxy is a thread of the driver here, not an actor that reserves CPUs)."""
    global _warned_num_cpus
    root_path = options.get("root_path") or ""
    if not isinstance(root_path, str) or (root_path and not root_path.startswith("/")):
        raise ValueError(f"serve.start(): http_options root_path must be a path such as "
                         f"'/prefix', got {root_path!r}")
    timeout = options.get("request_timeout_s")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout <= 0):
        raise ValueError(f"serve.start(): http_options request_timeout_s must be a number of "
                         f"seconds > 0, or None for no limit, got {timeout!r}")
    keep_alive = options.get("keep_alive_timeout_s", DEFAULT_KEEP_ALIVE_TIMEOUT_S)
    if isinstance(keep_alive, bool) or not isinstance(keep_alive, (int, float)) or keep_alive < 0:
        raise ValueError(f"serve.start(): http_options keep_alive_timeout_s must be a number of "
                         f"seconds >= 0, got {keep_alive!r}")
    middlewares = options.get("middlewares") or ()
    for middleware in middlewares:
        try:
            cls, _, _ = middleware
        except (TypeError, ValueError):
            raise TypeError(f"serve.start(): each of http_options middlewares must be a "
                            f"starlette.middleware.Middleware(cls, ...), got {middleware!r}") from None
        if not callable(cls):
            raise TypeError(f"serve.start(): middleware class {cls!r} is not callable")
    location = options.get("location")
    if location is not None and str(getattr(location, "value", location)) not in _LOCATIONS:
        raise ValueError(f"serve.start(): http_options location must be one of {_LOCATIONS}, "
                         f"got {location!r}")
    if options.get("num_cpus") and not _warned_num_cpus:
        _warned_num_cpus = True
        print("serve: http_options num_cpus is a hint raylite does not apply: the HTTP proxy is "
              "a thread of the driver, not an actor that reserves CPUs", file=sys.stderr)
    return {"root_path": root_path, "request_timeout_s": timeout,
            "keep_alive_timeout_s": keep_alive, "middlewares": tuple(middlewares)}


def start(detached: bool = False, http_options: Any = None, dedicated_cpu: bool = False,
          **kwargs: Any) -> None:
    """Start Serve: the controller and the HTTP proxy (127.0.0.1:8000 unless told otherwise;
    the ``RAYLITE_SERVE_HTTP_PORT`` environment variable changes the default port).

    Starts raylite too if it is not running. ``detached`` is accepted for compatibility: the
    instance lives as long as this driver's runtime either way.

    ``http_options``: ``host``, ``port``, ``max_request_body_bytes`` (default 10 MiB; a larger
    request body gets 413 Payload Too Large; None: no limit), ``root_path`` (every route mounted
    under it), ``request_timeout_s`` (end to end; 408 past it), ``keep_alive_timeout_s``
    (default 90), ``middlewares`` (Starlette ``Middleware`` objects around the proxy) and
    ``location`` ("NoServer" runs no proxy); ``num_cpus`` is a hint, warned about.

    Example:
        >>> from raylite import serve
        >>> serve.start(http_options={"host": "127.0.0.1", "port": 0})   # 0: any free port
        >>> serve.shutdown()
    """
    global _state
    for key in kwargs:
        if key not in ("proxy_location", "grpc_options", "_system_config"):
            raise TypeError(f"serve.start() got an unexpected keyword argument {key!r}")
    options = _http_options(http_options)
    body_limit = options.get("max_request_body_bytes", DEFAULT_MAX_REQUEST_BODY_BYTES)
    if body_limit is not None and (isinstance(body_limit, bool) or not isinstance(body_limit, int)
                                   or body_limit < 0):
        raise ValueError(f"serve.start(): http_options max_request_body_bytes must be an int >= 0 "
                         f"(bytes) or None for no limit, got {body_limit!r}")
    host = options.get("host") or DEFAULT_HOST
    port = options.get("port", default_http_port())
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"serve.start(): http_options port must be an int in 0..65535, "
                         f"got {port!r}")
    proxy_options = _proxy_options(options)
    with _lock:
        if not raylite.is_initialized():
            raylite.init()
        state = _current()
        if state is not None:
            if http_options is not None and (host, port) != (state.host, state.port) \
                    and port != 0:
                print(f"serve: already running on {state.host}:{state.port}; ignoring the new "
                      f"http_options {options}", file=sys.stderr)
            return
        from raylite.serve._controller import ServeController
        controller = raylite.remote(ServeController).options(
            name=CONTROLLER_NAME, namespace=SERVE_NAMESPACE, num_cpus=0, get_if_exists=True,
            max_concurrency=1000).remote()
        proxy = None
        no_server = options.get("location") == "NoServer" or kwargs.get("proxy_location") in (
            "Disabled", "NoServer")
        if not no_server:
            from raylite.serve._proxy import HTTPProxy
            proxy = HTTPProxy(host, port, controller, body_limit, **proxy_options)
            proxy.start()
            port = proxy.port
        _state = _ServeState(controller, proxy, host, port, _node_id())
        _handle.invalidate()
        raylite.get(controller.status.remote())  # the controller is up


def _ensure_started() -> _ServeState:
    state = _current()
    if state is None:
        start()
        state = _current()
    return state


def http_address() -> str:
    """``http://host:port`` of the proxy (the real port, also after ``port=0``)."""
    state = _current()
    if state is None:
        return f"http://{DEFAULT_HOST}:{default_http_port()}"
    host = "127.0.0.1" if state.host in ("0.0.0.0", "") else state.host
    return f"http://{host}:{state.port}"


def _after_change(state: _ServeState) -> None:
    """Drop cached replica lists and push the new routes to the proxy before returning."""
    _handle.invalidate()
    if state.proxy is not None:
        version, routes = raylite.get(state.controller.get_routes.remote())
        state.proxy.update_routes(version, routes)


# ----- deploying ----------------------------------------------------------------------------
def _collect(root: Application,
             app_name: str | None) -> list[tuple[Application, str, tuple, dict]]:
    """The deployments of an application graph, dependencies first, each with its name in the
    application; bound args become handles. A deployment bound more than once (with other
    arguments) is deployed once per binding, as ``Model``, ``Model_1``, ... (as Ray names them;
    the root keeps the plain name)."""
    order: list[tuple[Application, str, tuple, dict]] = []
    handles: dict[int, _handle.DeploymentHandle] = {}
    taken: set[str] = set()

    def unique(name: str) -> str:
        candidate, suffix = name, 0
        while candidate in taken:
            suffix += 1
            candidate = f"{name}_{suffix}"
        taken.add(candidate)
        return candidate

    def visit(node: Application) -> _handle.DeploymentHandle:
        if id(node) in handles:
            return handles[id(node)]
        name = unique(node.deployment.name)
        handles[id(node)] = _handle.DeploymentHandle(name, app_name)  # before its arguments:
        args = replace(node.args)                                     # the root keeps its name
        kwargs = replace(node.kwargs)
        order.append((node, name, args, kwargs))
        return handles[id(node)]

    def replace(value: Any) -> Any:
        if isinstance(value, Application):
            return visit(value)
        if isinstance(value, Deployment):
            return visit(value.bind())
        if isinstance(value, (list, tuple)):
            return type(value)(replace(v) for v in value)
        if isinstance(value, dict):
            return {k: replace(v) for k, v in value.items()}
        return value

    visit(root)
    return order


def deploy_application(app_name: str | None, root: Application, route_prefix: Any,
                       delete_others: bool = False) -> _handle.DeploymentHandle:
    """Deploy every deployment of ``root``'s graph; the root gets ``route_prefix``."""
    state = _ensure_started()
    specs = []
    collected = _collect(root, app_name)
    for node, name, args, kwargs in collected:
        deployment = node.deployment
        prefix = route_prefix if node is root else None
        config = deployment._config.replace(route_prefix=prefix)
        definition = raylite.put((dumps_callable(deployment.func_or_class), args, kwargs))
        specs.append({"name": name, "config": config, "definition": [definition]})
    try:
        raylite.get(state.controller.deploy_application.remote(app_name, specs, delete_others))
    finally:
        _after_change(state)
    return _handle.DeploymentHandle(collected[-1][1], app_name)


def run(target: Application | Deployment, *, route_prefix: Any = _UNSET,
        name: str = DEFAULT_APP_NAME, blocking: bool = False, _blocking: bool = True,
        **kwargs: Any) -> _handle.DeploymentHandle:
    """Deploy an application (``Deployment.bind(...)``) and return a handle to its ingress.

    The ingress is reachable over HTTP at ``route_prefix`` (default: the deployment's own
    route_prefix if it set one, else "/"); ``route_prefix=None`` serves it only by handle.
    Running an application of the same ``name`` again replaces it.

    Example:
        >>> from raylite import serve
        >>> @serve.deployment
        ... class Echo:
        ...     def __call__(self, text):
        ...         return text
        >>> handle = serve.run(Echo.bind(), route_prefix="/echo")   # doctest: +SKIP
        >>> handle.remote("hi").result()                            # doctest: +SKIP
        'hi'
    """
    for key in kwargs:
        if key not in ("host", "port", "logging_config", "external_scaler_enabled"):
            raise TypeError(f"serve.run() got an unexpected keyword argument {key!r}")
    from raylite.serve._deployment import check_unapplied_options
    check_unapplied_options({k: v for k, v in kwargs.items() if k == "logging_config"},
                            "serve.run()")
    if kwargs.get("external_scaler_enabled"):
        raise ValueError("serve.run(): external_scaler_enabled=True is not implemented in raylite; "
                         "use autoscaling_config on the deployment")
    if isinstance(target, Deployment):
        target = target.bind()
    if not isinstance(target, Application):
        raise TypeError(f"serve.run() takes an application made with Deployment.bind(...), got "
                        f"{type(target).__name__}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"serve.run(): name must be a non-empty string, got {name!r}")
    if route_prefix is _UNSET:
        own = target.deployment._route_prefix
        route_prefix = "/" if own is _UNSET else own
    check_route_prefix(route_prefix, "serve.run()")
    http = {k: kwargs[k] for k in ("host", "port") if kwargs.get(k) is not None}
    if http:  # Ray 2.2's serve.run(host=, port=): where the proxy listens, if Serve starts now
        start(http_options=http)
    handle = deploy_application(name, target, route_prefix, delete_others=True)
    if blocking:
        threading.Event().wait()
    return handle


def delete(name: str, _blocking: bool = True) -> None:
    """Delete the application ``name`` (its deployments and routes)."""
    state = _current()
    if state is None:
        return
    try:
        raylite.get(state.controller.delete_application.remote(name))
    finally:
        _after_change(state)


def delete_deployments(names: list[str]) -> None:
    state = _current()
    if state is None:
        return
    try:
        raylite.get(state.controller.delete_deployments.remote(list(names)))
    finally:
        _after_change(state)


# ----- reading ------------------------------------------------------------------------------
def _deployment_from_info(info: dict) -> Deployment:
    blob, args, kwargs = raylite.get(info["definition"][0])
    target = loads_callable(blob)
    config = info["config"]
    return Deployment(target, info["name"], config, config.route_prefix, args, kwargs)


def list_deployments() -> dict[str, Deployment]:
    """All deployments, by name (Ray Serve 1.x)."""
    state = _ensure_started()
    infos = raylite.get(state.controller.list_deployments.remote())
    return {name: _deployment_from_info(info) for name, info in infos.items()}


def get_deployment(name: str) -> Deployment:
    """The deployment called ``name``, to redeploy, scale or get a handle (Ray Serve 1.x)."""
    state = _ensure_started()
    info = raylite.get(state.controller.get_deployment_info.remote(name))
    if info is None:
        known = raylite.get(state.controller.list_deployments.remote())
        raise KeyError(f"there is no deployment named {name!r}{did_you_mean(name, known)}"
                       if known else f"there is no deployment named {name!r}: none is deployed")
    return _deployment_from_info(info)


def get_app_handle(name: str = DEFAULT_APP_NAME) -> _handle.DeploymentHandle:
    """A handle to the ingress deployment of application ``name``."""
    state = _ensure_started()
    deployments = raylite.get(state.controller.list_deployments.remote())
    ingress = [info for info in deployments.values()
               if info["app_name"] == name and info["config"].route_prefix is not None]
    members = [info for info in deployments.values() if info["app_name"] == name]
    if not members:
        raise KeyError(f"there is no application named {name!r}")
    chosen = (ingress or members)[-1]
    return _handle.DeploymentHandle(chosen["name"], name)


def get_deployment_handle(deployment_name: str, app_name: str | None = None) -> \
        _handle.DeploymentHandle:
    """A handle to deployment ``deployment_name``."""
    _ensure_started()
    return _handle.DeploymentHandle(deployment_name, app_name)


class _StatusRecord(dict):
    """A dict whose keys also read as attributes (``status.applications["app"].status``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class ServeStatus:
    """What ``serve.status()`` returns: the proxy and each deployment's status and replicas."""

    def __init__(self, proxies: dict, deployments: dict, applications: dict):
        self.proxies = proxies
        self.deployments = deployments
        self.applications = applications

    def __repr__(self) -> str:
        return f"ServeStatus(proxies={self.proxies}, applications={self.applications})"


def status() -> ServeStatus:
    """The status of every deployment: HEALTHY / UPDATING / UNHEALTHY and replica states."""
    state = _current()
    if state is None:
        return ServeStatus({}, {}, {})
    report = raylite.get(state.controller.status.remote())
    proxies = {} if state.proxy is None else {f"{state.host}:{state.port}": "HEALTHY"}
    deployments = {name: _StatusRecord(info) for name, info in report["deployments"].items()}
    applications: dict[str, _StatusRecord] = {}
    for name, info in deployments.items():
        app = applications.setdefault(info["app_name"] or "", _StatusRecord(
            status="RUNNING", deployments={}))
        app["deployments"][name] = info
        if info["status"] != "HEALTHY":
            app["status"] = "DEPLOYING" if info["status"] == "UPDATING" else "UNHEALTHY"
    return ServeStatus(proxies, deployments, applications)


def shutdown(timeout_s: float | None = None) -> None:
    """Stop Serve gracefully: the proxy stops taking connections and finishes the requests in
    flight, then every replica finishes its own (handle calls too) and stops, each within its
    deployment's ``graceful_shutdown_timeout_s`` (or ``timeout_s`` overall, if given).
    Safe to call when Serve is not running."""
    global _state
    with _lock:
        state = _current()
        _state = None
        _handle.invalidate()
        if state is None:
            return
        grace = _grace_period(state) if timeout_s is None else timeout_s
        if state.proxy is not None:
            state.proxy.stop(graceful_timeout_s=grace)
        try:
            raylite.get(state.controller.shutdown.remote(), timeout=grace + 10.0)
        except Exception as exc:  # noqa: BLE001 - stop what we can
            print(f"serve: shutdown could not stop every replica cleanly: {exc}", file=sys.stderr)
        raylite.kill(state.controller)
        try:  # returns once the runtime knows it is gone, so its name is free for serve.start()
            raylite.get(state.controller.status.remote(), timeout=10)
        except Exception:  # noqa: BLE001 - ActorDiedError, as expected
            pass


def _grace_period(state: _ServeState) -> float:
    """The longest graceful_shutdown_timeout_s among the deployments (0 if none)."""
    try:
        report = raylite.get(state.controller.status.remote(), timeout=10)
    except Exception:  # noqa: BLE001 - the controller is gone: nothing to wait for
        return 0.0
    return max([info.get("graceful_shutdown_timeout_s", 0.0)
                for info in report["deployments"].values()] or [0.0])
