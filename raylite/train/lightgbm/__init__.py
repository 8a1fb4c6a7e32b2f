"""raylite.train.lightgbm: one LightGBM model trained across worker actors (LightGBM's
data-parallel learner over its own sockets), its checkpoint and predictor. lightgbm is
imported only when used."""

from raylite.train._gbdt import (LightGBMCheckpoint, LightGBMConfig, LightGBMPredictor,
                                 LightGBMTrainer)

__all__ = ["LightGBMTrainer", "LightGBMCheckpoint", "LightGBMPredictor", "LightGBMConfig"]
