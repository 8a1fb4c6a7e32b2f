"""raylite.rllib's learning and speed figures (a benchmark, not a test).

    python bench/rllib.py pendulum [--seeds 1 2 3] [--framework torch|tf] [--steps 200000]
    python bench/rllib.py cartpole [--seeds 1 2 3] [--framework torch|tf]
    python bench/rllib.py dqn [--seeds 1 2 3]        # configs/cartpole-dqn.yml, 100k steps
    python bench/rllib.py sac [--seeds 1]            # configs/pendulum-sac.yml, 20k steps
    python bench/rllib.py dqn-rllib [--seeds 1 2 3]  # configs/cartpole-dqn-rllib.yml (RLlib's settings)
    python bench/rllib.py sac-rllib [--seeds 42 1 2] # configs/pendulum-sac-rllib.yml (RLlib's settings)
    python bench/rllib.py book          # rllib train -f configs/pendulum.yml, then rollout
    python bench/rllib.py all           # the three above (torch and tf), then the plot
    python bench/rllib.py compare [--steps 200000] [--ray-python .bench-venv/bin/python]
                                        # RLlib 2.60 and raylite on Pendulum, same run
    python bench/rllib.py compare-dqn [--steps 100000] [--seeds 1 2 3] [--ray-python ...]
                                        # RLlib 2.60's DQN and raylite's on CartPole, same run

``pendulum`` and ``cartpole`` train the tuned example files (configs/pendulum-ppo.yml,
configs/cartpole-ppo.yml) through the Python API for a fixed step budget, one JSON line per
iteration, and a summary line: steps and seconds to a mean return of -400 / -200 (Pendulum)
or 475 (CartPole), the return at 120k / 200k steps, env steps per second while training.
``dqn`` and ``sac`` do the same with DQN on CartPole-v1 (configs/cartpole-dqn.yml: a mean
return of 475 within 100k steps) and SAC on Pendulum-v1 (configs/pendulum-sac.yml: -200
within 20k steps), both after RLlib's tuned examples; their curves go to a plot of their own,
bench/rllib_offpolicy_curves.png.
``book`` runs the book's Example 1-5 as a reader does and times it to its stop criterion.
``compare-dqn`` reads both sides alike: bench/rllib_dqn_ray.py counts RLlib's episodes itself
(RLlib 2.60's own episode_return_mean covers about one iteration's episodes: its new API stack
clears the metric's window at each reduce), so the curves are the mean of the last 100
episodes on both sides, and each point also holds the mean of that iteration's episodes.
Every run's curve is appended to $RLLIB_BENCH_CURVES (default: a file in the temp dir) and
all of them are plotted into bench/rllib_curves.png when matplotlib is installed. RLlib 2.60's figures for comparison
(../shared/bench/rllib_ppo_ray.py, same machine kind): 970 env steps/s; -400 at 92k steps,
-200 at 104k (108 s), -138 at 200k.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CURVES = os.environ.get("RLLIB_BENCH_CURVES") or os.path.join(tempfile.gettempdir(),
                                                              "raylite_rllib_curves.jsonl")
PLOT = os.path.join(HERE, "rllib_curves.png")
OFF_POLICY_PLOT = os.path.join(HERE, "rllib_offpolicy_curves.png")
RLLIB_260 = [(92_000, -400), (104_000, -200), (200_000, -138)]


def load_example(name: str) -> tuple[dict, dict]:
    with open(os.path.join(REPO, "configs", f"{name}.yml")) as f:
        [(_, spec)] = yaml.safe_load(f).items()
    return {**spec["config"], "env": spec["env"], "run": spec["run"]}, spec["stop"]


# Per example: the mean returns whose first crossing is reported, and the step counts at which
# the curve's value is reported.
TARGETS = {"pendulum-ppo": [-400, -200], "cartpole-ppo": [475], "cartpole-dqn": [475],
           "pendulum-sac": [-400, -200], "cartpole-dqn-rllib": [475],
           "pendulum-sac-rllib": [-400, -200]}
CHECKPOINTS = {"pendulum-ppo": (100_000, 120_000, 200_000), "cartpole-ppo": (100_000,),
               "cartpole-dqn": (50_000, 100_000), "pendulum-sac": (10_000, 20_000),
               "cartpole-dqn-rllib": (50_000, 100_000), "pendulum-sac-rllib": (10_000, 20_000)}


def train_curve(name: str, framework: str, seed: int, budget: int) -> dict:
    """Train example ``name`` for ``budget`` env steps; the curve and the summary."""
    import raylite
    from raylite import rllib
    config, _ = load_example(name)
    algo_class = getattr(rllib, config.pop("run"))
    config.update(framework=framework, seed=seed)
    if not raylite.is_initialized():
        raylite.init(num_cpus=2)
    start = time.perf_counter()
    algo = algo_class(config=config)
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    curve, steps = [], 0
    while steps < budget:
        result = algo.train()
        steps = result["timesteps_total"]
        point = {"steps": steps, "return": round(result["episode_reward_mean"], 1),
                 "t": round(time.perf_counter() - start, 1)}
        new_episodes = result["hist_stats"]["episode_reward"][-result["episodes_this_iter"]:]
        if result["episodes_this_iter"] and new_episodes:   # this iteration's episodes alone
            point["iter_return"] = round(sum(new_episodes) / len(new_episodes), 1)
        curve.append(point)
        print(json.dumps(point), flush=True)
    greedy = algo.evaluate()["evaluation"]["episode_reward_mean"]
    algo.stop()
    run = {"name": name, "framework": framework, "seed": seed, "setup_s": round(setup_s, 1),
           "curve": curve, "greedy_return_10_episodes": round(greedy, 1),
           "env_steps_per_s": round(steps / curve[-1]["t"])}
    run.update(milestones(curve, TARGETS[name]))
    run.update({f"return_at_{k // 1000}k": value_at(curve, k) for k in CHECKPOINTS[name]
                if k <= budget})
    run["best"] = max(([p["return"], p["steps"]] for p in curve), default=None)
    return run


def milestones(curve: list[dict], targets: list[float]) -> dict:
    out = {}
    for target in targets:
        hit = next((p for p in curve if p["return"] >= target), None)
        out[f"to_{target}"] = [hit["steps"], hit["t"]] if hit else None
    return out


def value_at(curve: list[dict], steps: int) -> float | None:
    before = [p for p in curve if p["steps"] <= steps]
    return before[-1]["return"] if before else None


def book_run(timeout_s: int = 600) -> dict:
    """``rllib train -f configs/pendulum.yml`` then ``rllib rollout`` of its last checkpoint
    over 10 episodes, as subprocesses, timed from the command's start."""
    results = tempfile.mkdtemp(prefix="rllib_book_")
    env = {**os.environ, "PYTHONPATH": REPO, "SDL_VIDEODRIVER": "dummy"}
    command = [sys.executable, "-m", "raylite.cli._rllib", "train", "-f",
               os.path.join(REPO, "configs", "pendulum.yml"), "--local-dir", results]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s,
                          check=True)
    wall = time.perf_counter() - start
    print(done.stdout[-3000:], done.stderr[-2000:], sep="\n", flush=True)
    curve = []
    for line in done.stdout.splitlines():
        match = re.search(r"steps\s+([\d,]+)\s+reward\s+(-?[\d.]+|nan).*?([\d.]+) s$", line)
        if match and match.group(2) != "nan":
            curve.append({"steps": int(match.group(1).replace(",", "")),
                          "return": float(match.group(2)), "t": float(match.group(3))})
    checkpoint = done.stdout.split("Last checkpoint: ")[1].split()[0]
    rollout = subprocess.run([sys.executable, "-m", "raylite.cli._rllib", "rollout", checkpoint,
                              "--run", "PPO", "--env", "Pendulum-v1", "--episodes", "10",
                              "--no-render"], env=env, capture_output=True, text=True, timeout=300,
                             check=True)
    mean = float(re.search(r"Mean reward over 10 episode\(s\): (-?[\d.]+)", rollout.stdout).group(1))
    return {"name": "book pendulum.yml", "framework": "torch", "seed": None, "curve": curve,
            "wall_s_to_stop": round(wall, 1), "steps_at_stop": curve[-1]["steps"] if curve else None,
            "rollout_mean_10_episodes": mean, "checkpoint": checkpoint}


