"""MARWIL (Wang et al. 2018, "Exponentially Weighted Imitation Learning for Batched Historical
Data") and behavior cloning (MARWIL with beta 0), learning from offline data.

One training iteration, top to bottom (``MARWIL.training_step``):

    1. read      batches from ``input_`` (JsonReader) until train_batch_size rows are in
    2. returns   discounted returns of each batch's episodes (cut where a batch ends)
    3. learning  one gradient step on marwil_loss: the log-likelihood of the logged actions,
                 weighted by exp(beta * advantage / c) with advantage = return - V(s), plus the
                 value loss; c^2 is a running mean of the squared advantages
    ``evaluate()`` then runs the learned policy in the real env.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from raylite.rllib._algorithm import DEFAULT_POLICY_ID, Algorithm
from raylite.rllib._buffer import ACTIONS, OBS
from raylite.rllib._builder import ConfigBuilder
from raylite.rllib._config import AlgorithmConfig
from raylite.rllib._gae import discounted_returns
from raylite.rllib._offline import JsonReader, single_agent_batch

RETURNS = "returns"


def marwil_loss(ops: Any, dist_class: type, dist_inputs: Any, values: Any,
                batch: dict[str, Any], coeffs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """MARWIL's loss on a batch (``obs``, ``actions``, ``returns``) and its parts."""
    logp = dist_class(ops, dist_inputs).logp(batch[ACTIONS])
    advantages = ops.stop_gradient(batch[RETURNS] - values)
    exp_advantages = ops.exp(coeffs["beta"] * advantages / coeffs["advantage_norm"])
    policy_loss = -ops.mean(exp_advantages * logp)
    vf_loss = 0.5 * ops.mean((values - batch[RETURNS]) * (values - batch[RETURNS]))
    total = policy_loss + coeffs["vf_coeff"] * vf_loss
    stats = {"policy_loss": policy_loss, "vf_loss": vf_loss, "total_loss": total,
             "mean_squared_advantage": ops.mean(advantages * advantages)}
    return total, stats


def returns_of(batch: dict[str, np.ndarray], gamma: float) -> np.ndarray:
    """Discounted returns of a batch's rows (in time order; episodes end at ``dones``)."""
    dones = batch.get("dones", batch.get("terminateds"))
    if dones is None or "rewards" not in batch:
        raise ValueError(f"offline batches need rewards and dones columns to learn from; this "
                         f"one has {', '.join(sorted(batch))}")
    return discounted_returns(batch["rewards"], np.asarray(dones, bool), np.array(0.0), gamma)


class MARWIL(Algorithm):
    """MARWIL from offline data: ``MARWILConfig().environment("CartPole-v1")
    .offline_data(input_=DIR).build()``."""

    algo_name = "MARWIL"

    def loss_function(self, config: AlgorithmConfig) -> Any:
        return marwil_loss

    def _implements(self, option: str) -> bool:
        return option == "input"

    def setup(self, config: dict) -> None:
        super().setup(config)
        if self.algo_config.input_ == "sampler":
            raise ValueError(f"{self.algo_name} learns from offline data: set "
                             f".offline_data(input_=DIR) to JSON files written with output=DIR")
        self.reader = JsonReader(self.algo_config.input_)
        self.squared_advantage_norm = self.algo_config.moving_average_sqd_adv_norm_start

    def training_step(self) -> tuple[int, list, dict[str, dict]]:
        config = self.algo_config
        # 1.-2. offline batches and their returns
        pieces, rows = [], 0
        while rows < config.train_batch_size:
            batch = single_agent_batch(self.reader.next(), self.algo_name)
            pieces.append({OBS: np.asarray(batch[OBS], np.float32), ACTIONS: batch[ACTIONS],
                           RETURNS: returns_of(batch, config.gamma)})
            rows += len(batch[OBS])
        train_batch = {name: np.concatenate([p[name] for p in pieces]) for name in pieces[0]}
        # 3. one gradient step on the weighted log-likelihood and the value loss
        coeffs = {"beta": config.beta, "vf_coeff": config.vf_coeff,
                  "advantage_norm": math.sqrt(self.squared_advantage_norm) + 1e-8}
        stats = self.learner.learn_on_minibatch(train_batch, coeffs)
        rate = config.moving_average_sqd_adv_norm_update_rate
        self.squared_advantage_norm += rate * (stats["mean_squared_advantage"]
                                               - self.squared_advantage_norm)
        stats["moving_average_sqd_adv_norm"] = self.squared_advantage_norm
        return rows, [], {DEFAULT_POLICY_ID: stats}

    def learner_state(self, unit: Any) -> dict[str, Any]:
        return {"squared_advantage_norm": self.squared_advantage_norm}

    def set_learner_state(self, unit: Any, state: dict[str, Any]) -> None:
        self.squared_advantage_norm = state.get("squared_advantage_norm",
                                                self.squared_advantage_norm)


class BC(MARWIL):
    """Behavior cloning: MARWIL with beta 0 (every logged action weighted alike)."""

    algo_name = "BC"


class MARWILConfig(ConfigBuilder):
    algo_name = "MARWIL"

    def __init__(self, algo_class: type | None = None):
        super().__init__(algo_class or MARWIL)


class BCConfig(ConfigBuilder):
    algo_name = "BC"

    def __init__(self, algo_class: type | None = None):
        super().__init__(algo_class or BC)
