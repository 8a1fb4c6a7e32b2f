"""AIR benchmark: BatchPredictor against the same model scored in a plain loop in one process,
and XGBoostTrainer on 2 workers against xgboost.train alone on the same data.

usage: python bench/air.py [--rows N] [--features F] [--rounds R] [--repeat K]
                          [--what all|predict|xgboost] [--ray-python PATH | --skip-ray]

    predict:  a torch MLP (F -> 64 -> 64 -> 1) in a TorchCheckpoint;
              plain loop: TorchPredictor.predict on 4096-row numpy batches, one process
              raylite:    BatchPredictor(...).predict(ds, batch_size=4096, 2 scoring actors)
                          on a dataset of the same rows (already in the object store), consumed;
                          and on 16 rows, to show what starting the pool costs; and the
                          scoring alone (actors stamp when their model is loaded and when
                          each batch is scored)
              Ray 2.60:   the same model (its state_dict, saved by this run) and the same rows
                          (saved as .npy) in Ray's own idiom, as Ray 2.x has no BatchPredictor:
                          ray.data.from_numpy(8 blocks).materialize().map_batches(Scorer,
                          batch_size=4096, concurrency=2) consumed, in a subprocess of the Ray
                          venv (--ray-python, $RAY_PYTHON, default .bench-venv); its 16-row run
                          too. Ray's subprocess runs after raylite's figures are taken, with
                          raylite's runtime stopped.
    xgboost:  binary:logistic, hist, depth 6, R rounds on N x F synthetic rows
              xgboost.train(nthread=2) in this process vs XGBoostTrainer(2 workers, 1 thread each)
              (the trainer's time includes starting the workers and splitting the data)

Prints one JSON line per measurement (best of --repeat) and a Markdown table.
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

import numpy as np
import pandas as pd

DEFAULT_RAY_PYTHON = os.environ.get(  # the peers' venv that `make bench-env` builds
    "RAY_PYTHON", str(Path(__file__).resolve().parent.parent / ".bench-venv" / "bin" / "python"))


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_predict(rows: int, features: int, repeat: int, ray_python: str | None) -> dict:
    import torch

    import raylite as ray
    from raylite.train.batch_predictor import BatchPredictor
    from raylite.train.torch import TorchCheckpoint, TorchPredictor
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(features, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    checkpoint = TorchCheckpoint.from_model(model)
    x = np.random.default_rng(0).normal(size=(rows, features)).astype(np.float32)

    def plain_loop():
        predictor = TorchPredictor.from_checkpoint(checkpoint)
        for start in range(0, rows, 4096):
            predictor.predict(x[start:start + 4096])

    torch.set_num_threads(2)
    plain = best_of(repeat, plain_loop)
    # a tensor column "value" of 8 blocks, as ray.data.from_numpy makes it
    ds = ray.data.from_numpy(np.array_split(x, 8)).materialize()
    batch_predictor = BatchPredictor.from_checkpoint(checkpoint, TorchPredictor)
    stamps = tempfile.mkdtemp(prefix="bench-air-")
    timed = BatchPredictor.from_checkpoint(checkpoint, _timed_predictor(TorchPredictor),
                                           stamps=stamps)

    tiny = ray.data.from_numpy(x[:16]).materialize()

    def raylite_pool(data, expected):
        count = 0
        out = batch_predictor.predict(data, feature_columns=["value"], batch_size=4096,
                                      min_scoring_workers=2, max_scoring_workers=2)
        for batch in out.iter_batches(batch_size=None, batch_format="pandas"):
            count += len(batch)
        assert count == expected

    pooled = best_of(repeat, lambda: raylite_pool(ds, rows))
    startup = best_of(repeat, lambda: raylite_pool(tiny, 16))  # 2 actors: torch + model

    def scoring_span() -> float:
        """Seconds from the last actor's model load to the end of the last batch it scored
        (the pool's actors write the stamps): the scoring itself, start-up left out."""
        for name in os.listdir(stamps):
            os.remove(os.path.join(stamps, name))
        out = timed.predict(ds, feature_columns=["value"], batch_size=4096,
                            min_scoring_workers=2, max_scoring_workers=2)
        assert sum(len(b) for b in out.iter_batches(batch_size=None)) == rows
        loaded, scored = [], []
        for name in os.listdir(stamps):
            with open(os.path.join(stamps, name)) as f:
                kind, *values = f.read().split()
            (loaded if kind == "load" else scored).append(float(values[-1]))
        return max(scored) - max(loaded)

    span = min(scoring_span() for _ in range(repeat))
    figures = {"what": "predict", "rows": rows, "plain_rows_per_s": rows / plain,
               "batch_predictor_rows_per_s": rows / pooled, "pool_startup_s": startup,
               "batch_predictor_rows_per_s_after_startup": rows / max(pooled - startup, 1e-9),
               "batch_predictor_scoring_rows_per_s": rows / max(span, 1e-9)}
    if ray_python:  # raylite's runtime stopped meanwhile: Ray has the machine to itself
        ray.shutdown()
        figures.update(_ray_peer(ray_python, model, x, repeat))
        ray.init(num_cpus=2)
    return figures


def _ray_peer(ray_python: str, model, x: np.ndarray, repeat: int) -> dict:
    """Ray 2.60's map_batches on an actor pool: the same model and rows, in Ray's venv."""
    import torch
    folder = tempfile.mkdtemp(prefix="bench-air-ray-")
    torch.save(model.state_dict(), os.path.join(folder, "model.pt"))
    np.save(os.path.join(folder, "x.npy"), x)
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               RAY_DEDUP_LOGS="0")
    env.pop("PYTHONPATH", None)
    done = subprocess.run([ray_python, os.path.abspath(__file__), "--ray-side", folder,
                           "--repeat", str(repeat)], capture_output=True, text=True, env=env,
                          cwd=folder, timeout=900, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"Ray peer failed (exit {done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr)
        return {}
    ray_figures = json.loads(lines[-1])
    return {"ray_map_batches_rows_per_s": len(x) / ray_figures["pooled_s"],
            "ray_pool_startup_s": ray_figures["startup_s"], "ray_version": ray_figures["version"]}


def ray_side(folder: str, repeat: int) -> None:
    """Run in Ray's venv: the figures of ``_ray_peer`` as one JSON line."""
    import ray
    import torch
    x = np.load(os.path.join(folder, "x.npy"))
    features = x.shape[1]
    path = os.path.join(folder, "model.pt")

    class Scorer:
        """The model loaded once per actor; scores a numpy batch (Ray 2.x's idiom)."""

        def __init__(self):
            self.model = torch.nn.Sequential(
                torch.nn.Linear(features, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                torch.nn.ReLU(), torch.nn.Linear(64, 1))
            self.model.load_state_dict(torch.load(path))
            self.model.eval()

        def __call__(self, batch: dict) -> dict:
            with torch.no_grad():
                out = self.model(torch.as_tensor(batch["data"])).numpy()
            return {"predictions": out[:, 0]}

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    ds = ray.data.from_numpy(np.array_split(x, 8)).materialize()
    tiny = ray.data.from_numpy(x[:16]).materialize()

    def pool(data, expected):
        out = data.map_batches(Scorer, batch_size=4096, concurrency=2, batch_format="numpy")
        count = sum(len(b["predictions"]) for b in out.iter_batches(batch_size=None))
        assert count == expected, (count, expected)

    pooled = best_of(repeat, lambda: pool(ds, len(x)))
    startup = best_of(repeat, lambda: pool(tiny, 16))
    print(json.dumps({"pooled_s": pooled, "startup_s": startup, "version": ray.__version__}))
    ray.shutdown()


def _timed_predictor(base: type) -> type:
    """``base`` writing, per process, when its model was loaded and when its last batch ended."""

    class Timed(base):
        @classmethod
        def from_checkpoint(cls, checkpoint, stamps: str = "", **kwargs):
            predictor = super().from_checkpoint(checkpoint, **kwargs)
            predictor.stamps = stamps
            _stamp(stamps, "load")
            return predictor

        def _predict_numpy(self, data, **kwargs):
            out = super()._predict_numpy(data, **kwargs)
            _stamp(self.stamps, "score")
            return out

    return Timed


def _stamp(folder: str, kind: str) -> None:
    with open(os.path.join(folder, f"{kind}-{os.getpid()}"), "w") as f:
        f.write(f"{kind} {time.time()}")


def bench_xgboost(rows: int, features: int, rounds: int, repeat: int) -> dict:
    import xgboost

    import raylite as ray
    from raylite.air import ScalingConfig
    from raylite.train.xgboost import XGBoostTrainer
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(features)])
    frame["y"] = y
    params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6,
              "eval_metric": "logloss"}

    def alone():
        matrix = xgboost.DMatrix(frame.drop(columns="y"), label=frame["y"])
        xgboost.train({**params, "nthread": 2}, matrix, num_boost_round=rounds,
                      evals=[(matrix, "train")], verbose_eval=False)

    single = best_of(repeat, alone)
    ds = ray.data.from_pandas([frame.iloc[i::4] for i in range(4)]).materialize()

    def trainer():
        XGBoostTrainer(datasets={"train": ds}, label_column="y", params=params,
                       num_boost_round=rounds, scaling_config=ScalingConfig(num_workers=2)).fit()

    distributed = best_of(repeat, trainer)
    return {"what": "xgboost", "rows": rows, "rounds": rounds, "xgboost_train_s": single,
            "xgboost_trainer_2_workers_s": distributed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--what", choices=("all", "predict", "xgboost"), default="all")
    parser.add_argument("--ray-python", default=DEFAULT_RAY_PYTHON, metavar="PATH",
                        help=f"the Ray venv's python (default: {DEFAULT_RAY_PYTHON}, or $RAY_PYTHON)")
    parser.add_argument("--skip-ray", action="store_true", help="leave Ray's map_batches out")
    parser.add_argument("--ray-side", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ray_side:
        ray_side(args.ray_side, args.repeat)
        return
    ray_python = None if args.skip_ray else args.ray_python
    if ray_python and not os.path.exists(ray_python):
        print(f"no Ray at {ray_python} (make bench-env, or --ray-python PATH); "
              "measuring without it", file=sys.stderr)
        ray_python = None
    import raylite as ray
    ray.init(num_cpus=2)
    predict = boost = None
    if args.what in ("all", "predict"):
        predict = bench_predict(args.rows, args.features, args.repeat, ray_python)
        print(json.dumps(predict))
    if args.what in ("all", "xgboost"):
        boost = bench_xgboost(args.rows, args.features, args.rounds, args.repeat)
        print(json.dumps(boost))
    print_table(predict, boost)
    ray.shutdown()


def print_table(predict: dict | None, boost: dict | None) -> None:
    print("\n| figure | raylite | peer | raylite / peer |\n|---|---|---|---|")
    if predict is not None:
        print(f"| BatchPredictor, torch MLP, {predict['rows']:,} rows (rows/s) | "
              f"{predict['batch_predictor_rows_per_s']:,.0f} | plain loop, 1 process: "
              f"{predict['plain_rows_per_s']:,.0f} | "
              f"{predict['batch_predictor_rows_per_s'] / predict['plain_rows_per_s']:.2f} |")
        print(f"| ... the same less the pool's start-up ({predict['pool_startup_s']:.1f} s, "
              f"scoring 16 rows) (rows/s) | "
              f"{predict['batch_predictor_rows_per_s_after_startup']:,.0f} | "
              f"{predict['plain_rows_per_s']:,.0f} | "
              f"{predict['batch_predictor_rows_per_s_after_startup'] / predict['plain_rows_per_s']:.2f} |")
        print(f"| ... scoring only, from the last actor's model load to its last batch (rows/s) | "
              f"{predict['batch_predictor_scoring_rows_per_s']:,.0f} | "
              f"{predict['plain_rows_per_s']:,.0f} | "
              f"{predict['batch_predictor_scoring_rows_per_s'] / predict['plain_rows_per_s']:.2f} |")
        if "ray_map_batches_rows_per_s" in predict:
            ray_rate = predict["ray_map_batches_rows_per_s"]
            print(f"| BatchPredictor vs Ray {predict['ray_version']} map_batches(Scorer, "
                  f"concurrency=2), same model, rows, batch size (rows/s) | "
                  f"{predict['batch_predictor_rows_per_s']:,.0f} | Ray: {ray_rate:,.0f} | "
                  f"{predict['batch_predictor_rows_per_s'] / ray_rate:.2f} |")
            print(f"| Ray map_batches vs the plain loop (rows/s; Ray's pool start-up, 16 rows: "
                  f"{predict['ray_pool_startup_s']:.1f} s) | Ray: {ray_rate:,.0f} | "
                  f"{predict['plain_rows_per_s']:,.0f} | "
                  f"{ray_rate / predict['plain_rows_per_s']:.2f} (Ray / plain) |")
    if boost is not None:
        print(f"| XGBoostTrainer 2 workers, {boost['rows']:,} rows, {boost['rounds']} rounds (s) | "
              f"{boost['xgboost_trainer_2_workers_s']:.2f} | xgboost.train nthread=2: "
              f"{boost['xgboost_train_s']:.2f} | "
              f"{boost['xgboost_trainer_2_workers_s'] / boost['xgboost_train_s']:.2f} |")


if __name__ == "__main__":
    main()
