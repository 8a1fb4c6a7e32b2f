"""Checkpoints: the :class:`Checkpoint` object, how checkpoints travel, where they are kept.

A checkpoint travels from a worker to the driver as a *payload*, plain data that needs no
shared file system::

    ("dict", {...})                  train.save_checkpoint(**state), Checkpoint.from_dict(...)
    ("files", {relpath: bytes})      Checkpoint.from_directory(path): the directory's files

The driver writes each one as ``<run dir>/checkpoints/checkpoint_000001/`` (a dict as
``dict_checkpoint.pkl``, the layout raylite.tune's Checkpoint reads too) and keeps the latest
(and, with a CheckpointStrategy, the best ``num_to_keep``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import cloudpickle

from raylite.air.checkpoint import DICT_FILE, PREPROCESSOR_FILE, TYPE_FILE, Checkpoint
from raylite.util._pickle_file import load_pickle

__all__ = ["Checkpoint", "CheckpointStrategy", "CheckpointManager", "DICT_FILE"]


# ------------------------------------------------------------------------------------------
# payloads
# ------------------------------------------------------------------------------------------
def to_payload(checkpoint: Any) -> tuple:
    """The payload of a dict, a Checkpoint, or a path."""
    if isinstance(checkpoint, dict):
        return ("dict", dict(checkpoint))
    if isinstance(checkpoint, Checkpoint) and type(checkpoint) is not Checkpoint:
        # a framework checkpoint travels as files, its class name among them
        directory = checkpoint.to_directory()
        try:
            return _directory_payload(directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    data = getattr(checkpoint, "_data", None)
    if isinstance(data, dict):
        return ("dict", dict(data))
    path = getattr(checkpoint, "path", None) if not isinstance(checkpoint, (str, os.PathLike)) \
        else os.fspath(checkpoint)
    if path and os.path.isdir(path):
        return _directory_payload(path)
    if path and os.path.isfile(path):  # Ray 1.x: a file holding a pickled dict
        return ("dict", load_pickle(path, "checkpoint"))
    raise TypeError(f"a checkpoint must be a dict, a Checkpoint or the path of a checkpoint "
                    f"directory, got {type(checkpoint).__name__} {checkpoint!r:.80}")


def _directory_payload(path: str) -> tuple:
    dict_file = os.path.join(path, DICT_FILE)
    entries = [e for e in os.listdir(path) if not e.startswith(".")]
    if entries == [DICT_FILE] and not os.path.exists(os.path.join(path, TYPE_FILE)):
        return ("dict", load_pickle(dict_file, "checkpoint"))
    files = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                files[os.path.relpath(full, path)] = f.read()
    return ("files", files)


def write_payload(payload: tuple, path: str) -> str:
    """Write a payload as a checkpoint directory at ``path``."""
    kind, content = payload
    os.makedirs(path, exist_ok=True)
    if kind == "dict":
        with open(os.path.join(path, DICT_FILE), "wb") as f:
            cloudpickle.dump(content, f)
    else:
        for relpath, data in content.items():
            target = os.path.join(path, relpath)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
    return path


def payload_to_dict(payload: tuple) -> Any:
    """What ``train.load_checkpoint()`` returns: the dict (a Checkpoint for a files payload)."""
    if payload[0] == "dict":
        return dict(payload[1])
    return payload_to_checkpoint(payload)


def payload_to_checkpoint(payload: tuple) -> Checkpoint:
    if payload[0] == "dict":
        return Checkpoint.from_dict(payload[1])
    return Checkpoint.from_directory(write_payload(payload, tempfile.mkdtemp(prefix="checkpoint_")))


# ------------------------------------------------------------------------------------------
# keeping checkpoints on the driver
# ------------------------------------------------------------------------------------------
@dataclass
class CheckpointStrategy:
    """Which checkpoints to keep (Ray 1.x ``train.CheckpointStrategy``).

    Args:
        num_to_keep: keep this many (the best by ``checkpoint_score_attribute``); None: all.
        checkpoint_score_attribute: a key of the checkpoint dict to rank by; default: newest.
        checkpoint_score_order: "max" or "min".
    """

    num_to_keep: int | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"

    def __post_init__(self) -> None:
        if self.num_to_keep is not None and (not isinstance(self.num_to_keep, int)
                                             or self.num_to_keep < 0):
            raise ValueError(f"num_to_keep must be None or an int >= 0, got {self.num_to_keep!r}")
        if self.checkpoint_score_order not in ("max", "min"):
            raise ValueError(f"checkpoint_score_order must be 'max' or 'min', got "
                             f"{self.checkpoint_score_order!r}")


class CheckpointManager:
    """The checkpoints of one run on the driver: written under ``checkpoint_dir``.

    With ``score_by_metrics`` (Ray 2.x ``CheckpointConfig``) a checkpoint is ranked by the
    metrics reported with it (rank 0's next report, :meth:`on_report`), not by its own keys
    (Ray 1.x ``CheckpointStrategy``). A ``preprocessor`` is saved into every checkpoint.
    """

    def __init__(self, checkpoint_dir: str, strategy: CheckpointStrategy | None = None, *,
                 score_by_metrics: bool = False, preprocessor: Any = None):
        self.checkpoint_dir = checkpoint_dir
        self.strategy = strategy or CheckpointStrategy()
        self.score_by_metrics = score_by_metrics
        self.preprocessor = preprocessor
        self.count = 0
        self.latest_payload: tuple | None = None
        self.latest_path: str | None = None
        self._kept: list[tuple[float, int, str]] = []  # (score, number, path)
        self._pending: tuple[int, str] | None = None  # waiting for its metrics
        self._unreported: str | None = None  # registered since rank 0's last report
        self.metrics: dict[str, dict] = {}  # path -> the metrics reported with it

    def register(self, payload: tuple) -> str:
        self.flush()
        self.count += 1
        path = write_payload(payload, os.path.join(self.checkpoint_dir,
                                                   f"checkpoint_{self.count:06d}"))
        if self.preprocessor is not None and not os.path.exists(
                os.path.join(path, PREPROCESSOR_FILE)):
            with open(os.path.join(path, PREPROCESSOR_FILE), "wb") as f:
                cloudpickle.dump(self.preprocessor, f)
        self.latest_payload, self.latest_path = payload, path
        self._unreported = path
        if self.score_by_metrics:
            self._pending = (self.count, path)
        else:
            self._kept.append((self._score(payload), self.count, path))
            self._prune()
        return path

    def on_report(self, metrics: dict) -> str | None:
        """Rank 0 reported ``metrics``: they belong to the checkpoint registered since its last
        report, if any; returns that checkpoint's path."""
        path, self._unreported = self._unreported, None
        if self._pending is None:
            return path
        number, path = self._pending
        self._pending = None
        self.metrics[path] = dict(metrics)
        self._kept.append((self._metric_score(metrics, number), number, path))
        self._prune()
        return path

    def flush(self) -> None:
        """A checkpoint still waiting for metrics is kept with none."""
        if self._pending is not None:
            self.on_report({})

    def _metric_score(self, metrics: dict, number: int) -> float:
        attribute = self.strategy.checkpoint_score_attribute
        if attribute is None:
            return float(number)
        if attribute not in metrics:
            raise ValueError(f"CheckpointConfig(checkpoint_score_attribute={attribute!r}) is not "
                             f"among the metrics reported with the checkpoint: "
                             f"{sorted(k for k in metrics if not k.startswith('_'))}")
        value = float(metrics[attribute])
        return value if self.strategy.checkpoint_score_order == "max" else -value

    def _score(self, payload: tuple) -> float:
        attribute = self.strategy.checkpoint_score_attribute
        if attribute is None:
            return float(self.count)
        if payload[0] != "dict" or attribute not in payload[1]:
            raise ValueError(f"checkpoint_score_attribute {attribute!r} is not a key of the "
                             f"checkpoint (keys: {sorted(payload[1]) if payload[0] == 'dict' else 'files'})")
        value = float(payload[1][attribute])
        return value if self.strategy.checkpoint_score_order == "max" else -value

    def _prune(self) -> None:
        keep = self.strategy.num_to_keep
        if keep is None or len(self._kept) <= keep:
            return
        ranked = sorted(self._kept, reverse=True)
        for _, _, path in ranked[keep:]:
            if path != self.latest_path:  # the latest always stays, to restart from
                shutil.rmtree(path, ignore_errors=True)
        self._kept = [k for k in self._kept if k in ranked[:keep] or k[2] == self.latest_path]

    @property
    def best_path(self) -> str | None:
        return max(self._kept)[2] if self._kept else None

    def kept(self) -> list[tuple[str, dict]]:
        """The checkpoints still on disk with their metrics, oldest first."""
        self.flush()
        return [(path, self.metrics.get(path, {})) for _, _, path in
                sorted(self._kept, key=lambda entry: entry[1]) if os.path.isdir(path)]
