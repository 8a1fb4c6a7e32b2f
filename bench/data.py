"""Data benchmark: raylite.data against Ray Data, the same workloads in one run.

usage: python bench/data.py [--small] [--skip-ray] [--repeat N] [--ray-python PATH] [--output FILE]

    bench/data.py ──┬─ book:     a fresh PY process: init, then the book's Examples 1-2/1-3
                    │            (from_items of 10k rows, map, filter, count, flat_map, take);
                    │            the time from from_items to take, and the whole process's wall
                    ├─ batches:  range(10M).map_batches(numpy) + iter_batches(1M), rows/s
                    └─ parquet:  read_parquet(~1 GB, made once under /tmp) -> map_batches
                                 (pyarrow) -> write_parquet, MB/s of input Parquet

Each workload runs in a fresh subprocess per implementation (raylite in this interpreter, Ray
in RAY_PY with RAY_AUTH_MODE=disabled), in an empty folder so nothing shadows a package, and
the workload code is the same text for both (it is passed with -c). The runs alternate between
the two, ``--repeat`` times (default 2), and the best of each counts: the machine is shared and
its load drifts. ``--small`` divides the
sizes by ten for a quick check. Prints a Markdown table with raylite/Ray ratios (and, with
``--output FILE``, writes the figures there as JSON).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RAY_PYTHON = os.environ.get(  # the peers' venv that `make bench-env` builds
    "RAY_PYTHON", str(Path(__file__).resolve().parent.parent / ".bench-venv" / "bin" / "python"))
CHILD_TIMEOUT_S = 900
PARQUET_FILES = 24  # of 2M rows (42 MB) each: ~1 GB

# Every workload starts the same way: the runtime, with 2 CPUs and quiet progress bars.
PRELUDE = """
import importlib, json, sys, time
import numpy as np
name = sys.argv[1]
rt = importlib.import_module(name)
if name == "ray":
    rt.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
else:
    rt.init(num_cpus=2)
data = importlib.import_module(name + ".data")
data.DataContext.get_current().enable_progress_bars = False
out = {"impl": name}
"""

BOOK = PRELUDE + """
t = time.perf_counter()
ds = data.from_items([{"name": str(i), "data": i} for i in range(10000)])
ds.show(5)
squares = ds.map(lambda x: {"sq": x["data"] ** 2})
evens = squares.filter(lambda x: x["sq"] % 2 == 0)
n_even = evens.count()
cubes = evens.flat_map(lambda x: [{"v": x["sq"]}, {"v": x["sq"] ** 3}])
sample = cubes.take(10)
out["book_s"] = time.perf_counter() - t
assert n_even == 5000 and len(sample) == 10
print(json.dumps(out))
"""

# The book's own code (plain ints from map): raylite runs it as written; Ray 2.x cannot.
BOOK_AS_WRITTEN = """
import raylite as ray
items = [{"name": str(i), "data": i} for i in range(10000)]
ds = ray.data.from_items(items)
ds.show(5)
squares = ds.map(lambda x: x["data"] ** 2)
evens = squares.filter(lambda x: x % 2 == 0)
evens.count()
cubes = evens.flat_map(lambda x: [x, x**3])
sample = cubes.take(10)
print(sample)
"""

BATCHES = PRELUDE + """
n = int(sys.argv[2])
def ids(batch):  # Ray >= 2.5 gives {"id": array}; the book's Ray (and raylite) the array itself
    return np.asarray(batch["id"] if isinstance(batch, dict) else batch)
t = time.perf_counter()
ds = data.range(n).map_batches(lambda b: {"y": ids(b) * 2 + 1}, batch_format="numpy",
                               batch_size=100_000)
total = 0
for batch in ds.iter_batches(batch_size=1_000_000, batch_format="numpy"):
    total += int(np.asarray(batch["y"]).sum())
