"""``raylite status``, ``raylite memory`` and ``raylite timeline``: ask a running driver.

They reach the driver through its private control channel (raylite.core._control): a Unix
socket in the session folder plus a key file only this user can read. Nothing is served over
HTTP.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    for name, run, text in (("status", _status, "resources, workers, actors and tasks of a running driver"),
                            ("memory", _memory, "objects in the store: size, place, references"),
                            ("timeline", _timeline, "task executions as a Chrome trace (Perfetto)")):
        parser = subparsers.add_parser(name, help=text, description=text)
        parser.add_argument("--pid", type=int, default=None,
                            help="the driver's pid (default: the newest running driver)")
        if name == "status":
            parser.add_argument("--address", default=None,
                                help="show this Dask cluster instead (default: a local driver, "
                                     "else RAYLITE_ADDRESS or the cluster `raylite start` made)")
        if name == "timeline":
            parser.add_argument("--output", "-o", default="timeline.json",
                                help="file to write (default: timeline.json)")
        parser.set_defaults(run=run)


def _ask(args: argparse.Namespace, request: str) -> Any:
    from raylite.core._control import connect
    try:
        client = connect(args.pid)
    except ConnectionError as exc:
        print(f"raylite {request}: {exc}", file=sys.stderr)
        return None
    try:
        return client.call(request)
    finally:
        client.close()


def _no_local_driver() -> bool:
    from raylite.core._control import running_sessions
    return not running_sessions()


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain text table with a header row."""
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def _status(args: argparse.Namespace) -> int:
    from raylite.cli import _cluster
    if args.address or (args.pid is None and _no_local_driver() and _cluster.cluster_address()):
        return _cluster.status_command(args)
    status = _ask(args, "status")
    if status is None:
        return 1
    print(f"driver pid {status['driver_pid']}, node {status['node_id'][:12]}, "
          f"up {status['uptime_s']:.0f} s\n")
    def amount(name: str, value: float) -> str:
        return f"{value / 2**30:.1f} GiB" if name == "memory" else f"{value:g}"

    resources = [{"resource": k, "total": amount(k, v),
                  "used": amount(k, v - status["available"].get(k, 0))}
                 for k, v in sorted(status["resources"].items())]
    print(table(resources, ["resource", "used", "total"]), "\n")
    print(table(status["workers"], ["pid", "state", "task"]), "\n")
    if status["actors"]:
        print(table(status["actors"], ["class", "name", "state", "pid"]), "\n")
    tasks = ", ".join(f"{n} {s.lower()}" for s, n in sorted(status["tasks"].items())) or "none"
    objects = status["objects"]
    print(f"tasks: {tasks}\nobjects: {objects['objects']}, {objects['shm_bytes'] / 2**20:.1f} MiB "
          f"in shared memory, {objects['spilled_bytes'] / 2**20:.1f} MiB spilled")
    return 0


def _memory(args: argparse.Namespace) -> int:
    rows = _ask(args, "memory")
    if rows is None:
        return 1
    rows.sort(key=lambda r: -r["size"])
    print(table(rows, ["object_id", "size", "where", "refs", "made_by"]))
    print(f"\n{len(rows)} objects, {sum(r['size'] for r in rows) / 2**20:.1f} MiB")
    return 0


def _timeline(args: argparse.Namespace) -> int:
    events = _ask(args, "timeline")
    if events is None:
        return 1
    with open(args.output, "w") as f:
        json.dump(events, f)
    print(f"wrote {len(events)} task events to {args.output}; open it in https://ui.perfetto.dev "
          "or chrome://tracing")
    return 0
