"""Before/after figures of the core: two raylite source trees and multiprocessing.Pool, interleaved.

usage: python bench/core_ab.py [--before REV] [--rounds N] [--quick]

    git archive REV ──▶ a temporary tree ──┐
    this checkout ─────────────────────────┼─▶ round 1: before, after, Pool; round 2: ... ──▶ best of N
                                           │      (each a fresh subprocess, PYTHONPATH=tree)

On a loaded machine figures swing by 2x from minute to minute; interleaving the three runtimes
round by round and keeping each one's best makes the before/after ratio and the ratio to the Pool
comparable. Figures: the task and actor workloads of ``raylite/_microbenchmark.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys
import raylite as rt
from raylite import _microbenchmark as w
rt.init(num_cpus=2, include_dashboard=False)
scale = float(sys.argv[1])
out = dict(w._task_figures(rt, scale))
out.update(w._actor_figures(rt, scale))
rt.shutdown()
print(json.dumps(out))
"""

POOL = r"""
import json, sys
from raylite import _microbenchmark as w
print(json.dumps({k: v for k, v in w.iter_pool_figures(scale=float(sys.argv[1])) if k != "init_s"}))
"""


def export(rev: str, into: str) -> str:
    """The tree of ``rev`` (a commit of this repository) unpacked under ``into``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True,
                             capture_output=True).stdout
    path = os.path.join(into, "before")
    os.mkdir(path)
    with tempfile.TemporaryFile() as f:
        f.write(archive)
        f.seek(0)
        tarfile.open(fileobj=f).extractall(path)
    return path


def measure(tree: str, code: str, scale: float) -> dict:
    result = subprocess.run([sys.executable, "-c", code, str(scale)], cwd=tree,
                            env=dict(os.environ, PYTHONPATH=tree), capture_output=True,
                            text=True, timeout=900)
    if result.returncode:
        raise SystemExit(f"a benchmark child failed in {tree}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="HEAD~1", help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="a fifth of the calls")
    args = parser.parse_args(argv)
    scale = 0.2 if args.quick else 1.0
    with tempfile.TemporaryDirectory() as scratch:
        trees = {"before": export(args.before, scratch), "after": str(REPO)}
        best: dict[str, dict[str, float]] = {"before": {}, "after": {}, "pool": {}}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                for key, value in measure(tree, CHILD, scale).items():
                    best[name][key] = max(value, best[name].get(key, 0.0))
            for key, value in measure(str(REPO), POOL, scale).items():
                best["pool"][key] = max(value, best["pool"].get(key, 0.0))
    keys = list(best["after"])
    print("| figure | before | after | after/before | after/Pool |")
    print("|---|---:|---:|---:|---:|")
    for key in keys:
        pool = best["pool"].get(key)
        print(f"| {key} | {best['before'][key]:.0f} | {best['after'][key]:.0f} | "
              f"{best['after'][key] / best['before'][key]:.2f}x | "
              + (f"{best['after'][key] / pool:.2f}x |" if pool else "- |"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
