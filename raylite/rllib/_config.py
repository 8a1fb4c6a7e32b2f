"""The algorithm's configuration: one dataclass whose fields are documented once.

    YAML / dict  {"lambda": 0.1, "num_sgd_iter": 6, "model": {...}}
        └── AlgorithmConfig.from_dict ──> AlgorithmConfig (checked) ──> the algorithm
    PPOConfig().training(lambda_=0.1, num_epochs=6)          (Ray 2.x builder, same fields)
        └── each builder method sets the fields of its group; 2.x names are aliases

A field's metadata holds its help text, its builder group (``training``, ``env_runners``...),
its 2.x aliases and the check of its value, so the YAML keys, the builder and the error
messages cannot drift apart. The YAML key of ``lambda_`` is ``lambda`` (a Python keyword).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from raylite._suggest import did_you_mean

FRAMEWORKS = ("torch", "tf", "tf2", "tfe")
ACTIVATIONS = ("tanh", "relu", "swish", "silu", "elu", "linear")
BATCH_MODES = ("truncate_episodes", "complete_episodes")
OBSERVATION_FILTERS = ("NoFilter", "MeanStdFilter")


# ---- value checks (each returns None when the value is fine, else what would be right) -------
def _positive_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "a whole number >= 1"


def _positive_int_or_auto(value: Any) -> str | None:
    return None if value == "auto" or _positive_int(value) is None else "'auto' or a whole number >= 1"


def _non_negative_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else "a whole number >= 0"


def _optional_positive_int(value: Any) -> str | None:
    return None if value is None else _positive_int(value)


def _non_negative(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    return None if ok and math.isfinite(value) else "a number >= 0"


def _positive(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf
    return None if ok else "a number > 0"


def _optional_positive(value: Any) -> str | None:
    ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                           and 0 < value < math.inf)
    return None if ok else "a number > 0, or null for none"


def _unit_interval(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
    return None if ok else "a number between 0 and 1"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _mapping(value: Any) -> str | None:
    return None if isinstance(value, dict) else "a mapping (dict)"


def _optional_int(value: Any) -> str | None:
    ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
    return None if ok else "a whole number, or null"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else "one of " + ", ".join(map(repr, choices))
    return check


def _optional_callable(value: Any) -> str | None:
    return None if value is None or callable(value) else "a function, or null"


def _anything(value: Any) -> str | None:
    return None


def _env(value: Any) -> str | None:
    ok = value is None or isinstance(value, str) or callable(value)
    return None if ok else "an environment id, a registered name, 'module.Class' or a class"


def _conv_filters(value: Any) -> str | None:
    from raylite.rllib._conv import normalize_filters
    try:
        if value is not None:
            normalize_filters(value)
    except ValueError:
        return "None or a list of [out_channels, kernel, stride] such as [[16, [4, 4], 2]]"
    return None


def _hidden_sizes(value: Any) -> str | None:
    ok = isinstance(value, (list, tuple)) and all(_positive_int(v) is None for v in value)
    return None if ok else "a list of layer sizes such as [256, 256]"


def _optional_unit_interval(value: Any) -> str | None:
    return None if value is None else _unit_interval(value)


def _optional_boolean(value: Any) -> str | None:
    return None if value is None else _boolean(value)


def _optional_positive_number(value: Any) -> str | None:
    return None if value is None else _positive(value)


def _epsilon(value: Any) -> str | None:
    """DQN's ``epsilon``: a number, or a schedule ``[[timestep, epsilon], ...]``."""
    if value is None or _unit_interval(value) is None:
        return None
    ok = isinstance(value, (list, tuple)) and value and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and _non_negative(p[0]) is None
        and _unit_interval(p[1]) is None for p in value)
    return None if ok else "a number between 0 and 1, or [[timestep, epsilon], ...]"


def _target_entropy(value: Any) -> str | None:
    ok = value == "auto" or (isinstance(value, (int, float)) and not isinstance(value, bool))
    return None if ok else "'auto' or a number"