elapsed = time.perf_counter() - t
assert total == n * n, total
out["batches_rows_per_s"] = n / elapsed
t = time.perf_counter(); _ = (np.arange(n) * 2 + 1).sum()
out["numpy_rows_per_s"] = n / (time.perf_counter() - t)
print(json.dumps(out))
"""

PARQUET = PRELUDE + """
import pyarrow.compute as pc, shutil
source, target = sys.argv[2], sys.argv[3]
shutil.rmtree(target, ignore_errors=True)
def transform(table):
    scaled = pc.add(pc.multiply(table["x"], 2.0), table["y"])
    return table.append_column("z", scaled).filter(pc.greater(table["id"], -1))
t = time.perf_counter()
data.read_parquet(source).map_batches(transform, batch_format="pyarrow",
                                      batch_size=None).write_parquet(target)
out["parquet_s"] = time.perf_counter() - t
import pyarrow.parquet as pq
out["rows_written"] = sum(pq.ParquetFile(os.path.join(target, f)).metadata.num_rows
                          for f in os.listdir(target) if f.endswith(".parquet"))
shutil.rmtree(target, ignore_errors=True)
print(json.dumps(out))
""".replace("import pyarrow.compute as pc, shutil", "import os, pyarrow.compute as pc, shutil")


def make_parquet(folder: Path, files: int, rows_per_file: int) -> tuple[int, int]:
    """Parquet files of id (int64), x, y (float64) and a short string, made once."""
    marker = folder / f"_complete_{files}x{rows_per_file}"
    if not marker.exists():
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.parquet"):
            old.unlink()
        rng = np.random.default_rng(0)
        for index in range(files):
            ids = np.arange(index * rows_per_file, (index + 1) * rows_per_file, dtype=np.int64)
            table = pa.table({"id": ids, "x": rng.random(rows_per_file),
                              "y": rng.standard_normal(rows_per_file),
                              "tag": pa.array(np.char.add("t", (ids % 1000).astype(str)))})
            pq.write_table(table, folder / f"part-{index:04d}.parquet")
        marker.write_text("")
    size = sum(p.stat().st_size for p in folder.glob("*.parquet"))
    return size, files * rows_per_file


def run_child(python: str, code: str, args: list[str], env: dict) -> tuple[dict, float]:
    """Run one workload in a fresh process; its JSON line and the process's wall time."""
    started = time.perf_counter()
    done = subprocess.run([python, "-c", code, *args], capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT_S, env=env, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{python} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1]), wall


BEST = {"book_s": min, "book_process_s": min, "batches_rows_per_s": max,
        "numpy_rows_per_s": max, "parquet_s": min}


def measure_once(python: str, name: str, workload: str, args: argparse.Namespace,
                 parquet: Path, env: dict) -> dict:
    if workload == "book":
        book, wall = run_child(python, BOOK, [name], env)
        return {"book_s": book["book_s"], "book_process_s": wall}
    if workload == "batches":
        batches, _ = run_child(python, BATCHES, [name, str(args.rows)], env)
        return {k: v for k, v in batches.items() if k != "impl"}
    target = Path(tempfile.gettempdir()) / f"raylite-bench-out-{name}"
    written, _ = run_child(python, PARQUET, [name, str(parquet), str(target)], env)
    return {"parquet_s": written["parquet_s"], "parquet_rows_written": written["rows_written"]}


