"""The ``rllib`` console script (``raylite.cli._rllib:main``).

    rllib train -f configs/pendulum.yml
    rllib train --run PPO --env CartPole-v1 --stop '{"episode_reward_mean": 450}' \\
                --config '{"num_workers": 1}' [--checkpoint-freq 5 --local-dir DIR --framework tf]
    rllib rollout CHECKPOINT --run PPO --env Pendulum-v1 --steps 2000 [--episodes N]
                  [--no-render] [--out FILE]
    rllib evaluate CHECKPOINT --algo PPO [--env ENV]        (Ray 2.x's spelling of rollout)
    rllib example list | get NAME | run NAME

``train`` checks everything it can before starting (config keys, env ids, stop criteria), runs
each experiment through ``raylite.tune`` (one line of progress per iteration), and ends with
the last checkpoint's path and the ``rllib evaluate`` and ``rllib rollout`` commands that show
it. ``rollout`` acts with the checkpoint's weights on numpy: it needs neither torch nor
TensorFlow, and renders with pygame when there is a display. Heavy imports happen inside the
subcommands.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import shlex
import sys
import time
from typing import Any

from raylite.cli._common import non_negative_int

EXPERIMENT_KEYS = ("run", "env", "stop", "config", "checkpoint_freq", "checkpoint_at_end",
                   "local_dir", "storage_path", "num_samples", "keep_checkpoints_num",
                   "checkpoint_score_attr", "max_failures", "resources_per_trial")
RESULT_KEYS = ("episode_reward_mean", "episode_reward_min", "episode_reward_max",
               "episode_len_mean", "episodes_this_iter", "episodes_total", "timesteps_total",
               "timesteps_this_iter", "training_iteration", "time_total_s", "time_this_iter_s",
               "num_env_steps_sampled", "num_env_steps_sampled_lifetime", "env_steps_per_s",
               "env_runners/episode_return_mean", "env_runners/episode_return_min",
               "env_runners/episode_return_max", "env_runners/episode_len_mean",
               "evaluation/episode_reward_mean")


class UsageError(Exception):
    """A mistake in what was asked: printed as one message, exit status 2."""


# ---- parsing ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rllib", description="Train reinforcement learning agents with raylite.rllib, and "
                                  "watch them act.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    _add_train(commands)
    _add_rollout(commands, "rollout", "run a checkpoint's agent in its env (Ray 1.9)", "--run")
    _add_rollout(commands, "evaluate", "run a checkpoint's agent in its env (Ray 2.x)", "--algo")
    _add_example(commands)
    return parser


def _add_train(commands: argparse._SubParsersAction) -> None:
    from raylite.rllib._config import fields_help
    parser = commands.add_parser(
        "train", help="train from a YAML experiment file or from flags",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train through raylite.tune. With -f, the file's experiments; else one "
                    "experiment from --run, --env, --stop and --config.",
        epilog="config keys (YAML config: or --config JSON):\n" + fields_help())
    parser.add_argument("-f", "--config-file", metavar="FILE",
                        help="YAML experiment file (or a .py algorithm config)")
    parser.add_argument("source", nargs="*", metavar="file FILE",
                        help="Ray 2.x's form: `rllib train file FILE`, FILE a YAML experiment "
                             "file or a .py file that defines an algorithm config (`config = "
                             "PPOConfig()...`, and optionally a `stop` dict)")
    _add_train_flags(parser)
    parser.set_defaults(handler=_train)


def _add_train_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", "--algo", dest="run", metavar="ALGO",
                        help="the algorithm: PPO, DQN, SAC, MARWIL or BC")
    parser.add_argument("--env", metavar="ENV", help="Gymnasium id, registered name or module.Class")
    parser.add_argument("--stop", type=_json_dict, default=None, metavar="JSON",
                        help='stop criteria, e.g. \'{"episode_reward_mean": 450}\'')
    parser.add_argument("--config", type=_json_dict, default=None, metavar="JSON",
                        help="algorithm config (merged over the file's)")
    parser.add_argument("--checkpoint-freq", type=non_negative_int, default=None, metavar="N",
                        help="checkpoint every N iterations")
    parser.add_argument("--no-checkpoint-at-end", dest="checkpoint_at_end", default=None,
                        action="store_false", help="do not checkpoint when training ends")
    parser.add_argument("--local-dir", "--storage-path", dest="local_dir", metavar="DIR",
                        help="results directory (default: $RAYLITE_RESULTS_DIR or "
                             "~/ray_results)")
    parser.add_argument("--framework", choices=("torch", "tf", "tf2", "tfe"),
                        help="deep learning framework (default: torch)")
    parser.add_argument("--experiment-name", "--name", dest="name", default=None,
                        help="experiment name without -f (default: 'default')")
    parser.add_argument("--num-cpus", type=non_negative_int, default=None, metavar="N",
                        help="CPUs to start raylite with (default: all)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the learner's stats each iteration")


def _add_rollout(commands: argparse._SubParsersAction, name: str, help_text: str,
                 algo_flag: str) -> None:
    parser = commands.add_parser(name, help=help_text, description=help_text + ". Prints each "
                                 "episode's reward; renders when a display exists.")
    parser.add_argument("checkpoint", help="checkpoint-N file, its directory or a trial directory")
    parser.add_argument(algo_flag, "--run" if algo_flag == "--algo" else "--algo", dest="algo",
                        metavar="ALGO", help="the algorithm that wrote the checkpoint (PPO)")
    parser.add_argument("--env", help="the env (default: the checkpoint's)")
    parser.add_argument("--steps", type=non_negative_int, default=None, metavar="N",
                        help="stop after N steps (default: 10000 unless --episodes is given)")
    parser.add_argument("--episodes", type=non_negative_int, default=0, metavar="N",
                        help="stop after N episodes")
    parser.add_argument("--no-render", action="store_true", help="do not render")
    parser.add_argument("--explore", action="store_true",
                        help="sample actions (default: the most likely action)")
    parser.add_argument("--out", metavar="FILE",
                        help="pickle the episodes' [obs, action, next_obs, reward, done] here")
    parser.set_defaults(handler=_rollout)


def _add_example(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("example", help="list, show or run the tuned examples",
                                 description="The example experiments shipped with raylite "
                                             "(the files in configs/).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    actions.add_parser("list", help="list the examples").set_defaults(handler=_example_list)
    get = actions.add_parser("get", help="print an example's YAML")
    get.add_argument("name")
    get.set_defaults(handler=_example_get)
    run = actions.add_parser("run", help="train an example (as rllib train -f)")
    run.add_argument("name")
    _add_train_flags(run)
    run.set_defaults(handler=_example_run)


def _json_dict(text: str) -> dict:
    import yaml
    try:
        value = yaml.safe_load(text)  # JSON, or YAML's flow style {a: 1}
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"key\": 1}}', got {text!r}")
    return value


# ---- train ----------------------------------------------------------------------------------------
def _train(args: argparse.Namespace) -> int:
    source = getattr(args, "source", None)
    if source:
        if source[0] != "file" or len(source) != 2:
            raise UsageError(f"unexpected arguments {' '.join(source)!r}: use `rllib train file "
                             f"FILE` or `rllib train -f FILE`")
        if args.config_file:
            raise UsageError("give the experiment file once: `file FILE` or -f FILE")
        args.config_file = source[1]
    if args.config_file and args.config_file.endswith(".py"):
        experiments = _load_python_experiment(args.config_file, args.name)
    elif args.config_file:
        experiments = _load_experiments(args.config_file)
    else:
        if not args.run or not args.env:
            raise UsageError("rllib train needs -f FILE.yml, or --run ALGO and --env ENV")
        experiments = {args.name or "default": {"run": args.run, "env": args.env}}
    last = None
    for name, spec in experiments.items():
        last = _train_experiment(name, _apply_flags(spec, args), args)
    return 0 if last else 1


def _load_experiments(path: str) -> dict[str, dict]:
    import yaml
    if not os.path.exists(path):
        raise UsageError(f"no such experiment file: {path}")
    with open(path) as f:
        try:
            experiments = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise UsageError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(experiments, dict) or not experiments or not all(
            isinstance(v, dict) for v in experiments.values()):
        raise UsageError(f"{path}: expected experiments as 'name: {{run: ..., env: ..., stop: "
                         f"..., config: ...}}'")
    from raylite._suggest import did_you_mean
    for name, spec in experiments.items():
        for key in spec:
            if key not in EXPERIMENT_KEYS:
                raise UsageError(f"{path}: experiment {name!r} has an unknown key {key!r}"
                                 f"{did_you_mean(key, EXPERIMENT_KEYS)} (experiment keys: "
                                 f"{', '.join(EXPERIMENT_KEYS)}; algorithm settings go under "
                                 f"config:)")
    return experiments


def _load_python_experiment(path: str, name: str | None) -> dict[str, dict]:
    """One experiment from a .py file that defines an algorithm config (``config``, or the
    only config it defines) and optionally ``stop``."""
    import runpy

    from raylite.rllib._builder import ConfigBuilder
    if not os.path.exists(path):
        raise UsageError(f"no such file: {path}")
    namespace = runpy.run_path(path, run_name="__rllib_train__")
    configs = {key: value for key, value in namespace.items()
               if isinstance(value, ConfigBuilder)}
    if "config" in configs:
        config = configs["config"]
    elif len(configs) == 1:
        config = next(iter(configs.values()))
    else:
        raise UsageError(f"{path} must define one algorithm config (e.g. `config = "
                         f"PPOConfig().environment(...)`); it defines "
                         f"{', '.join(configs) or 'none'}")
    stop = namespace.get("stop") or {}
    if not isinstance(stop, dict):
        raise UsageError(f"{path}: stop must be a dict such as {{'training_iteration': 10}}")
    values = config.to_dict()
    return {name or os.path.splitext(os.path.basename(path))[0]: {
        "run": config.algo_name, "env": values.get("env"), "stop": stop, "config": values}}


def _apply_flags(spec: dict, args: argparse.Namespace) -> dict:
    """The experiment with the command line's flags over the file's values."""
    spec = {**spec, "config": dict(spec.get("config") or {}), "stop": dict(spec.get("stop") or {})}
    if args.run:
        spec["run"] = args.run
    if args.env:
        spec["env"] = args.env
    if args.stop:
        spec["stop"].update(args.stop)
    if args.config:
        spec["config"].update(args.config)
    if args.framework:
        spec["config"]["framework"] = args.framework
    if args.checkpoint_freq is not None:
        spec["checkpoint_freq"] = args.checkpoint_freq
    if args.checkpoint_at_end is not None:
        spec["checkpoint_at_end"] = args.checkpoint_at_end
    if args.local_dir:
        spec["local_dir"] = args.local_dir
    return spec


def _train_experiment(name: str, spec: dict, args: argparse.Namespace) -> str | None:
    import raylite
    from raylite import rllib, tune
    from raylite import _registry
    from raylite.rllib._config import AlgorithmConfig

    if not spec.get("run"):
        raise UsageError(f"experiment {name!r} has no 'run:' (the algorithm, e.g. PPO)")
    algo_class = rllib.get_algorithm_class(spec["run"])
    config = dict(spec["config"])
    env = spec.get("env") or config.get("env")
    if env is None:
        raise UsageError(f"experiment {name!r} has no env (set env: or config: {{env: ...}})")
    env_spec = rllib.resolve_env(env, config.get("env_config"))
    config["env"] = env_spec.name if env_spec.kind == "gymnasium" else env
    checked = AlgorithmConfig.from_dict(_first_variant(config), algo_class.algo_name)
    stop = dict(spec.get("stop") or {})
    _check_stop_keys(stop)
    for warning in rllib.check_stop_criteria(stop, env_spec, checked.horizon):
        print(f"rllib: warning: {warning}", file=sys.stderr, flush=True)
    env_name = env_spec.name
    trainable = type(algo_class.__name__, (algo_class,), {
        "_registered": _registry.snapshot(), "__module__": __name__,
        "__qualname__": algo_class.__name__})
    if not raylite.is_initialized():
        _init_shielded_from_ctrl_c(args.num_cpus)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    label = env_name.replace("/", "_").replace(":", "_")
    print(f"== {name}: {spec['run']} on {env_name}; stop at "
          f"{_describe_stop(stop) or 'never (Ctrl-C to end)'} ==", flush=True)
    progress = _progress(args.verbose, stop)
    interrupt = _Interrupt()
    try:
        with interrupt:
            analysis = tune.run(
                trainable, name=name, config=config, stop=_stop_criteria(stop, interrupt),
                checkpoint_freq=int(spec.get("checkpoint_freq") or 0),
                checkpoint_at_end=bool(spec.get("checkpoint_at_end", True)),
                storage_path=spec.get("storage_path") or spec.get("local_dir"),
                num_samples=int(spec.get("num_samples") or 1),
                max_failures=int(spec.get("max_failures") or 0),
                resources_per_trial=spec.get("resources_per_trial")
                or algo_class.default_resource_request(_first_variant(config)),
                trial_name_creator=lambda trial: f"{algo_class.__name__}_{label}_{trial.trial_id}",
                trial_dirname_creator=lambda trial: (f"{algo_class.__name__}_{label}_{trial.trial_id}"
                                                     f"_{trial.experiment_tag}_{stamp}"),
                verbose=0, callbacks=[progress])
    except tune.TuneError as exc:
        print(f"rllib: training failed: {exc}", file=sys.stderr, flush=True)
        return None
    finally:
        progress.bar.close()
    return _summarize(analysis.trials, spec["run"], env_name, stop, interrupt.requested)


def _init_shielded_from_ctrl_c(num_cpus: int | None) -> None:
    """Start raylite with SIGINT blocked in the threads that start its worker processes, so
    the workers inherit it blocked: a Ctrl-C at the terminal (sent to the whole process group)
    reaches this process only, which ends training cleanly (``_Interrupt``) instead of
    interrupting the trial and rollout workers in the middle of a step."""
    import signal

    import raylite
    can_mask = hasattr(signal, "pthread_sigmask")
    if can_mask:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        raylite.init(num_cpus=num_cpus) if num_cpus else raylite.init()
    finally:
        if can_mask:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _first_variant(config: dict) -> dict:
    """The config with each ``{grid_search: [...]}`` replaced by its first value (to check)."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"grid_search"} and value["grid_search"]:
            out[key] = value["grid_search"][0]
        elif isinstance(value, dict) and key != "env_config":
            out[key] = _first_variant(value)
        else:
            out[key] = value
    return out


