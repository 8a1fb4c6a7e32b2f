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

import contextlib
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from raylite.util._pickle_file import load_pickle

DICT_FILE = "dict_checkpoint.pkl"


class Checkpoint:
    """Saved training state: a directory on disk, or a dict in memory (Ray 2.x ``Checkpoint``).

    Example:
        >>> ckpt = Checkpoint.from_dict({"epoch": 3})
        >>> ckpt.to_dict()["epoch"]
        3
        >>> Checkpoint.from_directory(ckpt.to_directory()).to_dict()
        {'epoch': 3}
    """

    def __init__(self, path: str | os.PathLike | None = None, data: dict | None = None):
        if (path is None) == (data is None):
            raise ValueError("a Checkpoint is either a directory (path=...) or a dict (data=...)")
        self.path = os.fspath(path) if path is not None else None
        self._data = data

    @classmethod
    def from_directory(cls, path: str | os.PathLike) -> Checkpoint:
        """A checkpoint of the files in ``path`` (read when used, not now)."""
        if not os.path.isdir(path):
            raise ValueError(f"Checkpoint.from_directory: {os.fspath(path)!r} is not a directory")
        return cls(path=path)

    @classmethod
    def from_dict(cls, data: dict) -> Checkpoint:
        if not isinstance(data, dict):
            raise TypeError(f"Checkpoint.from_dict takes a dict, got {type(data).__name__}")
        return cls(data=dict(data))

    def to_dict(self) -> dict:
        """The dict this checkpoint holds (one made by ``from_dict`` or ``save_checkpoint``)."""
        if self._data is not None:
            return dict(self._data)
        file = os.path.join(self.path, DICT_FILE)
        if not os.path.exists(file):
            raise ValueError(f"checkpoint {self.path} holds files, not a dict; read them with "
                             "to_directory() or as_directory()")
        return load_pickle(file, "checkpoint")

    def to_directory(self, path: str | os.PathLike | None = None) -> str:
        """Write the checkpoint into ``path`` (a new temporary directory if None); return it."""
        path = os.fspath(path) if path is not None else tempfile.mkdtemp(prefix="checkpoint_")
        os.makedirs(path, exist_ok=True)
        if self._data is not None:
            with open(os.path.join(path, DICT_FILE), "wb") as f:
                pickle.dump(self._data, f)
        elif os.path.abspath(self.path) != os.path.abspath(path):
            shutil.copytree(self.path, path, dirs_exist_ok=True)
        return path

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        """The checkpoint as a directory, for the ``with`` block (a copy only if needed)."""
        if self.path is not None:
            yield self.path
            return
        path = self.to_directory()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def __repr__(self) -> str:
        return f"Checkpoint(path={self.path!r})" if self.path else "Checkpoint(<dict>)"


# ------------------------------------------------------------------------------------------
# payloads
# ------------------------------------------------------------------------------------------
def to_payload(checkpoint: Any) -> tuple:
    """The payload of a dict, a Checkpoint (this one or raylite.tune's), or a path."""
    if isinstance(checkpoint, dict):
        return ("dict", dict(checkpoint))
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
    if entries == [DICT_FILE]:
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
            pickle.dump(content, f)
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
    """The checkpoints of one run on the driver: written under ``checkpoint_dir``."""

    def __init__(self, checkpoint_dir: str, strategy: CheckpointStrategy | None = None):
        self.checkpoint_dir = checkpoint_dir
        self.strategy = strategy or CheckpointStrategy()
        self.count = 0
        self.latest_payload: tuple | None = None
        self.latest_path: str | None = None
        self._kept: list[tuple[float, int, str]] = []  # (score, number, path)

    def register(self, payload: tuple) -> str:
        self.count += 1
        path = write_payload(payload, os.path.join(self.checkpoint_dir,
                                                   f"checkpoint_{self.count:06d}"))
        self.latest_payload, self.latest_path = payload, path
        self._kept.append((self._score(payload), self.count, path))
        self._prune()
        return path

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