def ray_run(python: str, budget: int, timeout_s: int = 1800, script: str | None = None,
            name: str = "pendulum rllib-2.60", targets: tuple = (-400, -200),
            checkpoints: tuple = (100_000, 120_000, 200_000), seed: int | None = None) -> dict:
    """RLlib's own anchor script (../shared/bench/rllib_ppo_ray.py, or ``script``) in Ray's
    venv, as a curve."""
    script = script or os.path.join(REPO, "..", "shared", "bench", "rllib_ppo_ray.py")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    seed_args = [] if seed is None else [str(seed)]
    done = subprocess.run([python, script, str(budget), *seed_args], env=env,
                          capture_output=True, text=True, timeout=timeout_s, check=False)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"RLlib run failed ({done.returncode}): {done.stderr[-3000:]}")
    # "return": the mean of the last 100 episodes where the script counts episodes itself
    # (bench/rllib_dqn_ray.py), as raylite's episode_reward_mean; else RLlib's own metric
    curve = [{"steps": p["steps"], "return": p.get("return_100", p["return_mean"]), "t": p["t"],
              **({"iter_return": p["iter_return"]} if "iter_return" in p else {})}
             for p in lines if "return_mean" in p and p.get("return_100", p["return_mean"])
             == p.get("return_100", p["return_mean"])]
    summary = lines[-1]
    run = {"name": name, "framework": "torch", "seed": seed, "curve": curve,
           "env_steps_per_s": summary["steps_per_s"], "wall_s": summary["wall_s"]}
    run.update(milestones(curve, list(targets)))
    run.update({f"return_at_{k // 1000}k": value_at(curve, k) for k in checkpoints
                if k <= budget})
    return run


