"""Replay: the transitions off-policy algorithms learn from (DQN, SAC).

    worker fragment [T, num_envs]  ──n_step_transitions──>  one row per step:
        obs, actions, rewards (summed over up to n steps), new_obs (n steps on),
        terminateds (the episode ended inside those steps), discounts (gamma ** steps)
    ReplayBuffer.add(rows) ──> a ring of ``capacity`` rows; sample(n) draws uniformly
    PrioritizedReplayBuffer (Schaul et al. 2016, "Prioritized Experience Replay"):
        P(i) = p_i ** alpha / sum_k p_k ** alpha, drawn through a SumTree; each row comes with
        its importance weight (N * P(i)) ** -beta / max_j (N * P(j)) ** -beta, and
        update_priorities(indices, |td_error|) sets p_i = |td_error_i| + eps

Model: Stable-Baselines3's ``common/buffers.py`` and CleanRL's ``dqn.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

OBS, ACTIONS, REWARDS, NEW_OBS = "obs", "actions", "rewards", "new_obs"
TERMINATEDS, DISCOUNTS, WEIGHTS, BATCH_INDEXES = "terminateds", "discounts", "weights", "batch_indexes"


def n_step_transitions(steps: dict[str, np.ndarray], n_step: int, gamma: float
                       ) -> dict[str, np.ndarray]:
    """One transition per step of a time-major ``[T, num_envs]`` fragment, with n-step returns.

    ``steps`` holds obs, actions, rewards, new_obs (the observation after the step, the last of
    the episode when it ended), terminateds and dones (terminated or truncated). Step t's
    return sums ``gamma**k * rewards[t + k]`` for k below n_step, stopping after an episode's
    last step or at the fragment's end; ``new_obs`` and ``terminateds`` (as 0/1 floats) are those
    of that last step and ``discounts`` is ``gamma ** (steps summed)``, so the target is
    ``rewards + discounts * (1 - terminateds) * max_a Q(new_obs, a)``.
    Rows come env by env, in time order.

    Example:
        >>> steps = {"obs": np.arange(3.0).reshape(3, 1, 1), "actions": np.zeros((3, 1)),
        ...          "rewards": np.ones((3, 1)), "new_obs": np.arange(1.0, 4.0).reshape(3, 1, 1),
        ...          "terminateds": np.array([[False], [False], [True]]),
        ...          "dones": np.array([[False], [False], [True]])}
        >>> out = n_step_transitions(steps, 2, 0.5)
        >>> out["rewards"].tolist(), out["new_obs"][:, 0].tolist(), out["discounts"].tolist()
        ([1.5, 1.5, 1.0], [2.0, 3.0, 3.0], [0.25, 0.25, 0.5])
    """
    rewards = np.asarray(steps[REWARDS], np.float64)
    dones = np.asarray(steps["dones"], bool)
    length, num_envs = rewards.shape
    returns = np.zeros_like(rewards)
    last = np.tile(np.arange(length)[:, None], (1, num_envs))   # index of the last step summed
    summed = np.zeros((length, num_envs), np.int64)
    for t in range(length):
        open_ = np.ones(num_envs, bool)                             # still summing, per env
        for k in range(n_step):
            if t + k >= length:
                break
            returns[t] += np.where(open_, gamma ** k * rewards[t + k], 0.0)
            last[t] = np.where(open_, t + k, last[t])
            summed[t] += open_
            open_ &= ~dones[t + k]
    columns = {
        OBS: np.asarray(steps[OBS]), ACTIONS: np.asarray(steps[ACTIONS]),
        REWARDS: returns.astype(np.float32),
        NEW_OBS: np.take_along_axis(np.asarray(steps[NEW_OBS]), _expand(last, steps[NEW_OBS]), 0),
        TERMINATEDS: np.take_along_axis(np.asarray(steps[TERMINATEDS], np.float32), last, 0),
        DISCOUNTS: (gamma ** summed).astype(np.float32)}
    return {name: _env_major(array) for name, array in columns.items()}


class NStepCollector:
    """n-step transitions from a worker's consecutive fragments, with no return cut short by a
    fragment's end: a step whose n steps are not all in yet (one of the fragment's last n - 1,
    its episode still running) is held back and finished with the next fragment. RLlib's
    episode replay buffers sum n steps within the episode in the same way, whatever the
    rollout_fragment_length. With ``n_step`` 1 every step is a row at once.

    Example:
        >>> collector = NStepCollector(n_step=2, gamma=0.5)
        >>> def fragment(start, dones):
        ...     t = np.arange(start, start + len(dones), dtype=np.float32)
        ...     return {"obs": t.reshape(-1, 1, 1), "actions": np.zeros((len(t), 1)),
        ...             "rewards": np.ones((len(t), 1)), "new_obs": (t + 1).reshape(-1, 1, 1),
        ...             "terminateds": np.array(dones)[:, None], "dones": np.array(dones)[:, None]}
        >>> collector.add(fragment(0, [False, False]))["rewards"].tolist()   # step 1 waits
        [1.5]
        >>> out = collector.add(fragment(2, [True, False]))
        >>> out["obs"][:, 0].tolist(), out["rewards"].tolist()   # steps 1 and 2 (the end)
        ([1.0, 2.0], [1.5, 1.0])
    """

    def __init__(self, n_step: int, gamma: float):
        self.n_step, self.gamma = int(n_step), float(gamma)
        self.pending: dict[str, np.ndarray] | None = None    # held-back steps, time-major
        self.pending_emitted: np.ndarray | None = None        # [held, num_envs]: already rows

    def add(self, fragment: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The rows of every step now complete (``fragment`` as :func:`n_step_transitions`
        takes it), env by env in time order."""
        steps = {name: np.asarray(value) for name, value in fragment.items()}
        emitted = np.zeros(np.shape(steps[REWARDS]), bool)
        if self.pending is not None:
            steps = {name: np.concatenate([self.pending[name], value])
                     for name, value in steps.items()}
            emitted = np.concatenate([self.pending_emitted, emitted])
        length = len(emitted)
        dones = steps["dones"].astype(bool)
        ends_later = np.flip(np.logical_or.accumulate(np.flip(dones, 0), 0), 0)
        complete = (np.arange(length)[:, None] + self.n_step <= length) | ends_later
        rows = n_step_transitions(steps, self.n_step, self.gamma)
        take = _env_major(complete & ~emitted)
        held = min(self.n_step - 1, length)
        if held:
            self.pending = {name: value[length - held:] for name, value in steps.items()}
            self.pending_emitted = (emitted | complete)[length - held:]
        return {name: column[take] for name, column in rows.items()}


