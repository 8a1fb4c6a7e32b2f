"""raylite.train.rl: RLlib algorithms as AIR trainers (``RLTrainer``) and predictors
(``RLPredictor``), Ray 2.2's ``ray.train.rl``."""

from raylite.train._rl import RLCheckpoint, RLPredictor, RLTrainer

__all__ = ["RLTrainer", "RLCheckpoint", "RLPredictor"]
