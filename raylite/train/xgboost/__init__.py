"""raylite.train.xgboost: one XGBoost model trained across worker actors (xgboost's own
collective through a RabitTracker), its checkpoint and predictor. xgboost is imported only
when used.

    trainer = XGBoostTrainer(datasets={"train": ds}, label_column="y",
                             params={"objective": "reg:squarederror"}, num_boost_round=10,
                             scaling_config=ScalingConfig(num_workers=2))
    predictor = XGBoostPredictor.from_checkpoint(trainer.fit().checkpoint)
"""

from raylite.train._gbdt import XGBoostCheckpoint, XGBoostConfig, XGBoostPredictor, XGBoostTrainer

__all__ = ["XGBoostTrainer", "XGBoostCheckpoint", "XGBoostPredictor", "XGBoostConfig"]