def _expand(index: np.ndarray, like: np.ndarray) -> np.ndarray:
    return index.reshape(index.shape + (1,) * (np.ndim(like) - 2))


def _env_major(array: np.ndarray) -> np.ndarray:
    swapped = np.swapaxes(array, 0, 1)
    return np.ascontiguousarray(swapped.reshape((-1,) + array.shape[2:]))


class ReplayBuffer:
    """A ring of the latest ``capacity`` transitions, sampled uniformly.

    Example:
        >>> buffer = ReplayBuffer(capacity=3, seed=0)
        >>> _ = buffer.add({"obs": np.arange(5.0)})
        >>> len(buffer), sorted(buffer.sample(6)["obs"].tolist())[0] >= 2.0
        (3, True)
    """

    prioritized = False

    def __init__(self, capacity: int, seed: int | None = None):
        if capacity < 1:
            raise ValueError(f"replay buffer capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.rng = np.random.default_rng(seed)
        self.columns: dict[str, np.ndarray] = {}
        self.next_index = 0
        self.size = 0
        self.added = 0

    def __len__(self) -> int:
        return self.size

    def add(self, rows: dict[str, np.ndarray]) -> np.ndarray:
        """Append the rows (oldest overwritten once full); returns the slots they went to."""
        count = len(next(iter(rows.values())))
        if count == 0:
            return np.zeros(0, np.int64)
        if not self.columns:
            self.columns = {name: np.zeros((self.capacity,) + np.shape(v)[1:], np.asarray(v).dtype)
                            for name, v in rows.items()}
        slots = (self.next_index + np.arange(count)) % self.capacity
        for name, column in self.columns.items():
            column[slots] = rows[name]
        self.next_index = int((self.next_index + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)
        self.added += count
        return slots

    def sample(self, num_items: int, beta: float | None = None) -> dict[str, np.ndarray]:
        """``num_items`` rows drawn uniformly with replacement, with their ``batch_indexes``
        and unit ``weights``."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        indices = self.rng.integers(0, self.size, num_items)
        return self._rows(indices, np.ones(num_items, np.float32))

    def _rows(self, indices: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
        batch = {name: column[indices] for name, column in self.columns.items()}
        batch[WEIGHTS] = weights.astype(np.float32)
        batch[BATCH_INDEXES] = indices
        return batch

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Uniform replay has no priorities."""

    def get_state(self) -> dict[str, Any]:
        return {"columns": {k: v[:self.size].copy() for k, v in self.columns.items()},
                "next_index": self.next_index, "size": self.size, "added": self.added}

    def set_state(self, state: dict[str, Any]) -> None:
        size = state["size"]
        self.columns = {}
        if size:
            self.add({k: v for k, v in state["columns"].items()})
        self.next_index, self.size, self.added = state["next_index"], size, state["added"]


class SegmentTree:
    """A complete binary tree over ``capacity`` leaves whose nodes hold ``operation`` (sum or
    min) of their children, so a prefix sum or the minimum costs O(log capacity)."""

    def __init__(self, capacity: int, operation: Any, neutral: float):
        self.size = 1
        while self.size < capacity:
            self.size *= 2
        self.operation = operation
        self.neutral = neutral
        self.nodes = np.full(2 * self.size, neutral, np.float64)   # leaves at [size, 2 size)

    def __setitem__(self, indices: Any, values: Any) -> None:
        nodes = np.unique(np.asarray(indices, np.int64) + self.size)
        self.nodes[np.asarray(indices, np.int64) + self.size] = values
        while nodes[0] > 1:
            nodes = np.unique(nodes // 2)
            self.nodes[nodes] = self.operation(self.nodes[2 * nodes], self.nodes[2 * nodes + 1])

    def __getitem__(self, indices: Any) -> np.ndarray:
        return self.nodes[np.asarray(indices, np.int64) + self.size]

    def total(self) -> float:
        return float(self.nodes[1])


class SumTree(SegmentTree):
    def __init__(self, capacity: int):
        super().__init__(capacity, np.add, 0.0)

    def find_prefix_sum(self, prefix: np.ndarray) -> np.ndarray:
        """For each value, the first leaf i with ``sum(leaves[:i + 1]) > value``."""
        prefix = np.array(prefix, np.float64)
        nodes = np.ones(len(prefix), np.int64)
        while nodes[0] < self.size:
            left = 2 * nodes
            go_right = prefix >= self.nodes[left]
            prefix = np.where(go_right, prefix - self.nodes[left], prefix)
            nodes = np.where(go_right, left + 1, left)
        return nodes - self.size


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay: rows drawn with probability ``p_i ** alpha``.

    Example:
        >>> buffer = PrioritizedReplayBuffer(4, alpha=1.0, beta=1.0, seed=0)
        >>> _ = buffer.add({"obs": np.arange(4.0)})
        >>> buffer.update_priorities(np.arange(4), np.array([0.0, 0.0, 0.0, 1.0]))
        >>> set(buffer.sample(20)["obs"].tolist())
        {3.0}
    """

    prioritized = True

    def __init__(self, capacity: int, alpha: float = 0.6, beta: float = 0.4,
                 eps: float = 1e-6, seed: int | None = None):
        super().__init__(capacity, seed)
        self.alpha, self.beta, self.eps = float(alpha), float(beta), float(eps)
        self.sums = SumTree(self.capacity)
        self.mins = SegmentTree(self.capacity, np.minimum, np.inf)
        self.max_priority = 1.0

    def add(self, rows: dict[str, np.ndarray]) -> np.ndarray:
        """New rows get the highest priority seen, so each is replayed at least once soon."""
        slots = super().add(rows)
        priority = self.max_priority ** self.alpha
        self.sums[slots] = priority
        self.mins[slots] = priority
        return slots

    def sample(self, num_items: int, beta: float | None = None) -> dict[str, np.ndarray]:
        """Rows drawn in proportion to their priorities (one from each of ``num_items`` equal
        slices of the total), with importance weights normalised by the largest possible."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        beta = self.beta if beta is None else beta
        total = self.sums.total()
        bounds = (np.arange(num_items) + self.rng.random(num_items)) * (total / num_items)
        indices = np.minimum(self.sums.find_prefix_sum(bounds), self.size - 1)
        probabilities = self.sums[indices] / total
        min_probability = self.mins.nodes[1] / total
        max_weight = (min_probability * self.size) ** -beta
        weights = (probabilities * self.size) ** -beta / max_weight
        return self._rows(indices, weights)

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """``p_i = |td_error_i| + eps`` for the rows just learned from."""
        priorities = np.abs(np.asarray(td_errors, np.float64)) + self.eps
        self.sums[indices] = priorities ** self.alpha
        self.mins[indices] = priorities ** self.alpha
        self.max_priority = max(self.max_priority, float(priorities.max()))

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "priorities": self.sums[np.arange(self.size)].copy(),
                "max_priority": self.max_priority}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        if self.size:
            self.sums[np.arange(self.size)] = state["priorities"]
            self.mins[np.arange(self.size)] = state["priorities"]
        self.max_priority = state["max_priority"]


def make_replay_buffer(config: Any, defaults: dict[str, Any]) -> ReplayBuffer:
    """The buffer that ``replay_buffer_config`` (over ``defaults``) and the Ray 1.9 keys
    (buffer_size, prioritized_replay...) ask for."""
    from raylite.rllib._config import REPLAY_BUFFER_TYPES
    spec = {**defaults, **config.replay_buffer_config}
    prioritized = REPLAY_BUFFER_TYPES[spec.get("type", "ReplayBuffer")]
    if spec.get("prioritized_replay") is not None:
        prioritized = bool(spec["prioritized_replay"])
    if config.prioritized_replay is not None:
        prioritized = config.prioritized_replay
    capacity = config.buffer_size or spec.get("capacity", 50000)

    def pick(legacy: Any, *keys: str, default: float) -> float:
        if legacy is not None:
            return legacy
        return next((spec[k] for k in keys if spec.get(k) is not None), default)

    if not prioritized:
        return ReplayBuffer(capacity, config.seed)
    return PrioritizedReplayBuffer(
        capacity, alpha=pick(config.prioritized_replay_alpha, "alpha", "prioritized_replay_alpha",
                             default=0.6),
        beta=pick(config.prioritized_replay_beta, "beta", "prioritized_replay_beta", default=0.4),
        eps=pick(config.prioritized_replay_eps, "prioritized_replay_eps", "epsilon",
                 default=1e-6),
        seed=config.seed)
