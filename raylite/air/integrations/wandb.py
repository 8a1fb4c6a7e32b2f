"""Weights & Biases tracking: :class:`WandbLoggerCallback` (one W&B run per trial) and
:func:`setup_wandb`. Without an API key only ``mode="offline"`` (or ``"disabled"``) is
accepted, so nothing waits for a login or a network; offline runs are written under the
trial's folder and can be synced later with ``wandb sync``. wandb is imported only when used.
"""

from __future__ import annotations

import os
from typing import Any

from raylite.air.integrations._flatten import flatten, numeric_metrics
from raylite.tune._logger import LoggerCallback

__all__ = ["WandbLoggerCallback", "setup_wandb"]


def _wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise ImportError("W&B tracking needs the wandb package: pip install wandb") from None
    return wandb


def _check_mode(kwargs: dict, api_key: str | None) -> str:
    mode = kwargs.get("mode") or os.environ.get("WANDB_MODE") or "online"
    if mode not in ("offline", "disabled", "dryrun") and not (
            api_key or os.environ.get("WANDB_API_KEY")):
        raise ValueError("W&B needs an API key to log online (api_key=, api_key_file= or "
                         "WANDB_API_KEY); without one pass mode='offline' (or set "
                         "WANDB_MODE=offline)")
    return mode


class WandbLoggerCallback(LoggerCallback):
    """Log each trial as a W&B run in ``project`` (config and every numeric result)."""

    def __init__(self, project: str | None = None, group: str | None = None,
                 api_key_file: str | None = None, api_key: str | None = None,
                 excludes: list[str] | None = None, log_config: bool = False,
                 upload_checkpoints: bool = False, save_checkpoints: bool = False,
                 **kwargs: Any):
        if api_key_file is not None:
            with open(os.path.expanduser(api_key_file)) as f:
                api_key = f.read().strip()
        if upload_checkpoints or save_checkpoints:
            raise ValueError("WandbLoggerCallback(upload_checkpoints=...) is not supported by "
                             "raylite; the checkpoints stay in the trial folders")
        self.mode = _check_mode(kwargs, api_key)
        self.project = project
        self.group = group
        self.api_key = api_key
        self.excludes = tuple(excludes or ())
        self.log_config = log_config
        self.kwargs = {k: v for k, v in kwargs.items() if k != "mode"}
        self._runs: dict[str, Any] = {}

    def log_trial_start(self, trial: Any) -> None:
        if trial.trial_id in self._runs:
            return
        wandb = _wandb()
        if self.api_key:
            os.environ["WANDB_API_KEY"] = self.api_key
        config = {k: v for k, v in flatten(trial.config or {}).items()}
        self._runs[trial.trial_id] = wandb.init(
            project=self.project or "raylite", group=self.group or trial.trainable_name,
            name=str(trial), id=trial.trial_id, config=config, mode=self.mode,
            dir=trial.logdir or None, reinit="create_new", **self.kwargs)

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        if trial.trial_id not in self._runs:
            self.log_trial_start(trial)
        metrics = numeric_metrics(result, self.excludes)
        if self.log_config:
            metrics["config"] = result.get("config", {})
        self._runs[trial.trial_id].log(metrics)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        run = self._runs.pop(trial.trial_id, None)
        if run is not None:
            run.finish(exit_code=1 if failed else 0)


def setup_wandb(config: dict | None = None, api_key: str | None = None,
                api_key_file: str | None = None, rank_zero_only: bool = True,
                **kwargs: Any) -> Any:
    """A W&B run for this trial (or training worker); on ranks other than 0 (with
    ``rank_zero_only``) a run that logs nothing."""
    from raylite.air import session
    try:
        rank = session.get_world_rank()
        trial_name = session.get_trial_name() or None
    except RuntimeError:
        rank, trial_name = 0, None
    wandb = _wandb()
    if rank_zero_only and rank != 0:
        kwargs["mode"] = "disabled"
    if api_key_file is not None:
        with open(os.path.expanduser(api_key_file)) as f:
            api_key = f.read().strip()
    mode = _check_mode(kwargs, api_key)
    if api_key:
        os.environ["WANDB_API_KEY"] = api_key
    kwargs.pop("mode", None)
    kwargs.setdefault("name", trial_name)
    return wandb.init(config=config, mode=mode, reinit="create_new", **kwargs)
