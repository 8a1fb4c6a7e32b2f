"""PopulationBasedTraining: explore as a pure function, then whole experiments with class and
function trainables in which bottom trials demonstrably take over top trials' checkpoints and
move to perturbed configs."""

import json
import os
import random

import pytest

from raylite import tune
from raylite.tune._pbt import explore
from raylite.tune.schedulers import PopulationBasedTraining

LRS = [0.01, 0.1, 1.0, 2.0]


# ---- explore -------------------------------------------------------------------------------
def test_explore_perturbs_numbers_and_moves_along_lists():
    rng = random.Random(0)
    config = {"lr": 0.5, "units": 10, "act": "relu", "fixed": 1, "opt": {"momentum": 0.9}}
    mutations = {"lr": tune.uniform(0, 1), "units": tune.randint(1, 100),
                 "act": ["tanh", "relu", "elu"], "opt": {"momentum": tune.uniform(0.5, 1)}}
    seen = {"lr": set(), "units": set(), "act": set(), "momentum": set()}
    for _ in range(40):
        new = explore(config, mutations, 0.0, (1.2, 0.8), rng)
        assert new["fixed"] == 1 and config["lr"] == 0.5  # the original is untouched
        seen["lr"].add(round(new["lr"], 6))
        seen["units"].add(new["units"])
        seen["act"].add(new["act"])
        seen["momentum"].add(round(new["opt"]["momentum"], 6))
    assert seen == {"lr": {0.6, 0.4}, "units": {12, 8}, "act": {"tanh", "elu"},
                    "momentum": {1.08, 0.72}}


def test_explore_resamples_with_probability_one():
    rng = random.Random(1)
    for _ in range(20):
        new = explore({"lr": 5.0, "act": "x"}, {"lr": tune.uniform(0, 1), "act": ["a", "b"]},
                      1.0, (1.2, 0.8), rng, custom_explore_fn=lambda c: {**c, "seen": True})
        assert 0 <= new["lr"] <= 1 and new["act"] in ("a", "b") and new["seen"]


@pytest.mark.parametrize("kwargs, words", [
    ({}, "hyperparam_mutations"),
    ({"hyperparam_mutations": {"lr": 3}}, "'lr'"),
    ({"hyperparam_mutations": {"lr": []}}, "'lr'"),
    ({"hyperparam_mutations": {"lr": [1]}, "quantile_fraction": 0.7}, "quantile_fraction"),
    ({"hyperparam_mutations": {"lr": [1]}, "synch": True}, "synch"),
])
def test_bad_arguments(kwargs, words):
    with pytest.raises((ValueError, TypeError), match=words):
        PopulationBasedTraining(metric="value", mode="max", **kwargs)


# ---- whole experiments ---------------------------------------------------------------------
class Climber(tune.Trainable):
    """Adds config["lr"] to a running value each step; the value is its checkpointed state."""

    def setup(self, config):
        self.value = 0.0

    def step(self):
        self.value += self.config["lr"]
        return {"value": self.value, "lr": self.config["lr"]}

    def save_checkpoint(self, checkpoint_dir):
        return {"value": self.value}

    def load_checkpoint(self, checkpoint):
        self.value = checkpoint["value"]


def climber_function(config):
    checkpoint = tune.get_checkpoint()
    value = checkpoint.to_dict()["value"] if checkpoint else 0.0
    while True:
        value += config["lr"]
        tune.report({"value": value, "lr": config["lr"]},
                    checkpoint=tune.Checkpoint.from_dict({"value": value}))


def read_results(trial_dir):
    with open(os.path.join(trial_dir, "result.json")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("trainable", [Climber, climber_function], ids=["class", "function"])
def test_pbt_clones_checkpoints_and_moves_configs(ray, tmp_path, trainable):
    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2,
                                  hyperparam_mutations={"lr": LRS}, resample_probability=0.0,
                                  seed=0)
    analysis = tune.run(trainable, config={"lr": tune.grid_search(LRS)}, scheduler=pbt,
                        metric="value", mode="max", stop={"training_iteration": 8},
                        storage_path=str(tmp_path), name="pbt", verbose=0)
    assert {t.status for t in analysis.trials} == {"TERMINATED"}
    assert all(t.last_result["training_iteration"] == 8 for t in analysis.trials)
    assert pbt.num_perturbations >= 1

    by_id = {t.trial_id: t for t in analysis.trials}
    with open(tmp_path / "pbt" / "pbt_global.txt") as f:
        exploits = [json.loads(line) for line in f]
    assert len(exploits) == pbt.num_perturbations
    for target_id, donor_id, donor_iteration, _, old_config, new_config in exploits:
        target, donor = by_id[target_id], by_id[donor_id]
        # explored: a neighbour of the donor's lr (never the same: resample_probability=0)
        assert new_config["lr"] != old_config["lr"] or new_config["lr"] in (LRS[0], LRS[-1])
        clone = os.path.join(target.logdir, f"checkpoint_{donor_iteration:06d}_exploited")
        cloned_value = tune.Checkpoint.from_directory(clone).to_dict()["value"]
        # the clone holds a value the donor had at that iteration ...
        assert any(r["training_iteration"] == donor_iteration and
                   r["value"] == pytest.approx(cloned_value) for r in read_results(donor.logdir))
        # ... and the target went on from it, with the new config
        assert any(r["training_iteration"] == donor_iteration + 1 and r["config"] == new_config
                   and r["value"] == pytest.approx(cloned_value + new_config["lr"])
                   for r in read_results(target.logdir))
    # the population moved to the good learning rates: the worst start is not left behind
    assert min(t.last_result["value"] for t in analysis.trials) > 8 * LRS[1]
    assert analysis.best_result["value"] > 8 * LRS[2]
