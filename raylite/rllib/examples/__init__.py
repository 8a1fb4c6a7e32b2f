"""Example experiments (the files ``rllib example list|get|run`` serves) and example envs.

The YAML files here are the canonical copies; the repository's ``configs/`` links to them.
``maze`` is the book's chapter 3 maze, registered as the env ``"maze"``.
"""

from __future__ import annotations

import os

EXAMPLES_DIR = os.path.dirname(os.path.abspath(__file__))


def example_files() -> dict[str, str]:
    """Example name (the file name without ``.yml``) -> path."""
    return {name[:-4]: os.path.join(EXAMPLES_DIR, name)
            for name in sorted(os.listdir(EXAMPLES_DIR)) if name.endswith(".yml")}


def description(path: str) -> str:
    """The first comment line of an example file."""
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                return line.lstrip("# ").strip()
    return ""


__all__ = ["EXAMPLES_DIR", "description", "example_files"]
