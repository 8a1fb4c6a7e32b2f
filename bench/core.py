"""Core-runtime benchmark: raylite against Ray and multiprocessing.Pool, in one run.

usage: python bench/core.py [--quick] [--skip-ray] [--repeat N] [--ray-python PATH] [--output FILE]

    bench/core.py ──┬─ import time:  PY -c "import raylite" / RAY_PY -c "import ray"   (best of 5)
                    ├─ workloads:    PY / RAY_PY load raylite/_microbenchmark.py ──▶ JSON line
                    │                (raylite, ray, mp: each in a fresh subprocess)
                    └─ footprint:    child: init(num_cpus=2) + warm-up, then waits on stdin;
                                     this process sums RSS/USS of the child's process tree

The workloads are those of the reference ``core_bench.py`` (same counts and keys), taken from
``raylite/_microbenchmark.py`` and loaded by path in Ray's venv, where raylite is not installed.
Writes bench/results/core-<date>.json and prints a Markdown table. Needs psutil here (the
``test`` extra) and, unless --skip-ray, a Ray venv (bench/README.md says how to make one).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKLOADS_FILE = REPO / "raylite" / "_microbenchmark.py"
DEFAULT_RAY_PYTHON = os.environ.get(  # the peers' venv that `make bench-env` builds
    "RAY_PYTHON", str(Path(__file__).resolve().parent.parent / ".bench-venv" / "bin" / "python"))
CHILD_TIMEOUT_S = 600
CHILD_CWD = tempfile.gettempdir()  # main() points this at an empty folder: nothing to shadow
SETTLE_S = 2.0  # let a runtime's background processes finish starting before measuring memory

sys.path.insert(0, str(REPO))
from raylite import _microbenchmark as workloads  # noqa: E402  (stdlib-only module)

# Loads the workload file by path (so it runs where raylite is not installed) and runs it.
WORKLOAD_CHILD = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("_raylite_microbenchmark", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
sys.exit(module.main(sys.argv[2:]))
"""

# Starts a runtime, warms it up, reports its pid and session folder, idles until stdin speaks.
FOOTPRINT_CHILD = """
import importlib, json, os, sys
name, num_cpus = sys.argv[1], int(sys.argv[2])
session_dir = version = None
if name == "mp":
    import multiprocessing
    pool = multiprocessing.Pool(num_cpus)
    [pool.apply(abs, (1,)) for _ in range(50)]
    stop = lambda: (pool.close(), pool.join())
else:
    rt = importlib.import_module(name)
    context = rt.init(num_cpus=num_cpus, **({"include_dashboard": False} if name == "ray" else {}))
    session_dir = context.address_info.get("session_dir")
    version = getattr(rt, "__version__", None)

    @rt.remote
    def noop(*args):
        return 0

    rt.get([noop.remote() for _ in range(50)])
    stop = rt.shutdown
print(json.dumps({"pid": os.getpid(), "session_dir": session_dir, "version": version}), flush=True)
sys.stdin.readline()
stop()
"""

RUNTIMES = ("raylite", "ray", "mp")