def _check_stop_keys(stop: dict) -> None:
    from raylite._suggest import did_you_mean
    for key, value in stop.items():
        if key not in RESULT_KEYS:
            raise UsageError(f"unknown stop criterion {key!r}{did_you_mean(key, RESULT_KEYS)} "
                             f"(criteria: {', '.join(RESULT_KEYS)})")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise UsageError(f"stop criterion {key}: {value!r} must be a number")


def _result_value(result: dict, key: str) -> Any:
    value: Any = result
    for part in key.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _describe_stop(stop: dict) -> str:
    return " or ".join(f"{key} >= {value:g}" for key, value in stop.items())


def _stop_reached(stop: dict, result: dict) -> list[str]:
    reached = []
    for key, threshold in stop.items():
        value = _result_value(result, key)
        if isinstance(value, (int, float)) and not math.isnan(value) and value >= threshold:
            reached.append(f"{key} >= {threshold:g}")
    return reached


def _stop_criteria(criteria: dict, interrupt: _Interrupt) -> Any:
    """A tune.Stopper for Ray's ``stop`` dict, whose "a/b" keys reach into nested results, that
    also ends the experiment (saving as a finished one does) after a Ctrl-C."""
    from raylite import tune

    class StopCriteria(tune.Stopper):
        def __call__(self, trial_id: str, result: dict) -> bool:
            return interrupt.requested or bool(_stop_reached(criteria, result))

        def stop_all(self) -> bool:
            return interrupt.requested

    return StopCriteria()


