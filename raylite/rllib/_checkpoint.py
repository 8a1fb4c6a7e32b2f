"""Checkpoint files, laid out as Ray 1.9 lays them out:

    <results>/<experiment>/PPO_<env>_<trial id>_<date>/
        checkpoint_000005/
            checkpoint-5          the algorithm's state (cloudpickle): config, weights as numpy
                                  arrays, optimizer state, observation filter, counters
            .tune_metadata        written by tune.Trainable.save

``find`` accepts the file, its directory, or a trial directory (its latest checkpoint).
Reading needs neither torch nor TensorFlow.
"""

from __future__ import annotations

import glob
import os
import pickle
import re
from typing import Any

FORMAT = "raylite.rllib.checkpoint/1"
_DIR = re.compile(r"checkpoint_(\d+)$")
_FILE = re.compile(r"checkpoint-(\d+)$")


def write(directory: str, iteration: int, state: dict[str, Any]) -> str:
    """Write ``state`` as ``directory/checkpoint-<iteration>``; returns the file's path."""
    import cloudpickle
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"checkpoint-{iteration}")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        cloudpickle.dump({"format": FORMAT, **state}, f)
    os.replace(tmp, path)
    return path


def find(path: str) -> str:
    """The checkpoint file that ``path`` names (file, checkpoint dir, or trial dir)."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no checkpoint at {path}: it does not exist (give the "
                                f"checkpoint_NNNNNN directory or the checkpoint-N file in it)")
    files = [f for f in glob.glob(os.path.join(path, "checkpoint-*")) if _FILE.search(f)]
    if files:
        return max(files, key=lambda f: int(_FILE.search(f).group(1)))
    dirs = [d for d in glob.glob(os.path.join(path, "checkpoint_*")) if _DIR.search(d)]
    if dirs:
        return find(max(dirs, key=lambda d: int(_DIR.search(d).group(1))))
    raise FileNotFoundError(f"no checkpoint in {path}: expected a checkpoint-N file or "
                            f"checkpoint_NNNNNN directories")


def read(path: str) -> dict[str, Any]:
    """The state in the checkpoint that ``path`` names."""
    file = find(path)
    try:
        with open(file, "rb") as f:
            state = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, ImportError, MemoryError, OverflowError, UnicodeDecodeError) as exc:
        problem = "it ends early (truncated)" if isinstance(exc, EOFError) else (
            f"{type(exc).__name__}: {exc}")
        raise CheckpointError(f"{file}: cannot read this checkpoint, {problem}; it is "
                              f"truncated or corrupt: use another checkpoint") from None
    except IsADirectoryError:
        raise CheckpointError(f"{file}: a directory, not a checkpoint file") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{file} is not a raylite rllib checkpoint")
    return state


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: its message names the file and the problem."""


#: the model spec classes a checkpoint may name, by module
_SPEC_MODULES = {"ModelSpec": "raylite.rllib._model", "QModelSpec": "raylite.rllib._q_model",
                 "SACModelSpec": "raylite.rllib._sac_model",
                 "CustomTorchModelSpec": "raylite.rllib._custom_model",
                 "CustomKerasModelSpec": "raylite.rllib._custom_model"}


def model_spec(state: dict[str, Any]) -> Any:
    """The network's spec a checkpoint was written with (PPO's, DQN's or SAC's)."""
    import importlib
    kind = state.get("model_spec_type", "ModelSpec")
    if kind not in _SPEC_MODULES:
        raise ValueError(f"the checkpoint's model kind {kind!r} is not one raylite knows")
    cls = getattr(importlib.import_module(_SPEC_MODULES[kind]), kind)
    values = {k: tuple(v) if isinstance(v, list) and k != "model_config" else v
              for k, v in state["model_spec"].items()}
    return cls(**values)
