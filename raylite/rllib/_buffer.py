"""The rollout buffer and the train batch (model: Stable-Baselines3's ``common/buffers.py``).

    worker, each step:  buffer.add(obs, actions, action_logp, ..., rewards, dones)   [T, num_envs]
    worker, at the end: buffer.finish(last_values, ...) ──> one flat batch (GAE done)
    learner:            concat_batches(batches) ──> standardize advantages ──> minibatches(...)

A batch is a dict of numpy arrays with one row per env step (RLlib's SampleBatch column
names). Rows of one env stay together, in time order, so a batch reads like the episodes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from raylite.rllib._gae import compute_gae, discounted_returns

OBS = "obs"
ACTIONS = "actions"
ACTION_LOGP = "action_logp"
ACTION_DIST_INPUTS = "action_dist_inputs"
VF_PREDS = "vf_preds"
REWARDS = "rewards"
DONES = "dones"
ADVANTAGES = "advantages"
VALUE_TARGETS = "value_targets"

STEP_COLUMNS = (OBS, ACTIONS, ACTION_LOGP, ACTION_DIST_INPUTS, VF_PREDS, REWARDS, DONES)
#: the columns the loss reads
TRAIN_COLUMNS = (OBS, ACTIONS, ACTION_LOGP, ACTION_DIST_INPUTS, VF_PREDS, ADVANTAGES,
                 VALUE_TARGETS)


class RolloutBuffer:
    """One fragment of experience from ``num_envs`` envs stepped together.

    Example:
        >>> buffer = RolloutBuffer(num_envs=1)
        >>> for reward in (1.0, 1.0):
        ...     buffer.add(obs=np.zeros((1, 3)), actions=np.zeros(1, dtype=np.int64),
        ...                action_logp=np.zeros(1), action_dist_inputs=np.zeros((1, 2)),
        ...                vf_preds=np.zeros(1), rewards=np.array([reward]),
        ...                dones=np.array([False]))
        >>> batch = buffer.finish(last_values=np.zeros(1), gamma=0.5, lambda_=1.0)
        >>> batch["value_targets"].tolist()
        [1.5, 1.0]
    """

    def __init__(self, num_envs: int):
        self.num_envs = num_envs
        self._steps: dict[str, list[np.ndarray]] = {name: [] for name in STEP_COLUMNS}
        self._valid: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._valid)

    def add(self, *, obs: np.ndarray, actions: np.ndarray, action_logp: np.ndarray,
            action_dist_inputs: np.ndarray, vf_preds: np.ndarray, rewards: np.ndarray,
            dones: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add one step of every env (arrays with ``num_envs`` rows). ``valid`` marks the envs
        whose step belongs to the batch (``complete_episodes`` stops envs at an episode end)."""
        row = {OBS: obs, ACTIONS: actions, ACTION_LOGP: action_logp,
               ACTION_DIST_INPUTS: action_dist_inputs, VF_PREDS: vf_preds, REWARDS: rewards,
               DONES: dones}
        for name, value in row.items():
            value = np.asarray(value)
            if len(value) != self.num_envs:
                raise ValueError(f"{name} has {len(value)} rows, expected one per env "
                                 f"({self.num_envs})")
            self._steps[name].append(value)
        self._valid.append(np.ones(self.num_envs, bool) if valid is None else np.asarray(valid))

    def finish(self, last_values: np.ndarray, gamma: float, lambda_: float,
               use_gae: bool = True, use_critic: bool = True) -> dict[str, np.ndarray]:
        """Compute advantages and value targets; return the flat batch of the valid steps
        (env-major: env 0's steps in order, then env 1's...), and empty the buffer."""
        columns = {name: np.stack(values) for name, values in self._steps.items()}  # [T, N, ...]
        valid = np.stack(self._valid)
        rewards, dones, values = columns[REWARDS], columns[DONES], columns[VF_PREDS]
        if not use_critic:
            values, last_values = np.zeros_like(values), np.zeros_like(last_values)
        if use_gae:
            advantages, targets = compute_gae(rewards, values, dones, last_values, gamma, lambda_)
        else:
            targets = discounted_returns(rewards, dones, last_values, gamma)
            advantages = targets - values.astype(np.float32)
        columns[ADVANTAGES], columns[VALUE_TARGETS] = advantages, targets
        keep = valid.T.reshape(-1)
        batch = {name: _env_major(array)[keep] for name, array in columns.items()}
        self.__init__(self.num_envs)
        return batch


def _env_major(array: np.ndarray) -> np.ndarray:
    """[T, N, ...] -> [N * T, ...], env by env."""
    swapped = np.swapaxes(array, 0, 1)
    return swapped.reshape((-1,) + array.shape[2:])


def concat_batches(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One batch from several (the same columns in each)."""
    if not batches:
        raise ValueError("no batches to concatenate")
    return {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}


def batch_size(batch: dict[str, np.ndarray]) -> int:
    return len(next(iter(batch.values()))) if batch else 0


def standardize(values: np.ndarray) -> np.ndarray:
    """Zero mean, unit std (as RLlib standardizes the advantages of a train batch)."""
    values = np.asarray(values, dtype=np.float32)
    return (values - values.mean()) / max(float(values.std()), 1e-4)


def minibatches(num_rows: int, minibatch_size: int, rng: np.random.Generator
                ) -> Iterator[np.ndarray]:
    """Row indices of shuffled minibatches: ``num_rows // minibatch_size`` full ones (the rows
    left over fall in other epochs' minibatches), or one of all rows if there are fewer."""
    order = rng.permutation(num_rows)
    if num_rows <= minibatch_size:
        yield order
        return
    for start in range(0, num_rows - minibatch_size + 1, minibatch_size):
        yield order[start:start + minibatch_size]
