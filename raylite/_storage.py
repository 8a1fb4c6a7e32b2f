"""Where results go, and what a storage path or URI means: one place for Tune, Train, RLlib
and Data.

``results_dir()`` is the default experiment root: ``$RAYLITE_RESULTS_DIR`` if set, else
``~/ray_results`` (where the book, and Ray, put checkpoints and TensorBoard logs).
"""

from __future__ import annotations

import os

DEFAULT_RESULTS_DIR = "~/ray_results"

__all__ = ["DEFAULT_RESULTS_DIR", "results_dir"]


def results_dir(path: str | os.PathLike | None = None) -> str:
    """``path`` (a ``file://`` URI or a local path, ``~`` expanded), else $RAYLITE_RESULTS_DIR,
    else ``~/ray_results``: an absolute local path."""
    root = os.fspath(path) if path else None
    root = root or os.environ.get("RAYLITE_RESULTS_DIR") or DEFAULT_RESULTS_DIR
    return os.path.abspath(os.path.expanduser(str(root).removeprefix("file://")))
