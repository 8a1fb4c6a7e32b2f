"""The ``serve`` command.

    serve start [--host 127.0.0.1] [--port 8000]    start a Serve instance in the background
    serve run module:app [--host --port]            run an application in this terminal
    serve run --non-blocking module:app             deploy it to the background instance (started
                                                    if none runs) and return
    serve deploy config.yaml                        deploy applications to the running instance
    serve status                                    deployments, replicas and health, as a table
    serve shutdown                                  stop the running instance

The instance is a raylite driver that hosts Serve. ``deploy``, ``status`` and ``shutdown``
reach it through the driver's private control channel (a Unix socket and a key file, see
raylite.util.control), never through an HTTP endpoint: nothing on the HTTP port can deploy or
stop anything.

A config file lists applications::

    applications:
      - name: default
        import_path: my_module:app          # a Deployment or Deployment.bind(...)
        route_prefix: /
        deployments:                        # per-deployment overrides (optional)
          - name: Model
            num_replicas: 2                 # or autoscaling_config: {min_replicas: 1, ...}
            user_config: {threshold: 0.5}
            health_check_period_s: 10
            graceful_shutdown_timeout_s: 20
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import threading
import time
from typing import Any

from raylite.cli._common import run_subcommand
from raylite.cli._session import table
from raylite.serve._common import DEFAULT_MAX_REQUEST_BODY_BYTES

LOG = os.path.join(os.path.expanduser("~"), ".raylite", "serve.log")
_OVERRIDABLE = {"num_replicas", "user_config", "max_ongoing_requests", "max_concurrent_queries",
                "ray_actor_options", "route_prefix", "version", "max_queued_requests",
                "autoscaling_config", "health_check_period_s", "health_check_timeout_s",
                "graceful_shutdown_timeout_s"}


# ----- the hosting driver ---------------------------------------------------------------------
def _load(import_path: str) -> Any:
    if ":" not in import_path:
        raise ValueError(f"import_path {import_path!r} must look like 'module:attribute'")
    module_name, attribute = import_path.split(":", 1)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        from raylite.serve._common import did_you_mean
        names = [name for name in vars(module) if not name.startswith("_")]
        raise ValueError(f"module {module_name!r} has no attribute {attribute!r}"
                         f"{did_you_mean(attribute, names)}") from None


def _with_overrides(target: Any, overrides: dict[str, dict]) -> Any:
    """Apply per-deployment option overrides to a Deployment or an Application tree."""
    from raylite.serve import Application, Deployment
    if isinstance(target, Deployment):
        options = overrides.get(target.name)
        return target.options(**options) if options else target
    if isinstance(target, Application):
        args = tuple(_with_overrides(a, overrides) for a in target.args)
        kwargs = {k: _with_overrides(v, overrides) for k, v in target.kwargs.items()}
        return Application(_with_overrides(target.deployment, overrides), args, kwargs)
    return target


def deploy_config(config: dict[str, Any]) -> list[str]:
    """Deploy every application of a config; returns their names."""
    from raylite import serve
    applications = config.get("applications")
    if not isinstance(applications, list) or not applications:
        raise ValueError("the config needs an 'applications:' list, each with an import_path")
    names = []
    for app in applications:
        if "import_path" not in app:
            raise ValueError(f"application {app.get('name', '?')!r} has no import_path")
        overrides: dict[str, dict] = {}
        for dep in app.get("deployments") or []:
            unknown = set(dep) - _OVERRIDABLE - {"name"}
            if unknown:
                raise ValueError(f"deployment {dep.get('name')!r}: unknown option(s) "
                                 f"{sorted(unknown)}; allowed: {sorted(_OVERRIDABLE)}")
            overrides[dep["name"]] = {k: v for k, v in dep.items() if k != "name"}
        target = _with_overrides(_load(app["import_path"]), overrides)
        if not hasattr(target, "deployment"):  # a bare Deployment: bind it
            target = target.bind()
        name = app.get("name", "default")
        serve.run(target, route_prefix=app.get("route_prefix", "/"), name=name)
        names.append(name)
    return names


def status_rows() -> list[dict[str, Any]]:
    from raylite import serve
    rows = []
    for name, info in serve.status().deployments.items():
        replicas = ", ".join(f"{n} {s.lower()}" for s, n in sorted(info["replica_states"].items()))
        if info.get("autoscaling"):
            scaling = info["autoscaling"]
            replicas += (f" (autoscaling {scaling['min_replicas']}..{scaling['max_replicas']}, "
                         f"target {info['target_replicas']})")
        rows.append({"application": info["app_name"] or "", "deployment": name,
                     "status": info["status"], "replicas": replicas,
                     "route": info.get("route_prefix") or "", "message": info.get("message", "")})
    return rows


def host(args: argparse.Namespace, target: Any = None) -> int:
    """Run raylite + Serve in this process until ``serve shutdown`` or Ctrl-C."""
    import raylite
    from raylite import serve
    from raylite.util import control
    raylite.init(ignore_reinit_error=True, include_dashboard=False)
    try:
        serve.start(http_options={"host": args.host, "port": args.port,
                                  "max_request_body_bytes": args.max_request_body_bytes})
    except OSError as exc:  # the port is taken, the host is not this machine's, ...
        raylite.shutdown()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        print(f"serve: cannot listen on {args.host}:{args.port}: {reason}; "
              f"pass --port N for another port (--port 0: any free one)", file=sys.stderr)
        return 1
    from raylite.serve._api import http_address
    port = int(http_address().rsplit(":", 1)[1])  # the real one, also after --port 0
    stop = threading.Event()
    control.register("serve.ping", lambda: {"pid": os.getpid(), "host": args.host, "port": port})
    control.register("serve.deploy", deploy_config)
    control.register("serve.status", status_rows)
    control.register("serve.shutdown", lambda: stop.set() or True)
    if target is not None:
        serve.run(target if hasattr(target, "deployment") else target.bind(),
                  route_prefix=args.route_prefix, name="default")
    print(f"Serve is running at http://{args.host}:{port} (pid {os.getpid()}); "
          "stop it with `serve shutdown` or Ctrl-C", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    serve.shutdown()
    raylite.shutdown()
    return 0


# ----- the client side ------------------------------------------------------------------------
def _instance():
    """A control client of the running Serve instance, or None."""
    from raylite.core._control import ControlClient, running_sessions
    for record in running_sessions():
        try:
            client = ControlClient(record, timeout=30)
            client.call("serve.ping")
            return client
        except Exception:  # noqa: BLE001 - a driver without Serve: try the next
            continue
    return None


def _need_instance(command: str):
    client = _instance()
    if client is None:
        print(f"serve {command}: no Serve instance is running; start one with `serve start` "
              "(or `serve run module:app`)", file=sys.stderr)
    return client


def cmd_start(args: argparse.Namespace) -> int:
    if _instance() is not None:
        print("serve start: a Serve instance is already running (see `serve status`)", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(LOG), mode=0o700, exist_ok=True)
    with open(LOG, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "raylite.cli._serve", "_host",
                                 "--host", args.host, "--port", str(args.port),
                                 "--max-request-body-bytes", str(args.max_request_body_bytes)],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=os.getcwd())
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"serve start: the Serve process exited with {proc.returncode}; see {LOG}",
                  file=sys.stderr)
            return 1
        client = _instance()
        if client is not None:
            info = client.call("serve.ping")
            client.close()
            print(f"Serve started at http://{info['host']}:{info['port']} (pid {info['pid']}); "
                  f"log: {LOG}")
            return 0
        time.sleep(0.1)  # polling a process we started, with a deadline
    proc.kill()
    print(f"serve start: Serve did not come up within {args.timeout} s; see {LOG}", file=sys.stderr)
    return 1


def cmd_run(args: argparse.Namespace) -> int:
    try:
        target = _load(args.import_path)
    except (ValueError, ImportError) as exc:
        print(f"serve run: {exc}", file=sys.stderr)
        return 2
    if args.non_blocking:
        return _run_in_background(args)
    return host(args, target)


def _run_in_background(args: argparse.Namespace) -> int:
    """``serve run --non-blocking``: the application goes to the background instance (as
    ``serve deploy`` sends a config), which ``serve start`` starts first if none runs."""
    if _instance() is None:
        args.timeout = 60.0
        status = cmd_start(args)
        if status != 0:
            return status
    client = _need_instance("run")
    if client is None:
        return 1
    app = {"name": "default", "import_path": args.import_path, "route_prefix": args.route_prefix}
    try:
        client.call("serve.deploy", {"applications": [app]})
        info = client.call("serve.ping")
    except RuntimeError as exc:
        print(f"serve run: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"Deployed {args.import_path} at http://{info['host']}:{info['port']}"
          f"{args.route_prefix}; it keeps running (see `serve status`, stop it with "
          "`serve shutdown`)", flush=True)
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    import yaml
    try:
        with open(args.config) as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        print(f"serve deploy: cannot read {args.config}: {exc}", file=sys.stderr)
        return 2
    client = _need_instance("deploy")
    if client is None:
        return 1
    try:
        names = client.call("serve.deploy", config)
    except RuntimeError as exc:
        print(f"serve deploy: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"deployed: {', '.join(names)}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    client = _need_instance("status")
    if client is None:
        return 1
    try:
        rows = client.call("serve.status")
        info = client.call("serve.ping")
    finally:
        client.close()
    print(f"proxy: http://{info['host']}:{info['port']} (pid {info['pid']})\n")
    print(table(rows, ["application", "deployment", "status", "replicas", "route", "message"])
          if rows else "no deployments")
    return 0


def cmd_shutdown(args: argparse.Namespace) -> int:
    client = _need_instance("shutdown")
    if client is None:
        return 1
    try:
        client.call("serve.shutdown")
    finally:
        client.close()
    print("Serve is shutting down")
    return 0


def _byte_count(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of bytes or 'none', got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serve", description="Run and manage raylite Serve.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def http(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
        p.add_argument("--max-request-body-bytes", type=_byte_count,
                       default=DEFAULT_MAX_REQUEST_BODY_BYTES, metavar="N",
                       help="larger request bodies get 413 (default: 10 MiB; 'none': no limit)")

    p = sub.add_parser("start", help="start Serve in the background")
    http(p)
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(run=cmd_start)
    p = sub.add_parser("run", help="run module:app in this terminal")
    p.add_argument("import_path")
    p.add_argument("--route-prefix", default="/")
    p.add_argument("--non-blocking", action="store_true",
                   help="deploy to the background instance (started if none runs) and return")
    http(p)
    p.set_defaults(run=cmd_run)
    p = sub.add_parser("deploy", help="deploy a config file to the running instance")
    p.add_argument("config")
    p.set_defaults(run=cmd_deploy)
    p = sub.add_parser("status", help="deployments, replicas and health")
    p.set_defaults(run=cmd_status)
    p = sub.add_parser("shutdown", help="stop the running instance")
    p.set_defaults(run=cmd_shutdown)
    p = sub.add_parser("_host")  # what `serve start` runs in the background
    http(p)
    p.set_defaults(run=lambda a: host(a))
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_subcommand(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