def option(default: Any, doc: str, *, check: Callable[[Any], str | None] = _anything,
           group: str | None = None, aliases: tuple[str, ...] = (),
           algos: tuple[str, ...] | None = None) -> Any:
    """A config field: its default, its one help text, its value check, its builder group,
    the Ray 2.x names that also set it, and the algorithms that take it (None: all)."""
    metadata = {"doc": doc, "check": check, "group": group, "aliases": aliases, "algos": algos}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _from_dict(cls: type, values: dict, where: str, algo: str | None = None) -> Any:
    """Build dataclass ``cls`` from a dict, rejecting unknown keys with a "did you mean" and
    keys of another algorithm with the name of the algorithm that takes them."""
    if not isinstance(values, dict):
        raise TypeError(f"{where} must be a mapping of keys to values, got {type(values).__name__}")
    keys = cls.key_table(algo)
    instance = cls.for_algorithm(algo) if algo else cls()
    for key, value in values.items():
        name = keys.get(key)
        if name is None:
            raise ValueError(_unknown_key_message(cls, key, where, algo))
        setattr(instance, name, value)
    instance.validate()
    return instance


def _unknown_key_message(cls: type, key: str, where: str, algo: str | None) -> str:
    owner = cls.key_table().get(key)
    if owner is not None and algo is not None:
        algos = cls.field_algos(owner)
        return (f"config key {key!r} is a setting of {' and '.join(algos)}, which {algo} does not "
                f"use{did_you_mean(key, cls.yaml_keys(algo))}")
    hint = did_you_mean(key, cls.yaml_keys(algo)) or (
        f" (known keys: {', '.join(cls.yaml_keys(algo))})")
    return f"unknown {where} key {key!r}{hint}"


class _Fields:
    """What both config dataclasses share: keys, aliases, checks, dict round trip."""

    @classmethod
    def fields_of(cls, algo: str | None = None) -> list[dataclasses.Field]:
        """The fields algorithm ``algo`` takes (all of them for None)."""
        return [f for f in dataclasses.fields(cls) if algo is None
                or f.metadata.get("algos") is None or algo in f.metadata["algos"]]

    @classmethod
    def field_algos(cls, name: str) -> tuple[str, ...]:
        return next(f.metadata.get("algos") or () for f in dataclasses.fields(cls)
                    if f.name == name)

    @classmethod
    def key_table(cls, algo: str | None = None) -> dict[str, str]:
        """Every accepted key (YAML name, Python name, 2.x alias) -> the field's name."""
        table: dict[str, str] = {}
        for f in cls.fields_of(algo):
            table[f.name] = f.name
            table[yaml_key(f.name)] = f.name
            for alias in f.metadata["aliases"]:
                table[alias] = f.name
        return table

    @classmethod
    def yaml_keys(cls, algo: str | None = None) -> list[str]:
        return [yaml_key(f.name) for f in cls.fields_of(algo)]

    @classmethod
    def for_algorithm(cls, algo: str) -> Any:
        return cls()

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of a field, by any of its names."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        return fields[cls.key_table()[name]].metadata["doc"]

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            wanted = f.metadata["check"](value)
            if wanted:
                raise ValueError(f"config key {yaml_key(f.name)!r} must be {wanted}, got {value!r}")


def yaml_key(name: str) -> str:
    return {"lambda_": "lambda", "input_": "input"}.get(name, name)


@dataclass
class ModelConfig(_Fields):
    """The ``model`` sub-config: a fully connected network for the policy and the value."""

    fcnet_hiddens: list = option([256, 256], "sizes of the hidden layers", check=_hidden_sizes)
    fcnet_activation: str = option("tanh", "activation of the hidden layers: "
                                   + ", ".join(ACTIVATIONS), check=_one_of(*ACTIVATIONS))
    vf_share_layers: bool = option(False, "the value head sits on the policy's hidden layers "
                                   "(else the value has its own network)", check=_boolean)
    free_log_std: bool = option(False, "continuous actions: the log std is a free parameter, "
                                "not an output of the network", check=_boolean)
    custom_model: Any = option(None, "a name given to ModelCatalog.register_custom_model (a "
                               "torch TorchModelV2 module or a Keras TFModelV2)", check=lambda v: None if (
                                   v is None or isinstance(v, str)) else "a registered name")
    custom_model_config: dict = option({}, "passed to the custom model as "
                                       "model_config['custom_model_config']", check=_mapping)
    conv_filters: Any = option(None, "convolutions for image observations (a Box of shape "
                               "[H, W, C]): [[out_channels, kernel, stride], ...]; None: "
                               "RLlib's default stack for 84x84, 42x42, 64x64, 96x96, 10x10",
                               check=_conv_filters)
    conv_activation: str = option("relu", "activation of the conv layers: "
                                  + ", ".join(ACTIVATIONS), check=_one_of(*ACTIVATIONS))

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        return _from_dict(cls, values, "model")

    def to_dict(self) -> dict:
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}