def measure_all(impls: list[tuple[str, str, dict]], args: argparse.Namespace,
                parquet: Path) -> dict:
    """Every workload for every implementation, interleaved (raylite, Ray, Ray, raylite, ...)
    so that a change in the machine's load hits both alike; the best of ``--repeat`` runs."""
    results: dict = {name: {} for name, _, _ in impls}
    for repeat in range(args.repeat):
        for workload in ("book", "batches", "parquet"):
            order = impls if repeat % 2 == 0 else impls[::-1]
            for name, python, env in order:
                figures = measure_once(python, name, workload, args, parquet, env)
                print(f"  run {repeat + 1} {workload:8} {name:8} "
                      + ", ".join(f"{k}={v:.4g}" for k, v in figures.items()), flush=True)
                for key, value in figures.items():
                    best = BEST.get(key)
                    old = results[name].get(key)
                    results[name][key] = value if old is None or best is None else best(old,
                                                                                         value)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="sizes / 10, for a quick check")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--ray-python", default=DEFAULT_RAY_PYTHON)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best counts")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    scale = 10 if args.small else 1
    args.rows = 10_000_000 // scale
    folder = Path(tempfile.gettempdir()) / f"raylite-bench-parquet{'-small' if scale > 1 else ''}"
    parquet_bytes, parquet_rows = make_parquet(folder, PARQUET_FILES, 2_000_000 // scale)

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    ray_env = dict(env, RAY_AUTH_MODE="disabled", RAY_DEDUP_LOGS="0")
    impls = [("raylite", sys.executable, env)]
    if not args.skip_ray:
        impls.append(("ray", args.ray_python, ray_env))
    results = measure_all(impls, args, folder)
    started = time.perf_counter()
    as_written = subprocess.run([sys.executable, "-c", BOOK_AS_WRITTEN], capture_output=True,
                                text=True, env=env, cwd=tempfile.gettempdir(), timeout=120)
    results["raylite"]["book_as_written_process_s"] = time.perf_counter() - started
    assert as_written.returncode == 0, as_written.stderr
    for result in results.values():
        result["parquet_mb_per_s"] = parquet_bytes / 1e6 / result["parquet_s"]
        if result["parquet_rows_written"] != parquet_rows:
            raise RuntimeError(f"wrote {result['parquet_rows_written']} rows of {parquet_rows}")
    print_table(results, args, parquet_bytes, parquet_rows)
    if args.output:
        save(results, args, parquet_bytes)
    return 0


ROWS = [  # (label, key, format, better)
    ("book Examples 1-2/1-3, from_items to take, fresh process (s)", "book_s", "{:.3f}", "low"),
    ("  the same, whole process: start, import, init, run, exit (s)", "book_process_s",
     "{:.2f}", "low"),
    ("  the book's code as written (plain-int map), whole process (s)",
     "book_as_written_process_s", "{:.2f}", "low"),
    ("range(N).map_batches(numpy) + iter_batches (M rows/s)", "batches_rows_per_s", "{:.2f}",
     "high"),
    ("  the same arithmetic in one numpy process (M rows/s)", "numpy_rows_per_s", "{:.1f}",
     "high"),
    ("read_parquet -> map_batches(pyarrow) -> write_parquet (s)", "parquet_s", "{:.2f}", "low"),
    ("  input Parquet read, transformed and written (MB/s)", "parquet_mb_per_s", "{:.1f}",
     "high"),
]


def print_table(results: dict, args: argparse.Namespace, parquet_bytes: int,
                parquet_rows: int) -> None:
    print(f"\nraylite.data vs Ray Data, {platform.node()}, {os.cpu_count()} CPUs, "
          f"N = {args.rows:,} rows; Parquet: {parquet_bytes / 1e9:.2f} GB, {parquet_rows:,} "
          f"rows in {PARQUET_FILES} files\n")
    print("| workload | raylite | Ray Data | raylite's advantage |")
    print("|---|---|---|---|")
    for label, key, fmt, better in ROWS:
        values = [results.get(impl, {}).get(key) for impl in ("raylite", "ray")]
        scaled = [v / 1e6 if v is not None and key.endswith("rows_per_s") else v
                  for v in values]
        cells = [fmt.format(v) if v is not None else "—" for v in scaled]
        ratio = "—"
        if all(v for v in values):
            ratio = values[1] / values[0] if better == "low" else values[0] / values[1]
            ratio = f"{ratio:.1f}x"
        print(f"| {label} | {cells[0]} | {cells[1]} | {ratio} |")


def save(results: dict, args: argparse.Namespace, parquet_bytes: int) -> None:
    stamp = datetime.datetime.now().strftime("%Y-%m-%d")
    path = Path(args.output).resolve()
    record = {"date": stamp, "host": platform.node(), "cpus": os.cpu_count(),
              "rows": args.rows, "parquet_bytes": parquet_bytes, "results": results}
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwritten to {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


if __name__ == "__main__":
    sys.exit(main())
