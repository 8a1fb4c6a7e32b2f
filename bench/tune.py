"""Tune benchmark: raylite.tune's bookkeeping overhead, and the book's Example 1-7 at full length.

usage: python bench/tune.py [--trials N] [--reports M] [--repeat R] [--book] [--book-sleep S]
                            [--asha] [--asha-trials N] [--ray] [--ray-python PATH] [--output FILE]

    bench/tune.py ──┬─ overhead: N trivial trials x M reports on 2 CPUs (the workload of the
                    │            reference tune_overhead.py: grid over x, tune.report(score=x*i),
                    │            best config by max score), each repeat in a fresh subprocess
                    ├─ book:     Example 1-7 as printed (25 trials sleeping 10 s; ideal ~130 s on
                    │            2 CPUs), only with --book
                    └─ asha:     ASHA on synthetic learning curves (81 trials, up to 27 reports:
                                 acc = quality * (1 - 0.8**t) + noise): the fraction of trials
                                 stopped early and whether the best quality was found, with --asha

Prints one JSON line per run and a Markdown table; targets: overhead <= 4 s (Ray Tune 2.60:
411 s), book <= 135 s (ANCHORS.md), ASHA stops >= 60% early and finds the best config (the
issue). With --ray the overhead workload also runs in Ray's venv (bench/README.md says how to
make one); it needs ray[tune] there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RAY_PYTHON = os.environ.get(  # the peers' venv that `make bench-env` builds
    "RAY_PYTHON", str(Path(__file__).resolve().parent.parent / ".bench-venv" / "bin" / "python"))
CHILD_TIMEOUT_S = 900

# The reference tune_overhead.py workload, for raylite (tune.run) and Ray (Tuner, 2.x).
OVERHEAD_CHILD = """
import importlib, json, sys, tempfile, time
name, n, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rt = importlib.import_module(name)
tune = importlib.import_module(name + ".tune")

def trainable(config):
    for i in range(m):
        tune.report(score=config["x"] * i)

t = time.perf_counter()
if name == "ray":
    def trainable(config):  # noqa: F811 - Ray 2.x takes a metrics dict
        for i in range(m):
            tune.report({"score": config["x"] * i})
    rt.init(num_cpus=2, include_dashboard=False)
    tuner = tune.Tuner(trainable, param_space={"x": tune.grid_search(list(range(n)))},
                       run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(), verbose=0))
    res = tuner.fit(); best = res.get_best_result("score", "max").config
else:
    rt.init(num_cpus=2)
    analysis = tune.run(trainable, config={"x": tune.grid_search(list(range(n)))},
                        local_dir=tempfile.mkdtemp(), verbose=0)
    best = analysis.get_best_config(metric="score", mode="max")
dt = time.perf_counter() - t
print(json.dumps({"workload": "overhead", "runtime": name, "trials": n, "results_per_trial": m,
                  "wall_s": round(dt, 2), "trials_per_s": round(n / dt, 2), "best": best}))
"""

# Example 1-7 of Learning Ray, as printed, after `from raylite import tune` (sleep adjustable).
BOOK_CHILD = """
import json, sys, tempfile, time
import raylite
raylite.init(num_cpus=2)
SLEEP = float(sys.argv[1])
from raylite import tune
import math

def training_function(config):
    x, y = config["x"], config["y"]
    time.sleep(SLEEP)
    score = objective(x, y)
    tune.report(score=score)

def objective(x, y):
    return math.sqrt((x**2 + y**2)/2)

t = time.perf_counter()
result = tune.run(
    training_function,
    config={
        "x": tune.grid_search([-1, -.5, 0, .5, 1]),
        "y": tune.grid_search([-1, -.5, 0, .5, 1])
    }, local_dir=tempfile.mkdtemp(), verbose=0)
best = result.get_best_config(metric="score", mode="min")
dt = time.perf_counter() - t
print(json.dumps({"workload": "book_1_7", "runtime": "raylite", "sleep_s": SLEEP,
                  "ideal_s": round(13 * SLEEP, 2), "wall_s": round(dt, 2), "best": best}))
"""

# ASHA on a synthetic learning-curve problem: a grid of qualities, curves that rank early the
# way they rank at the end, plus noise; the best config is the highest quality.
ASHA_CHILD = """
import json, random, sys, tempfile, time
import raylite
from raylite import tune
from raylite.tune.schedulers import ASHAScheduler
n, max_t = int(sys.argv[1]), int(sys.argv[2])
raylite.init(num_cpus=2)
qualities = [round(0.5 + 0.5 * i / (n - 1), 4) for i in range(n)]
random.Random(0).shuffle(qualities)

