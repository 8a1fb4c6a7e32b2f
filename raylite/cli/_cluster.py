"""``raylite start / stop / status``: a Dask cluster for ``raylite.init(address=...)``.

    raylite start --head      a Dask scheduler and one worker on this machine (background processes)
    raylite start --address   one more worker joining a running scheduler
    raylite stop              stop every process ``raylite start`` started on this machine
    raylite status            the cluster's nodes (Dask workers), their resources and usage

The cluster is private to its owner: ``--head`` makes (once) a certificate authority and a
certificate in ``~/.raylite/tls`` (mode 0600, see ``raylite.core.dask._tls``), and the scheduler,
the workers and every client speak mutual TLS (``tls://`` addresses), so a process that cannot
read that folder cannot connect. ``--insecure`` starts plain TCP instead, with a warning.

What was started is written to ``~/.raylite/cluster.json`` (the folder is mode 0700; set
RAYLITE_STATE_DIR to use another), with the processes' logs under ``~/.raylite/logs``. Each
worker is one process (under a Dask nanny that restarts it if it dies) with ``--num-cpus``
threads and the resources ``CPU=<num_cpus>``, ``GPU=<num_gpus>`` and ``--resources``, so that
raylite tasks asking for one CPU run ``num_cpus`` at a time. Every port (scheduler, its
dashboard, nanny, worker, the worker's HTTP server) binds 127.0.0.1 unless ``--host`` says
otherwise.

Run on its own for testing: ``python -m raylite.cli._cluster start --head --port 0``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from raylite.cli._common import non_negative_int, positive_int, run_subcommand
from raylite.core.dask._state import (STATE_FILE, alive, read_state, recorded_address,  # noqa: F401
                                      state_dir, state_root, write_state)

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


# ==========================================================================================
# argument parsing
# ==========================================================================================
def add_parsers(subparsers: argparse._SubParsersAction, include_status: bool = True) -> None:
    """Add ``start``, ``stop`` (and ``status``) to a ``raylite`` subparsers object.

    ``include_status=False`` leaves ``status`` to another command (the local driver's); that
    command can call :func:`status_command` when :func:`cluster_address` finds a cluster.
    """
    start = subparsers.add_parser(
        "start", help="start a Dask cluster node for raylite (--head, or --address to join)",
        description="Start a Dask scheduler and a worker on this machine (--head), or one more "
                    "worker joining a running scheduler (--address). The processes keep running "
                    "in the background until `raylite stop`.")
    role = start.add_mutually_exclusive_group(required=True)
    role.add_argument("--head", action="store_true", help="start the scheduler and a worker")
    role.add_argument("--address", metavar="HOST:PORT",
                      help="start a worker joining the scheduler at this address")
    start.add_argument("--port", type=_port, default=8786,
                       help="the scheduler's port with --head (default: 8786; 0 picks a free one)")
    start.add_argument("--host", default="127.0.0.1",
                       help="the address to bind to and advertise (default: 127.0.0.1, this "
                            "machine only; use this machine's network address to let others join)")
    start.add_argument("--insecure", action="store_true",
                       help="plain TCP without TLS: anyone who can reach the scheduler's port "
                            "can run code as you (default: mutual TLS with the certificates in "
                            "~/.raylite/tls)")
    start.add_argument("--num-cpus", type=positive_int, default=None, metavar="N",
                       help="CPUs of the worker: its threads and its CPU resource (default: all)")
    start.add_argument("--num-gpus", type=non_negative_int, default=0, metavar="N",
                       help="GPUs of the worker (its GPU resource; default: 0)")
    start.add_argument("--resources", type=_resources, default={}, metavar="JSON",
                       help="custom resources of the worker, e.g. '{\"accelerator\": 2}'")
    start.add_argument("--memory", default="auto", metavar="BYTES",
                       help="memory limit of the worker, e.g. 4GB (default: auto)")
    start.add_argument("--dashboard-port", type=_port, default=8787,
                       help="port of the Dask dashboard with --head (default: 8787; 0: any)")
    start.add_argument("--include-dashboard", type=_boolean, default=True, metavar="BOOL",
                       help="start the Dask dashboard with --head (default: true)")
    start.add_argument("--idle-timeout", type=float, default=None, metavar="S",
                       help="with --head: stop the scheduler after S seconds without any task "
                            "activity (its workers follow within a minute); default: never")
    start.add_argument("--block", action="store_true",
                       help="stay in the foreground; Ctrl-C stops what was started")
    start.set_defaults(run=start_command)

    stop = subparsers.add_parser("stop", help="stop the processes `raylite start` started here",
                                 description="Stop the Dask scheduler and workers that "
                                             "`raylite start` started on this machine.")
    stop.add_argument("--grace-period", type=float, default=STOP_TIMEOUT_S, metavar="S",
                      help="seconds to wait for a clean exit before killing (default: 10)")
    stop.set_defaults(run=stop_command)

    if not include_status:
        return
    status = subparsers.add_parser("status", help="show the cluster's nodes and resources",
                                   description="Show the Dask workers (raylite's nodes) of the "
                                               "cluster, their resources and what they run.")
    status.add_argument("--address", metavar="HOST:PORT", default=None,
                        help="the scheduler (default: RAYLITE_ADDRESS, else the cluster that "
                             "`raylite start` started here)")
    status.add_argument("--insecure", action="store_true",
                        help="reach a HOST:PORT address over plain TCP, not TLS")
    status.set_defaults(run=status_command)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return value


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _resources(text: str) -> dict[str, float]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object like '{{\"accelerator\": 2}}', got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"accelerator\": 2}}', "
                                         f"got {text!r}")
    for name, amount in value.items():
        if name in ("CPU", "GPU"):
            raise argparse.ArgumentTypeError(f"pass {name} as --num-{name.lower()}s, not in "
                                             "--resources")
        if not name or any(c.isspace() or c in "=," for c in name):
            raise argparse.ArgumentTypeError(f"resource names cannot contain spaces, '=' or ',', "
                                             f"got {name!r}")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise argparse.ArgumentTypeError(f"resource {name!r} must be a non-negative number, "
                                             f"got {amount!r}")
    return {name: float(amount) for name, amount in value.items()}


# ==========================================================================================
# start
# ==========================================================================================
def start_command(args: argparse.Namespace) -> int:
    directory = state_dir()
    state = read_state()
    if args.head:
        if state and any(p["role"] == "scheduler" and alive(p["pid"]) for p in state["processes"]):
            print(f"raylite start: a cluster started here is already running at "
                  f"{state['address']}; run `raylite stop` first.", file=sys.stderr)
            return 1
        state = {"address": None, "dashboard": None, "processes": []}
        try:
            tls = _head_credentials(args)
            _start_scheduler(args, directory, state, tls)
        except RuntimeError as exc:
            print(f"raylite start: {exc}", file=sys.stderr)
            _stop_processes(state["processes"], STOP_TIMEOUT_S)
            return 1
        write_state(state)
    else:
        from raylite.core.dask import _connect as _dask_connect, _tls as _dask_tls
        try:
            address, security = _dask_connect.resolve(args.address, insecure=args.insecure)
        except ValueError as exc:
            print(f"raylite start: {exc}", file=sys.stderr)
            return 2
        except (ConnectionError, PermissionError) as exc:
            print(f"raylite start: {exc}", file=sys.stderr)
            return 1
        tls = _dask_tls.load() if security is not None else None
        if not state or state.get("address") != address:
            state = {"address": address, "dashboard": None,
                     "processes": [p for p in (state or {}).get("processes", []) if alive(p["pid"])]}
    try:
        worker = _start_worker(args, directory, state["address"], tls)
    except RuntimeError as exc:
        print(f"raylite start: {exc}", file=sys.stderr)
        if args.head:
            _stop_processes(state["processes"], STOP_TIMEOUT_S)
            (directory / STATE_FILE).unlink(missing_ok=True)
        return 1
    state["processes"].append(worker)
    write_state(state)
    _print_started(args, state, worker)
    if args.block:
        return _block(state)
    return 0


def _spawn(command: list[str], log_path: Path) -> subprocess.Popen:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=fd,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
    finally:
        os.close(fd)


def _head_credentials(args: argparse.Namespace):
    """The TLS credentials for a new cluster (made when missing), or None with --insecure."""
    from raylite.core.dask import _tls as _dask_tls
    if args.insecure:
        print(f"raylite start: warning: --insecure: the scheduler listens on plain TCP without "
              f"authentication; anyone who can reach {args.host}:{args.port or 'its port'} can "
              "run code as you. Leave --insecure out for mutual TLS.", file=sys.stderr)
        return None
    try:
        credentials, note = _dask_tls.ensure()
    except ImportError as exc:
        raise RuntimeError(f"TLS needs the cryptography package ({exc}): pip install "
                           "cryptography (or raylite[cluster]), or pass --insecure") from None
    if note:
        print(f"raylite start: {note}")
    return credentials


def _start_scheduler(args: argparse.Namespace, directory: Path, state: dict, tls) -> None:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    scheduler_file = directory / f"scheduler-{stamp}-{os.getpid()}.json"
    scheduler_file.unlink(missing_ok=True)
    log_path = directory / "logs" / f"scheduler-{stamp}.log"
    command = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", args.host,
               "--port", str(args.port), "--scheduler-file", str(scheduler_file)]
    if args.idle_timeout:
        command += ["--idle-timeout", f"{args.idle_timeout}s"]
    if tls is not None:
        command += tls.command_line()
    if args.include_dashboard:
        command += ["--dashboard-address", f"{args.host}:{args.dashboard_port}"]
    else:  # Dask still serves HTTP (health, metrics): on the host asked for, any port
        command += ["--no-dashboard", "--dashboard-address", f"{args.host}:0"]
    process = _spawn(command, log_path)
    state["processes"].append({"role": "scheduler", "pid": process.pid, "log": str(log_path)})
    deadline = time.monotonic() + START_TIMEOUT_S
    while not scheduler_file.exists() or not scheduler_file.stat().st_size:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Dask scheduler did not start (exit status "
                               f"{process.poll()}); its log {log_path}:\n{_tail(log_path)}")
        time.sleep(0.05)
    info = _read_json(scheduler_file, deadline)
    scheduler_file.unlink(missing_ok=True)
    state["address"] = info["address"]
    port = (info.get("services") or {}).get("dashboard")
    if args.include_dashboard and port:
        state["dashboard"] = f"http://{args.host}:{port}/status"


def _read_json(path: Path, deadline: float) -> dict:
    while True:  # the file may be seen half written
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the scheduler wrote an unreadable file {path}") from None
            time.sleep(0.05)


def _start_worker(args: argparse.Namespace, directory: Path, address: str, tls) -> dict:
    cpus = args.num_cpus or os.cpu_count() or 1
    resources = {"CPU": float(cpus)}
    if args.num_gpus:
        resources["GPU"] = float(args.num_gpus)
    resources.update(args.resources)
    name = f"raylite-{socket.gethostname()}-{os.getpid()}-{int(time.time() * 1000) % 100000}"
    log_path = directory / "logs" / f"worker-{name}.log"
    command = [sys.executable, "-m", "distributed.cli.dask_worker", address,
               "--nthreads", str(cpus), "--nworkers", "1", "--name", name,
               "--host", args.host, "--no-dashboard", "--memory-limit", str(args.memory),
               # the worker's HTTP server (health, metrics) binds the host asked for, too
               "--dashboard-address", f"{args.host}:0",
               "--death-timeout", "60",
               "--resources", " ".join(f"{k}={v:g}" for k, v in resources.items())]
    if tls is not None:
        command += tls.command_line()
    process = _spawn(command, log_path)
    worker = {"role": "worker", "pid": process.pid, "log": str(log_path), "name": name,
              "resources": resources}
    try:
        _wait_for_worker(address, name, process, log_path)
    except RuntimeError:
        _stop_processes([worker], STOP_TIMEOUT_S)
        raise
    return worker


def _wait_for_worker(address: str, name: str, process: subprocess.Popen, log_path: Path) -> None:
    from raylite.core.dask._connect import open_client
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        client, _ = open_client(address)
    except (ConnectionError, PermissionError) as exc:
        raise RuntimeError(str(exc)) from None
    try:
        while True:
            workers = client.scheduler_info(n_workers=-1).get("workers", {})
            if any(str(w.get("name")) == name for w in workers.values()):
                return
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Dask worker did not join {address} (exit status "
                                   f"{process.poll()}); its log {log_path}:\n{_tail(log_path)}")
            time.sleep(0.1)
    finally:
        client.close()


def _print_started(args: argparse.Namespace, state: dict, worker: dict) -> None:
    address = state["address"]
    resources = " ".join(f"{k}={v:g}" for k, v in worker["resources"].items())
    if args.head:
        print(f"Started a raylite cluster: Dask scheduler at {address} and one worker ({resources}).")
        if state.get("dashboard"):
            import importlib.util
            note = "" if importlib.util.find_spec("bokeh") else "  (pip install bokeh for its pages)"
            print(f"Dask dashboard: {state['dashboard']}{note}")
    else:
        print(f"Started a worker ({resources}) joining the Dask scheduler at {address}.")
    print()
    print("To connect from Python:")
    print("    import raylite")
    print(f'    raylite.init(address="{address}")')
    print("or, for every program started from this shell:")
    print(f"    export RAYLITE_ADDRESS={address}")
    print()
    print("To add a worker (on another machine, start this node with --host <its address>):")
    print(f"    raylite start --address {address} --num-cpus N")
    if address.startswith("tls://"):
        from raylite.core.dask._tls import folder
        print(f"Mutual TLS: only processes that can read {folder()} (you) can connect; on another "
              f"machine, copy that folder first (same user): scp -rp {folder()} HOST:.raylite/")
    print("To see the nodes: raylite status.  To stop what was started here: raylite stop.")
    print(f"Logs: {state_dir() / 'logs'}")
    sys.stdout.flush()


def _block(state: dict) -> int:
    print("Blocking; press Ctrl-C to stop.", flush=True)
    try:
        while any(alive(p["pid"]) for p in state["processes"]):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    _stop_processes(state["processes"], STOP_TIMEOUT_S)
    (state_dir() / STATE_FILE).unlink(missing_ok=True)
    return 0


# ==========================================================================================
# stop
# ==========================================================================================
def stop_command(args: argparse.Namespace) -> int:
    state = read_state()
    if not state or not state.get("processes"):
        print("raylite stop: no cluster started by `raylite start` is recorded here; nothing to "
              "stop.")
        return 0
    stopped = _stop_processes(state["processes"], args.grace_period)
    (state_dir() / STATE_FILE).unlink(missing_ok=True)
    print(f"Stopped {stopped} process(es) of the cluster at {state.get('address')}.")
    return 0


def _stop_processes(processes: list[dict], grace_period: float) -> int:
    """SIGTERM each process group (workers first), then SIGKILL what is left."""
    ordered = sorted(processes, key=lambda p: p["role"] == "scheduler")
    running = [p["pid"] for p in ordered if alive(p["pid"])]
    for pid in running:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_period
    while any(alive(pid) for pid in running) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in running:
        _signal_group(pid, signal.SIGKILL)  # also the nanny's worker, should it linger
    return len(running)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)  # started with start_new_session: the group is the process's
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


# ==========================================================================================
# status
# ==========================================================================================
def cluster_address(explicit: str | None = None) -> str | None:
    """The cluster ``raylite status`` shows: --address, RAYLITE_ADDRESS, or the recorded one."""
    return explicit or os.environ.get("RAYLITE_ADDRESS") or recorded_address()


def status_command(args: argparse.Namespace) -> int:
    state = read_state()
    address = cluster_address(getattr(args, "address", None))
    if not address:
        print("raylite status: no cluster address: pass --address HOST:PORT, set RAYLITE_ADDRESS, "
              "or start one with `raylite start --head`.", file=sys.stderr)
        return 1
    from raylite.core.dask._connect import open_client
    try:
        client, address = open_client(address, insecure=getattr(args, "insecure", False))
    except ValueError as exc:
        print(f"raylite status: {exc}", file=sys.stderr)
        return 2
    except (ConnectionError, PermissionError) as exc:
        print(f"raylite status: {exc}", file=sys.stderr)
        return 1
    try:
        info = client.scheduler_info(n_workers=-1)
        try:
            pids = client.run(os.getpid)
        except Exception:  # noqa: BLE001
            pids = {}
    finally:
        client.close()
    print(format_status(address, info, pids, (state or {}).get("dashboard")))
    return 0


def format_status(address: str, info: dict, pids: dict, dashboard: str | None) -> str:
    """The status table: one row per Dask worker (raylite's nodes)."""
    from raylite.core.dask._cluster import _worker_resources
    workers = info.get("workers") or {}
    lines = [f"Dask scheduler: {address}   raylite address: {address}"]
    if dashboard:
        lines.append(f"Dashboard: {dashboard}")
    header = ("NODE", "NAME", "PID", "THREADS", "RUNNING", "MEMORY USED/LIMIT", "RESOURCES")
    rows = [header]
    totals: dict[str, float] = {}
    running_total = 0
    for worker_address, worker in sorted(workers.items()):
        metrics = worker.get("metrics") or {}
        counts = metrics.get("task_counts") or {}
        running = int(counts.get("executing", 0)) + int(counts.get("long-running", 0))
        running_total += running
        resources = _worker_resources(worker)
        for name, amount in resources.items():
            totals[name] = totals.get(name, 0.0) + amount
        shown = {k: v for k, v in resources.items() if k != "memory"}
        rows.append((worker_address, str(worker.get("name", "")), str(pids.get(worker_address, "?")),
                     str(worker.get("nthreads", "?")), str(running),
                     f"{_bytes(metrics.get('memory', 0))} / {_bytes(worker.get('memory_limit', 0))}",
                     " ".join(f"{k}={v:g}" for k, v in shown.items())))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines.append("")
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
              for row in rows]
    summary = ", ".join(f"{k} {v:g}" for k, v in totals.items() if k != "memory")
    lines.append("")
    lines.append(f"{len(workers)} node(s); {summary or 'no resources'}; memory "
                 f"{_bytes(totals.get('memory', 0))}; {running_total} task(s) running.")
    return "\n".join(lines)


def _bytes(amount: float) -> str:
    value = float(amount or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ==========================================================================================
# standalone
# ==========================================================================================
def main(argv: list[str] | None = None) -> int:
    """``python -m raylite.cli._cluster start|stop|status ...``"""
    parser = argparse.ArgumentParser(prog="raylite", description="raylite cluster commands")
    add_parsers(parser.add_subparsers(title="commands", metavar="COMMAND"))
    return run_subcommand(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
