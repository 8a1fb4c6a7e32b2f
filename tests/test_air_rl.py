"""RLTrainer and RLPredictor (ray.train.rl) over raylite.rllib, with a tiny budget."""

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("torch")

TINY = {"env": "CartPole-v1", "framework": "torch", "num_workers": 0, "train_batch_size": 200,
        "sgd_minibatch_size": 50, "num_sgd_iter": 1}


def test_rl_trainer_and_predictor(ray, tmp_path):
    from raylite.air import RunConfig
    from raylite.train.batch_predictor import BatchPredictor
    from raylite.train.rl import RLCheckpoint, RLPredictor, RLTrainer
    result = RLTrainer(algorithm="PPO", config=TINY,
                       run_config=RunConfig(storage_path=str(tmp_path), verbose=0,
                                            stop={"training_iteration": 2})).fit()
    assert result.metrics["training_iteration"] == 2
    assert isinstance(result.checkpoint, RLCheckpoint)
    predictor = RLPredictor.from_checkpoint(result.checkpoint)
    observations = np.zeros((5, 4), dtype=np.float32)
    actions = predictor.predict(observations)
    assert actions.shape == (5,) and set(actions.tolist()) <= {0, 1}
    ds = ray.data.from_numpy(np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32))
    scored = BatchPredictor.from_checkpoint(result.checkpoint, RLPredictor).predict(ds)
    assert scored.count() == 8
    with pytest.raises(ValueError, match="datasets"):
        RLTrainer(algorithm="PPO", config=TINY, datasets={"train": ds})
