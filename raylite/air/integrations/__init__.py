"""Experiment tracking for Tune and Train (``ray.air.integrations``), loaded on use:
``raylite.air.integrations.mlflow`` (MLflowLoggerCallback, setup_mlflow) and
``raylite.air.integrations.wandb`` (WandbLoggerCallback, setup_wandb)."""

__all__ = ["mlflow", "wandb"]
