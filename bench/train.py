"""Train benchmark: a 2-worker DDP epoch under raylite.train vs torchrun (the limit) vs Ray
Train 2.60, and the start-up of a 2-worker torch Trainer.

usage: python bench/train.py [--epochs N] [--rows R] [--repeat K] [--skip-ray]
                             [--ray-python PATH] [--baseline DIR] [--output FILE]

    bench/train.py ──┬─ epoch:   the same DDP script (an MLP on synthetic data, gloo, a
                     │           DistributedSampler, one warm-up epoch, then N timed epochs,
                     │           barriers around each) run by
                     │             torchrun --nproc_per_node 2 script.py   (the limit)
                     │             raylite:  Trainer("torch", num_workers=2).run(loop)
                     │             Ray 2.60: TorchTrainer(loop, ScalingConfig(num_workers=2)).fit()
                     └─ startup: raylite: init, then Trainer.start() of 2 torch workers, then the
                                 first (no-op) run; and a no-op TorchTrainer.fit() end to end;
                                 Ray 2.60: a no-op TorchTrainer.fit() end to end (after ray.init);
                                 the floor: two processes importing torch.distributed at once;
                                 with --baseline DIR, the raylite start-up again with the
                                 raylite package in DIR (before/after a change, same run)

Each measurement runs in a fresh subprocess (torchrun's and Ray's in theirs), so imports and
page caches are alike. Prints one JSON line per measurement and a Markdown table; the targets
(issue 5): epoch time <= 1.15 x torchrun's, Trainer start-up <= 3 s.

Ray runs in its own venv (bench/README.md). Its venv has neither torch nor Ray Train's extra
dependencies; instead of installing them there, the Ray child gets an overlay directory on
PYTHONPATH with links to the packages of this venv that Ray's lacks (torch among them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RAY_PYTHON = os.environ.get(  # the peers' venv that `make bench-env` builds
    "RAY_PYTHON", str(Path(__file__).resolve().parent.parent / ".bench-venv" / "bin" / "python"))
CHILD_TIMEOUT_S = 900

# The workload: identical for all three runners (each sets up the gloo process group itself).
WORKLOAD = '''
import time

def ddp_epochs(config):
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler
    torch.manual_seed(0)
    x = torch.randn(config["rows"], config["features"])
    y = (x[:, : config["features"] // 2].sum(dim=1) > 0).long()
    dataset = TensorDataset(x, y)
    hidden = config["hidden"]
    model = torch.nn.Sequential(torch.nn.Linear(config["features"], hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, 2))
    model = torch.nn.parallel.DistributedDataParallel(model)
    sampler = DistributedSampler(dataset, shuffle=True)
    loader = DataLoader(dataset, batch_size=config["batch_size"], sampler=sampler)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    times, loss = [], None
    for epoch in range(config["epochs"] + 1):  # epoch 0 warms up
        sampler.set_epoch(epoch)
        dist.barrier()
        start = time.perf_counter()
        for features, labels in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(features), labels)
            loss.backward()
            optimizer.step()
        dist.barrier()
        times.append(time.perf_counter() - start)
    return {"epoch_s": times[1:], "loss": float(loss), "threads": torch.get_num_threads()}
'''

TORCHRUN_MAIN = '''
import json, os, sys
import torch.distributed as dist
from workload import ddp_epochs
dist.init_process_group("gloo")
result = ddp_epochs(json.loads(sys.argv[1]))
if dist.get_rank() == 0:
    print("RESULT " + json.dumps(result), flush=True)
dist.destroy_process_group()
'''

RAYLITE_EPOCH = '''
import json, sys, time
sys.path.insert(0, sys.argv[2])
import raylite
from raylite.train import Trainer
from workload import ddp_epochs
raylite.init(num_cpus=2)
trainer = Trainer(backend="torch", num_workers=2, logdir=sys.argv[3])
trainer.start()
result = trainer.run(ddp_epochs, json.loads(sys.argv[1]))[0]
trainer.shutdown()
print("RESULT " + json.dumps(result), flush=True)
'''

RAY_EPOCH = '''
import json, os, sys, tempfile
sys.path.insert(0, sys.argv[2])
import ray
from ray import train
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from workload import ddp_epochs

def loop(config):
    result = ddp_epochs(config)
    if train.get_context().get_world_rank() == 0:
        with open(config["result_file"], "w") as f:
            json.dump(result, f)

ray.init(num_cpus=2, include_dashboard=False)
config = {**json.loads(sys.argv[1]), "result_file": os.path.join(sys.argv[3], "ray_result.json")}
TorchTrainer(loop, train_loop_config=config, scaling_config=ScalingConfig(num_workers=2),
             run_config=RunConfig(storage_path=sys.argv[3])).fit()
with open(config["result_file"]) as f:
    print("RESULT " + f.read(), flush=True)
'''

RAYLITE_STARTUP = '''
import json, sys, time
t0 = time.perf_counter()
import raylite
from raylite.train import ScalingConfig, Trainer
from raylite.train.torch import TorchTrainer
raylite.init(num_cpus=2)
t1 = time.perf_counter()
trainer = Trainer(backend="torch", num_workers=2, logdir=sys.argv[1])
trainer.start()
t2 = time.perf_counter()
trainer.run(lambda: None)
t3 = time.perf_counter()
trainer.shutdown()
t4 = time.perf_counter()
TorchTrainer(lambda: None, scaling_config=ScalingConfig(num_workers=2)).fit()
t5 = time.perf_counter()
print("RESULT " + json.dumps({"init_s": t1 - t0, "start_s": t2 - t1, "first_run_s": t3 - t2,
                              "shutdown_s": t4 - t3, "noop_fit_s": t5 - t4}), flush=True)
'''

IMPORT_FLOOR = '''
import json, subprocess, sys, time
start = time.perf_counter()
children = [subprocess.Popen([sys.executable, "-c", "import torch.distributed"]) for _ in range(2)]
for child in children:
    child.wait()
print("RESULT " + json.dumps({"import_s": time.perf_counter() - start}), flush=True)
'''

RAY_STARTUP = '''
import json, os, sys, time
import ray
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
t0 = time.perf_counter()
ray.init(num_cpus=2, include_dashboard=False)
t1 = time.perf_counter()
TorchTrainer(lambda: None, scaling_config=ScalingConfig(num_workers=2),
             run_config=RunConfig(storage_path=sys.argv[1])).fit()
t2 = time.perf_counter()
print("RESULT " + json.dumps({"init_s": t1 - t0, "noop_fit_s": t2 - t1}), flush=True)
'''


def run_child(argv: list[str], env: dict | None = None, cwd: str | None = None) -> dict:
    """Run a child process; return the JSON after its 'RESULT ' line (or the error)."""
    begin = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False,
                          env={**os.environ, **(env or {})}, cwd=cwd or str(REPO))
    wall = time.perf_counter() - begin
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            result["wall_s"] = round(wall, 2)
            return result
    tail = (proc.stdout + proc.stderr)[-2000:]
    return {"error": f"exit {proc.returncode}", "output_tail": tail, "wall_s": round(wall, 2)}


def ray_overlay(ray_python: str, directory: str) -> str:
    """A directory of links to the packages of this venv that Ray's venv lacks."""
    ours = Path(next(p for p in sys.path if p.endswith("site-packages")))
    theirs = subprocess.run([ray_python, "-c", "import site; print(site.getsitepackages()[0])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    have = {name.lower() for name in os.listdir(theirs)}
    for entry in ours.iterdir():
        name = entry.name
        if (name.lower() in have or name.startswith(("raylite", "__editable__", "_distutils", "__pycache__"))
                or name.endswith((".pth", ".egg-link"))):
            continue
        os.symlink(entry, os.path.join(directory, name))
    return directory


def measure(args: argparse.Namespace, work: str) -> list[dict]:
    config = json.dumps({"rows": args.rows, "features": 32, "hidden": 256, "batch_size": 64,
                         "epochs": args.epochs})
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
    runs = []
    for repeat in range(args.repeat):
        logdir = tempfile.mkdtemp(dir=work)
        jobs = [("epoch", "torchrun", lambda: run_child(
                    [torchrun, "--nproc_per_node", "2", os.path.join(work, "torchrun_main.py"), config],
                    {"PYTHONPATH": work})),
                ("epoch", "raylite", lambda logdir=logdir: run_child(
                    [sys.executable, "-c", RAYLITE_EPOCH, config, work, logdir])),
                ("startup", "raylite", lambda logdir=logdir: run_child(
                    [sys.executable, "-c", RAYLITE_STARTUP, logdir])),
                ("startup", "floor", lambda: run_child([sys.executable, "-c", IMPORT_FLOOR]))]
        if args.baseline:  # the other tree's raylite comes first on the path (cwd is not REPO)
            jobs.append(("startup", "baseline", lambda logdir=logdir: run_child(
                [sys.executable, "-c", RAYLITE_STARTUP, logdir],
                {"PYTHONPATH": os.path.abspath(args.baseline)}, cwd=work)))
        if not args.skip_ray:
            overlay = os.path.join(work, "overlay")
            ray_env = {"PYTHONPATH": f"{work}:{overlay}", "RAY_USAGE_STATS_ENABLED": "0",
                       "RAY_AUTH_MODE": "disabled",}
            jobs += [("epoch", "ray", lambda logdir=logdir, env=ray_env: run_child(
                         [args.ray_python, "-c", RAY_EPOCH, config, work, logdir], env)),
                     ("startup", "ray", lambda logdir=logdir, env=ray_env: run_child(
                         [args.ray_python, "-c", RAY_STARTUP, logdir], env))]
        for workload, runtime, job in jobs:
            result = {"workload": workload, "runtime": runtime, "repeat": repeat, **job()}
            print(json.dumps(result), flush=True)
            runs.append(result)
    return runs


def best(runs: list[dict], workload: str, runtime: str, key: str) -> float | None:
    values = [r[key] if not isinstance(r.get(key), list) else statistics.median(r[key])
              for r in runs if r["workload"] == workload and r["runtime"] == runtime and key in r]
    return min(values) if values else None


def table(runs: list[dict]) -> str:
    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    limit = best(runs, "epoch", "torchrun", "epoch_s")
    rows = [("DDP epoch, 2 workers (s, median of epochs)", cell(best(runs, "epoch", "raylite", "epoch_s")),
             cell(best(runs, "epoch", "ray", "epoch_s")), cell(limit)),
            ("Trainer.start(), 2 torch workers (s)", cell(best(runs, "startup", "raylite", "start_s")),
             "—", "—"),
            ("  floor: 2 processes importing torch.distributed at once (s)",
             cell(best(runs, "startup", "floor", "import_s")), "—", "—"),
            ("first run of a no-op after start (s)", cell(best(runs, "startup", "raylite", "first_run_s")),
             "—", "—"),
            ("no-op TorchTrainer.fit(), 2 workers (s)", cell(best(runs, "startup", "raylite", "noop_fit_s")),
             cell(best(runs, "startup", "ray", "noop_fit_s")), "—"),
            ("runtime init (s)", cell(best(runs, "startup", "raylite", "init_s")),
             cell(best(runs, "startup", "ray", "init_s")), "—")]
    baseline = best(runs, "startup", "baseline", "start_s")
    if baseline is not None:  # --baseline: the same start-up with the other tree's raylite
        rows.insert(2, ("  the same, with the --baseline tree's raylite (s)", cell(baseline),
                        "—", "—"))
    lines = ["| figure | raylite | Ray Train 2.60 | torchrun (the limit) |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    ours = best(runs, "epoch", "raylite", "epoch_s")
    if ours and limit:
        lines.append(f"\nraylite / torchrun epoch time: {ours / limit:.3f} (target <= 1.15)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up)")
    parser.add_argument("--rows", type=int, default=16384, help="rows of the synthetic data set")
    parser.add_argument("--repeat", type=int, default=1, help="repeat everything; best of each")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--ray-python", default=DEFAULT_RAY_PYTHON)
    parser.add_argument("--baseline", metavar="DIR",
                        help="a directory with another raylite package to time start-up with too")
    parser.add_argument("--output", help="write all results as JSON here")
    args = parser.parse_args()
    if not args.skip_ray and not os.path.exists(args.ray_python):
        print(f"no Ray at {args.ray_python}; running without it (see bench/README.md)",
              file=sys.stderr)
        args.skip_ray = True
    with tempfile.TemporaryDirectory(prefix="raylite-train-bench-") as work:
        Path(work, "workload.py").write_text(WORKLOAD)
        Path(work, "torchrun_main.py").write_text(TORCHRUN_MAIN)
        if not args.skip_ray:
            os.makedirs(os.path.join(work, "overlay"))
            ray_overlay(args.ray_python, os.path.join(work, "overlay"))
        runs = measure(args, work)
    print()
    print(table(runs))
    if args.output:
        Path(args.output).write_text(json.dumps(runs, indent=2))
    return 1 if any("error" in r for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