def curve(config):
    noise = random.Random(config["quality"])
    for t in range(1, max_t + 1):
        tune.report(acc=config["quality"] * (1 - 0.8 ** t) + noise.gauss(0, 0.01))

t = time.perf_counter()
analysis = tune.run(curve, config={"quality": tune.grid_search(qualities)}, metric="acc",
                    mode="max", local_dir=tempfile.mkdtemp(), verbose=0,
                    scheduler=ASHAScheduler(max_t=max_t, grace_period=1, reduction_factor=3))
dt = time.perf_counter() - t
iterations = [trial.last_result["training_iteration"] for trial in analysis.trials]
early = sum(1 for it in iterations if it < max_t) / len(iterations)
best = analysis.best_config["quality"]
print(json.dumps({"workload": "asha", "runtime": "raylite", "trials": n, "max_t": max_t,
                  "stopped_early_fraction": round(early, 3), "best": best,
                  "best_found": best == max(qualities), "wall_s": round(dt, 2)}))
"""


def run_child(python: str, code: str, args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_USAGE_STATS_ENABLED="0",
               RAY_AUTH_MODE="disabled")
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run([python, "-c", code, *args], capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT_S, env=env, cwd=cwd)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--reports", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="overhead runs (best is reported)")
    parser.add_argument("--book", action="store_true", help="also run Example 1-7 (~130 s)")
    parser.add_argument("--book-sleep", type=float, default=10.0, metavar="S",
                        help="seconds each Example 1-7 trial sleeps (the book: 10)")
    parser.add_argument("--asha", action="store_true",
                        help="also run ASHA on synthetic learning curves")
    parser.add_argument("--asha-trials", type=int, default=81, metavar="N")
    parser.add_argument("--asha-only", action="store_true", help="run only the ASHA workload")
    parser.add_argument("--ray", action="store_true", help="also run the overhead workload in Ray")
    parser.add_argument("--ray-python", default=DEFAULT_RAY_PYTHON, metavar="PATH")
    parser.add_argument("--output", metavar="FILE", help="write all runs as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs: list[dict] = []
    sizes = [str(args.trials), str(args.reports)]
    for _ in range(0 if args.asha_only else args.repeat):
        runs.append(run_child(sys.executable, OVERHEAD_CHILD, ["raylite", *sizes]))
        print(json.dumps(runs[-1]), flush=True)
    if args.asha or args.asha_only:
        runs.append(run_child(sys.executable, ASHA_CHILD, [str(args.asha_trials), "27"]))
        print(json.dumps(runs[-1]), flush=True)
    if args.ray:
        runs.append(run_child(args.ray_python, OVERHEAD_CHILD, ["ray", *sizes]))
        print(json.dumps(runs[-1]), flush=True)
    if args.book:
        runs.append(run_child(sys.executable, BOOK_CHILD, [str(args.book_sleep)]))
        print(json.dumps(runs[-1]), flush=True)
    print(table(runs, args))
    if args.output:
        Path(args.output).write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M:%S"),
                                                 "load": os.getloadavg(), "runs": runs}, indent=2))
    return 1 if any("error" in r for r in runs) else 0


def table(runs: list[dict], args: argparse.Namespace) -> str:
    rows = ["| figure | raylite | target |", "|---|---|---|"]
    overhead = [r["wall_s"] for r in runs if r.get("workload") == "overhead" and r.get("runtime") == "raylite"]
    if overhead:
        rows.append(f"| {args.trials} trivial trials x {args.reports} reports, 2 CPUs (s, best of "
                    f"{len(overhead)}) | {min(overhead)} | <= 4 |")
    for r in runs:
        if r.get("runtime") == "ray" and "wall_s" in r:
            rows.append(f"| the same in Ray (s) | {r['wall_s']} | (Ray) |")
        if r.get("workload") == "asha" and "wall_s" in r:
            rows.append(f"| ASHA, {r['trials']} synthetic curves up to {r['max_t']} reports: "
                        f"stopped early / best config found ({r['wall_s']} s) | "
                        f"{r['stopped_early_fraction']:.0%} / {r['best_found']} | >= 60% / True |")
        if r.get("workload") == "book_1_7":
            rows.append(f"| Example 1-7, 25 trials sleeping {r['sleep_s']} s (s; ideal "
                        f"{r['ideal_s']}) | {r['wall_s']} | <= {round(13 * r['sleep_s'] + 5, 1)} |")
    errors = [r["error"] for r in runs if "error" in r]
    return "\n".join(rows + [f"error: {e}" for e in errors])


if __name__ == "__main__":
    sys.exit(main())