class _Interrupt:
    """Ctrl-C during training: the first ends the experiment after the running iteration,
    with the final checkpoint a finished run writes; a second one quits at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _Interrupt:
        import signal
        import threading
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nrllib: interrupted: stopping after the running iteration and saving a final "
              "checkpoint (Ctrl-C again to quit at once, without it)", file=sys.stderr,
              flush=True)


def _progress(verbose: bool, stop: dict) -> Any:
    """A tune.Callback printing one line per training iteration, with a bar on a terminal.

    The bar counts toward the stop criterion when it is a count (env steps or iterations), and
    shows the latest mean reward against a reward target.
    """
    from raylite import tune
    from raylite._progress import progress_bar

    counted = next((key for key in ("timesteps_total", "training_iteration") if key in stop), None)
    unit = {"timesteps_total": "env steps", "training_iteration": "iterations"}.get(counted, "iter")
    target = stop.get("episode_reward_mean")

    class Progress(tune.Callback):
        bar = progress_bar("training", total=stop.get(counted) if counted else None, unit=unit)

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                            **info: Any) -> None:
            print(_progress_line(trial, result), flush=True)
            if verbose:
                stats = result.get("info", {}).get("learner", {}).get("default_policy", {}).get(
                    "learner_stats", {})
                print("    " + "  ".join(f"{k} {v:.4g}" for k, v in stats.items()), flush=True)
            reward = result.get("episode_reward_mean", math.nan)
            self.bar.update(completed=result.get(counted or "training_iteration", 0),
                            description=f"{trial} reward {reward:.1f}"
                            + (f" (stop at {target:g})" if target is not None else ""))

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            print(f"{trial}: failed: {trial.error_msg} (see {trial.error_file})", flush=True)

    return Progress()


def _progress_line(trial: Any, result: dict) -> str:
    reward = result.get("episode_reward_mean", math.nan)
    low, high = result.get("episode_reward_min", math.nan), result.get("episode_reward_max", math.nan)
    return (f"{trial} iter {result.get('training_iteration', 0):>4}  "
            f"steps {result.get('timesteps_total', 0):>9,}  reward {reward:9.2f} "
            f"(min {low:9.2f} max {high:9.2f})  len {result.get('episode_len_mean', math.nan):6.1f}  "
            f"{result.get('env_steps_per_s', 0):7,.0f} steps/s  {result.get('time_total_s', 0):7.1f} s")


def _summarize(trials: list, run: str, env_name: str, stop: dict,
               interrupted: bool = False) -> str | None:
    last_checkpoint = None
    for trial in trials:
        result = trial.last_result or {}
        reached = _stop_reached(stop, result)
        why = f"reached {', '.join(reached)}" if reached else (
            "interrupted" if interrupted else "stopped")
        print(f"{trial} {trial.status} after {result.get('training_iteration', 0)} iterations, "
              f"{result.get('timesteps_total', 0):,} env steps, {result.get('time_total_s', 0):.1f} s: "
              f"episode_reward_mean {result.get('episode_reward_mean', math.nan):.2f} ({why})",
              flush=True)
        if trial.checkpoint:
            last_checkpoint = _checkpoint_file(trial.checkpoint)
    if last_checkpoint is None:
        print("No checkpoint was written (use --checkpoint-freq N or leave checkpoint_at_end on).")
        return "no checkpoint"
    print(f"Last checkpoint: {last_checkpoint}")
    print("To see the trained agent (Ray 2.x's command, then the book's):")
    for command, flag in (("evaluate", "--algo"), ("rollout", "--run")):
        print(f"  rllib {command} {shlex.quote(last_checkpoint)} {flag} {run} --env "
              f"{shlex.quote(env_name)} --steps 2000", flush=True)
    return last_checkpoint


def _checkpoint_file(path: str) -> str:
    from raylite.rllib import _checkpoint
    try:
        return _checkpoint.find(path)
    except FileNotFoundError:
        return path


# ---- rollout / evaluate -------------------------------------------------------------------------
def _rollout(args: argparse.Namespace) -> int:
    import numpy as np

    from raylite import rllib
    from raylite._progress import progress_bar
    from raylite.rllib import _checkpoint
    from raylite.rllib._filters import make_filter
    from raylite.rllib._rollout_worker import action_adapter, flattener, run_episodes

    state = _checkpoint.read(args.checkpoint)
    if args.algo:
        algo = rllib.algorithm_name(args.algo)
        if algo != state["algorithm"]:
            raise UsageError(f"the checkpoint was written by {state['algorithm']}, not {algo}")
    config = state["config"]
    if len(state.get("policies") or {}) > 1:
        raise UsageError(f"the checkpoint holds {len(state['policies'])} policies (multi-agent): "
                         f"rollout of multi-agent checkpoints is not implemented; use "
                         f"Algorithm.from_checkpoint(path).evaluate()")
    if state["env_name"] == "external" and not args.env:
        raise UsageError("the checkpoint was trained on an external env: pass --env ENV to "
                         "roll it out in a Gymnasium env with the same spaces")
    env_spec = rllib.resolve_env(args.env or state["env_name"], config.get("env_config"))
    spec = _checkpoint.model_spec(state)
    render = not args.no_render and _can_render()
    env = env_spec.make(render_mode="human" if render else None)
    flatten = flattener(env)
    _check_env_fits(env, spec, state, env_spec.name)
    policy = spec.acting_policy(action_adapter(env.action_space, config["normalize_actions"]),
                                {k: v for k, v in state["weights"].items()})
    obs_filter = make_filter(config["observation_filter"], (spec.obs_size,))
    obs_filter.set_state(state["filter"])
    rng = np.random.default_rng()

    def act(flat_obs: Any) -> Any:
        obs = obs_filter(flat_obs[None], update=False)
        return policy.compute_actions(obs, args.explore, rng)["env_actions"][0]

    steps = args.steps if args.steps is not None else (None if args.episodes else 10000)
    episodes_out: list[list] = [[]]

    def record(obs: Any, action: Any, next_obs: Any, reward: float, done: bool) -> None:
        episodes_out[-1].append([obs, action, next_obs, reward, done])
        if done:
            episodes_out.append([])

    print(f"Rolling out {state['algorithm']} ({os.path.basename(_checkpoint.find(args.checkpoint))}"
          f") on {env_spec.name}{'' if render else ', without rendering'}", flush=True)
    bar = progress_bar("rollout", total=args.episodes or steps,
                       unit="episodes" if args.episodes else "steps")

    def on_step(*transition: Any) -> None:
        if args.out:
            record(*transition)
        if not args.episodes:
            bar.advance()

    def on_episode(index: int, total: float, length: int, finished: bool) -> None:
        _print_episode(index, total, length, finished)
        if args.episodes:
            bar.advance()

    with bar:
        episodes = run_episodes(env, act, flatten, max_episodes=args.episodes or None,
                                max_steps=steps, render=render,
                                on_step=on_step if (args.out or bar.shown) else None,
                                on_episode=on_episode)
    env.close()
    finished = [ret for ret, _, done in episodes if done]
    if finished:
        print(f"Mean reward over {len(finished)} episode(s): {np.mean(finished):.2f} "
              f"(min {np.min(finished):.2f}, max {np.max(finished):.2f})", flush=True)
    if args.out:
        with open(args.out, "wb") as f:
            pickle.dump([e for e in episodes_out if e], f)
        print(f"Saved {len([e for e in episodes_out if e])} episode(s) to {args.out}")
    return 0


def _print_episode(index: int, total: float, length: int, finished: bool) -> None:
    note = "" if finished else ", unfinished at the step limit"
    print(f"Episode #{index}: reward: {total:.2f} ({length} steps{note})", flush=True)


def _can_render() -> bool:
    """A display to draw on (or SDL told where to draw), and pygame to draw with."""
    shown = (sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY")
             or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("SDL_VIDEODRIVER"))
    if not shown:
        return False
    try:
        import pygame  # noqa: F401
    except ImportError:
        print("rllib: pygame is not installed (pip install pygame); rolling out without "
              "rendering", file=sys.stderr)
        return False
    return True


def _check_env_fits(env: Any, spec: Any, state: dict, env_name: str) -> None:
    from raylite.rllib._envs import action_info, preprocessor
    obs_size = preprocessor(env.observation_space)[0]
    discrete, size = action_info(env.action_space)
    if (obs_size, discrete, size) != (spec.obs_size, spec.discrete, spec.action_size):
        raise UsageError(f"{env_name} does not fit this checkpoint, which was trained on "
                         f"{state['env_name']} (observations of size {spec.obs_size}, "
                         f"{'discrete' if spec.discrete else 'continuous'} actions of size "
                         f"{spec.action_size}); pass --env {state['env_name']}")


# ---- example --------------------------------------------------------------------------------------
def _example_path(name: str) -> str:
    from raylite._suggest import did_you_mean
    from raylite.rllib.examples import example_files
    files = example_files()
    key = name[:-4] if name.endswith((".yml", ".yaml")) else name
    key = key[:-1] if name.endswith(".yaml") else key
    if key not in files:
        raise UsageError(f"unknown example {name!r}{did_you_mean(key, files)} (examples: "
                         f"{', '.join(files)})")
    return files[key]


def _example_list(args: argparse.Namespace) -> int:
    from raylite.rllib.examples import description, example_files
    files = example_files()
    width = max(map(len, files))
    for name, path in files.items():
        print(f"{name:<{width}}  {description(path)}")
    return 0


def _example_get(args: argparse.Namespace) -> int:
    with open(_example_path(args.name)) as f:
        sys.stdout.write(f.read())
    return 0


def _example_run(args: argparse.Namespace) -> int:
    args.config_file = _example_path(args.name)
    return _train(args)


# ---- main -------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run ``rllib`` with ``argv`` (default: the command line); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (UsageError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f"rllib {args.command}: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("rllib: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
