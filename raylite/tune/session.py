"""The Ray 2.x session API (``session.report({"loss": 0.1})``) for function trainables."""

from raylite.tune._session import (Checkpoint, get_checkpoint, get_experiment_name, get_trial_dir,
                                   get_trial_id, get_trial_name, get_trial_resources, report)

__all__ = ["report", "get_checkpoint", "get_trial_id", "get_trial_name", "get_trial_dir",
           "get_trial_resources", "get_experiment_name", "Checkpoint"]