def compare(python: str, budget: int) -> None:
    """RLlib 2.60 then raylite on Pendulum-v1 with the same step budget, one after the other."""
    theirs = ray_run(python, budget)
    record(theirs)
    ours = train_curve("pendulum-ppo", "torch", 1, budget)
    record(ours)
    rows = [("env steps/s while training", "env_steps_per_s"), ("steps, s to return >= -400", "to_-400"),
            ("steps, s to return >= -200", "to_-200"), ("return at 120k", "return_at_120k"),
            ("return at 200k", "return_at_200k")]
    print("| figure | raylite | RLlib 2.60 |\n|---|---|---|")
    for label, key in rows:
        print(f"| {label} | {ours.get(key)} | {theirs.get(key)} |")


def compare_dqn(python: str, budget: int, seeds: list[int]) -> None:
    """Per seed, RLlib 2.60's DQN (bench/rllib_dqn_ray.py) then raylite's on CartPole-v1, same
    settings (configs/cartpole-dqn-rllib.yml), same step budget, one after the other. Both
    sides' returns are read alike: the mean of the last 100 episodes, and the mean of the
    episodes each 1000-step iteration finished (RLlib 2.60's own episode_return_mean)."""
    pairs = []
    for seed in seeds:
        theirs = ray_run(python, budget, script=os.path.join(HERE, "rllib_dqn_ray.py"),
                         name="cartpole-dqn rllib-2.60", targets=(475,),
                         checkpoints=CHECKPOINTS["cartpole-dqn"], seed=seed)
        record(theirs)
        ours = train_curve("cartpole-dqn-rllib", "torch", seed, budget)
        record(ours)
        pairs.append((seed, ours, theirs))
    print("| seed | figure | raylite | RLlib 2.60 |\n|---|---|---|---|")
    for seed, ours, theirs in pairs:
        for label, value in [("env steps/s while training", lambda r: r["env_steps_per_s"]),
                             ("steps to 100-episode mean >= 475", lambda r: r.get("to_475")),
                             *[(f"100-episode mean at {k // 1000}k",
                                lambda r, k=k: value_at(r["curve"], k))
                               for k in (25_000, 50_000, 100_000) if k <= budget],
                             ("episodes' mean over the last 10k steps", last_iterations_mean),
                             ("first iteration whose episodes average >= 475",
                              lambda r: next((p["steps"] for p in r["curve"]
                                              if p.get("iter_return", 0) >= 475), None))]:
            print(f"| {seed} | {label} | {value(ours)} | {value(theirs)} |")


def last_iterations_mean(run: dict, window: int = 10_000) -> float | None:
    """The mean of the iterations' own episode means over the run's last ``window`` steps."""
    end = run["curve"][-1]["steps"]
    values = [p["iter_return"] for p in run["curve"]
              if "iter_return" in p and p["steps"] > end - window]
    return round(sum(values) / len(values), 1) if values else None


def record(run: dict) -> None:
    summary = {k: v for k, v in run.items() if k != "curve"}
    print("SUMMARY " + json.dumps(summary), flush=True)
    with open(CURVES, "a") as f:
        f.write(json.dumps({**run, "date": time.strftime("%Y-%m-%d %H:%M")}) + "\n")


