"""Multi-agent RL: envs with many agents, each agent acting with the policy it maps to.

    MultiAgentEnv.reset() -> ({agent: obs}, {agent: info})
    MultiAgentEnv.step({agent: action}) -> obs, rewards, terminateds, truncateds, infos
        (dicts by agent; terminateds["__all__"] / truncateds["__all__"] end the episode;
         the old gym API's 4-tuple with dones["__all__"] works too)
    config: .multi_agent(policies={"a": PolicySpec(config={"gamma": 0.9}), "b": ...},
                         policy_mapping_fn=lambda agent_id, episode, worker, **kw: ...,
                         policies_to_train=["a"])

    MultiAgentWorker.sample():  rollout_fragment_length env steps; each agent's steps are
        kept apart (an agent's reward is what it got between two of its actions) and end as
        its policy's rows: a GAE fragment (PPO) or n-step transitions (DQN)
        ──> {policy_id: batch}, finished episodes, {policy_id: [agent returns]}
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from raylite.rllib._buffer import RolloutBuffer, concat_batches
from raylite.rllib._envs import preprocessor
from raylite.rllib._replay_buffer import n_step_transitions

ALL = "__all__"


class MultiAgentEnv:
    """Base of multi-agent envs (``ray.rllib.env.multi_agent_env.MultiAgentEnv``).

    Subclasses set ``observation_space`` and ``action_space`` (the same for every agent), or
    ``observation_spaces`` / ``action_spaces`` dicts by agent, and define ``reset`` and
    ``step`` over dicts keyed by agent id.
    """

    observation_space: Any = None
    action_space: Any = None

    def __init__(self) -> None:
        if not hasattr(self, "agents"):
            self.agents: list = []

    def reset(self, *, seed: int | None = None, options: dict | None = None
              ) -> tuple[dict, dict]:
        raise NotImplementedError

    def step(self, action_dict: dict) -> tuple[dict, dict, dict, dict, dict]:
        raise NotImplementedError

    def get_observation_space(self, agent_id: Any) -> Any:
        spaces = getattr(self, "observation_spaces", None)
        return spaces[agent_id] if isinstance(spaces, dict) else self.observation_space

    def get_action_space(self, agent_id: Any) -> Any:
        spaces = getattr(self, "action_spaces", None)
        return spaces[agent_id] if isinstance(spaces, dict) else self.action_space

    def close(self) -> None:
        pass


def make_multi_agent(env_name_or_creator: Any) -> type:
    """A MultiAgentEnv class of ``num_agents`` (env_config) independent copies of an env.

    Example:
        >>> MultiCartPole = make_multi_agent("CartPole-v1")
        >>> env = MultiCartPole({"num_agents": 2})
        >>> sorted(env.reset(seed=0)[0])
        [0, 1]
    """
    class MultiEnv(MultiAgentEnv):
        def __init__(self, config: dict | None = None):
            super().__init__()
            config = dict(config or {})
            num = config.pop("num_agents", 1)
            if callable(env_name_or_creator):
                self.envs = [env_name_or_creator(config) for _ in range(num)]
            else:
                import gymnasium
                self.envs = [gymnasium.make(env_name_or_creator, disable_env_checker=True,
                                            **config) for _ in range(num)]
            self.agents = list(range(num))
            self.observation_space = self.envs[0].observation_space
            self.action_space = self.envs[0].action_space
            self.done: set = set()

        def reset(self, *, seed: int | None = None, options: dict | None = None
                  ) -> tuple[dict, dict]:
            self.done = set()
            outs = [env.reset(seed=None if seed is None else seed + i)
                    for i, env in enumerate(self.envs)]
            return {i: o[0] for i, o in enumerate(outs)}, {i: o[1] for i, o in enumerate(outs)}

        def step(self, action_dict: dict) -> tuple[dict, dict, dict, dict, dict]:
            obs, rewards, terminateds, truncateds, infos = {}, {}, {}, {}, {}
            for i, action in action_dict.items():
                obs[i], rewards[i], terminateds[i], truncateds[i], infos[i] = \
                    self.envs[i].step(action)
                if terminateds[i] or truncateds[i]:
                    self.done.add(i)
            terminateds[ALL] = len(self.done) == len(self.envs)
            truncateds[ALL] = False
            return obs, rewards, terminateds, truncateds, infos

    MultiEnv.__name__ = f"MultiAgent{getattr(env_name_or_creator, '__name__', env_name_or_creator)}"
    return MultiEnv


@dataclass
class PolicySpec:
    """One policy of ``.multi_agent(policies=...)``: its spaces (None: the env's) and its
    config overrides (e.g. ``{"gamma": 0.9}``). ``policy_class`` must be None (the
    algorithm's own)."""

    policy_class: Any = None
    observation_space: Any = None
    action_space: Any = None
    config: dict = field(default_factory=dict)


def policy_specs(policies: Any) -> dict[str, PolicySpec]:
    """``{policy_id: PolicySpec}`` from any form RLlib takes: a set / list of ids, or a dict
    of PolicySpecs, (cls, obs_space, act_space, config) tuples or None."""
    if isinstance(policies, (set, list, tuple, frozenset)):
        return {str(pid): PolicySpec() for pid in policies}
    if not isinstance(policies, dict) or not policies:
        raise TypeError(f"multi_agent policies must be a set of ids or a dict {{id: PolicySpec}}, "
                        f"got {policies!r}")
    specs = {}
    for pid, spec in policies.items():
        if spec is None:
            spec = PolicySpec()
        elif isinstance(spec, (tuple, list)):
            if len(spec) != 4:
                raise TypeError(f"policy {pid!r}: a tuple must be (policy_class, "
                                f"observation_space, action_space, config), got {spec!r}")
            spec = PolicySpec(*spec)
        elif not isinstance(spec, PolicySpec):
            raise TypeError(f"policy {pid!r}: expected a PolicySpec, a 4-tuple or None, got "
                            f"{type(spec).__name__}")
        if spec.policy_class is not None:
            raise ValueError(f"policy {pid!r}: a custom policy_class is not supported by "
                             f"raylite; leave it None (the algorithm's own policy)")
        specs[str(pid)] = PolicySpec(None, spec.observation_space, spec.action_space,
                                     dict(spec.config or {}))
    return specs


def map_agent(mapping_fn: Callable | None, agent_id: Any, policy_ids: list[str]) -> str:
    """The policy of ``agent_id``: ``mapping_fn(agent_id, episode, worker)``, or the only /
    default policy."""
    if mapping_fn is None:
        if len(policy_ids) == 1:
            return policy_ids[0]
        if "default_policy" in policy_ids:
            return "default_policy"
        raise ValueError(f"several policies ({', '.join(policy_ids)}) but no policy_mapping_fn "
                         f"to say which agent uses which")
    try:
        pid = mapping_fn(agent_id, None, None)
    except TypeError:
        pid = mapping_fn(agent_id)
    if pid not in policy_ids:
        raise ValueError(f"policy_mapping_fn({agent_id!r}) returned {pid!r}, which is not a "
                         f"policy (policies: {', '.join(policy_ids)})")
    return pid


def step_env(env: Any, actions: dict, with_infos: bool = False) -> tuple:
    """Gymnasium's 5-tuple or the old 4-tuple as ``(obs, rewards, terminateds, truncateds)``
    (and the infos, ``with_infos``)."""
    out = env.step(actions)
    if len(out) == 4:
        obs, rewards, dones, infos = out
        out = obs, rewards, dict(dones), {ALL: False}
    else:
        obs, rewards, terminateds, truncateds, infos = out
        out = obs, rewards, dict(terminateds), dict(truncateds)
    return (*out, dict(infos or {})) if with_infos else out


def live_observations(obs: dict, terminateds: dict, truncateds: dict) -> dict:
    """The observations of the agents still in the episode."""
    return {agent: o for agent, o in obs.items()
            if not (terminateds.get(agent) or truncateds.get(agent))}


def reset_env(env: Any, seed: int | None) -> dict:
    try:
        out = env.reset(seed=seed)
    except TypeError:
        out = env.reset()
    return out[0] if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict) \
        else out


class _AgentTrack:
    """One agent's steps in the current fragment: its rows wait for the reward that follows."""

    def __init__(self) -> None:
        self.steps: dict[str, list] = collections.defaultdict(list)
        self.pending: dict | None = None       # the last action, waiting for its reward
        self.episode_return = 0.0


class MultiAgentWorker:
    """Samples a multi-agent env; ``policies`` maps policy id -> (acting policy, filter fn)."""

    def __init__(self, env_spec: Any, config: Any, units: dict[str, Any], worker_index: int = 0):
        from raylite.rllib._rollout_worker import action_adapter
        self.config = config
        self.worker_index = worker_index
        self.env = env_spec.make(worker_index=worker_index)
        self.policy_ids = list(units)
        self.configs = {pid: unit.config for pid, unit in units.items()}
        self.policies = {pid: unit.model_spec.acting_policy(action_adapter(
            unit.action_space, config.normalize_actions)) for pid, unit in units.items()}
        self.flatten = {pid: preprocessor(unit.observation_space)[1]
                        for pid, unit in units.items()}
        self.on_policy = next(iter(units.values())).model_spec.on_policy
        seed = None if config.seed is None else config.seed + 7919 * worker_index
        self.rng = np.random.default_rng(seed)
        self._seed = seed
        self._obs: dict | None = None
        self._tracks: dict[Any, _AgentTrack] = {}
        self._agent_policy: dict[Any, str] = {}
        self._episode_length = 0
        self._episodes: list[tuple[float, int]] = []
        self._policy_returns: dict[str, list[float]] = collections.defaultdict(list)
        from raylite.rllib._callbacks import make_callbacks
        self.callbacks = make_callbacks(config.callbacks)
        self._episode: Any = None           # what the callbacks see of the running episode
        self._writer: Any = None            # JsonWriter, with output=DIR
        self._custom_metrics: list[dict[str, float]] = []

    def set_state(self, state: tuple) -> None:
        weights, _, exploration = state
        for pid, policy in self.policies.items():
            policy.set_weights(weights[pid])
            if exploration and exploration.get(pid) is not None:
                policy.set_exploration(exploration[pid])

    def get_policy(self, policy_id: str = "default_policy") -> Any:
        return self.policies[policy_id]

    def apply(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(self, *args)

    def foreach_env(self, fn: Callable[[Any], Any]) -> list[Any]:
        return [fn(self.env)]

    def foreach_env_with_context(self, fn: Callable[[Any, Any], Any]) -> list[Any]:
        """``fn(env, env_context)`` for the worker's env."""
        from raylite.rllib._envs import EnvContext
        return [fn(self.env, EnvContext(self.config.env_config, self.worker_index, 0,
                                        self.config.num_workers))]

    def set_tasks(self, env_task_fn: Callable, result: dict) -> list[Any]:
        """Curriculum: the env takes ``env_task_fn(result, env, env_context)`` as its task."""
        from raylite.rllib._rollout_worker import set_env_task
        return self.foreach_env_with_context(
            lambda env, context: set_env_task(env_task_fn, result, env, context))

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.env.close()

    # ---- sampling ------------------------------------------------------------------------------
    def sample(self) -> dict[str, Any]:
        """``rollout_fragment_length`` env steps: ``{"batch": {policy_id: batch}, ...}``."""
        if self._obs is None:
            self._start_episode()
        rows: dict[str, list[dict]] = collections.defaultdict(list)
        for _ in range(self.config.rollout_fragment_length):
            actions = self._act(self._obs)
            obs, rewards, terminateds, truncateds, infos = step_env(self.env, actions, True)
            self._episode_length += 1
            for agent, reward in rewards.items():
                track = self._tracks.setdefault(agent, _AgentTrack())
                track.episode_return += float(reward)
                if track.pending is not None:
                    track.pending["rewards"] += float(reward)
            episode_over = bool(terminateds.get(ALL)) or bool(truncateds.get(ALL))
            for agent, track in self._tracks.items():
                done = episode_over or terminateds.get(agent, False) or truncateds.get(agent, False)
                if track.pending is not None and (agent in obs or done):
                    self._close_step(agent, obs.get(agent), done, bool(
                        terminateds.get(agent, terminateds.get(ALL, False))))
            if self.callbacks is not None:
                self._episode_step(obs, rewards, infos, episode_over)
            if episode_over:
                self._finish_episode(rows)
                self._start_episode()
            else:  # agents that are done act no more
                self._obs = live_observations(obs, terminateds, truncateds)
        for agent in list(self._tracks):
            self._cut_fragment(agent, rows)
        batches = {pid: concat_batches(parts) for pid, parts in rows.items() if parts}
        if self.callbacks is not None:
            self.callbacks.on_sample_end(worker=self, samples=batches)
        if self.config.output is not None and batches:
            if self._writer is None:
                from raylite.rllib._offline import JsonWriter
                self._writer = JsonWriter(self.config.output, worker_index=self.worker_index)
            self._writer.write(batches, env_steps=self.config.rollout_fragment_length)
        episodes, self._episodes = self._episodes, []
        custom_metrics, self._custom_metrics = self._custom_metrics, []
        policy_returns, self._policy_returns = dict(self._policy_returns), \
            collections.defaultdict(list)
        return {"batch": batches, "episodes": episodes, "filter_delta": None,
                "policy_returns": policy_returns, "custom_metrics": custom_metrics,
                "env_steps": self.config.rollout_fragment_length}

    def _start_episode(self) -> None:
        self._obs = reset_env(self.env, self._seed)
        self._seed = None
        self._tracks = {}
        self._episode_length = 0
        if self.callbacks is not None:
            from raylite.rllib._callbacks import Episode
            self._episode = Episode(0, multi_agent=True)
            self._episode._last_obs = dict(self._obs)
            self.callbacks.on_episode_start(worker=self, base_env=self.env,
                                            policies=self.policies, episode=self._episode,
                                            env_index=0)

    def _episode_step(self, obs: dict, rewards: dict, infos: dict, episode_over: bool) -> None:
        """on_episode_step after each env step; on_episode_end (and its custom metrics) at
        the episode's end."""
        episode = self._episode
        episode.length += 1
        episode.total_reward += float(sum(rewards.values()))
        for agent, reward in rewards.items():
            episode.agent_rewards[agent] = episode.agent_rewards.get(agent, 0.0) + float(reward)
        episode._last_obs.update(obs)
        episode._last_info.update({agent: info for agent, info in infos.items() if agent != ALL})
        kwargs = {"worker": self, "base_env": self.env, "policies": self.policies,
                  "episode": episode, "env_index": 0}
        self.callbacks.on_episode_step(**kwargs)
        if episode_over:
            self.callbacks.on_episode_end(**kwargs)
            self._custom_metrics.append(dict(episode.custom_metrics))

    def _policy_of(self, agent: Any) -> str:
        if agent not in self._agent_policy:
            self._agent_policy[agent] = map_agent(self.config.policy_mapping_fn, agent,
                                                  self.policy_ids)
        return self._agent_policy[agent]

    def _act(self, observations: dict) -> dict:
        """Each observed agent acts with its policy (agents of one policy in one batch)."""
        by_policy: dict[str, list] = collections.defaultdict(list)
        for agent in observations:
            by_policy[self._policy_of(agent)].append(agent)
        actions = {}
        for pid, agents in by_policy.items():
            flat = np.stack([self.flatten[pid](observations[a]) for a in agents])
            out = self.policies[pid].compute_actions(flat, explore=True, rng=self.rng)
            for i, agent in enumerate(agents):
                track = self._tracks.setdefault(agent, _AgentTrack())
                track.pending = {"obs": flat[i], "rewards": 0.0,
                                 **{k: v[i] for k, v in out.items() if k != "env_actions"}}
                actions[agent] = out["env_actions"][i]
        return actions

    def _close_step(self, agent: Any, next_obs: Any, done: bool, terminated: bool) -> None:
        track = self._tracks[agent]
        step, track.pending = track.pending, None
        pid = self._policy_of(agent)
        step["dones"] = done
        step["terminateds"] = terminated and done
        step["new_obs"] = (self.flatten[pid](next_obs) if next_obs is not None
                           else np.zeros_like(step["obs"]))
        for name, value in step.items():
            track.steps[name].append(value)

    def _finish_episode(self, rows: dict[str, list[dict]]) -> None:
        total = sum(track.episode_return for track in self._tracks.values())
        self._episodes.append((total, self._episode_length))
        for agent, track in self._tracks.items():
            self._policy_returns[self._policy_of(agent)].append(track.episode_return)
            self._cut_fragment(agent, rows)
        self._agent_policy = {}

    def _cut_fragment(self, agent: Any, rows: dict[str, list[dict]]) -> None:
        """The agent's finished steps become rows of its policy's batch."""
        track = self._tracks[agent]
        if not track.steps.get("obs"):
            return
        steps = {name: np.stack([np.asarray(v) for v in values])[:, None]
                 for name, values in track.steps.items()}
        track.steps = collections.defaultdict(list)
        pid = self._policy_of(agent)
        config = self.configs[pid]
        if not self.on_policy:
            rows[pid].append(n_step_transitions(steps, config.n_step, config.gamma))
            return
        rows[pid].append(gae_rows(self.policies[pid], steps, config))


def run_multi_agent_episodes(env: Any, act: Callable[[dict], dict], num_episodes: int
                             ) -> list[tuple[float, int]]:
    """``num_episodes`` episodes with ``act({agent: obs}) -> {agent: action}``: each episode's
    (return summed over agents, length)."""
    episodes = []
    for _ in range(num_episodes):
        obs, total, length = reset_env(env, None), 0.0, 0
        while True:
            obs, rewards, terminateds, truncateds = step_env(env, act(obs))
            total += float(sum(rewards.values()))
            length += 1
            if terminateds.get(ALL) or truncateds.get(ALL):
                break
            obs = live_observations(obs, terminateds, truncateds)
        episodes.append((total, length))
    return episodes


def gae_rows(policy: Any, steps: dict[str, np.ndarray], config: Any) -> dict:
    """One agent's (or external episode's) ``[T, 1]`` steps as PPO rows, GAE done; a cut
    before the episode's end bootstraps with the value of the next observation."""
    rewards = steps["rewards"][:, 0].astype(np.float32)
    truncated = steps["dones"][:, 0] & ~steps["terminateds"][:, 0]
    if truncated.any():  # a time limit is not an end of the task: bootstrap the value
        rewards[truncated] += config.gamma * policy.values(steps["new_obs"][truncated, 0])
    last_done = bool(steps["dones"][-1, 0])
    last_value = np.zeros(1, np.float32) if last_done else policy.values(
        steps["new_obs"][-1])
    buffer = RolloutBuffer(1)
    for t in range(len(rewards)):
        buffer.add(obs=steps["obs"][t], actions=steps["actions"][t],
                   action_logp=steps["action_logp"][t],
                   action_dist_inputs=steps["action_dist_inputs"][t],
                   vf_preds=steps["vf_preds"][t], rewards=rewards[t:t + 1],
                   dones=steps["dones"][t])
    return buffer.finish(last_value, config.gamma, config.lambda_, config.use_gae,
                         config.use_critic)
