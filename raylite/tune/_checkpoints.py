"""A trial's checkpoints on disk: how many to keep, and copying one trial's into another.

Checkpoints are directories in the trial's folder (``checkpoint_000004/``). The driver sees
each new one as it is reported or saved; :class:`CheckpointKeeper` then deletes the ones
``keep_checkpoints_num`` no longer covers. :func:`clone_checkpoint` copies a checkpoint into
another trial's folder (PBT's exploit step), so the copy outlives whatever happens to the
original.
"""

from __future__ import annotations

import math
import os
import shutil
from typing import Any


class CheckpointKeeper:
    """Keep at most ``num_to_keep`` checkpoints per trial: the latest one always, and the
    best others by ``score_attr`` (a result field; prefix "min-" to keep the lowest), or the
    most recent when there is no score.

    Example:
        >>> keeper = CheckpointKeeper(2, "min-loss")
        >>> keeper.num_to_keep, keeper.score_attr, keeper.mode
        (2, 'loss', 'min')
    """

    def __init__(self, num_to_keep: int | None, score_attr: str | None = None):
        if num_to_keep is not None and (not isinstance(num_to_keep, int) or num_to_keep < 1):
            raise ValueError(f"keep_checkpoints_num must be an int >= 1 (or None to keep all), "
                             f"got {num_to_keep!r}")
        self.num_to_keep = num_to_keep
        self.mode = "max"
        if score_attr and score_attr.startswith("min-"):
            score_attr, self.mode = score_attr[4:], "min"
        self.score_attr = score_attr
        self._kept: dict[str, list[tuple[float, int, str]]] = {}
        self._order = 0

    def on_checkpoint(self, trial: Any, path: str, result: dict | None) -> None:
        """``path`` is ``trial``'s newest checkpoint; delete what no longer fits."""
        if not self.num_to_keep or not path:
            return
        kept = self._kept.setdefault(trial.trial_id, [])
        if any(p == path for _, _, p in kept):
            return
        self._order += 1
        kept.append((self._score(result), self._order, path))
        while len(kept) > self.num_to_keep:
            older = kept[:-1]  # the newest is never deleted: trials restore from it
            worst = min(older, key=lambda entry: (entry[0], entry[1]))
            kept.remove(worst)
            folder = worst[2] if os.path.isdir(worst[2]) else os.path.dirname(worst[2])
            current = trial.checkpoint or ""
            if worst[2] != current and not _inside(current, folder) and _inside(folder, trial.logdir):
                shutil.rmtree(folder, ignore_errors=True)

    def _score(self, result: dict | None) -> float:
        if not self.score_attr:
            return -math.inf  # no score: order alone decides (oldest goes first)
        value = (result or {}).get(self.score_attr)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            return -math.inf
        return float(value) if self.mode == "max" else -float(value)


def _inside(path: str, folder: str | None) -> bool:
    if not folder:
        return False
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return path != folder and os.path.commonpath([path, folder]) == folder


def clone_checkpoint(source: str, trial_dir: str, iteration: int) -> str:
    """Copy the checkpoint directory ``source`` into ``trial_dir`` and return the copy's path.

    A checkpoint given as a file inside its directory (as class trainables may return) is
    copied with its whole directory and the copy's path points at the same file.
    """
    folder, inner = source, ""
    if os.path.isfile(source):
        folder, inner = os.path.dirname(source), os.path.basename(source)
    target = os.path.join(trial_dir, f"checkpoint_{iteration:06d}_exploited")
    if os.path.abspath(folder) != os.path.abspath(target):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target)
    return os.path.join(target, inner) if inner else target
