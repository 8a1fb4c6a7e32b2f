"""raylite.dashboard: a read-only web dashboard of the local runtime, like Ray's on port 8265.

``raylite.init()`` starts it (``include_dashboard=False`` or RAYLITE_DASHBOARD=0 turn it off) and
prints its address; ``raylite.shutdown()`` stops it. One page polls a JSON API (``GET /api``
lists the endpoints): cluster resources and utilisation, workers, tasks by state with recent
failures and their tracebacks, actors, objects in the store, Tune experiments with a live trial
table and metric plot, Serve deployments with replica health, and RLlib training curves.

Security: every endpoint only reads (other methods get 405); it binds 127.0.0.1 unless told
otherwise, and warns when told; no CORS headers are sent. Against DNS rebinding, a request's
Host header must be an IP literal or ``localhost`` (any port), one of this machine's names when
serving on all interfaces, or a name in the allow-list (``start(allowed_hosts=...)``, or
RAYLITE_DASHBOARD_ALLOWED_HOSTS="name1,name2"); other names get 403.

Pieces: ``_server`` (port, thread, uvicorn), ``_app`` (FastAPI app and the guard in front of it),
``_views`` (what each endpoint returns), ``_node_views`` and ``_tune_files`` (the reading), and
``index.html`` (the page: plain HTML, CSS and JavaScript, no build step).

Example:
    >>> import raylite
    >>> ctx = raylite.init(num_cpus=1)  # doctest: +SKIP
    View the dashboard at http://127.0.0.1:8265
    >>> ctx.dashboard_url  # doctest: +SKIP
    '127.0.0.1:8265'
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from raylite.dashboard._server import Dashboard, dependencies_missing, is_loopback

__all__ = ["start", "stop"]

_lock = threading.Lock()
_current: Dashboard | None = None
_told_missing = False


def start(node: Any, host: str = "127.0.0.1", port: int = 8265,
          allowed_hosts: list[str] | None = None) -> str | None:
    """Serve the dashboard of ``node`` from a daemon thread; returns its URL at once.

    The port is bound before this returns (``port`` or the next free one above it; 0 picks any);
    FastAPI and uvicorn are imported in the thread, so the caller does not wait for them.
    Returns None, with a note on stderr, when fastapi or uvicorn is not installed.

    Args:
        node: the local runtime (``raylite.core.local._node.Node``) to show.
        host: the address to listen on. Anything but loopback is reachable from other
            machines: allowed, with a warning.
        port: the first port to try.
        allowed_hosts: DNS names to serve besides IP literals and ``localhost`` (a reverse
            proxy's name, say); RAYLITE_DASHBOARD_ALLOWED_HOSTS adds more.
    """
    global _current, _told_missing
    if not isinstance(host, str) or not host:
        raise ValueError(f"dashboard_host must be a host name or IP address, got {host!r}")
    if allowed_hosts is not None and (isinstance(allowed_hosts, str) or not all(
            isinstance(name, str) and name for name in allowed_hosts)):
        raise ValueError(f"allowed_hosts must be a list of host names, got {allowed_hosts!r}")
    missing = dependencies_missing()
    if missing:
        if not _told_missing:
            _told_missing = True
            print(f"raylite: the dashboard needs {' and '.join(missing)} (pip install "
                  "'raylite[serve]'); running without it", file=sys.stderr, flush=True)
        return None
    stop()
    with _lock:
        dashboard = Dashboard(node, host, port, allowed_hosts)
        _current = dashboard
        url = dashboard.start()
    if not is_loopback(host):
        print(f"raylite: warning: the dashboard listens on {host}:{dashboard.port}, reachable "
              "from other machines. It is read-only but shows task names, tracebacks, configs "
              "and metrics; keep the default 127.0.0.1 unless you need remote access.",
              file=sys.stderr, flush=True)
    return url


def start_with_runtime(node: Any, options: dict) -> str | None:
    """``init()``'s dashboard: started on ``dashboard_host`` / ``dashboard_port`` (8265 or the
    next free port); its "host:port", or None (with a note) when it cannot start."""
    try:
        port = options.get("dashboard_port")
        url = start(node, host=options.get("dashboard_host") or "127.0.0.1",
                    port=8265 if port is None else port)  # 0: any free port
    except (OSError, ValueError) as exc:  # the runtime is up: go on without a dashboard
        print(f"raylite: the dashboard did not start: {exc}", file=sys.stderr, flush=True)
        return None
    if url is None:
        return None
    print(f"View the dashboard at {url}", file=sys.stderr, flush=True)
    return url.split("://", 1)[1]


def stop() -> None:
    """Stop the dashboard if one runs (waits up to ~2 s for in-flight requests). Idempotent."""
    global _current
    with _lock:
        dashboard, _current = _current, None
    if dashboard is not None:
        dashboard.stop()