def child_env(runtime: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAYLITE_ADDRESS", None)
    if runtime == "ray":
        env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    return env


def run_workloads(python: str, runtime: str, quick: bool) -> dict:
    """One fresh subprocess running every workload against ``runtime``; its JSON result."""
    command = [python, "-c", WORKLOAD_CHILD, str(WORKLOADS_FILE), runtime]
    command += ["--quick"] if quick else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                          cwd=CHILD_CWD, env=child_env(runtime))
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{runtime} workloads failed (exit {done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def import_seconds(python: str, module: str, runtime: str, tries: int = 5) -> float:
    """Best wall time of ``python -c "import module"`` over ``tries`` whole processes."""
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        subprocess.run([python, "-c", f"import {module}" if module else "pass"], check=True,
                       cwd=CHILD_CWD, env=child_env(runtime),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def measure_footprint(python: str, runtime: str, num_cpus: int = 2) -> dict:
    """Processes, total RSS, USS and PSS (MiB) of an idle runtime after init and a warm-up.

    Counted: the driver, all its descendants, and every process whose command line names the
    runtime's session folder (Ray's raylet and GCS), with their descendants.
    """
    child = subprocess.Popen([python, "-c", FOOTPRINT_CHILD, runtime, str(num_cpus)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=CHILD_CWD,
                             env=child_env(runtime))
    try:
        info = _read_json_line(child, CHILD_TIMEOUT_S)
        time.sleep(SETTLE_S)
        processes = runtime_processes(info["pid"], info.get("session_dir"))
        result = {"session_dir": info.get("session_dir"), **memory_of(processes)}
        child.stdin.write("\n")
        child.stdin.flush()
        child.wait(timeout=120)
        time.sleep(1.0)
        result["left_after_shutdown"] = sorted(p.pid for p in processes if _alive(p))
        return result
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _read_json_line(child: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([child.stdout], [], [], 1.0)
        if ready:
            line = child.stdout.readline()
            if line.startswith("{"):
                return json.loads(line)
            if not line:
                break
    child.kill()
    raise RuntimeError(f"footprint child gave no report (exit {child.wait()}):\n"
                       f"{child.stderr.read()[-3000:]}")


def runtime_processes(driver_pid: int, session_dir: str | None) -> list:
    import psutil

    roots = [psutil.Process(driver_pid)]
    if session_dir:
        for process in psutil.process_iter(["cmdline"]):
            if any(session_dir in part for part in process.info["cmdline"] or ()):
                roots.append(process)
    found = {}
    for root in roots:
        for process in [root] + _children(root):
            found[process.pid] = process
    return list(found.values())


def _children(process) -> list:
    import psutil

    try:
        return process.children(recursive=True)
    except psutil.Error:
        return []


def memory_of(processes: list) -> dict:
    import psutil

    totals = {"rss": 0, "uss": 0, "pss": 0}
    names, counted = [], 0
    for process in processes:
        try:
            memory = process.memory_full_info()
            names.append(process.name())
        except psutil.Error:
            continue
        counted += 1
        for key in totals:
            totals[key] += getattr(memory, key, 0)
    return {"processes": counted, "process_names": sorted(names),
            **{f"{key}_MiB": value / 2**20 for key, value in totals.items()}}


def _alive(process) -> bool:
    try:
        return process.is_running() and process.status() != "zombie"
    except Exception:
        return False


EXTRA_FIGURES = (
    workloads.Figure("import_s", "`import` of the package, whole process", "s", False),
    workloads.Figure("processes", "idle runtime, 2 CPUs: processes", "", False),
    workloads.Figure("rss_MiB", "idle runtime, 2 CPUs: RSS total", "MiB", False),
    workloads.Figure("uss_MiB", "idle runtime, 2 CPUs: USS total", "MiB", False),
)


def better(figure: workloads.Figure, values: list[float]) -> float:
    return max(values) if figure.higher_is_better else min(values)


def collect(args: argparse.Namespace, runtimes: tuple[str, ...], errors: list[str]) -> dict:
    """Every measurement, ``args.repeat`` times, runtimes interleaved; raw per-repeat results."""
    raw: dict[str, dict[str, list]] = {runtime: {} for runtime in runtimes}
    pythons = {"raylite": sys.executable, "mp": sys.executable, "ray": args.ray_python}
    steps = [("import_s", lambda py, rt: {"import_s": import_seconds(py, rt, rt)}),
             ("workloads", lambda py, rt: run_workloads(py, rt, args.quick)),
             ("footprint", lambda py, rt: measure_footprint(py, rt))]
    for repeat in range(args.repeat):
        for step, function in steps:
            for runtime in runtimes:
                if step == "import_s" and runtime == "mp":
                    continue
                print(f"[{repeat + 1}/{args.repeat}] {step}: {runtime}", file=sys.stderr, flush=True)
                try:
                    raw[runtime].setdefault(step, []).append(function(pythons[runtime], runtime))
                except Exception as error:  # one failing runtime must not lose the others
                    errors.append(f"{step} {runtime}: {error}")
                    print(f"  failed: {error}", file=sys.stderr, flush=True)
    return raw


def best_figures(raw: dict) -> dict[str, dict[str, float]]:
    """Per runtime, the best value of each figure over the repeats."""
    by_key = {f.key: f for f in workloads.FIGURES + EXTRA_FIGURES}
    best: dict[str, dict[str, float]] = {}
    for runtime, steps in raw.items():
        values: dict[str, list[float]] = {}
        for result in steps.get("workloads", []):
            for key, value in result["figures"].items():
                if value is not None:
                    values.setdefault(key, []).append(value)
        for step in ("import_s", "footprint"):
            for result in steps.get(step, []):
                for key in ("import_s", "processes", "rss_MiB", "uss_MiB"):
                    if key in result:
                        values.setdefault(key, []).append(result[key])
        best[runtime] = {key: better(by_key[key], vs) for key, vs in values.items()}
    return best


def table_rows(best: dict[str, dict[str, float]]) -> list[dict]:
    rows = []
    for figure in workloads.FIGURES + EXTRA_FIGURES:
        values = {runtime: best.get(runtime, {}).get(figure.key) for runtime in RUNTIMES}
        ratio = None
        if values["raylite"] is not None and values["ray"]:
            ratio = values["raylite"] / values["ray"]
        title = f"{figure.label} ({figure.unit})" if figure.unit else figure.label
        rows.append({"key": figure.key, "figure": title, **values, "ratio": ratio})
    return rows


def markdown(rows: list[dict], ray_title: str) -> str:
    def cell(value):
        if value is None:
            return "—"
        return str(value) if isinstance(value, int) else workloads.format_value(value)

    lines = [f"| figure | raylite | {ray_title} | multiprocessing.Pool | ratio (raylite/Ray) |",
             "|---|---|---|---|---|"]
    for row in rows:
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.3g}"
        lines.append(f"| {row['figure']} | {cell(row['raylite'])} | {cell(row['ray'])} | "
                     f"{cell(row['mp'])} | {ratio} |")
    return "\n".join(lines)


def ray_version(raw: dict) -> str | None:
    for result in raw.get("ray", {}).get("workloads", []):
        return result.get("version")
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the calls (scale 0.2)")
    parser.add_argument("--skip-ray", action="store_true", help="measure raylite and the Pool only")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run everything N times, interleaved, and keep each figure's best")
    parser.add_argument("--ray-python", default=DEFAULT_RAY_PYTHON, metavar="PATH",
                        help=f"the Ray venv's python (default: {DEFAULT_RAY_PYTHON}, or $RAY_PYTHON)")
    parser.add_argument("--output", type=Path, metavar="FILE",
                        help="JSON file to write (default: bench/results/core-<date>.json)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    return args


def main(argv: list[str] | None = None) -> int:
    global CHILD_CWD
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="raylite-bench-") as CHILD_CWD:
        return run(args)


def run(args: argparse.Namespace) -> int:
    errors: list[str] = []
    runtimes = ("raylite", "mp") if args.skip_ray else ("raylite", "ray", "mp")
    if not args.skip_ray and not os.access(args.ray_python, os.X_OK):
        errors.append(f"no Ray python at {args.ray_python}: Ray skipped (see bench/README.md)")
        print(errors[-1], file=sys.stderr)
        runtimes = ("raylite", "mp")
    started = datetime.datetime.now()
    load_before = os.getloadavg()
    python_start = import_seconds(sys.executable, "", "raylite")
    raw = collect(args, runtimes, errors)
    report = build_report(args, started, raw, errors)
    report["machine"]["loadavg_before"] = load_before
    report["python_startup_s"] = python_start
    output = args.output or REPO / "bench" / "results" / f"core-{started.date().isoformat()}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report["rows"], report["ray_title"]))
    print(f"\nbare `python -c pass`: {python_start:.3f} s; load average before/after: "
          f"{load_before[0]:.2f}/{os.getloadavg()[0]:.2f}; JSON: {output}")
    for error in errors:
        print(f"error: {error.splitlines()[0]}")
    return 1 if errors else 0


def build_report(args: argparse.Namespace, started: datetime.datetime, raw: dict,
                 errors: list[str]) -> dict:
    """Everything the JSON file holds: settings, versions, machine, best figures, raw results."""
    best = best_figures(raw)
    version = ray_version(raw)
    return {
        "date": started.isoformat(timespec="seconds"), "command": sys.argv,
        "quick": args.quick, "scale": 0.2 if args.quick else 1.0, "repeat": args.repeat,
        "num_cpus": 2, "versions": {"raylite": _raylite_version(), "ray": version,
                                    "python": platform.python_version()},
        "machine": {"hostname": platform.node(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform(), "loadavg_after": os.getloadavg()},
        "ray_title": f"Ray {'.'.join(version.split('.')[:2])}" if version else "Ray 2.60",
        "best": best, "rows": table_rows(best), "raw": raw, "errors": errors,
    }


def _raylite_version() -> str:
    import raylite

    return raylite.__version__


if __name__ == "__main__":
    sys.exit(main())