def plot(path: str = PLOT) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return
    with open(CURVES) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    off_policy = [run for run in runs if "-dqn" in run["name"] or "-sac" in run["name"]]
    if off_policy:
        plot_off_policy(plt, off_policy, os.path.join(os.path.dirname(os.path.abspath(path)),
                                                      os.path.basename(OFF_POLICY_PLOT)))
    runs = [run for run in runs if run not in off_policy]
    if not runs:
        return
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for run in runs:
        ax = axes[1] if run["name"].startswith("cartpole") else axes[0]
        steps = [p["steps"] / 1000 for p in run["curve"]]
        label = f"{run['name']} {run['framework']}" + (f" seed {run['seed']}" if run["seed"] is not None else "")
        ax.plot(steps, [p["return"] for p in run["curve"]], label=label, linewidth=1.2)
    axes[0].plot([s / 1000 for s, _ in RLLIB_260], [r for _, r in RLLIB_260], "k*", markersize=10,
                 label="RLlib 2.60 PPO (anchor)")
    axes[0].axhline(-200, color="grey", linestyle=":")
    axes[0].axhline(-800, color="grey", linestyle=":")
    axes[1].axhline(475, color="grey", linestyle=":")
    for ax, title in zip(axes, ("Pendulum-v1", "CartPole-v1")):
        ax.set_title(f"raylite.rllib on {title}")
        ax.set_xlabel("env steps (thousands)")
        ax.set_ylabel("episode_reward_mean")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def plot_off_policy(plt, runs: list[dict], path: str = OFF_POLICY_PLOT) -> None:
    """DQN on CartPole-v1 and SAC on Pendulum-v1 (a panel each, for those with runs), one
    line per run."""
    panels = [("dqn", "DQN on CartPole-v1 (mean of 100 episodes)", 475, 100),
              ("sac", "SAC on Pendulum-v1 (mean of 5 episodes)", -200, 20)]
    panels = [panel for panel in panels if any(panel[0] in run["name"] for run in runs)]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, (kind, title, target, budget) in zip(axes[0], panels):
        for run in runs:
            if kind not in run["name"]:
                continue
            label = f"{run['name']} {run['framework']}" + (
                f" seed {run['seed']}" if run["seed"] is not None else "")
            ax.plot([p["steps"] / 1000 for p in run["curve"]],
                    [p["return"] for p in run["curve"]], label=label, linewidth=1.2)
        ax.axhline(target, color="grey", linestyle=":")
        ax.axvline(budget, color="grey", linestyle=":")
        ax.set_title(f"raylite.rllib {title}")
        ax.set_xlabel("env steps (thousands)")
        ax.set_ylabel("episode_reward_mean")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("pendulum", "cartpole", "dqn", "sac", "book", "all",
                                         "plot", "compare", "compare-dqn", "dqn-rllib",
                                         "sac-rllib"))
    parser.add_argument("--ray-python", default=os.environ.get("RAY_PYTHON", str(
                            Path(__file__).resolve().parent.parent / ".bench-venv" / "bin" / "python")),
                        help="a Python with ray[rllib] 2.60 installed (for compare)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--framework", choices=("torch", "tf"), default="torch")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--plot", default=PLOT, help="where to draw the curves")
    args = parser.parse_args()
    jobs = {"pendulum": [("pendulum-ppo", args.framework, args.steps or 200_000)],
            "cartpole": [("cartpole-ppo", args.framework, args.steps or 100_000)],
            "dqn": [("cartpole-dqn", args.framework, args.steps or 100_000)],
            "sac": [("pendulum-sac", args.framework, args.steps or 20_000)],
            "dqn-rllib": [("cartpole-dqn-rllib", args.framework, args.steps or 100_000)],
            "sac-rllib": [("pendulum-sac-rllib", args.framework, args.steps or 20_000)],
            "all": [("pendulum-ppo", "torch", 200_000), ("pendulum-ppo", "tf", 200_000),
                    ("cartpole-ppo", "torch", 100_000)]}.get(args.what, [])
    for name, framework, budget in jobs:
        for seed in args.seeds:
            record(train_curve(name, framework, seed, budget))
    if args.what == "compare":
        compare(args.ray_python, args.steps or 200_000)
    if args.what == "compare-dqn":
        compare_dqn(args.ray_python, args.steps or 100_000, args.seeds)
    if args.what in ("book", "all"):
        record(book_run())
    if args.what != "plot" or os.path.exists(CURVES):
        plot(args.plot)


if __name__ == "__main__":
    main()