PPO = ("PPO",)
DQN = ("DQN",)
SAC = ("SAC",)
OFF_POLICY = ("DQN", "SAC")
REPLAY_BUFFER_TYPES = {
    "ReplayBuffer": False, "MultiAgentReplayBuffer": False, "EpisodeReplayBuffer": False,
    "PrioritizedReplayBuffer": True, "MultiAgentPrioritizedReplayBuffer": True,
    "PrioritizedEpisodeReplayBuffer": True}
REPLAY_BUFFER_KEYS = ("type", "capacity", "alpha", "beta", "prioritized_replay_alpha",
                      "prioritized_replay_beta", "prioritized_replay_eps", "epsilon",
                      "replay_sequence_length", "storage_unit", "worker_side_prioritization",
                      "prioritized_replay")
EXPLORATION_TYPES = ("StochasticSampling", "EpsilonGreedy")


@dataclass
class AlgorithmConfig(_Fields):
    """Every key of an algorithm's config (RLlib 1.9 names; PPO's defaults).

    Example:
        >>> config = AlgorithmConfig.from_dict({"env": "CartPole-v1", "lambda": 0.95})
        >>> config.lambda_, config.train_batch_size
        (0.95, 4000)
    """

    # environment
    env: Any = option(None, "a Gymnasium id (CartPole-v1), a name given to register_env, a "
                      "'module.Class' string, or an env class", check=_env, group="environment")
    env_config: dict = option({}, "passed to the env creator or class", check=_mapping,
                              group="environment")
    horizon: Any = option(None, "end episodes after this many steps (null: the env's own "
                          "limit)", check=_optional_positive_int, group="environment")
    normalize_actions: bool = option(True, "continuous actions: the policy acts in [-1, 1], "
                                     "rescaled to the action bounds", check=_boolean,
                                     group="environment")
    observation_space: Any = option(None, "the env's observation space (null: the env's own; "
                                    "else it must equal the env's)", group="environment")
    action_space: Any = option(None, "the env's action space (null: the env's own; else it "
                               "must equal the env's)", group="environment")
    env_task_fn: Any = option(None, "curriculum: fn(train_results, task_settable_env, "
                              "env_ctx) -> the next task, applied to every env after each "
                              "training step", check=_optional_callable, group="environment")
    render_env: bool = option(False, "render during training (raylite: false only; watch "
                              "with `rllib rollout`)", check=_one_of(False), group="environment")
    create_env_on_local_worker: bool = option(False, "also make envs in the algorithm's "
                                              "process when there are rollout workers (it "
                                              "makes one for evaluation anyway)", check=_boolean,
                                              group="env_runners")
    observation_filter: str = option("NoFilter", "NoFilter or MeanStdFilter (observations "
                                     "standardised by running mean and std, synchronised "
                                     "across workers)", check=_one_of(*OBSERVATION_FILTERS),
                                     group="env_runners")
    # framework and resources
    framework: str = option("torch", "torch, or tf / tf2 / tfe for TensorFlow",
                            check=_one_of(*FRAMEWORKS), group="framework")
    num_workers: int = option(2, "rollout worker actors (0: sample in the trainer)",
                              check=_non_negative_int, group="env_runners",
                              aliases=("num_rollout_workers", "num_env_runners"))
    num_envs_per_worker: int = option(1, "environments stepped together by each worker",
                                      check=_positive_int, group="env_runners",
                                      aliases=("num_envs_per_env_runner",))
    num_cpus_for_driver: int = option(1, "CPU threads the learner computes with (torch / "
                                      "TensorFlow intra-op threads) and the CPUs its trial "
                                      "reserves", check=_positive_int, group="resources",
                                      aliases=("num_cpus_for_main_process",))
    num_cpus_per_worker: float = option(0, "CPUs reserved by each rollout worker actor (0: "
                                        "workers share the trial's CPUs; sampling and "
                                        "learning alternate)", check=_non_negative,
                                        group="resources",
                                        aliases=("num_cpus_per_env_runner",))
    num_gpus: float = option(0, "GPUs for the learner (raylite learns on the CPU; a value "
                             "above 0 is a hint it warns about once)", check=_non_negative,
                             group="resources")
    seed: Any = option(None, "seed of the weights, the sampling and the envs", check=_optional_int,
                       group="debugging")
    log_level: str = option("WARN", "accepted for compatibility (DEBUG, INFO, WARN, ERROR)",
                            check=_one_of("DEBUG", "INFO", "WARN", "WARNING", "ERROR"),
                            group="debugging")
    # sampling
    rollout_fragment_length: Any = option(200, "steps per env in one sample() call of a "
                                          "worker; the train batch is gathered in such rounds "
                                          "('auto', RLlib 2.x's: n_step for DQN and SAC, else "
                                          "train_batch_size split over the workers' envs)",
                                          check=_positive_int_or_auto, group="env_runners")
    batch_mode: str = option("truncate_episodes", "truncate_episodes (fragments end anywhere; "
                             "the value function bootstraps) or complete_episodes",
                             check=_one_of(*BATCH_MODES), group="env_runners")
    explore: bool = option(True, "compute_single_action samples (true) or acts greedily "
                           "(false) by default", check=_boolean, group="exploration")
    # PPO
    train_batch_size: int = option(4000, "env steps sampled per training iteration",
                                   check=_positive_int, group="training",
                                   aliases=("train_batch_size_per_learner",))
    sgd_minibatch_size: int = option(128, "samples per gradient step", check=_positive_int,
                                     group="training", aliases=("minibatch_size",), algos=PPO)
    num_sgd_iter: int = option(30, "passes (epochs) over the train batch per iteration",
                               check=_positive_int, group="training", aliases=("num_epochs",), algos=PPO)
    lr: float = option(5e-5, "Adam's learning rate", check=_positive, group="training")
    gamma: float = option(0.99, "discount factor", check=_unit_interval, group="training")
    lambda_: float = option(1.0, "GAE's lambda (bias/variance of the advantages)",
                            check=_unit_interval, group="training", algos=PPO)
    use_gae: bool = option(True, "advantages by GAE (else discounted returns minus the value)",
                           check=_boolean, group="training", algos=PPO)
    use_critic: bool = option(True, "learn a value function (needed by GAE)", check=_boolean,
                              group="training", algos=PPO)
    clip_param: float = option(0.3, "PPO's clip range of the probability ratio",
                               check=_positive, group="training", algos=PPO)
    vf_clip_param: float = option(10.0, "clip range of the value update (in reward units)",
                                  check=_positive, group="training", algos=PPO)
    vf_loss_coeff: float = option(1.0, "weight of the value loss", check=_non_negative,
                                  group="training", algos=PPO)
    entropy_coeff: float = option(0.0, "weight of the entropy bonus", check=_non_negative,
                                  group="training", algos=PPO)
    kl_coeff: float = option(0.2, "initial weight of the KL penalty (adapted towards kl_target)",
                             check=_non_negative, group="training", algos=PPO)
    kl_target: float = option(0.01, "the KL divergence per iteration the penalty aims at",
                              check=_positive, group="training", algos=PPO)
    grad_clip: Any = option(None, "clip the global gradient norm to this (null: no clipping)",
                            check=_optional_positive, group="training")
    # DQN and SAC: off-policy learning from a replay buffer
    replay_buffer_config: dict = option({}, "the replay buffer: type (ReplayBuffer, "
                                        "PrioritizedReplayBuffer, ...), capacity, alpha, beta, "
                                        "prioritized_replay_eps; merged over the algorithm's",
                                        check=_mapping, group="training", algos=OFF_POLICY)
    buffer_size: Any = option(None, "Ray 1.9: the replay buffer's capacity",
                              check=_optional_positive_int, group="training", algos=OFF_POLICY)
    prioritized_replay: Any = option(None, "Ray 1.9: prioritized (true) or uniform replay",
                                     check=_optional_boolean, group="training", algos=OFF_POLICY)
    prioritized_replay_alpha: Any = option(None, "Ray 1.9: how much priorities count (0: "
                                           "uniform)", check=_optional_unit_interval,
                                           group="training", algos=OFF_POLICY)
    prioritized_replay_beta: Any = option(None, "Ray 1.9: importance-sampling exponent",
                                          check=_optional_unit_interval, group="training",
                                          algos=OFF_POLICY)
    prioritized_replay_eps: Any = option(None, "Ray 1.9: added to |TD error| for priorities",
                                         check=_optional_positive_number, group="training",
                                         algos=OFF_POLICY)
    num_steps_sampled_before_learning_starts: int = option(
        1000, "env steps sampled before the first gradient step", check=_non_negative_int,
        group="training", aliases=("learning_starts",), algos=OFF_POLICY)
    target_network_update_freq: int = option(500, "env steps between target network updates "
                                             "(0: after every gradient step)",
                                             check=_non_negative_int, group="training",
                                             algos=OFF_POLICY)
    tau: float = option(1.0, "target update: target <- tau * online + (1 - tau) * target",
                        check=_unit_interval, group="training", algos=OFF_POLICY)
    n_step: int = option(1, "n-step returns: rewards summed over up to n steps",
                         check=_positive_int, group="training", algos=OFF_POLICY)
    training_intensity: Any = option(None, "replayed steps per sampled step (null: one train "
                                     "batch per sampling round)", check=_optional_positive,
                                     group="training", algos=OFF_POLICY)
    store_buffer_in_checkpoints: bool = option(False, "checkpoints hold the replay buffer too",
                                               check=_boolean, group="training",
                                               algos=OFF_POLICY)
    min_sample_timesteps_per_iteration: int = option(
        0, "an iteration samples at least this many env steps", check=_non_negative_int,
        group="reporting", aliases=("timesteps_per_iteration",))
    # DQN
    double_q: bool = option(True, "double Q-learning: the online network picks the next "
                            "action, the target network values it", check=_boolean,
                            group="training", algos=DQN)
    dueling: bool = option(True, "dueling heads: Q = V + A - mean(A)", check=_boolean,
                           group="training", algos=DQN)
    hiddens: list = option([256], "layers of the Q head after the model's fcnet (relu)",
                           check=lambda v: None if v == [] else _hidden_sizes(v),
                           group="training", algos=DQN)
    td_error_loss_fn: str = option("huber", "loss of the TD error: huber or mse",
                                   check=_one_of("huber", "mse"), group="training", algos=DQN)
    epsilon: Any = option(None, "exploration rate: a number or [[timestep, epsilon], ...] "
                          "(null: from exploration_config)", check=_epsilon, group="training",
                          algos=DQN)
    num_atoms: int = option(1, "distributional DQN's atoms (raylite: 1 only)",
                            check=_one_of(1), group="training", algos=DQN)
    noisy: bool = option(False, "noisy networks (raylite: false only)", check=_one_of(False),
                         group="training", algos=DQN)
    exploration_config: dict = option({}, "exploration: {type: EpsilonGreedy, "
                                      "initial_epsilon, final_epsilon, epsilon_timesteps} for "
                                      "DQN; StochasticSampling elsewhere", check=_mapping,
                                      group="exploration")
    # SAC
    twin_q: bool = option(True, "two Q networks; the smaller value is used", check=_boolean,
                          group="training", algos=SAC)
    q_model_config: dict = option({}, "the Q networks: fcnet_hiddens, fcnet_activation (or "
                                  "custom_model, custom_model_config)",
                                  check=_mapping, group="training", algos=SAC)
    policy_model_config: dict = option({}, "the policy network: fcnet_hiddens, "
                                       "fcnet_activation (or custom_model, "
                                       "custom_model_config)", check=_mapping, group="training",
                                       algos=SAC)
    initial_alpha: float = option(1.0, "initial entropy weight", check=_positive,
                                  group="training", algos=SAC)
    target_entropy: Any = option("auto", "entropy the policy aims at ('auto': -action dims)",
                                 check=_target_entropy, group="training", algos=SAC)
    optimization_config: dict = option({}, "actor_learning_rate, critic_learning_rate, "
                                       "entropy_learning_rate", check=_mapping,
                                       group="training", aliases=("optimization",), algos=SAC)
    actor_lr: Any = option(None, "the policy's learning rate", check=_optional_positive,
                           group="training", algos=SAC)
    critic_lr: Any = option(None, "the Q networks' learning rate", check=_optional_positive,
                            group="training", algos=SAC)
    alpha_lr: Any = option(None, "the entropy weight's learning rate",
                           check=_optional_positive, group="training", algos=SAC)
    # MARWIL and BC: learning from offline data
    beta: float = option(1.0, "MARWIL's advantage weighting: exp(beta * advantage / c) "
                         "(0: behavior cloning)", check=_non_negative, group="training",
                         algos=("MARWIL", "BC"))
    vf_coeff: float = option(1.0, "weight of the value loss", check=_non_negative,
                             group="training", algos=("MARWIL", "BC"))
    moving_average_sqd_adv_norm_start: float = option(
        100.0, "start of the running mean of squared advantages (c^2)", check=_positive,
        group="training", algos=("MARWIL", "BC"))
    moving_average_sqd_adv_norm_update_rate: float = option(
        1e-8, "how fast c^2 follows the batches' squared advantages", check=_unit_interval,
        group="training", algos=("MARWIL", "BC"))
    model: ModelConfig = field(default_factory=ModelConfig, metadata={
        "doc": "the network: fcnet_hiddens, fcnet_activation, vf_share_layers, free_log_std",
        "check": _anything, "group": "training", "aliases": ("model_config",), "algos": None})
    # evaluation and metrics
    evaluation_interval: Any = option(None, "evaluate every this many iterations (null: never)",
                                      check=_optional_positive_int, group="evaluation")
    evaluation_num_episodes: int = option(10, "episodes per evaluation", check=_positive_int,
                                          group="evaluation", aliases=("evaluation_duration",))
    evaluation_config: dict = option({}, "overrides for evaluation; {'explore': true} samples "
                                     "actions (evaluation is greedy by default)", check=_mapping,
                                     group="evaluation")
    evaluation_duration_unit: str = option("episodes", "what evaluation_duration counts "
                                           "(raylite: episodes)", check=_one_of("episodes"),
                                           group="evaluation")
    evaluation_num_workers: int = option(0, "evaluation runs in the algorithm's process; "
                                         "accepted as a hint", check=_non_negative_int,
                                         group="evaluation",
                                         aliases=("evaluation_num_env_runners",))
    callbacks: Any = option(None, "a DefaultCallbacks subclass (on_episode_start/step/end, "
                            "on_train_result)", check=_optional_callable, group="callbacks",
                            aliases=("callbacks_class",))
    policies: Any = option(None, "multi-agent: {policy_id: PolicySpec or (cls, obs_space, "
                           "act_space, config overrides)} or a set of ids", group="multi_agent")
    policy_mapping_fn: Any = option(None, "multi-agent: fn(agent_id, episode, worker, "
                                    "**kwargs) -> policy_id", check=_optional_callable,
                                    group="multi_agent")
    policies_to_train: Any = option(None, "multi-agent: the ids of the policies that learn "
                                    "(null: all)", group="multi_agent")
    input_: Any = option("sampler", "'sampler' (act in the env) or a directory / files of "
                         "JSON sample batches to learn from", group="offline_data",
                         aliases=("input",))
    output: Any = option(None, "a directory to write the sampled batches to as JSON",
                         group="offline_data")
    metrics_smoothing_episodes: int = option(100, "episode_reward_mean averages at least this "
                                             "many recent episodes", check=_positive_int,
                                             group="reporting",
                                             aliases=("metrics_num_episodes_for_smoothing",))

    algo_name = "PPO"  # which algorithm's keys and defaults (not a field)

    @classmethod
    def for_algorithm(cls, algo: str) -> AlgorithmConfig:
        """The defaults of algorithm ``algo`` (``"PPO"``, ``"DQN"``, ``"SAC"``...)."""
        config = cls()
        for name, value in ALGORITHM_DEFAULTS.get(algo, {}).items():
            if name == "model":
                value = ModelConfig.from_dict({**config.model.to_dict(), **value})
            setattr(config, name, copy.deepcopy(value))
        config.algo_name = algo
        return config

    @classmethod
    def from_dict(cls, values: dict, algo: str = "PPO") -> AlgorithmConfig:
        """A checked config of algorithm ``algo`` from a YAML-style dict over its defaults;
        unknown keys (and keys of other algorithms) are errors."""
        if not isinstance(values, dict):
            raise TypeError(f"config must be a mapping of keys to values, got "
                            f"{type(values).__name__}")
        values = dict(values)
        for key in ("model", "model_config"):
            if key in values and not isinstance(values[key], ModelConfig):
                base = cls.for_algorithm(algo).model.to_dict()
                values[key] = ModelConfig.from_dict({**base, **(values[key] or {})})
        return _from_dict(cls, values, "config", algo)

    def to_dict(self) -> dict:
        """The YAML-style dict (``lambda``, a plain ``model`` dict) of this algorithm's keys;
        from_dict's inverse."""
        out = {}
        for f in self.fields_of(self.algo_name):
            value = getattr(self, f.name)
            out[yaml_key(f.name)] = value.to_dict() if f.name == "model" else (
                value if f.name == "env" else copy.deepcopy(value))
        return out

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.model, ModelConfig):
            raise TypeError(f"config key 'model' must be a mapping, got {self.model!r}")
        self.model.validate()
        if self.algo_name == "PPO":
            if self.sgd_minibatch_size > self.train_batch_size:
                raise ValueError(f"sgd_minibatch_size ({self.sgd_minibatch_size}) must not "
                                 f"exceed train_batch_size ({self.train_batch_size})")
            if self.use_gae and not self.use_critic:
                raise ValueError("use_gae: true needs use_critic: true (GAE uses the value "
                                 "function)")
        if self.rollout_fragment_length == "auto":   # as RLlib 2.x resolves it
            self.rollout_fragment_length = self.n_step if self.algo_name in OFF_POLICY else \
                -(-self.train_batch_size // (max(self.num_workers, 1) * self.num_envs_per_worker))
        _check_keys("replay_buffer_config", self.replay_buffer_config, REPLAY_BUFFER_KEYS)
        buffer_type = self.replay_buffer_config.get("type")
        if buffer_type is not None and buffer_type not in REPLAY_BUFFER_TYPES:
            raise ValueError(f"replay_buffer_config type {buffer_type!r} is not one raylite has"
                             f"{did_you_mean(buffer_type, REPLAY_BUFFER_TYPES)} (types: "
                             f"{', '.join(REPLAY_BUFFER_TYPES)})")
        if self.replay_buffer_config.get("replay_sequence_length", 1) != 1:
            raise ValueError("replay_buffer_config replay_sequence_length: raylite replays "
                             "single steps (1) only")
        if self.replay_buffer_config.get("worker_side_prioritization"):
            raise ValueError("replay_buffer_config worker_side_prioritization: not implemented "
                             "in raylite (priorities are computed by the learner); remove it")
        self._validate_exploration()

    def _validate_exploration(self) -> None:
        exploration = self.exploration_config
        kind = exploration.get("type", "EpsilonGreedy" if self.algo_name == "DQN"
                               else "StochasticSampling")
        if kind not in EXPLORATION_TYPES:
            raise ValueError(f"exploration_config type {kind!r} is not one raylite has"
                             f"{did_you_mean(kind, EXPLORATION_TYPES)} (types: "
                             f"{', '.join(EXPLORATION_TYPES)})")
        wanted = "EpsilonGreedy" if self.algo_name == "DQN" else "StochasticSampling"
        if self.algo_name in ("DQN", "PPO", "SAC") and kind != wanted:
            raise ValueError(f"exploration_config type {kind!r} does not fit {self.algo_name}, "
                             f"which explores by {wanted}")
        keys = ("type", "initial_epsilon", "final_epsilon", "epsilon_timesteps",
                "warmup_timesteps") if kind == "EpsilonGreedy" else ("type", "random_timesteps")
        _check_keys("exploration_config", exploration, keys)

    def copy(self) -> AlgorithmConfig:
        return copy.deepcopy(self)

    @property
    def tf(self) -> bool:
        return self.framework != "torch"


def _check_keys(where: str, values: dict, known: tuple[str, ...]) -> None:
    for key in values:
        if key not in known:
            raise ValueError(f"unknown {where} key {key!r}{did_you_mean(key, known)} (keys: "
                             f"{', '.join(known)})")


# What differs from the defaults above (which are PPO's), per algorithm, as in RLlib.
ALGORITHM_DEFAULTS: dict[str, dict[str, Any]] = {
    "PPO": {},
    "DQN": {"num_workers": 0, "rollout_fragment_length": 4, "train_batch_size": 32, "lr": 5e-4,
            "grad_clip": 40.0, "min_sample_timesteps_per_iteration": 1000,
            "replay_buffer_config": {"type": "PrioritizedReplayBuffer", "capacity": 50000,
                                     "alpha": 0.6, "beta": 0.4, "prioritized_replay_eps": 1e-6},
            "exploration_config": {"type": "EpsilonGreedy", "initial_epsilon": 1.0,
                                   "final_epsilon": 0.02, "epsilon_timesteps": 10000}},
    "MARWIL": {"num_workers": 0, "train_batch_size": 2000, "lr": 1e-4},
    "BC": {"num_workers": 0, "train_batch_size": 2000, "lr": 1e-4, "beta": 0.0, "vf_coeff": 0.0},
    "SAC": {"num_workers": 0, "rollout_fragment_length": 1, "train_batch_size": 256,
            "lr": 3e-4, "num_steps_sampled_before_learning_starts": 1500,
            "target_network_update_freq": 0, "tau": 5e-3,
            "min_sample_timesteps_per_iteration": 100,
            "replay_buffer_config": {"type": "ReplayBuffer", "capacity": 1000000},
            "q_model_config": {"fcnet_hiddens": [256, 256], "fcnet_activation": "relu"},
            "policy_model_config": {"fcnet_hiddens": [256, 256], "fcnet_activation": "relu"},
            "optimization_config": {"actor_learning_rate": 3e-4, "critic_learning_rate": 3e-4,
                                    "entropy_learning_rate": 3e-4}},
}


def group_fields(group: str, algo: str | None = None) -> dict[str, str]:
    """The keyword names a builder method accepts (Python names and aliases) -> field name."""
    table = {}
    for f in AlgorithmConfig.fields_of(algo):
        if f.metadata.get("group") == group:
            table[f.name] = f.name
            for alias in f.metadata["aliases"]:
                table[alias] = f.name
    return table


def fields_help(cls: type = AlgorithmConfig, algo: str | None = None) -> str:
    """One line per key with its help and default, for ``--help`` texts and docs."""
    defaults = cls.for_algorithm(algo) if algo else cls()
    lines = []
    for f in cls.fields_of(algo):
        if f.name == "model":
            lines.append(f"  model: {f.metadata['doc']}")
            lines.extend("  " + line for line in fields_help(ModelConfig, algo).splitlines())
            continue
        default = getattr(defaults, f.name)
        only = f.metadata.get("algos")
        scope = f" [{', '.join(only)}]" if only and algo is None else ""
        lines.append(f"  {yaml_key(f.name)}{scope}: {f.metadata['doc']} (default: {default!r})")
    return "\n".join(lines)
